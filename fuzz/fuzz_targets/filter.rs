//! SCIM filter: parse, then evaluate against the golden fixture users.
//!
//! Invariants: a refused filter says why; an accepted filter `F` and `not (F)` disagree on every
//! user (the evaluator is a boolean function of the parse); and when the planner answers `F` with
//! point lookups (`Filter::lookups`), every user `F` matches is found by one of them, as the store
//! finds it (folded userName, exact externalId, canonical id) — otherwise a filtered GET would
//! silently miss users.
#![no_main]

use butterfly_core::ids::UserId;
use butterfly_core::scim::filter::{self, Lookup};
use butterfly_fuzz::{fixture_docs, fixture_users};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let f = match filter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.is_empty(), "a refused filter needs a detail");
            return;
        }
    };
    assert!(text.len() <= 4096, "a filter longer than the limit was accepted");
    let matched: Vec<bool> = fixture_docs().iter().map(|d| f.matches(d)).collect();

    if text.len() <= 4096 - 6 {
        match filter::parse(&format!("not ({text})")) {
            Ok(neg) => {
                for (d, m) in fixture_docs().iter().zip(&matched) {
                    assert_eq!(neg.matches(d), !m, "`not ({text})` does not negate `{text}`");
                }
            }
            Err(e) => assert!(e.contains("nests deeper"), "`{text}` parses but `not ({text})` does not: {e}"),
        }
    }

    if let Some(lookups) = f.lookups() {
        for (u, m) in fixture_users().iter().zip(&matched) {
            if !m {
                continue;
            }
            let found = lookups.iter().any(|l| match l {
                Lookup::UserName(folded) => folded == u.user_name.folded(),
                Lookup::ExternalId(e) => u.external_id.as_deref() == Some(e.as_str()),
                Lookup::Id(id) => UserId::parse(id) == Some(u.id),
            });
            assert!(found, "`{text}` matches {} but its lookups {lookups:?} do not find it", u.user_name);
        }
    }
});
