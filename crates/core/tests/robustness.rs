//! No input makes the protocol code panic: a deterministic fuzz over filters, PATCH requests
//! and resource bodies, built by mutating real payloads. Bounded in count; fixed seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::clock::Timestamp;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::scim::doc::{normalize, user_json, Draft, NewUserBase};
use butterfly_core::scim::filter;
use butterfly_core::scim::list::ListQuery;
use butterfly_core::scim::patch;
use butterfly_core::scim::projection::Projection;
use butterfly_core::Error;
use serde_json::{json, Value};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const PIECES: &[&str] = &[
    "userName",
    "UserName",
    "emails",
    "emails.value",
    "name.givenName",
    "active",
    "roles",
    "meta.created",
    "externalId",
    "id",
    "urn:ietf:params:scim:schemas:core:2.0:User:",
    "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User",
    ":role",
    "eq",
    "ne",
    "co",
    "sw",
    "ew",
    "gt",
    "ge",
    "lt",
    "le",
    "pr",
    "and",
    "or",
    "not",
    "(",
    ")",
    "[",
    "]",
    ".",
    "\"",
    "\\",
    " ",
    "\"x@y.io\"",
    "true",
    "false",
    "null",
    "12",
    "-1e309",
    "é",
    "ß",
    "💥",
    "\u{0}",
    "type eq \"work\"",
    "\"2026-01-01T00:00:00Z\"",
    "]]",
    "[[",
    "value",
    "primary",
    ",",
    "%20",
    "+",
];

fn random_text(r: &mut Rng) -> String {
    let n = r.below(12);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES[r.below(PIECES.len())]);
        if r.below(3) == 0 {
            s.push(' ');
        }
    }
    s
}

/// A filter from the grammar, then (half the time) damaged by inserting or deleting a piece.
fn random_filter(r: &mut Rng, depth: usize) -> String {
    let attrs = [
        "userName",
        "emails.value",
        "name.givenName",
        "meta.created",
        "externalId",
        "displayName",
        "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User:role",
        "roles.value",
        "emails",
    ];
    let values = ["\"a@b.io\"", "\"é\"", "\"2026-01-01T00:00:00Z\"", "\"\"", "\"x\\\"y\""];
    let ops = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ"];
    let text = match if depth > 3 { r.below(3) } else { r.below(7) } {
        0 => format!("{} {} {}", r.pick(&attrs), r.pick(&ops), r.pick(&values)),
        1 => format!("{} pr", r.pick(&attrs)),
        2 => format!("active eq {}", r.pick(&["true", "false", "\"False\""])),
        3 => format!("({})", random_filter(r, depth + 1)),
        4 => format!("not ({})", random_filter(r, depth + 1)),
        5 => format!("emails[type eq \"work\" and {}]", random_filter(r, depth + 1).replace("emails.", "")),
        _ => {
            format!("{} {} {}", random_filter(r, depth + 1), r.pick(&["and", "or", "OR"]), random_filter(r, depth + 1))
        }
    };
    if depth == 0 && r.below(2) == 0 {
        let mut t: Vec<char> = text.chars().collect();
        let at = r.below(t.len() + 1);
        if r.below(2) == 0 && at < t.len() {
            t.remove(at);
        } else {
            for c in r.pick(PIECES).chars().rev() {
                t.insert(at, c);
            }
        }
        return t.into_iter().collect();
    }
    text
}

fn random_value(r: &mut Rng, depth: usize) -> Value {
    match if depth > 3 { r.below(5) } else { r.below(8) } {
        0 => Value::Null,
        1 => Value::Bool(r.below(2) == 0),
        2 => json!(r.next() as i64),
        3 | 4 => Value::String(random_text(r)),
        5 => Value::Array((0..r.below(4)).map(|_| random_value(r, depth + 1)).collect()),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..r.below(5) {
                m.insert(random_text(r), random_value(r, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn base_user() -> butterfly_core::user::User {
    let body = json!({"userName": "fuzz@example.com", "name": {"givenName": "F"}, "emails": [{"value": "fuzz@example.com", "type": "work"}], "roles": ["admin"]});
    Draft::parse(&normalize(body.as_object().unwrap()))
        .unwrap()
        .into_new_user(NewUserBase { id: UserId::generate(), tenant: TenantId::generate(), now: Timestamp(0) })
        .unwrap()
}

fn has_detail(e: &Error) -> bool {
    !e.to_string().trim().is_empty()
}

#[test]
fn filters_never_panic() {
    let mut r = Rng(0x9e3779b97f4a7c15);
    let doc = user_json(&base_user(), "https://x/scim/v2");
    let (mut ok, mut err) = (0, 0);
    for i in 0..20_000 {
        let text = if i % 4 == 0 { random_text(&mut r) } else { random_filter(&mut r, 0) };
        match filter::parse(&text) {
            Ok(f) => {
                let _ = f.matches(&doc);
                let _ = f.lookups();
                ok += 1;
            }
            Err(e) => {
                assert!(!e.is_empty(), "{text:?}");
                err += 1;
            }
        }
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}userName pr{}", "(".repeat(5000), ")".repeat(5000));
    assert!(filter::parse(&deep).is_err());
    let deep_not = format!("{}userName pr{}", "not (".repeat(2000), ")".repeat(2000));
    assert!(filter::parse(&deep_not).is_err());
    assert!(ok > 100 && err > 100, "the generator must exercise both outcomes: {ok} ok, {err} errors");
}

#[test]
fn patch_requests_never_panic_and_failures_change_nothing() {
    let mut r = Rng(0xdeadbeefcafef00d);
    let user = base_user();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let ops: Vec<Value> = (0..1 + r.below(3))
            .map(|_| {
                let mut op = serde_json::Map::new();
                op.insert("op".into(), json!(*r.pick(&["add", "Replace", "remove", "copy", ""])));
                if r.below(4) != 0 {
                    op.insert("path".into(), Value::String(random_text(&mut r)));
                }
                if r.below(5) != 0 {
                    op.insert("value".into(), random_value(&mut r, 0));
                }
                Value::Object(op)
            })
            .collect();
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let mut u = user.clone();
        match patch::parse_request(&body).and_then(|ops| patch::apply_to_user(&mut u, &ops)) {
            Ok(()) => ok += 1,
            Err(e) => {
                assert!(has_detail(&e), "{body}");
                assert_eq!(u, user, "a failed PATCH changed the user: {body}");
                err += 1;
            }
        }
    }
    assert!(ok > 100 && err > 100, "{ok} ok, {err} errors");
}

#[test]
fn resource_bodies_and_query_parameters_never_panic() {
    let mut r = Rng(0x0123456789abcdef);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let mut body = random_value(&mut r, 0);
        if r.below(2) == 0 {
            if let Value::Object(m) = &mut body {
                m.insert("userName".into(), json!(*r.pick(&["a@b.io", "x", "", "é@é.é", "A@B.IO"])));
            }
        }
        let Value::Object(m) = body else { continue };
        match Draft::parse(&normalize(&m)) {
            Ok(d) => {
                let mut u = base_user();
                let _ = d.clone().apply_put(&mut u);
                let _ = d.into_new_user(NewUserBase {
                    id: UserId::generate(),
                    tenant: TenantId::generate(),
                    now: Timestamp(0),
                });
                ok += 1;
            }
            Err(e) => {
                assert!(has_detail(&e));
                err += 1;
            }
        }
        let a = random_text(&mut r);
        let b = random_text(&mut r);
        let mut doc = user_json(&base_user(), "");
        Projection::parse(Some(&a), Some(&b)).apply(&mut doc);
        let _ = ListQuery::from_pairs([("filter", a.as_str()), ("count", b.as_str()), ("startIndex", a.as_str())]);
    }
    assert!(ok > 100 && err > 100, "{ok} ok, {err} errors");
}
