//! Micro-benchmarks of the hot domain code on every SCIM request: filter parse + evaluate,
//! PATCH apply, user JSON encode/decode, token parse + hash, cursor sign/verify.
//! `cargo bench -p butterfly-core`; CI runs them once each (`cargo test --benches`).
//! (ID-token and logout-token verification join when the SSO and revocation issues land.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use butterfly_core::clock::Timestamp;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::scim::cursor::{self, CursorKey, CursorState};
use butterfly_core::scim::doc::{normalize, user_json, Draft, NewUserBase};
use butterfly_core::scim::{filter, patch};
use butterfly_core::token::ScimToken;
use butterfly_core::user::User;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use std::hint::black_box;

fn okta_body() -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local",
        "name":{"givenName":"Test","familyName":"User"},"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],
        "displayName":"Test User","locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true,
        "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User":{"role":"auditor"}})
}

fn user() -> User {
    Draft::parse(&normalize(okta_body().as_object().unwrap()))
        .unwrap()
        .into_new_user(NewUserBase {
            id: UserId::generate(),
            tenant: TenantId::generate(),
            now: Timestamp(1_700_000_000_000),
        })
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let u = user();
    let doc = user_json(&u, "https://api.example/scim/v2");
    c.bench_function("filter: parse userName eq", |b| {
        b.iter(|| filter::parse(black_box("userName eq \"test.user@okta.local\"")).unwrap())
    });
    let complex = "emails[type eq \"work\" and value co \"okta\"] and (active eq true or not (displayName sw \"X\"))";
    c.bench_function("filter: parse complex", |b| b.iter(|| filter::parse(black_box(complex)).unwrap()));
    let f = filter::parse(complex).unwrap();
    c.bench_function("filter: evaluate complex", |b| b.iter(|| f.matches(black_box(&doc))));
    let body = okta_body();
    c.bench_function("user: decode Okta create body", |b| {
        b.iter(|| Draft::parse(&normalize(black_box(&body).as_object().unwrap())).unwrap())
    });
    c.bench_function("user: encode SCIM JSON", |b| {
        b.iter(|| user_json(black_box(&u), "https://api.example/scim/v2").to_string())
    });
    let deactivate = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    c.bench_function("patch: Okta deactivate", |b| {
        b.iter(|| {
            let mut x = u.clone();
            patch::apply_to_user(&mut x, &patch::parse_request(black_box(&deactivate)).unwrap()).unwrap();
            x
        })
    });
    let entra = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"Replace","value":{"displayName":"New","name.givenName":"N"}},
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@okta.local"}]});
    c.bench_function("patch: Entra multi-op", |b| {
        b.iter(|| {
            let mut x = u.clone();
            patch::apply_to_user(&mut x, &patch::parse_request(black_box(&entra)).unwrap()).unwrap();
            x
        })
    });
    let token = ScimToken::generate_for(&butterfly_core::ids::TenantId::generate()).unwrap();
    let presented = token.secret().expose().to_string();
    c.bench_function("token: parse + SHA-256", |b| b.iter(|| ScimToken::parse(black_box(&presented)).unwrap().hash()));
    let key = CursorKey::new([7; 32]);
    let t = TenantId::generate();
    let fp = cursor::query_fingerprint(None);
    let st = CursorState { after: u.id };
    let c1 = cursor::encode(&key, &t, fp, st, Timestamp(0));
    c.bench_function("cursor: sign", |b| b.iter(|| cursor::encode(&key, &t, fp, black_box(st), Timestamp(0))));
    c.bench_function("cursor: verify", |b| {
        b.iter(|| cursor::decode(&key, &t, fp, black_box(&c1), Timestamp(1)).unwrap())
    });
}

criterion_group!(core, benches);
criterion_main!(core);
