//! RFC 9865 paging cursors: `decode` never accepts a forged cursor.
//!
//! A cursor is issued (`encode`) under one key, tenant, query fingerprint and time, optionally
//! tampered with (bit flips, truncation, appended text, one character changed, or replaced by
//! arbitrary text), then presented (`decode`) under a possibly different key, tenant, query and
//! time. Invariants:
//! - sound: whatever `decode` accepts — or reports as expired — is exactly the string `encode`
//!   produces for the presented key/tenant/query, the state it returns and the issue time the
//!   cursor carries; an accepted cursor is never older than the timeout;
//! - bound: an untouched cursor presented under another key, tenant or query is `Invalid`;
//! - complete: an untouched cursor under its own key/tenant/query decodes to its state, and is
//!   `Expired` exactly when it is older than the timeout.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use butterfly_core::clock::Timestamp;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::scim::cursor::{self, CursorError, CursorKey, CursorState, CURSOR_TIMEOUT_SECS};
use libfuzzer_sys::fuzz_target;

const TENANTS: [&str; 3] = [
    "0190c0de-0000-4000-8000-000000000001",
    "0190c0de-0000-4000-8000-000000000002",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
];
const FILTERS: [Option<&str>; 4] = [None, Some("active eq true"), Some("userName sw \"a\""), Some("")];

#[derive(Arbitrary, Debug)]
enum KeySpec {
    Fixed(u8),
    Raw([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    None,
    FlipBit(u16),
    SetChar(u16, u8),
    Truncate(u16),
    Append(String),
    Prepend(String),
    Replace(String),
}

#[derive(Arbitrary, Debug)]
struct Side {
    key: KeySpec,
    tenant: u8,
    filter: u8,
}

#[derive(Arbitrary, Debug)]
struct Case {
    issue: Side,
    present: Option<Side>,
    after: [u8; 16],
    issued: u64,
    /// Milliseconds between issue and presentation (negative: a clock behind the issuer's).
    elapsed: i32,
    elapsed_scale: u8,
    tamper: Tamper,
}

struct Ctx {
    key: CursorKey,
    key_bytes: [u8; 32],
    tenant: TenantId,
    query: [u8; 8],
}

fn ctx(s: &Side) -> Ctx {
    let key_bytes = match &s.key {
        KeySpec::Fixed(i) => [*i % 3; 32],
        KeySpec::Raw(b) => *b,
    };
    Ctx {
        key: CursorKey::new(key_bytes),
        key_bytes,
        tenant: TenantId::parse(TENANTS[s.tenant as usize % TENANTS.len()]).expect("tenant id"),
        query: cursor::query_fingerprint(FILTERS[s.filter as usize % FILTERS.len()]),
    }
}

/// The issue time a cursor string carries (bytes 1..9 of its payload), if it has the shape.
fn issued_in(c: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(c.as_bytes()).ok()?;
    let ts: [u8; 8] = raw.get(1..9)?.try_into().ok()?;
    Some(i64::from_be_bytes(ts))
}

fuzz_target!(|c: Case| {
    let issue = ctx(&c.issue);
    let present = c.present.as_ref().map(ctx).unwrap_or_else(|| ctx(&c.issue));
    // Realistic clocks: milliseconds since 1970 up to about year 37000, either side of issue.
    let issued = Timestamp((c.issued % (1 << 50)) as i64);
    let now = Timestamp(issued.millis() + c.elapsed as i64 * (c.elapsed_scale as i64 % 8 + 1) * 4);
    let state = CursorState { after: UserId::from_bytes(c.after) };
    let genuine = cursor::encode(&issue.key, &issue.tenant, issue.query, state, issued);

    let presented = match &c.tamper {
        Tamper::None => genuine.clone(),
        Tamper::FlipBit(i) => {
            let mut b = genuine.clone().into_bytes();
            let n = *i as usize % (b.len() * 8);
            b[n / 8] ^= 1 << (n % 8);
            String::from_utf8_lossy(&b).into_owned()
        }
        Tamper::SetChar(i, ch) => {
            let mut b = genuine.clone().into_bytes();
            let n = *i as usize % b.len();
            b[n] = *ch;
            String::from_utf8_lossy(&b).into_owned()
        }
        Tamper::Truncate(n) => genuine[..*n as usize % genuine.len()].to_string(),
        Tamper::Append(s) => format!("{genuine}{s}"),
        Tamper::Prepend(s) => format!("{s}{genuine}"),
        Tamper::Replace(s) => s.clone(),
    };

    let same_context =
        present.key_bytes == issue.key_bytes && present.tenant == issue.tenant && present.query == issue.query;
    let result = cursor::decode(&present.key, &present.tenant, present.query, &presented, now);

    // Sound: anything not refused as Invalid is a cursor encode produced under the presented context.
    match &result {
        Ok(st) => {
            let t = issued_in(&presented).expect("an accepted cursor has a payload");
            assert_eq!(
                cursor::encode(&present.key, &present.tenant, present.query, *st, Timestamp(t)),
                presented,
                "decode accepted a cursor encode never produced (tamper {:?})",
                c.tamper
            );
            assert!(now.millis() - t <= CURSOR_TIMEOUT_SECS * 1000, "decode accepted an expired cursor");
        }
        Err(CursorError::Expired) => {
            let raw = URL_SAFE_NO_PAD.decode(presented.as_bytes()).expect("an expired cursor has a payload");
            let t = issued_in(&presented).expect("an expired cursor has a payload");
            let id: [u8; 16] = raw[9..25].try_into().expect("id bytes");
            let st = CursorState { after: UserId::from_bytes(id) };
            assert_eq!(
                cursor::encode(&present.key, &present.tenant, present.query, st, Timestamp(t)),
                presented,
                "decode reported a forged cursor as expired (tamper {:?})",
                c.tamper
            );
        }
        Err(CursorError::Invalid) => {}
    }

    if presented == genuine {
        if !same_context {
            assert_eq!(result, Err(CursorError::Invalid), "a cursor was accepted under another key, tenant or query");
        } else if now.millis() - issued.millis() > CURSOR_TIMEOUT_SECS * 1000 {
            assert_eq!(result, Err(CursorError::Expired), "an old cursor was not reported as expired");
        } else {
            assert_eq!(result, Ok(state), "a fresh genuine cursor was refused");
        }
    }
});
