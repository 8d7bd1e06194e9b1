//! The attributes Butterfly stores, described once. Normalisation of input, filters,
//! `attributes`/`excludedAttributes` and the `/Schemas` document all read this table, so
//! what we publish is exactly what we store.

use super::{BUTTERFLY_USER_SCHEMA, USER_SCHEMA};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Default,
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: Kind,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub canonical: &'static [&'static str],
    pub sub: &'static [AttrDef],
    pub description: &'static str,
}

const fn s(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        kind: Kind::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        canonical: &[],
        sub: &[],
        description,
    }
}

const fn read_only(mut a: AttrDef) -> AttrDef {
    a.mutability = Mutability::ReadOnly;
    a
}

const ROLE_KEYS: &[&str] = &["super_admin", "admin", "backup_operator", "auditor", "read_only"];

pub static NAME_SUB: [AttrDef; 4] = [
    s("formatted", "The full name, formatted for display."),
    s("familyName", "The family name (last name)."),
    s("givenName", "The given name (first name)."),
    s("middleName", "The middle name(s)."),
];

pub static EMAIL_SUB: [AttrDef; 4] = [
    s("value", "The email address."),
    s("display", "A human-readable label for the address."),
    AttrDef { canonical: &["work", "home", "other"], ..s("type", "The kind of address, e.g. 'work'.") },
    AttrDef { kind: Kind::Boolean, ..s("primary", "Whether this is the primary address. At most one is.") },
];

/// Butterfly holds exactly one role, so `roles` has one element and only its `value` is kept
/// (`primary`, `display` and `type` are accepted on input and used to pick the role).
pub static ROLE_SUB: [AttrDef; 1] = [AttrDef { canonical: ROLE_KEYS, ..s("value", "The Butterfly role key.") }];

pub static META_SUB: [AttrDef; 5] = [
    AttrDef { case_exact: true, ..read_only(s("resourceType", "The resource type: User.")) },
    AttrDef { kind: Kind::DateTime, ..read_only(s("created", "When the user was created.")) },
    AttrDef { kind: Kind::DateTime, ..read_only(s("lastModified", "When the user last changed.")) },
    AttrDef { kind: Kind::Reference, case_exact: true, ..read_only(s("location", "The URI of the user.")) },
    AttrDef { case_exact: true, ..read_only(s("version", "The version of the user, also sent as a weak ETag.")) },
];

/// Common attributes (RFC 7643 §3.1) that every resource has.
pub static COMMON_ATTRS: [AttrDef; 3] = [
    AttrDef {
        case_exact: true,
        returned: Returned::Always,
        unique: true,
        ..read_only(s("id", "The server-issued, immutable identifier."))
    },
    AttrDef {
        case_exact: true,
        unique: true,
        ..s("externalId", "The provisioning client's identifier for the user (e.g. Okta's user id), unique per tenant.")
    },
    AttrDef { kind: Kind::Complex, sub: &META_SUB, ..read_only(s("meta", "Resource metadata.")) },
];

/// The core User attributes Butterfly stores.
pub static USER_ATTRS: [AttrDef; 7] = [
    AttrDef {
        required: true,
        unique: true,
        ..s("userName", "The user's sign-in name: an email address, unique per tenant (case-insensitive).")
    },
    AttrDef { kind: Kind::Complex, sub: &NAME_SUB, ..s("name", "The components of the user's name.") },
    s("displayName", "The name shown for the user."),
    AttrDef { kind: Kind::Complex, multi: true, sub: &EMAIL_SUB, ..s("emails", "The user's email addresses.") },
    AttrDef {
        kind: Kind::Boolean,
        required: true,
        ..s("active", "Whether the user may use Butterfly. Deactivated users keep their id and data.")
    },
    s("locale", "The user's locale, e.g. 'en-US'."),
    AttrDef {
        kind: Kind::Complex,
        multi: true,
        sub: &ROLE_SUB,
        ..s("roles", "The user's Butterfly role (one of the five role keys). Absent means read_only.")
    },
];

/// The Butterfly extension (`urn:ietf:params:scim:schemas:extension:butterfly:2.0:User`).
pub static EXT_ATTRS: [AttrDef; 1] = [AttrDef {
    canonical: ROLE_KEYS,
    ..s("role", "The user's Butterfly role key. Takes precedence over 'roles'. Absent means read_only.")
}];

/// Which schema an attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaId {
    Core,
    Butterfly,
}

impl SchemaId {
    pub fn urn(self) -> &'static str {
        match self {
            SchemaId::Core => USER_SCHEMA,
            SchemaId::Butterfly => BUTTERFLY_USER_SCHEMA,
        }
    }
    pub fn from_urn(urn: &str) -> Option<SchemaId> {
        if urn.eq_ignore_ascii_case(USER_SCHEMA) {
            Some(SchemaId::Core)
        } else if urn.eq_ignore_ascii_case(BUTTERFLY_USER_SCHEMA) {
            Some(SchemaId::Butterfly)
        } else {
            None
        }
    }
}

/// Finds a top-level attribute of a schema by name, case-insensitively.
pub fn find_attr(schema: SchemaId, name: &str) -> Option<&'static AttrDef> {
    match schema {
        SchemaId::Core => USER_ATTRS.iter().chain(COMMON_ATTRS.iter()).find(|a| a.name.eq_ignore_ascii_case(name)),
        SchemaId::Butterfly => EXT_ATTRS.iter().find(|a| a.name.eq_ignore_ascii_case(name)),
    }
}

/// Finds a sub-attribute, case-insensitively.
pub fn find_sub(parent: &'static AttrDef, name: &str) -> Option<&'static AttrDef> {
    parent.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attr_json(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": match a.kind {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::DateTime => "dateTime",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        },
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
        },
        "returned": match a.returned { Returned::Always => "always", Returned::Default => "default" },
    });
    if let Some(o) = v.as_object_mut() {
        if matches!(a.kind, Kind::String | Kind::Reference) {
            o.insert("caseExact".into(), Value::Bool(a.case_exact));
            o.insert("uniqueness".into(), Value::String(if a.unique { "server" } else { "none" }.into()));
        }
        if a.kind == Kind::Reference {
            o.insert("referenceTypes".into(), json!(["uri"]));
        }
        if !a.canonical.is_empty() {
            o.insert("canonicalValues".into(), json!(a.canonical));
        }
        if !a.sub.is_empty() {
            o.insert("subAttributes".into(), Value::Array(a.sub.iter().map(attr_json).collect()));
        }
    }
    v
}

/// The `/Schemas` resources, with `meta.location` under `base` (the SCIM base URL).
pub fn schemas_json(base: &str) -> Vec<Value> {
    // externalId is a common attribute, but published with the User schema so that clients
    // that read only /Schemas know we store it.
    let core_attrs: Vec<Value> = USER_ATTRS.iter().chain(COMMON_ATTRS[1..2].iter()).map(attr_json).collect();
    vec![
        json!({
            "schemas": [super::SCHEMA_SCHEMA],
            "id": USER_SCHEMA,
            "name": "User",
            "description": "Butterfly team member",
            "attributes": core_attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
        }),
        json!({
            "schemas": [super::SCHEMA_SCHEMA],
            "id": BUTTERFLY_USER_SCHEMA,
            "name": "ButterflyUser",
            "description": "Butterfly extension: the user's role",
            "attributes": EXT_ATTRS.iter().map(attr_json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{BUTTERFLY_USER_SCHEMA}")},
        }),
        okta_role_schema_json(base),
    ]
}

/// The Okta Role schema (`urn:okta:scim:schemas:core:1.0:Role`) that `/Roles` serves.
pub fn okta_role_schema_json(base: &str) -> Value {
    let urn = super::OKTA_ROLE_SCHEMA;
    let ro = |name: &'static str, required: bool, description: &'static str| {
        attr_json(&AttrDef { required, ..read_only(s(name, description)) })
    };
    json!({
        "schemas": [super::SCHEMA_SCHEMA],
        "id": urn,
        "name": "Role",
        "description": "A Butterfly role, as Okta Identity Governance discovers entitlements",
        "attributes": [
            ro("displayName", true, "The role's name."),
            ro("description", false, "What the role may do."),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{urn}")},
    })
}

/// The `/ResourceTypes` resources.
pub fn resource_types_json(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [super::RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "Butterfly team member",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": BUTTERFLY_USER_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [super::RESOURCE_TYPE_SCHEMA],
            "id": "Role",
            "name": "Role",
            "endpoint": "/Roles",
            "description": "Butterfly roles, for Okta Identity Governance entitlement discovery",
            "schema": super::OKTA_ROLE_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Role")},
        }),
    ]
}
