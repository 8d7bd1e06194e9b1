//! RFC 7644 §3.5.2 PATCH, applied to a user's writable document.
//!
//! Operations run in order on a copy; the caller keeps the result only if every operation
//! and the final validation succeed, so a PATCH is all or nothing. Accepted shapes include
//! Okta's path-less `{"op":"replace","value":{"active":false}}`, Entra's capitalised ops,
//! string booleans, dotted and URN-qualified keys in path-less values, filtered paths such as
//! `emails[type eq "work"].value` (also on `add`), and whole extension objects with a nested
//! `schemas` key.

use super::doc::{insert_normalized, normalize_extension, normalize_single, normalize_value, writable_doc, Draft};
use super::filter::{self, Filter, Literal, Op, Target};
use super::path::{parse_target, AttrPath, PathTarget};
use super::schema::{find_sub, Kind, Mutability, SchemaId};
use super::{BUTTERFLY_USER_SCHEMA, PATCH_OP};
use crate::error::Error;
use crate::user::User;
use serde_json::{Map, Value};

pub const MAX_OPERATIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Parses a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, Error> {
    let Value::Object(o) = body else {
        return Err(Error::InvalidSyntax("a PATCH body must be a PatchOp JSON object".into()));
    };
    if let Some(schemas) = get_ci(o, "schemas") {
        let ok = schemas
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP))));
        if !ok {
            return Err(Error::InvalidSyntax(format!("schemas must contain {PATCH_OP:?}")));
        }
    }
    let Some(Value::Array(ops)) = get_ci(o, "Operations") else {
        return Err(Error::InvalidSyntax("a PATCH body needs an \"Operations\" array".into()));
    };
    if ops.is_empty() {
        return Err(Error::InvalidSyntax("\"Operations\" must hold at least one operation".into()));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(Error::InvalidSyntax(format!("at most {MAX_OPERATIONS} operations per PATCH")));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let Value::Object(m) = op else {
                return Err(Error::InvalidSyntax(format!("operation {} is not an object", i + 1)));
            };
            let kind = match get_ci(m, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                other => {
                    return Err(Error::InvalidSyntax(format!(
                        "operation {}: \"op\" must be add, replace or remove, not {other:?}",
                        i + 1
                    )))
                }
            };
            let path = match get_ci(m, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.trim().to_string()),
                Some(_) => return Err(Error::InvalidPath(format!("operation {}: \"path\" must be a string", i + 1))),
            };
            Ok(Operation { op: kind, path, value: get_ci(m, "value").cloned() })
        })
        .collect()
}

/// A parsed PATCH path.
enum PatchPath {
    Extension,
    Entitlements,
    /// `path`, `path[filter]` or `path[filter].sub` (`then_sub_attr`: the sub-attribute named
    /// after the filter, e.g. `value` in `emails[type eq "work"].value`).
    Attr {
        path: AttrPath,
        filter: Option<Filter>,
        then_sub_attr: Option<&'static super::schema::AttrDef>,
    },
}

fn parse_path(raw: &str) -> Result<PatchPath, Error> {
    if raw.eq_ignore_ascii_case("entitlements") {
        return Ok(PatchPath::Entitlements);
    }
    let bad = |m: String| Error::InvalidPath(format!("path {raw:?}: {m}"));
    let Some(open) = raw.find('[') else {
        return match parse_target(raw).map_err(bad)? {
            PathTarget::Extension(_) => Ok(PatchPath::Extension),
            PathTarget::Attr(path) => Ok(PatchPath::Attr { path, filter: None, then_sub_attr: None }),
        };
    };
    // Find the ']' that closes the filter, skipping quoted strings.
    let bytes = raw.as_bytes();
    let (mut i, mut in_str, mut close) = (open + 1, false, None);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b']' if !in_str => {
                close = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let close = close.ok_or_else(|| bad("missing ']'".into()))?;
    let path = match parse_target(&raw[..open]).map_err(bad)? {
        PathTarget::Attr(p) if p.sub.is_none() && p.attr.multi && p.attr.kind == Kind::Complex => p,
        _ => return Err(bad("a value filter needs a multi-valued complex attribute".into())),
    };
    let filter = filter::parse_scoped(&raw[open + 1..close], Some(path.attr)).map_err(bad)?;
    let rest = &raw[close + 1..];
    let then_sub_attr = if rest.is_empty() {
        None
    } else {
        let name = rest.strip_prefix('.').ok_or_else(|| bad(format!("unexpected {rest:?} after ']'")))?;
        Some(
            find_sub(path.attr, name)
                .ok_or_else(|| bad(format!("{:?} has no sub-attribute {name:?}", path.attr.name)))?,
        )
    };
    Ok(PatchPath::Attr { path, filter: Some(filter), then_sub_attr })
}

/// Applies the operations to `doc` in order.
pub fn apply(doc: &mut Map<String, Value>, ops: &[Operation]) -> Result<(), Error> {
    for (i, op) in ops.iter().enumerate() {
        apply_one(doc, op).map_err(|e| prefix(e, i + 1, ops.len()))?;
    }
    Ok(())
}

fn prefix(e: Error, n: usize, total: usize) -> Error {
    if total == 1 {
        return e;
    }
    let p = |m: String| format!("operation {n}: {m}");
    match e {
        Error::InvalidValue(m) => Error::InvalidValue(p(m)),
        Error::InvalidPath(m) => Error::InvalidPath(p(m)),
        Error::InvalidSyntax(m) => Error::InvalidSyntax(p(m)),
        Error::NoTarget(m) => Error::NoTarget(p(m)),
        Error::Mutability(m) => Error::Mutability(p(m)),
        other => other,
    }
}

fn apply_one(doc: &mut Map<String, Value>, op: &Operation) -> Result<(), Error> {
    match (&op.path, op.op) {
        (None, OpKind::Remove) => Err(Error::NoTarget("a remove operation needs a \"path\"".into())),
        (None, kind) => {
            let Some(Value::Object(values)) = &op.value else {
                return Err(Error::InvalidValue(
                    "an operation without \"path\" needs an object \"value\" of attributes".into(),
                ));
            };
            for (k, v) in values {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                // Each key is a path of its own: `name.givenName`, `urn:…:User:userName`,
                // the extension URN. Keys we do not store are ignored, as RFC 7644 allows.
                match parse_path(k) {
                    Ok(p) => match apply_path(doc, kind, &p, Some(v.clone()), k) {
                        Ok(()) => {}
                        Err(Error::Mutability(_)) => {} // read-only attributes in a value are ignored
                        Err(e) => return Err(e),
                    },
                    Err(_) => continue,
                }
            }
            Ok(())
        }
        (Some(raw), kind) => {
            let p = parse_path(raw)?;
            if kind != OpKind::Remove && op.value.is_none() {
                return Err(Error::InvalidSyntax(
                    format!("the {kind:?} operation on {raw:?} needs a \"value\"").to_lowercase(),
                ));
            }
            apply_path(doc, kind, &p, op.value.clone(), raw)
        }
    }
}

fn apply_path(
    doc: &mut Map<String, Value>,
    kind: OpKind,
    p: &PatchPath,
    value: Option<Value>,
    raw: &str,
) -> Result<(), Error> {
    let value = value.filter(|v| !v.is_null());
    // `add`/`replace` with null means "make unassigned" (RFC 7643 §2.5).
    let kind = if kind != OpKind::Remove && value.is_none() { OpKind::Remove } else { kind };
    match p {
        PatchPath::Entitlements => {
            match value {
                Some(v) => insert_normalized(doc, "entitlements", v),
                None => {
                    doc.insert("entitlements".into(), Value::Null);
                }
            }
            Ok(())
        }
        PatchPath::Extension => {
            match (kind, value) {
                (OpKind::Remove, _) | (_, None) => {
                    doc.remove(BUTTERFLY_USER_SCHEMA);
                }
                (_, Some(v)) => {
                    let Value::Object(new) = normalize_extension(v) else {
                        return Err(Error::InvalidValue(format!("the value for {raw:?} must be an object")));
                    };
                    let ext = doc.entry(BUTTERFLY_USER_SCHEMA).or_insert_with(|| Value::Object(Map::new()));
                    match ext.as_object_mut() {
                        Some(o) => o.extend(new),
                        None => *ext = Value::Object(new),
                    }
                }
            }
            Ok(())
        }
        PatchPath::Attr { path, filter, then_sub_attr } => {
            if path.attr.mutability == Mutability::ReadOnly || path.leaf().mutability == Mutability::ReadOnly {
                return Err(Error::Mutability(format!("{} is read-only", path.display())));
            }
            let container = match path.schema {
                SchemaId::Core => doc,
                SchemaId::Butterfly => {
                    let ext = doc.entry(BUTTERFLY_USER_SCHEMA).or_insert_with(|| Value::Object(Map::new()));
                    if !ext.is_object() {
                        *ext = Value::Object(Map::new());
                    }
                    match ext.as_object_mut() {
                        Some(o) => o,
                        None => return Err(Error::InvalidPath(format!("{raw:?} cannot be reached"))),
                    }
                }
            };
            match filter {
                None => apply_plain(container, kind, path, value, raw),
                Some(f) => apply_filtered(container, kind, path, f, *then_sub_attr, value, raw),
            }
        }
    }
}

fn apply_plain(
    c: &mut Map<String, Value>,
    kind: OpKind,
    path: &AttrPath,
    value: Option<Value>,
    raw: &str,
) -> Result<(), Error> {
    let name = path.attr.name;
    let Some(sub) = path.sub else {
        // The whole attribute.
        let Some(v) = value.filter(|_| kind != OpKind::Remove) else {
            c.remove(name);
            return Ok(());
        };
        let v = normalize_value(path.attr, v);
        if path.attr.multi {
            let Value::Array(new) = v else { return Ok(()) };
            // Butterfly holds one role, so adding a role replaces it.
            if kind == OpKind::Replace || name == "roles" {
                c.insert(name.into(), Value::Array(new));
                return Ok(());
            }
            let existing = c.entry(name).or_insert_with(|| Value::Array(vec![]));
            if !existing.is_array() {
                *existing = Value::Array(vec![]);
            }
            if let Value::Array(arr) = existing {
                if new.iter().any(|e| e.get("primary") == Some(&Value::Bool(true))) {
                    for e in arr.iter_mut() {
                        if let Some(o) = e.as_object_mut() {
                            if o.get("primary") == Some(&Value::Bool(true)) {
                                o.insert("primary".into(), Value::Bool(false));
                            }
                        }
                    }
                }
                for e in new {
                    if !arr.contains(&e) {
                        arr.push(e);
                    }
                }
            }
            return Ok(());
        }
        if path.attr.kind == Kind::Complex {
            let Value::Object(new) = v else {
                return Err(Error::InvalidValue(format!("the value for {raw:?} must be an object")));
            };
            let existing = c.entry(name).or_insert_with(|| Value::Object(Map::new()));
            match existing.as_object_mut() {
                Some(o) => o.extend(new),
                None => *existing = Value::Object(new),
            }
            return Ok(());
        }
        c.insert(name.into(), v);
        return Ok(());
    };
    // A sub-attribute: `name.givenName`, or `emails.value` on every element.
    let v = value.map(|v| normalize_single(sub, v));
    if path.attr.multi {
        let arr = c.entry(name).or_insert_with(|| Value::Array(vec![]));
        let Value::Array(arr) = arr else {
            return Ok(());
        };
        match v.filter(|_| kind != OpKind::Remove) {
            None => {
                for e in arr.iter_mut() {
                    if let Some(o) = e.as_object_mut() {
                        o.remove(sub.name);
                    }
                }
            }
            Some(v) if arr.is_empty() => {
                let mut o = Map::new();
                o.insert(sub.name.into(), v);
                arr.push(Value::Object(o));
            }
            Some(v) => {
                for e in arr.iter_mut() {
                    if let Some(o) = e.as_object_mut() {
                        o.insert(sub.name.into(), v.clone());
                    }
                }
            }
        }
        return Ok(());
    }
    match v.filter(|_| kind != OpKind::Remove) {
        None => {
            if let Some(Value::Object(o)) = c.get_mut(name) {
                o.remove(sub.name);
                if o.is_empty() {
                    c.remove(name);
                }
            }
        }
        Some(v) => {
            let existing = c.entry(name).or_insert_with(|| Value::Object(Map::new()));
            if !existing.is_object() {
                *existing = Value::Object(Map::new());
            }
            if let Some(o) = existing.as_object_mut() {
                o.insert(sub.name.into(), v);
            }
        }
    }
    Ok(())
}

fn apply_filtered(
    c: &mut Map<String, Value>,
    kind: OpKind,
    path: &AttrPath,
    f: &Filter,
    then_sub_attr: Option<&'static super::schema::AttrDef>,
    value: Option<Value>,
    raw: &str,
) -> Result<(), Error> {
    let name = path.attr.name;
    let arr = c.entry(name).or_insert_with(|| Value::Array(vec![]));
    if !arr.is_array() {
        *arr = Value::Array(vec![]);
    }
    let Value::Array(arr) = arr else {
        return Ok(());
    };
    let matched: Vec<usize> = arr.iter().enumerate().filter(|(_, e)| f.matches(e)).map(|(i, _)| i).collect();
    if kind == OpKind::Remove {
        if matched.is_empty() {
            return Err(Error::NoTarget(format!("no value of {name} matches {raw:?}")));
        }
        match then_sub_attr {
            Some(sub) => {
                for i in matched {
                    if let Some(o) = arr[i].as_object_mut() {
                        o.remove(sub.name);
                    }
                }
            }
            None => {
                let mut i = 0;
                arr.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
        }
        if arr.is_empty() {
            c.remove(name);
        }
        return Ok(());
    }
    let Some(v) = value else { return Ok(()) };
    let new_value = match then_sub_attr {
        Some(sub) => normalize_single(sub, v),
        None => normalize_single(path.attr, v),
    };
    if matched.is_empty() {
        // Entra adds (and replaces) `emails[type eq "work"].value` on users that have no work
        // address yet: create the element the filter describes.
        let Some(mut element) = element_from_filter(f) else {
            return Err(Error::NoTarget(format!("no value of {name} matches {raw:?}")));
        };
        match (then_sub_attr, new_value) {
            (Some(sub), v) => {
                element.insert(sub.name.into(), v);
            }
            (None, Value::Object(o)) => element.extend(o),
            (None, _) => return Err(Error::InvalidValue(format!("the value for {raw:?} must be an object"))),
        }
        arr.push(Value::Object(element));
        return Ok(());
    }
    for i in matched {
        let Some(o) = arr[i].as_object_mut() else {
            continue;
        };
        match (then_sub_attr, &new_value) {
            (Some(sub), v) => {
                o.insert(sub.name.into(), v.clone());
            }
            (None, Value::Object(n)) => {
                if kind == OpKind::Replace {
                    o.clear();
                }
                o.extend(n.clone());
            }
            (None, _) => return Err(Error::InvalidValue(format!("the value for {raw:?} must be an object"))),
        }
    }
    Ok(())
}

/// For a filter made only of `sub eq value` joined by `and`, the element it describes.
fn element_from_filter(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(Target::Element(d), Op::Eq, lit) => {
            let v = match lit {
                Literal::Str(s) => Value::String(s.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                _ => return None,
            };
            let mut m = Map::new();
            m.insert(d.name.into(), v);
            Some(m)
        }
        Filter::And(a, b) => {
            let mut m = element_from_filter(a)?;
            m.extend(element_from_filter(b)?);
            Some(m)
        }
        _ => None,
    }
}

/// After the operations, decide which role attribute speaks: one that changed wins, in the
/// precedence order extension > `roles` > `entitlements`; otherwise the stored role stays.
pub fn reconcile_roles(before: &Map<String, Value>, after: &mut Map<String, Value>) {
    let ext_role = |m: &Map<String, Value>| m.get(BUTTERFLY_USER_SCHEMA).and_then(|e| e.get("role")).cloned();
    let ext_changed = ext_role(before) != ext_role(after);
    let roles_changed = before.get("roles") != after.get("roles");
    let entitlements = after.get("entitlements").is_some();
    if ext_changed {
        after.remove("roles");
        after.remove("entitlements");
        let r = ext_role(after).unwrap_or(Value::Null);
        let mut e = Map::new();
        e.insert("role".into(), r);
        after.insert(BUTTERFLY_USER_SCHEMA.into(), Value::Object(e));
    } else if roles_changed {
        after.remove(BUTTERFLY_USER_SCHEMA);
        after.remove("entitlements");
        if !after.contains_key("roles") {
            after.insert("roles".into(), Value::Null);
        }
    } else if entitlements {
        after.remove(BUTTERFLY_USER_SCHEMA);
        after.remove("roles");
    }
}

/// Applies PATCH operations to a user, all or nothing: on error `u` is unchanged.
pub fn apply_to_user(u: &mut User, ops: &[Operation]) -> Result<(), Error> {
    let before = writable_doc(u);
    let mut doc = before.clone();
    apply(&mut doc, ops)?;
    reconcile_roles(&before, &mut doc);
    let mut next = u.clone();
    Draft::parse(&doc)?.apply_complete(&mut next)?;
    *u = next;
    Ok(())
}
