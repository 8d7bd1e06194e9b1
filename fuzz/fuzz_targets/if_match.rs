//! `If-Match` (and `If-None-Match`) header parsing: `Precondition::from_header`, `if_none_match`.
//!
//! The versions tested are the first numbers written in the header plus 1 and u64::MAX.
//! Invariants: blank → no precondition, `*` → any; otherwise one tag per comma-separated
//! element; `Precondition` and `if_none_match` agree on which versions match; no false accept
//! (a version matches only if the header spells its tag `"N"`); no false refusal (appending the
//! current ETag, weak or strong, always matches — checked for the last version named).
#![no_main]

use butterfly_core::scim_users::{if_none_match, Precondition};
use butterfly_fuzz::fixture_users;
use libfuzzer_sys::fuzz_target;

fn accepts(p: &Precondition, version: u64) -> bool {
    match p {
        Precondition::None | Precondition::Any => true,
        Precondition::OneOf(tags) => {
            let tag = format!("\"{version}\"");
            tags.iter().any(|t| *t == tag)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(h) = std::str::from_utf8(data) else { return };
    let p = Precondition::from_header(Some(h));
    assert_eq!(Precondition::from_header(None), Precondition::None);
    match h.trim() {
        "" => assert_eq!(p, Precondition::None, "a blank If-Match must not constrain"),
        "*" => assert_eq!(p, Precondition::Any),
        list => match &p {
            Precondition::OneOf(tags) => {
                assert_eq!(tags.len(), list.split(',').count(), "one tag per comma-separated element");
                assert!(tags.iter().all(|t| !t.contains(',')), "a tag holds a comma");
            }
            other => panic!("{h:?} parsed as {other:?}"),
        },
    }

    let mut versions: Vec<u64> = vec![1, u64::MAX];
    versions.extend(h.split(|c: char| !c.is_ascii_digit()).filter_map(|d| d.parse::<u64>().ok()).take(4));
    let mut u = fixture_users()[0].clone();
    for &v in &versions {
        u.version = v;
        let ok = accepts(&p, v);
        if !h.trim().is_empty() {
            assert_eq!(ok, if_none_match(Some(h), &u), "If-Match and If-None-Match disagree on {h:?} for {}", u.etag());
        }
        if ok && !matches!(p, Precondition::None | Precondition::Any) {
            assert!(h.contains(&format!("\"{v}\"")), "{h:?} matched version {v} without naming it");
        }
    }
    // No false refusal, for the last version named (one per input keeps long headers cheap):
    // the current ETag appended, weak or strong (the input's length picks), always matches.
    let v = *versions.last().expect("versions is not empty");
    u.version = v;
    let suffix = if h.len() % 2 == 0 { format!(" {} ", u.etag()) } else { format!("\"{v}\"") };
    let with_current = format!("{h},{suffix}");
    assert!(accepts(&Precondition::from_header(Some(&with_current)), v), "{with_current:?} refused {}", u.etag());
    assert!(if_none_match(Some(&with_current), &u), "If-None-Match {with_current:?} missed {}", u.etag());
});
