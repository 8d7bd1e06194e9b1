//! PATCH from raw bytes: JSON → `parse_request` → `apply_to_user` on every golden fixture user.
//! Seeded with the golden Okta/Entra PatchOp requests. Invariants: see `check_patch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    butterfly_fuzz::check_patch(&body, butterfly_fuzz::fixture_users());
});
