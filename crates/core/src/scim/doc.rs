//! Users as SCIM JSON, both ways.
//!
//! Input goes through two steps: [`normalize`] renames attributes to their canonical case,
//! drops what we do not store (`password`, `groups`, unknown attributes, `id`, `meta`) and
//! coerces Entra's string booleans; [`Draft::parse`] then validates the values into domain
//! types. Output is canonical: [`user_json`].

use super::path::split_urn;
use super::schema::{find_attr, find_sub, AttrDef, Kind, SchemaId, EXT_ATTRS};
use super::{filter::parse_bool, BUTTERFLY_USER_SCHEMA, USER_SCHEMA};
use crate::email::{check_email, UserName};
use crate::error::Error;
use crate::role::Role;
use crate::user::{Email, Name, RoleSource, User};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Map, Value};

/// Longest string value accepted in any attribute.
pub const MAX_STRING_LEN: usize = 2048;
/// Most email addresses a user may have.
pub const MAX_EMAILS: usize = 20;

/// The canonical SCIM representation of a user as a tree (for projections, filters and PATCH).
/// `location_base` is the SCIM base URL. Built from [`UserDoc`], the one rendering.
pub fn user_json(u: &User, location_base: &str) -> Value {
    // A `UserDoc` has only string keys, so it always converts.
    serde_json::to_value(UserDoc { user: u, location_base }).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// The canonical SCIM representation of a user, written straight as JSON text without building a
/// tree: what a response with no `attributes`/`excludedAttributes` sends. `location_base` is the
/// SCIM base URL. [`user_json`] is the same document as a tree, in the same order (a golden test).
pub struct UserDoc<'a> {
    pub user: &'a User,
    pub location_base: &'a str,
}

impl Serialize for UserDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.user;
        let mut o = s.serialize_map(None)?;
        match u.role {
            Some(_) => o.serialize_entry("schemas", &[USER_SCHEMA, BUTTERFLY_USER_SCHEMA])?,
            None => o.serialize_entry("schemas", &[USER_SCHEMA])?,
        }
        o.serialize_entry("id", &Shown(&u.id))?;
        if let Some(e) = &u.external_id {
            o.serialize_entry("externalId", e)?;
        }
        o.serialize_entry("userName", u.user_name.as_str())?;
        if let Some(n) = u.name.as_ref().filter(|n| !n.is_empty()) {
            o.serialize_entry(
                "name",
                &Fields(&[
                    ("formatted", n.formatted.as_deref()),
                    ("familyName", n.family_name.as_deref()),
                    ("givenName", n.given_name.as_deref()),
                    ("middleName", n.middle_name.as_deref()),
                ]),
            )?;
        }
        if let Some(d) = &u.display_name {
            o.serialize_entry("displayName", d)?;
        }
        if !u.emails.is_empty() {
            o.serialize_entry("emails", &Emails(&u.emails))?;
        }
        o.serialize_entry("active", &u.active)?;
        if let Some(l) = &u.locale {
            o.serialize_entry("locale", l)?;
        }
        if let Some(r) = u.role {
            o.serialize_entry("roles", &[Fields(&[("value", Some(r.as_str()))])])?;
            o.serialize_entry(BUTTERFLY_USER_SCHEMA, &Fields(&[("role", Some(r.as_str()))]))?;
        }
        let location = format!("{}/Users/{}", self.location_base, u.id);
        let (created, modified, version) = (u.created.to_rfc3339(), u.last_modified.to_rfc3339(), u.etag());
        o.serialize_entry(
            "meta",
            &Fields(&[
                ("resourceType", Some("User")),
                ("created", Some(&created)),
                ("lastModified", Some(&modified)),
                ("location", Some(&location)),
                ("version", Some(&version)),
            ]),
        )?;
        o.end()
    }
}

/// A JSON object of the string fields that are present, in order.
struct Fields<'a>(&'a [(&'a str, Option<&'a str>)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if let Some(v) = v {
                o.serialize_entry(k, v)?;
            }
        }
        o.end()
    }
}

struct Emails<'a>(&'a [Email]);

impl Serialize for Emails<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut a = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            a.serialize_element(&EmailDoc(e))?;
        }
        a.end()
    }
}

struct EmailDoc<'a>(&'a Email);

impl Serialize for EmailDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut o = s.serialize_map(None)?;
        o.serialize_entry("value", &e.value)?;
        if let Some(t) = &e.kind {
            o.serialize_entry("type", t)?;
        }
        if let Some(p) = e.primary {
            o.serialize_entry("primary", &p)?;
        }
        if let Some(d) = &e.display {
            o.serialize_entry("display", d)?;
        }
        o.end()
    }
}

/// A value serialised as its `Display` text.
struct Shown<'a, T: std::fmt::Display>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// The writable part of a user's representation: what PATCH operations act on.
pub fn writable_doc(u: &User) -> Map<String, Value> {
    let mut v = user_json(u, "");
    let mut out = Map::new();
    if let Some(o) = v.as_object_mut() {
        for (k, val) in std::mem::take(o) {
            if !matches!(k.as_str(), "schemas" | "id" | "meta") {
                out.insert(k, val);
            }
        }
    }
    out
}

/// Where a key of a resource body points.
pub enum Key {
    Attr(SchemaId, &'static AttrDef),
    Extension(SchemaId),
    Entitlements,
    Ignored,
}

/// Resolves a body key: a core attribute (any case, optionally URN-qualified), the extension
/// container, an extension attribute written with its URN, or `entitlements`.
pub fn resolve_key(key: &str) -> Key {
    if key.eq_ignore_ascii_case("entitlements") {
        return Key::Entitlements;
    }
    let Ok((schema, rest)) = split_urn(key) else {
        return Key::Ignored;
    };
    if rest.is_empty() {
        return match schema {
            SchemaId::Butterfly => Key::Extension(schema),
            SchemaId::Core => Key::Ignored,
        };
    }
    match find_attr(schema, rest) {
        Some(d) if d.mutability != super::schema::Mutability::ReadOnly => Key::Attr(schema, d),
        _ => Key::Ignored,
    }
}

/// Normalises a resource body (POST/PUT) or a path-less PATCH value into canonical keys.
/// Extension attributes end up inside the extension container.
pub fn normalize(body: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in body {
        insert_normalized(&mut out, k, v.clone());
    }
    out
}

/// Inserts one (key, value) into a canonical document, resolving the key.
pub fn insert_normalized(out: &mut Map<String, Value>, key: &str, v: Value) {
    match resolve_key(key) {
        Key::Attr(SchemaId::Core, d) => {
            out.insert(d.name.into(), normalize_value(d, v));
        }
        Key::Attr(SchemaId::Butterfly, d) => {
            let ext = out.entry(BUTTERFLY_USER_SCHEMA).or_insert_with(|| Value::Object(Map::new()));
            if let Some(o) = ext.as_object_mut() {
                o.insert(d.name.into(), normalize_value(d, v));
            }
        }
        Key::Extension(_) => {
            let n = normalize_extension(v);
            match (out.get_mut(BUTTERFLY_USER_SCHEMA), n) {
                (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
                (_, n) => {
                    out.insert(BUTTERFLY_USER_SCHEMA.into(), n);
                }
            }
        }
        Key::Entitlements => {
            out.insert("entitlements".into(), normalize_multi_roles(v));
        }
        Key::Ignored => {}
    }
}

/// Normalises an extension container: canonical attribute names, the nested `schemas` key
/// (which some clients include) dropped.
pub fn normalize_extension(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut n = Map::new();
            for (k, val) in o {
                if let Some(d) = EXT_ATTRS.iter().find(|a| a.name.eq_ignore_ascii_case(&k)) {
                    n.insert(d.name.into(), normalize_value(d, val));
                }
            }
            Value::Object(n)
        }
        other => other,
    }
}

/// Normalises one attribute's value: canonical sub-attribute names, single values of
/// multi-valued attributes wrapped in an array, string booleans coerced.
pub fn normalize_value(def: &'static AttrDef, v: Value) -> Value {
    if def.name == "roles" {
        return normalize_multi_roles(v);
    }
    if def.multi {
        return match v {
            Value::Null => Value::Null,
            Value::Array(a) => Value::Array(a.into_iter().map(|e| normalize_single(def, e)).collect()),
            other => Value::Array(vec![normalize_single(def, other)]),
        };
    }
    normalize_single(def, v)
}

/// Normalises one element (or a single-valued attribute's value).
pub fn normalize_single(def: &'static AttrDef, v: Value) -> Value {
    match (def.kind, v) {
        (Kind::Complex, Value::Object(o)) => {
            let mut n = Map::new();
            for (k, val) in o {
                if let Some(sd) = find_sub(def, &k) {
                    n.insert(sd.name.into(), normalize_single(sd, val));
                }
            }
            Value::Object(n)
        }
        (Kind::Boolean, Value::String(s)) => match parse_bool(&s) {
            Some(b) => Value::Bool(b),
            None => Value::String(s),
        },
        (_, other) => other,
    }
}

/// Roles (and entitlements) arrive as strings, objects, or Entra's stringified JSON objects.
fn normalize_multi_roles(v: Value) -> Value {
    let one = |e: Value| -> Value {
        match e {
            Value::String(s) => json!({"value": unwrap_stringified(s)}),
            Value::Object(o) => {
                let mut n = Map::new();
                for (k, val) in o {
                    if k.eq_ignore_ascii_case("value") {
                        let val = match val {
                            Value::String(s) => Value::String(unwrap_stringified(s)),
                            other => other,
                        };
                        n.insert("value".into(), val);
                    } else if k.eq_ignore_ascii_case("primary") {
                        let val = match val {
                            Value::String(s) => parse_bool(&s).map(Value::Bool).unwrap_or(Value::String(s)),
                            other => other,
                        };
                        n.insert("primary".into(), val);
                    }
                }
                Value::Object(n)
            }
            other => other,
        }
    };
    match v {
        Value::Null => Value::Null,
        Value::Array(a) => Value::Array(a.into_iter().map(one).collect()),
        other => Value::Array(vec![one(other)]),
    }
}

/// Entra's AppRoleAssignmentsComplex sends `value` as a JSON object in a string:
/// `{"id":"…","value":"admin","displayName":"Admin"}`. Take its `value`.
fn unwrap_stringified(s: String) -> String {
    let t = s.trim();
    if t.starts_with('{') {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(t) {
            if let Some(Value::String(inner)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")).map(|(_, v)| v)
            {
                return inner.clone();
            }
        }
    }
    s
}

/// Whether a role attribute was given, cleared or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleInput {
    Absent,
    Cleared,
    Set(Role),
}

/// A validated, typed user body. `None` fields were absent or unassigned (`null`, `""`, `[]`).
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub user_name: Option<UserName>,
    pub external_id: Option<String>,
    pub external_id_given: bool,
    pub name: Option<NameDraft>,
    pub display_name: Option<String>,
    pub emails: Vec<Email>,
    pub active: Option<bool>,
    pub locale: Option<String>,
    pub role: Option<RoleInput>,
}

/// `name` as sent: each sub-attribute given (`Some`), possibly as unassigned (`Some(None)`).
#[derive(Debug, Clone, Default)]
pub struct NameDraft {
    pub formatted: Option<Option<String>>,
    pub family_name: Option<Option<String>>,
    pub given_name: Option<Option<String>>,
    pub middle_name: Option<Option<String>>,
}

impl NameDraft {
    fn merge_into(&self, base: Option<Name>) -> Option<Name> {
        let mut n = base.unwrap_or_default();
        for (slot, given) in [
            (&mut n.formatted, &self.formatted),
            (&mut n.family_name, &self.family_name),
            (&mut n.given_name, &self.given_name),
            (&mut n.middle_name, &self.middle_name),
        ] {
            if let Some(v) = given {
                *slot = v.clone();
            }
        }
        (!n.is_empty()).then_some(n)
    }
}

fn opt_string(attr: &str, v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.chars().count() > MAX_STRING_LEN => {
            Err(Error::InvalidValue(format!("{attr} is longer than {MAX_STRING_LEN} characters")))
        }
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(Error::InvalidValue(format!("{attr} must be a string, not {}", kind_of(other)))),
    }
}

fn opt_bool(attr: &str, v: &Value) -> Result<Option<bool>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(Error::InvalidValue(format!("{attr} must be true or false, not {}", kind_of(other)))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Draft {
    /// Validates a normalised document.
    pub fn parse(doc: &Map<String, Value>) -> Result<Draft, Error> {
        let mut d = Draft::default();
        if let Some(v) = doc.get("userName") {
            match v {
                Value::String(s) => {
                    d.user_name = Some(UserName::parse(s).map_err(Error::InvalidValue)?);
                }
                Value::Null => {}
                other => {
                    return Err(Error::InvalidValue(format!("userName must be a string, not {}", kind_of(other))));
                }
            }
        }
        if let Some(v) = doc.get("externalId") {
            d.external_id_given = true;
            d.external_id = opt_string("externalId", v)?;
        }
        match doc.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                let sub = |k: &str| -> Result<Option<Option<String>>, Error> {
                    o.get(k).map(|v| opt_string(&format!("name.{k}"), v)).transpose()
                };
                d.name = Some(NameDraft {
                    formatted: sub("formatted")?,
                    family_name: sub("familyName")?,
                    given_name: sub("givenName")?,
                    middle_name: sub("middleName")?,
                });
            }
            Some(other) => return Err(Error::InvalidValue(format!("name must be an object, not {}", kind_of(other)))),
        }
        if let Some(v) = doc.get("displayName") {
            d.display_name = opt_string("displayName", v)?;
        }
        if let Some(v) = doc.get("locale") {
            d.locale = opt_string("locale", v)?;
        }
        if let Some(v) = doc.get("active") {
            d.active = opt_bool("active", v)?;
        }
        d.emails = parse_emails(doc.get("emails"))?;
        d.role = Some(parse_role(doc)?);
        Ok(d)
    }

    /// A new user from a POST body.
    pub fn into_new_user(self, base: NewUserBase) -> Result<User, Error> {
        let user_name = self
            .user_name
            .ok_or_else(|| Error::InvalidValue("userName is required: the user's email address".into()))?;
        let role = match self.role {
            Some(RoleInput::Set(r)) => Some(r),
            _ => None,
        };
        Ok(User {
            id: base.id,
            tenant: base.tenant,
            user_name,
            external_id: self.external_id,
            name: self.name.and_then(|n| n.merge_into(None)),
            display_name: self.display_name,
            emails: self.emails,
            active: self.active.unwrap_or(true),
            locale: self.locale,
            role,
            role_source: role.map(|_| RoleSource::Scim),
            subject: None,
            sessions_revoked_at: None,
            created: base.now,
            last_modified: base.now,
            version: 1,
        })
    }

    /// Applies a PUT body: replaces the user's writable attributes. Exceptions, by design:
    /// an absent role, `active` or `externalId` leaves that value unchanged, and sub-attributes
    /// missing from a sent `name` keep their values.
    pub fn apply_put(self, u: &mut User) -> Result<(), Error> {
        u.user_name = self
            .user_name
            .ok_or_else(|| Error::InvalidValue("userName is required: the user's email address".into()))?;
        if self.external_id_given {
            u.external_id = self.external_id;
        }
        u.name = match self.name {
            Some(n) => n.merge_into(u.name.take()),
            None => None,
        };
        u.display_name = self.display_name;
        u.emails = self.emails;
        if let Some(a) = self.active {
            u.active = a;
        }
        u.locale = self.locale;
        apply_role(u, self.role.unwrap_or(RoleInput::Absent));
        Ok(())
    }

    /// Applies a complete document (the result of PATCH operations): absent means unassigned.
    pub fn apply_complete(self, u: &mut User) -> Result<(), Error> {
        u.user_name =
            self.user_name.ok_or_else(|| Error::Mutability("userName is required and cannot be removed".into()))?;
        u.external_id = self.external_id;
        u.name = self.name.and_then(|n| n.merge_into(None));
        u.display_name = self.display_name;
        u.emails = self.emails;
        u.active = self.active.ok_or_else(|| {
            Error::Mutability("active is required and cannot be removed; replace it with false to deactivate".into())
        })?;
        u.locale = self.locale;
        apply_role(u, self.role.unwrap_or(RoleInput::Absent));
        Ok(())
    }
}

fn apply_role(u: &mut User, r: RoleInput) {
    match r {
        RoleInput::Absent => {}
        RoleInput::Cleared => {
            if u.role.is_some() {
                u.role = None;
                u.role_source = Some(RoleSource::Scim);
            }
        }
        RoleInput::Set(role) => {
            if u.role != Some(role) || u.role_source != Some(RoleSource::Scim) {
                u.role = Some(role);
                u.role_source = Some(RoleSource::Scim);
            }
        }
    }
}

/// Who supplies the id, tenant and time of a new user.
pub struct NewUserBase {
    pub id: crate::ids::UserId,
    pub tenant: crate::ids::TenantId,
    pub now: crate::clock::Timestamp,
}

fn parse_emails(v: Option<&Value>) -> Result<Vec<Email>, Error> {
    let arr = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(Error::InvalidValue(format!("emails must be an array, not {}", kind_of(other)))),
    };
    if arr.len() > MAX_EMAILS {
        return Err(Error::InvalidValue(format!("a user may have at most {MAX_EMAILS} email addresses")));
    }
    let mut out = Vec::with_capacity(arr.len());
    for e in arr {
        let Value::Object(o) = e else {
            return Err(Error::InvalidValue(format!("each of emails must be an object, not {}", kind_of(e))));
        };
        let Some(value) = o.get("value").map(|v| opt_string("emails.value", v)).transpose()?.flatten() else {
            // An element without an address carries nothing: treat it as unassigned.
            continue;
        };
        check_email(&value).map_err(|why| {
            Error::InvalidValue(format!("emails.value {value:?} is not a valid email address: it {why}"))
        })?;
        out.push(Email {
            value,
            kind: o.get("type").map(|v| opt_string("emails.type", v)).transpose()?.flatten(),
            primary: o.get("primary").map(|v| opt_bool("emails.primary", v)).transpose()?.flatten(),
            display: o.get("display").map(|v| opt_string("emails.display", v)).transpose()?.flatten(),
        });
    }
    if out.iter().filter(|e| e.primary == Some(true)).count() > 1 {
        return Err(Error::InvalidValue("at most one of emails may be primary".into()));
    }
    Ok(out)
}

/// Role precedence: the extension's `role`, then `roles` (the primary entry, else the first),
/// then `entitlements` (the primary entry that is a role key, else the first such entry).
fn parse_role(doc: &Map<String, Value>) -> Result<RoleInput, Error> {
    if let Some(Value::Object(ext)) = doc.get(BUTTERFLY_USER_SCHEMA) {
        if let Some(v) = ext.get("role") {
            return match opt_string("role", v)? {
                None => Ok(RoleInput::Cleared),
                Some(s) => Role::parse(&s).map(RoleInput::Set).ok_or_else(|| unknown_role(&s)),
            };
        }
    }
    if let Some(v) = doc.get("roles") {
        let entries = role_entries("roles", v)?;
        if entries.is_empty() {
            return Ok(RoleInput::Cleared);
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for (value, primary) in entries {
            parsed.push((Role::parse(&value).ok_or_else(|| unknown_role(&value))?, primary));
        }
        let chosen = parsed.iter().find(|(_, p)| *p).or(parsed.first()).map(|(r, _)| *r);
        return Ok(chosen.map(RoleInput::Set).unwrap_or(RoleInput::Cleared));
    }
    if let Some(v) = doc.get("entitlements") {
        let entries = role_entries("entitlements", v)?;
        let roles: Vec<(Role, bool)> = entries.iter().filter_map(|(s, p)| Role::parse(s).map(|r| (r, *p))).collect();
        if let Some((r, _)) = roles.iter().find(|(_, p)| *p).or(roles.first()) {
            return Ok(RoleInput::Set(*r));
        }
    }
    Ok(RoleInput::Absent)
}

fn role_entries(attr: &str, v: &Value) -> Result<Vec<(String, bool)>, Error> {
    let arr = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        other => return Err(Error::InvalidValue(format!("{attr} must be an array, not {}", kind_of(other)))),
    };
    let mut out = Vec::new();
    for e in arr {
        let Value::Object(o) = e else {
            return Err(Error::InvalidValue(format!("each of {attr} must be a string or an object")));
        };
        let Some(value) = o.get("value").map(|v| opt_string(&format!("{attr}.value"), v)).transpose()?.flatten() else {
            continue;
        };
        let primary = o.get("primary").map(|v| opt_bool(&format!("{attr}.primary"), v)).transpose()?.flatten();
        out.push((value, primary == Some(true)));
    }
    Ok(out)
}

fn unknown_role(s: &str) -> Error {
    Error::InvalidValue(format!(
        "unknown role {s:?}: use one of super_admin, admin, backup_operator, auditor, read_only"
    ))
}
