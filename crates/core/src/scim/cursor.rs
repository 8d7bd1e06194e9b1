//! RFC 9865 cursors: opaque, URL-safe, tamper-evident (HMAC-SHA-256), bound to the tenant and
//! the filter they were issued for, and expiring after [`CURSOR_TIMEOUT_SECS`].

use crate::clock::Timestamp;
use crate::ids::{TenantId, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

pub const CURSOR_TIMEOUT_SECS: i64 = 3600;
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const PAYLOAD_LEN: usize = 1 + 8 + 16 + 8;

/// The server key that signs cursors.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        CursorKey(bytes)
    }
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(b).ok().map(CursorKey)
    }
    /// The key for a stored secret string (a Secrets Manager value): its SHA-256.
    pub fn derive(secret: &str) -> Self {
        CursorKey(Sha256::digest(secret.as_bytes()).into())
    }
    fn tag(&self, tenant: &TenantId, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) {
            mac.update(tenant.as_str().as_bytes());
            mac.update(&[0]);
            mac.update(payload);
            out.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
        }
        out
    }
}

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

/// What a cursor remembers: the last user returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorState {
    pub after: UserId,
}

/// A fingerprint of the query a cursor belongs to.
pub fn query_fingerprint(filter: Option<&str>) -> [u8; 8] {
    let d = Sha256::digest(filter.unwrap_or("").as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

pub fn encode(key: &CursorKey, tenant: &TenantId, query: [u8; 8], state: CursorState, now: Timestamp) -> String {
    let mut payload = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
    payload.push(VERSION);
    payload.extend_from_slice(&now.millis().to_be_bytes());
    payload.extend_from_slice(state.after.as_bytes());
    payload.extend_from_slice(&query);
    let tag = key.tag(tenant, &payload);
    payload.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(payload)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorError {
    Invalid,
    Expired,
}

pub fn decode(
    key: &CursorKey,
    tenant: &TenantId,
    query: [u8; 8],
    cursor: &str,
    now: Timestamp,
) -> Result<CursorState, CursorError> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| CursorError::Invalid)?;
    if raw.len() != PAYLOAD_LEN + TAG_LEN || raw[0] != VERSION {
        return Err(CursorError::Invalid);
    }
    let (payload, tag) = raw.split_at(PAYLOAD_LEN);
    let expected = key.tag(tenant, payload);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], tag)) {
        return Err(CursorError::Invalid);
    }
    if payload[25..33] != query {
        return Err(CursorError::Invalid);
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&payload[1..9]);
    let issued = i64::from_be_bytes(ts);
    if now.millis() - issued > CURSOR_TIMEOUT_SECS * 1000 {
        return Err(CursorError::Expired);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&payload[9..25]);
    Ok(CursorState { after: UserId::from_bytes(id) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering_other_tenants_and_old_cursors() {
        let key = CursorKey::new([7; 32]);
        let t1 = TenantId::generate();
        let t2 = TenantId::generate();
        let q = query_fingerprint(Some("active eq true"));
        let st = CursorState { after: UserId::generate() };
        let now = Timestamp(1_000_000);
        let c = encode(&key, &t1, q, st, now);
        assert_eq!(decode(&key, &t1, q, &c, now), Ok(st));
        assert_eq!(decode(&key, &t2, q, &c, now), Err(CursorError::Invalid));
        assert_eq!(decode(&key, &t1, query_fingerprint(None), &c, now), Err(CursorError::Invalid));
        assert_eq!(decode(&CursorKey::new([8; 32]), &t1, q, &c, now), Err(CursorError::Invalid));
        let mut bytes = c.clone().into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(decode(&key, &t1, q, &tampered, now), Err(CursorError::Invalid));
        assert_eq!(decode(&key, &t1, q, "not a cursor!", now), Err(CursorError::Invalid));
        assert_eq!(decode(&key, &t1, q, "", now), Err(CursorError::Invalid));
        assert_eq!(decode(&key, &t1, q, &c, now.plus_secs(CURSOR_TIMEOUT_SECS + 1)), Err(CursorError::Expired));
    }
}
