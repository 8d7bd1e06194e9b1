//! Identifiers, parsed at the boundary.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A tenant (one Butterfly customer). Opaque, immutable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn generate() -> Self {
        TenantId(Uuid::new_v4().to_string())
    }
    /// Parses a tenant id as printed by the CLI (a lower-case hyphenated UUID).
    pub fn parse(s: &str) -> Option<Self> {
        // `s` is the canonical form when accepted.
        canonical_uuid(s).map(|_| TenantId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's server-issued SCIM `id`: a time-ordered UUID (v7), so that key order is creation
/// order and index paging stays stable while users are added. Case-sensitive (`caseExact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    pub fn generate() -> Self {
        UserId(Uuid::now_v7())
    }
    /// Parses an id exactly as we print it. Anything else (other case, braces, another
    /// length) is not one of our ids, which the HTTP layer answers with 404.
    pub fn parse(s: &str) -> Option<Self> {
        canonical_uuid(s).map(UserId)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    pub fn from_uuid(u: Uuid) -> Self {
        UserId(u)
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Self {
        UserId(Uuid::from_bytes(b))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

fn canonical_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    (*u.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == *s).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_round_trip_and_reject_other_spellings() {
        let id = UserId::generate();
        let s = id.to_string();
        assert_eq!(UserId::parse(&s), Some(id));
        assert_eq!(UserId::parse(&s.to_uppercase()), None);
        assert_eq!(UserId::parse("010101001010101011001010101011"), None);
        assert_eq!(UserId::parse(""), None);
        assert_eq!(UserId::parse(&format!("{{{s}}}")), None);
    }

    #[test]
    fn tenant_ids_are_accepted_only_in_their_canonical_spelling() {
        let t = TenantId::generate();
        assert_eq!(TenantId::parse(t.as_str()), Some(t.clone()));
        let simple = t.as_str().replace('-', "");
        let urn = format!("urn:uuid:{}", t.as_str());
        for other in [t.as_str().to_uppercase(), format!("{{{}}}", t.as_str()), simple, urn, String::new()] {
            assert_eq!(TenantId::parse(&other), None, "{other}");
        }
    }

    #[test]
    fn user_ids_sort_by_creation() {
        let a = UserId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = UserId::generate();
        assert!(a < b);
    }
}
