//! A user body (POST /Users): JSON → `normalize` → `Draft::parse` → `into_new_user`, the path
//! `UserService::create_user` takes. Seeded with the golden Okta/Entra user bodies.
//!
//! Invariants: a refusal is a SCIM error; an accepted body gives a valid user whose
//! representation round-trips (`user_json` → parse → the same user, PUT of it changes nothing,
//! the store form round-trips), and PUT of the very body that created the user changes nothing.
#![no_main]

use butterfly_core::scim::doc::{normalize, Draft};
use butterfly_fuzz::{assert_round_trips, assert_scim_error, assert_valid_user, create_from_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let u = match create_from_body(&body) {
        Ok(u) => u,
        Err(e) => return assert_scim_error(&e, "create"),
    };
    assert_valid_user(&u);
    assert_round_trips(&u);
    let obj = body.as_object().expect("an accepted body is an object");
    let mut put = u.clone();
    Draft::parse(&normalize(obj)).expect("the body parsed once").apply_put(&mut put).expect("PUT of the create body");
    assert_eq!(put, u, "PUT of the body that created the user changed it");
});
