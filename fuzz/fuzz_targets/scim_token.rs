//! SCIM bearer tokens: `ScimToken::parse`, the format check on every `Authorization` header.
//!
//! Each input is tried as is, and with its last 8 characters replaced by the right CRC-32 (so
//! the checksum, compared in constant time and thus opaque to libFuzzer, does not hide the
//! acceptance path). Invariants: `parse` accepts exactly the documented formats (`bfy_scim_` +
//! 43 base64url characters + optionally the 22-character canonical base64url routing part (a
//! tenant id's 16 bytes) + the lower-case hex CRC-32 of the rest) — checked against an independent
//! oracle — and an accepted token round-trips: it exposes the very string, re-parses to the same
//! hash, hashes to SHA-256 of the string, shows only its prefix, and names a tenant exactly when it
//! has a routing part.
#![no_main]

use butterfly_core::token::{ScimToken, DISPLAY_PREFIX_LEN, SCIM_TOKEN_PREFIX};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn well_formed(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(SCIM_TOKEN_PREFIX) else { return false };
    if !(rest.len() == 43 + 8 || rest.len() == 43 + 22 + 8) || !rest.is_ascii() {
        return false;
    }
    let (body, crc) = rest.split_at(rest.len() - 8);
    // A routing part encodes 16 bytes in 22 characters: the last one's low 4 bits are padding, 0.
    let route_ok = body.len() == 43 || matches!(body.as_bytes()[body.len() - 1], b'A' | b'Q' | b'g' | b'w');
    body.bytes().all(base64url) && route_ok && crc == format!("{:08x}", crc32fast::hash(&s.as_bytes()[..s.len() - 8]))
}

fn check(s: &str) {
    let parsed = ScimToken::parse(s);
    assert_eq!(parsed.is_some(), well_formed(s), "ScimToken::parse and the format disagree on {s:?}");
    let Some(t) = parsed else { return };
    assert_eq!(t.secret().expose(), s, "an accepted token must be kept verbatim");
    let again = ScimToken::parse(t.secret().expose()).expect("an accepted token re-parses");
    assert_eq!(again.hash(), t.hash());
    assert_eq!(t.hash().as_bytes()[..], Sha256::digest(s.as_bytes())[..], "the stored hash is SHA-256 of the token");
    assert_eq!(t.display_prefix(), &s[..DISPLAY_PREFIX_LEN]);
    assert!(t.display_prefix().starts_with(SCIM_TOKEN_PREFIX));
    assert!(!format!("{t:?}").contains(&s[DISPLAY_PREFIX_LEN..]), "Debug leaks the token");
    assert_eq!(t.route().is_some(), s.len() == SCIM_TOKEN_PREFIX.len() + 43 + 22 + 8, "a tenant iff routed");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    check(s);
    if s.len() >= 8 && s.is_char_boundary(s.len() - 8) {
        let body = &s[..s.len() - 8];
        check(&format!("{body}{:08x}", crc32fast::hash(body.as_bytes())));
    }
});
