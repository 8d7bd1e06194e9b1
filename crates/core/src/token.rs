//! SCIM bearer tokens: generated here, shown once, stored only as a SHA-256 hash.
//!
//! Format: `bfy_scim_` + 43 base64url characters (256 random bits) + 22 base64url characters
//! naming the tenant (its id's 16 bytes: the *routing part*) + 8 hex digits of a CRC-32 over the
//! rest. The prefix lets secret scanners recognise a leaked token; the checksum lets us refuse a
//! mistyped or made-up token without a store round trip; the routing part lets a request read
//! the token and the tenant's user in one store round trip (`docs/performance.md`). The routing
//! part is a claim, not a credential: the hash covers the whole token, and a token is accepted
//! only if the tenant of its stored record is the tenant it names ([`ScimToken::routes_to`]).
//!
//! Tokens issued before the routing part existed (`bfy_scim_` + 43 + 8, no routing part) keep
//! working: they are authenticated by their hash alone, on the two-round-trip path.

use crate::clock::Timestamp;
use crate::ids::TenantId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const SCIM_TOKEN_PREFIX: &str = "bfy_scim_";
const BODY_LEN: usize = 43;
/// A tenant id's 16 bytes in base64url.
const ROUTE_LEN: usize = 22;
/// A token issued before the routing part existed.
const LEGACY_TOKEN_LEN: usize = SCIM_TOKEN_PREFIX.len() + BODY_LEN + 8;
const TOKEN_LEN: usize = SCIM_TOKEN_PREFIX.len() + BODY_LEN + ROUTE_LEN + 8;
/// How many leading characters of a token may be shown to identify it.
pub const DISPLAY_PREFIX_LEN: usize = SCIM_TOKEN_PREFIX.len() + 4;
/// Last-used times are written at most this often per token, not on every request.
pub const LAST_USED_GRANULARITY_SECS: i64 = 300;

/// A secret string that never reaches logs: `Debug` and `Display` print a redaction. It
/// serializes as the plain string, for stores only (session and transaction items).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself. Call only where it must leave the process (shown once to an admin).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A freshly generated or presented SCIM token, with the tenant its routing part names
/// (decoded once, when the token is made or parsed).
#[derive(Clone, Debug)]
pub struct ScimToken {
    secret: Secret,
    route: Option<TenantId>,
}

impl ScimToken {
    /// A new token for `tenant`, with the tenant's routing part.
    pub fn generate_for(tenant: &TenantId) -> Result<Self, String> {
        let route = uuid::Uuid::parse_str(tenant.as_str()).map_err(|_| "the tenant id is not a UUID".to_string())?;
        Ok(ScimToken { route: Some(tenant.clone()), ..Self::generate_with(Some(route.as_bytes()))? })
    }

    /// A token in the format issued before the routing part existed (still accepted; tests use
    /// it to exercise that path).
    pub fn generate_legacy() -> Result<Self, String> {
        Self::generate_with(None)
    }

    fn generate_with(route: Option<&[u8; 16]>) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(SCIM_TOKEN_PREFIX);
        s.push_str(&URL_SAFE_NO_PAD.encode(bytes));
        if let Some(r) = route {
            s.push_str(&URL_SAFE_NO_PAD.encode(r));
        }
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("{crc:08x}"));
        Ok(ScimToken { secret: Secret(s), route: None })
    }

    /// Accepts a presented token if it has our shape and checksum (with or without a routing
    /// part). This is a format check, not authentication: only the store lookup of its hash
    /// says whether it is valid.
    pub fn parse(s: &str) -> Option<Self> {
        if !(s.len() == TOKEN_LEN || s.len() == LEGACY_TOKEN_LEN) || !s.starts_with(SCIM_TOKEN_PREFIX) || !s.is_ascii()
        {
            return None;
        }
        let (body, crc) = s.split_at(s.len() - 8);
        // The checksum as eight lowercase hex digits (what `{:08x}` writes, without formatting).
        let crc32 = crc32fast::hash(body.as_bytes());
        let expected: [u8; 8] = std::array::from_fn(|i| b"0123456789abcdef"[(crc32 >> (28 - 4 * i) & 15) as usize]);
        let body_ok =
            body[SCIM_TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // A routing part must decode to a tenant id.
        let route = decode_route(s);
        let route_ok = s.len() == LEGACY_TOKEN_LEN || route.is_some();
        (body_ok && route_ok && bool::from(crc.as_bytes().ct_eq(&expected)))
            .then(|| ScimToken { secret: Secret(s.to_string()), route })
    }

    /// The tenant the token names, if it has a routing part (tokens issued before it existed do
    /// not). Not authenticated: see [`ScimToken::routes_to`].
    pub fn route(&self) -> Option<TenantId> {
        self.route.clone()
    }

    /// Whether the token may belong to `tenant` (the tenant of the record its hash found): a
    /// token without a routing part may; a routed token only if it names `tenant`. Compared in
    /// constant time; a mismatch is refused like any unknown token.
    pub fn routes_to(&self, tenant: &TenantId) -> bool {
        match &self.route {
            None => self.secret.expose().len() == LEGACY_TOKEN_LEN,
            Some(r) => bool::from(r.as_str().as_bytes().ct_eq(tenant.as_str().as_bytes())),
        }
    }

    /// The token of an `Authorization` header, as the HTTP layer reads it: `Bearer <token>` or,
    /// as Okta's "Header" authentication sends it, the bare token. A missing header, another
    /// scheme or a value that is not one of our tokens is `Unauthorized`.
    pub fn from_authorization(header: Option<&str>) -> crate::Result<Self> {
        let h = header.map(str::trim).filter(|h| !h.is_empty()).ok_or_else(|| {
            crate::Error::Unauthorized("an Authorization header with the Butterfly SCIM token is required".into())
        })?;
        let raw = match h.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            Some(_) => return Err(crate::Error::Unauthorized("use 'Authorization: Bearer <SCIM token>'".into())),
            None => h,
        };
        ScimToken::parse(raw).ok_or_else(invalid_scim_token)
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.secret.expose().as_bytes()).into())
    }

    pub fn display_prefix(&self) -> String {
        self.secret.expose()[..DISPLAY_PREFIX_LEN].to_string()
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// The tenant a token's routing part names (`None` for a token without one, or one that does
/// not decode to a tenant id).
fn decode_route(s: &str) -> Option<TenantId> {
    if s.len() != TOKEN_LEN {
        return None;
    }
    let start = SCIM_TOKEN_PREFIX.len() + BODY_LEN;
    let raw = URL_SAFE_NO_PAD.decode(s.get(start..start + ROUTE_LEN)?).ok()?;
    let bytes: [u8; 16] = raw.try_into().ok()?;
    TenantId::parse(&uuid::Uuid::from_bytes(bytes).to_string())
}

/// SHA-256 of a token: the only form in which tokens are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn from_bytes(b: [u8; 32]) -> Self {
        TokenHash(b)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(TokenHash(out))
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad token hash"))
    }
}

/// What the store keeps about a tenant's SCIM token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub hash: TokenHash,
    pub tenant: TenantId,
    /// The first characters of the token, to tell tokens apart in listings.
    pub display_prefix: String,
    pub created: Timestamp,
    #[serde(default)]
    pub last_used: Option<Timestamp>,
    /// A token rotated in overlap mode stops working at this instant at the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// The token this one replaced in overlap mode: retired at this token's first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<TokenHash>,
}

impl TokenRecord {
    /// Whether the token still works at `now` (an overlapping old token has a deadline).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    /// Whether a use at `now` should be recorded (at most once per granularity window).
    pub fn last_used_is_stale(&self, now: Timestamp) -> bool {
        match self.last_used {
            None => true,
            Some(t) => now.millis() - t.millis() >= LAST_USED_GRANULARITY_SECS * 1000,
        }
    }
}

/// The refusal of a SCIM token that is not (or no longer) one of ours.
pub fn invalid_scim_token() -> crate::Error {
    crate::Error::Unauthorized("the SCIM token is not valid: it was revoked, rotated or mistyped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_stably() {
        let tenant = TenantId::generate();
        let t = ScimToken::generate_for(&tenant).unwrap();
        let s = t.secret().expose().to_string();
        assert!(s.starts_with("bfy_scim_"));
        assert_eq!(s.len(), TOKEN_LEN);
        let again = ScimToken::parse(&s).unwrap();
        assert_eq!(again.hash(), t.hash());
        assert_eq!(TokenHash::from_hex(&t.hash().to_hex()), Some(t.hash()));
        assert_ne!(ScimToken::generate_for(&tenant).unwrap().hash(), t.hash());
        assert_eq!(again.route(), Some(tenant.clone()));
        assert!(again.routes_to(&tenant));
        assert!(!again.routes_to(&TenantId::generate()));
        // The first characters shown to tell tokens apart come from the random part.
        assert_ne!(ScimToken::generate_for(&tenant).unwrap().display_prefix(), t.display_prefix());
    }

    #[test]
    fn tokens_without_a_routing_part_still_parse() {
        let t = ScimToken::generate_legacy().unwrap();
        let s = t.secret().expose().to_string();
        assert_eq!(s.len(), LEGACY_TOKEN_LEN);
        let again = ScimToken::parse(&s).unwrap();
        assert_eq!((again.route(), again.hash()), (None, t.hash()));
        assert!(again.routes_to(&TenantId::generate()), "authenticated by its hash alone");
    }

    #[test]
    fn a_routing_part_that_is_not_a_tenant_id_is_refused() {
        // 22 characters whose last one carries bits past the 16 bytes: not a canonical encoding.
        let mut s = String::from(SCIM_TOKEN_PREFIX);
        s.push_str(&"A".repeat(BODY_LEN));
        s.push_str(&"B".repeat(ROUTE_LEN));
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("{crc:08x}"));
        assert!(ScimToken::parse(&s).is_none());
    }

    #[test]
    fn rejects_tampered_or_foreign_tokens() {
        let s = ScimToken::generate_for(&TenantId::generate()).unwrap().secret().expose().to_string();
        let mut chars: Vec<char> = s.chars().collect();
        chars[12] = if chars[12] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(ScimToken::parse(&tampered).is_none());
        assert!(ScimToken::parse("non-token").is_none());
        assert!(ScimToken::parse("").is_none());
        assert!(ScimToken::parse(&s[..s.len() - 1]).is_none());
        assert!(ScimToken::parse(&format!("{s}x")).is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let t = ScimToken::generate_for(&TenantId::generate()).unwrap();
        let dbg = format!("{t:?} {}", t.secret());
        assert!(!dbg.contains(&t.secret().expose()[9..20]), "{dbg}");
    }
}
