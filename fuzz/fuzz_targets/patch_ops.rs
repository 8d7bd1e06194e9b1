//! PATCH, structure-aware: an `Arbitrary` list of operations over the paths, filters and values
//! Okta and Entra send (the vocabulary of the golden PATCH vectors), serialised to JSON bytes and
//! parsed back as the HTTP layer does, so almost every input gets past the JSON parser and
//! `parse_request` and exercises `apply_to_user`. Invariants: see `check_patch`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User";

/// Paths (and path-less value keys) from the golden vectors, plus near misses.
const PATHS: &[&str] = &[
    "active",
    "Active",
    "userName",
    "UserName",
    "externalId",
    "displayName",
    "locale",
    "name",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "name.middleName",
    "name.GivenName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "emails.display",
    "roles",
    "roles.value",
    "roles.primary",
    "entitlements",
    "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User",
    "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User:role",
    "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:BUTTERFLY:2.0:USER:ROLE",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
    "urn:ietf:params:scim:schemas:core:2.0:User:active",
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "id",
    "meta",
    "meta.lastModified",
    "schemas",
    "password",
    "groups",
    "nickName",
    "name.nickName",
    "emails.nope",
];

const SUBS: &[&str] = &["type", "value", "primary", "display", "Type", "VALUE", "givenName", "nope"];
const MULTI: &[&str] = &["emails", "roles", "Emails", "name", "active", "urn:ietf:params:scim:schemas:core:2.0:User:emails"];
const OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ"];
const STRINGS: &[&str] = &["work", "home", "other", "", " ", "admin", "Auditor", "x@y.io", "true", "False", "é", "\"", "]"];
const LOCALS: &[&str] = &["alice", "Alice.Smith", "bob+tag", "ä", "a", "o'neil", ".bad", "a..b", "x y"];
const DOMAINS: &[&str] = &["example.com", "home.org", "Example.COM", "exämple.de", "localhost", "a-.com", "xn--bcher-kva.ch"];
const ROLES: &[&str] = &["super_admin", "admin", "backup_operator", "auditor", "read_only", "Admin", "AUDITOR", "owner", ""];

#[derive(Arbitrary, Debug)]
enum OpName {
    Add,
    Replace,
    Remove,
    Capitalised(u8),
    Missing,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Lit {
    Str(u8),
    Email(u8, u8),
    Bool(bool),
    Null,
    Num(i16),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum FilterSpec {
    Cmp(u8, u8, Lit),
    Present(u8),
    And(Box<FilterSpec>, Box<FilterSpec>),
    Or(Box<FilterSpec>, Box<FilterSpec>),
    Not(Box<FilterSpec>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PathSpec {
    Absent,
    Null,
    Blank,
    Known(u8),
    Filtered { attr: u8, filter: FilterSpec, sub: Option<u8> },
    NotAString(i16),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ValueSpec {
    Absent,
    Null,
    Bool(bool),
    StringBool(bool, bool),
    Email(u8, u8),
    Role(u8),
    /// Entra's AppRoleAssignmentsComplex: a role object stringified into `value`.
    EntraRole(u8),
    Str(u8),
    Long(u16),
    Raw(String),
    Num(i32),
    Obj(Vec<(u8, ValueSpec)>),
    RawKeyObj(Vec<(String, ValueSpec)>),
    Arr(Vec<ValueSpec>),
}

#[derive(Arbitrary, Debug)]
struct OpSpec {
    op: OpName,
    op_key_upper: bool,
    path: PathSpec,
    value: ValueSpec,
    not_an_object: bool,
}

#[derive(Arbitrary, Debug)]
enum Schemas {
    PatchOp,
    Absent,
    Wrong,
    NotArray,
}

#[derive(Arbitrary, Debug)]
struct PatchSpec {
    /// Which golden fixture user the PATCH is applied to.
    user: u8,
    schemas: Schemas,
    operations_key: u8,
    ops: Vec<OpSpec>,
}

fn pick<'a>(xs: &[&'a str], i: u8) -> &'a str {
    xs[i as usize % xs.len()]
}

fn lit(l: &Lit) -> String {
    match l {
        Lit::Str(i) => Value::String(pick(STRINGS, *i).into()).to_string(),
        Lit::Email(a, b) => Value::String(format!("{}@{}", pick(LOCALS, *a), pick(DOMAINS, *b))).to_string(),
        Lit::Bool(b) => b.to_string(),
        Lit::Null => "null".into(),
        Lit::Num(n) => n.to_string(),
        Lit::Raw(s) => s.clone(),
    }
}

fn filter(f: &FilterSpec, depth: usize) -> String {
    if depth > 6 {
        return "type eq \"work\"".into();
    }
    match f {
        FilterSpec::Cmp(s, o, l) => format!("{} {} {}", pick(SUBS, *s), pick(OPS, *o), lit(l)),
        FilterSpec::Present(s) => format!("{} pr", pick(SUBS, *s)),
        FilterSpec::And(a, b) => format!("{} and {}", filter(a, depth + 1), filter(b, depth + 1)),
        FilterSpec::Or(a, b) => format!("({} or {})", filter(a, depth + 1), filter(b, depth + 1)),
        FilterSpec::Not(a) => format!("not ({})", filter(a, depth + 1)),
        FilterSpec::Raw(s) => s.clone(),
    }
}

fn value(v: &ValueSpec, depth: usize) -> Option<Value> {
    if depth > 4 {
        return Some(Value::Null);
    }
    Some(match v {
        ValueSpec::Absent => return None,
        ValueSpec::Null => Value::Null,
        ValueSpec::Bool(b) => Value::Bool(*b),
        ValueSpec::StringBool(b, upper) => {
            Value::String(match (b, upper) {
                (true, false) => "true",
                (true, true) => "True",
                (false, false) => "false",
                (false, true) => "False",
            }
            .into())
        }
        ValueSpec::Email(a, b) => Value::String(format!("{}@{}", pick(LOCALS, *a), pick(DOMAINS, *b))),
        ValueSpec::Role(i) => Value::String(pick(ROLES, *i).into()),
        ValueSpec::EntraRole(i) => Value::String(
            json!({"id": "27b3b8cb-6ff1-4d5c-a8f0-6bbd5fd7e0f4", "value": pick(ROLES, *i), "displayName": "Role"})
                .to_string(),
        ),
        ValueSpec::Str(i) => Value::String(pick(STRINGS, *i).into()),
        ValueSpec::Long(n) => Value::String("x".repeat(*n as usize % 2100)),
        ValueSpec::Raw(s) => Value::String(s.clone()),
        ValueSpec::Num(n) => json!(n),
        ValueSpec::Obj(kv) => {
            let mut m = Map::new();
            for (k, v) in kv {
                let key = match *k as usize % (PATHS.len() + SUBS.len() + 1) {
                    i if i < PATHS.len() => PATHS[i],
                    i if i < PATHS.len() + SUBS.len() => SUBS[i - PATHS.len()],
                    _ => "role",
                };
                if let Some(v) = value(v, depth + 1) {
                    m.insert(key.into(), v);
                }
            }
            Value::Object(m)
        }
        ValueSpec::RawKeyObj(kv) => {
            let mut m = Map::new();
            for (k, v) in kv {
                if let Some(v) = value(v, depth + 1) {
                    m.insert(k.clone(), v);
                }
            }
            Value::Object(m)
        }
        ValueSpec::Arr(items) => Value::Array(items.iter().filter_map(|v| value(v, depth + 1)).collect()),
    })
}

fn operation(o: &OpSpec) -> Value {
    if o.not_an_object {
        return value(&o.value, 0).unwrap_or(Value::Null);
    }
    let mut m = Map::new();
    let op = match &o.op {
        OpName::Add => Some("add".to_string()),
        OpName::Replace => Some("replace".to_string()),
        OpName::Remove => Some("remove".to_string()),
        OpName::Capitalised(i) => Some(["Add", "Replace", "Remove", "ADD", "REPLACE", "REMOVE"][*i as usize % 6].into()),
        OpName::Missing => None,
        OpName::Raw(s) => Some(s.clone()),
    };
    if let Some(op) = op {
        m.insert(if o.op_key_upper { "Op" } else { "op" }.into(), Value::String(op));
    }
    let path = match &o.path {
        PathSpec::Absent => None,
        PathSpec::Null => Some(Value::Null),
        PathSpec::Blank => Some(Value::String("  ".into())),
        PathSpec::Known(i) => Some(Value::String(pick(PATHS, *i).into())),
        PathSpec::Filtered { attr, filter: f, sub } => {
            let mut p = format!("{}[{}]", pick(MULTI, *attr), filter(f, 0));
            if let Some(s) = sub {
                p.push('.');
                p.push_str(pick(SUBS, *s));
            }
            Some(Value::String(p))
        }
        PathSpec::NotAString(n) => Some(json!(n)),
        PathSpec::Raw(s) => Some(Value::String(s.clone())),
    };
    if let Some(p) = path {
        m.insert("path".into(), p);
    }
    if let Some(v) = value(&o.value, 0) {
        m.insert("value".into(), v);
    }
    Value::Object(m)
}

fn request(p: &PatchSpec) -> Value {
    let mut m = Map::new();
    match p.schemas {
        Schemas::PatchOp => {
            m.insert("schemas".into(), json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"]));
        }
        Schemas::Absent => {}
        Schemas::Wrong => {
            m.insert("schemas".into(), json!([EXT]));
        }
        Schemas::NotArray => {
            m.insert("schemas".into(), json!("urn:ietf:params:scim:api:messages:2.0:PatchOp"));
        }
    }
    let key = ["Operations", "operations", "OPERATIONS"][p.operations_key as usize % 3];
    m.insert(key.into(), Value::Array(p.ops.iter().map(operation).collect()));
    Value::Object(m)
}

fuzz_target!(|spec: PatchSpec| {
    // Through bytes, as the HTTP layer receives it.
    let wire = serde_json::to_vec(&request(&spec)).expect("a Value serialises");
    let body: Value = serde_json::from_slice(&wire).expect("serialised JSON parses");
    let users = butterfly_fuzz::fixture_users();
    let i = spec.user as usize % users.len();
    butterfly_fuzz::check_patch(&body, &users[i..=i]);
});
