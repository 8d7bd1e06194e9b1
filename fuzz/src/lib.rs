//! Shared fixtures and invariant checks for the fuzz targets in `fuzz_targets/`.
//!
//! Every target asserts properties, not just "no panic": a failed assertion is a crash that
//! libFuzzer saves under `fuzz/artifacts/<target>/`.

use butterfly_core::clock::Timestamp;
use butterfly_core::email::{check_email, UserName};
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::scim::doc::{normalize, user_json, Draft, NewUserBase, MAX_EMAILS, MAX_STRING_LEN};
use butterfly_core::scim::{patch, USER_SCHEMA};
use butterfly_core::user::User;
use butterfly_core::Error;
use serde_json::Value;
use std::sync::OnceLock;

/// The golden fixture users (Okta and Entra bodies), the same file the golden tests read.
const USERS_JSON: &str = include_str!("../../crates/core/tests/vectors/users.json");

pub const TENANT: &str = "0190c0de-0000-4000-8000-000000000001";

/// alice, bob and carol from `users.json`, created as the service creates them, with fixed ids
/// and times so every run is reproducible.
pub fn fixture_users() -> &'static [User] {
    static USERS: OnceLock<Vec<User>> = OnceLock::new();
    USERS.get_or_init(|| {
        let v: Value = serde_json::from_str(USERS_JSON).expect("users.json is JSON");
        let tenant = TenantId::parse(TENANT).expect("fixture tenant id");
        ["alice", "bob", "carol"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let body = v[name].as_object().expect("fixture body is an object");
                let mut id = [0u8; 16];
                id[0] = 0x01;
                id[6] = 0x70; // a v7-shaped id
                id[8] = 0x80;
                id[15] = i as u8 + 1;
                let draft = Draft::parse(&normalize(body)).expect("fixture parses");
                draft
                    .into_new_user(NewUserBase {
                        id: UserId::from_bytes(id),
                        tenant: tenant.clone(),
                        now: Timestamp(1_700_000_000_000 + i as i64),
                    })
                    .expect("fixture is a valid new user")
            })
            .collect()
    })
}

/// The fixtures' canonical SCIM documents (what filters are evaluated against).
pub fn fixture_docs() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| fixture_users().iter().map(|u| user_json(u, "")).collect())
}

/// A domain error that reaches a SCIM client must carry a `scimType` (so it is a 400/409 with a
/// SCIM error body, never a 500) and a detail.
pub fn assert_scim_error(e: &Error, context: &str) {
    assert!(e.scim_type().is_some(), "{context}: error without a scimType (would not be a SCIM 4xx): {e:?}");
    assert!(!e.to_string().is_empty(), "{context}: error without a detail: {e:?}");
}

fn check_opt_string(what: &str, s: &Option<String>) {
    if let Some(s) = s {
        assert!(!s.is_empty(), "{what} is Some(\"\"): an empty string must be stored as unassigned");
        assert!(s.chars().count() <= MAX_STRING_LEN, "{what} is longer than {MAX_STRING_LEN} characters");
    }
}

/// What every stored user satisfies, however it was written.
pub fn assert_valid_user(u: &User) {
    let reparsed = UserName::parse(u.user_name.as_str()).expect("userName must still be a valid email address");
    assert_eq!(&reparsed, &u.user_name, "userName must be stored trimmed, with its folded form");
    check_opt_string("externalId", &u.external_id);
    check_opt_string("displayName", &u.display_name);
    check_opt_string("locale", &u.locale);
    if let Some(n) = &u.name {
        assert!(!n.is_empty(), "an empty name must be stored as None");
        for (k, v) in [
            ("name.formatted", &n.formatted),
            ("name.familyName", &n.family_name),
            ("name.givenName", &n.given_name),
            ("name.middleName", &n.middle_name),
        ] {
            check_opt_string(k, v);
        }
    }
    assert!(u.emails.len() <= MAX_EMAILS, "more than {MAX_EMAILS} emails");
    for e in &u.emails {
        check_email(&e.value).expect("every stored email address is valid");
        check_opt_string("emails.type", &e.kind);
        check_opt_string("emails.display", &e.display);
    }
    assert!(u.emails.iter().filter(|e| e.primary == Some(true)).count() <= 1, "more than one primary email");
    if u.role.is_some() {
        assert!(u.role_source.is_some(), "a role without a source");
    }
}

/// The representation round trip the service relies on: what `GET` returns (`user_json`), sent
/// back as a body (`POST` → `normalize` → `Draft::parse` → `into_new_user`, or `PUT` →
/// `apply_put`), gives back the same user. Also the store form (serde) round-trips.
pub fn assert_round_trips(u: &User) {
    let wire = serde_json::to_vec(&user_json(u, "https://example.test/scim/v2")).expect("user_json serialises");
    let body: Value = serde_json::from_slice(&wire).expect("user_json output parses as JSON");
    let obj = body.as_object().expect("user_json is an object");
    let draft = match Draft::parse(&normalize(obj)) {
        Ok(d) => d,
        Err(e) => panic!("the representation of a valid user does not parse back: {e:?}\n{body}"),
    };
    // POST of the representation: the same user (fields SCIM does not carry are copied over).
    let mut created = match draft.clone().into_new_user(NewUserBase { id: u.id, tenant: u.tenant.clone(), now: u.created }) {
        Ok(c) => c,
        Err(e) => panic!("the representation of a valid user is refused on create: {e:?}\n{body}"),
    };
    created.role_source = u.role_source;
    created.subject = u.subject.clone();
    created.sessions_revoked_at = u.sessions_revoked_at;
    created.last_modified = u.last_modified;
    created.version = u.version;
    assert_eq!(&created, u, "user_json → parse → create is not the identity\n{body}");
    // PUT of the representation (what a client does after GET): changes nothing.
    let mut put = u.clone();
    draft.apply_put(&mut put).expect("PUT of the user's own representation is refused");
    assert_eq!(&put, u, "PUT of the user's own representation changed the user\n{body}");
    // The store form.
    let stored = serde_json::to_vec(u).expect("User serialises");
    let back: User = serde_json::from_slice(&stored).expect("stored User deserialises");
    assert_eq!(&back, u, "the stored form of the user does not round-trip");
}

/// PATCH one request body against the given fixture users and assert the invariants:
/// - a parse or apply failure is a SCIM error and leaves the user unchanged (all or nothing);
/// - a success leaves the server-owned fields alone and the result is a valid user whose
///   representation round-trips (`assert_round_trips`).
pub fn check_patch(body: &Value, users: &[User]) {
    let ops = match patch::parse_request(body) {
        Ok(ops) => ops,
        Err(e) => return assert_scim_error(&e, "parse_request"),
    };
    assert!(!ops.is_empty() && ops.len() <= patch::MAX_OPERATIONS, "parse_request accepted {} operations", ops.len());
    for before in users {
        let mut u = before.clone();
        match patch::apply_to_user(&mut u, &ops) {
            Err(e) => {
                assert_scim_error(&e, "apply_to_user");
                assert_eq!(&u, before, "a failed PATCH changed the user: {e:?}");
            }
            Ok(()) => {
                assert_eq!(
                    (&u.id, &u.tenant, u.created, u.last_modified, u.version, &u.subject, u.sessions_revoked_at),
                    (
                        &before.id,
                        &before.tenant,
                        before.created,
                        before.last_modified,
                        before.version,
                        &before.subject,
                        before.sessions_revoked_at
                    ),
                    "PATCH changed a server-owned field"
                );
                assert_valid_user(&u);
                assert_round_trips(&u);
            }
        }
    }
}

/// The POST path of the service: `resource_body` (object, `schemas` includes the User schema),
/// `normalize`, `Draft::parse`, `into_new_user`. Returns the created user.
pub fn create_from_body(body: &Value) -> Result<User, Error> {
    let Value::Object(o) = body else {
        return Err(Error::InvalidSyntax("not an object".into()));
    };
    if let Some((_, schemas)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) {
        let ok = schemas
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))));
        if !ok {
            return Err(Error::InvalidSyntax("schemas must include the User schema".into()));
        }
    }
    let base = NewUserBase {
        id: fixture_users()[0].id,
        tenant: fixture_users()[0].tenant.clone(),
        now: Timestamp(1_700_000_000_000),
    };
    Draft::parse(&normalize(o))?.into_new_user(base)
}
