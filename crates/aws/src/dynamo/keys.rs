//! The table's keys: every item's partition and sort key, as `docs/storage.md` lays them out.

use super::items::{string_attr, AttributeMap};
use butterfly_core::claims::{TenantClaim, UserClaim};
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::token::TokenHash;
use std::collections::HashMap;

/// The global secondary index for key-ordered listings (`gsi1pk`, `gsi1sk`).
pub const GSI1: &str = "gsi1";
/// `gsi1pk` of every tenant item.
pub const TENANTS_GSI: &str = "TENANTS";

pub const TENANT_SK: &str = "TENANT";
pub const USER_SK: &str = "USER";
pub const SCIM_TOKEN_SK: &str = "SCIMTOKEN";
pub const USER_COUNT_SK: &str = "USERCOUNT";
pub const USER_CLAIM_SK: &str = "CLAIM";
pub const SESSION_SK: &str = "SESSION";
pub const LOGIN_SK: &str = "LOGIN";
/// The sort key of a tenant's owner setup link (partition [`tenant_pk`]).
pub const SETUP_LINK_SK: &str = "SETUPLINK";

/// The primary key of an item.
pub fn primary_key(pk: String, sk: &str) -> AttributeMap {
    HashMap::from([("pk".to_string(), string_attr(pk)), ("sk".to_string(), string_attr(sk))])
}

pub fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

pub fn token_pk(h: &TokenHash) -> String {
    format!("SCIMTOKEN#{}", h.to_hex())
}

pub fn user_pk(id: &UserId) -> String {
    format!("USER#{id}")
}

/// `gsi1pk` of a tenant's users.
pub fn tenant_users_gsi(t: &TenantId) -> String {
    format!("TENANT#{t}#USERS")
}

/// A user claim's partition key (its sort key is [`USER_CLAIM_SK`]).
pub fn user_claim_pk(claim: &UserClaim) -> String {
    match claim {
        UserClaim::UserName { tenant, folded } => format!("TENANT#{tenant}#UN#{folded}"),
        UserClaim::ExternalId { tenant, external_id } => format!("TENANT#{tenant}#EXT#{external_id}"),
        UserClaim::Subject { tenant, subject } => format!("TENANT#{tenant}#SUB#{}#{}", subject.issuer, subject.sub),
    }
}

pub fn user_claim_key(claim: &UserClaim) -> AttributeMap {
    primary_key(user_claim_pk(claim), USER_CLAIM_SK)
}

/// A tenant claim's key: `DOMAIN#<domain>` / `DOMAIN`, `ISSUER#<issuer>` / `ISSUER`.
pub fn tenant_claim_key(claim: &TenantClaim) -> AttributeMap {
    match claim {
        TenantClaim::Domain(d) => primary_key(format!("DOMAIN#{d}"), "DOMAIN"),
        TenantClaim::Issuer(i) => primary_key(format!("ISSUER#{i}"), "ISSUER"),
    }
}

pub fn session_pk(h: &TokenHash) -> String {
    format!("SESSION#{}", h.to_hex())
}

/// The index partition of a user's sessions.
pub fn user_sessions_pk(t: &TenantId, u: &UserId) -> String {
    format!("TENANT#{t}#USER#{u}#SESSIONS")
}

/// The index partition of the sessions started from one provider session.
pub fn sid_sessions_pk(issuer: &str, sid: &str) -> String {
    format!("SID#{issuer}#{sid}")
}

/// The index partition of a tenant's sessions from one issuer.
pub fn issuer_sessions_pk(t: &TenantId, issuer: &str) -> String {
    format!("TENANT#{t}#ISS#{issuer}#SESSIONS")
}

pub fn login_pk(h: &TokenHash) -> String {
    format!("LOGIN#{}", h.to_hex())
}

pub fn audit_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#AUDIT")
}

pub fn once_key(scope: &str, key: &str) -> AttributeMap {
    primary_key(format!("ONCE#{scope}#{key}"), "ONCE")
}

pub fn quota_key(key: &str, window_start_ms: i64) -> AttributeMap {
    primary_key(format!("QUOTA#{key}#{window_start_ms}"), "QUOTA")
}

/// A key that never exists, read to open a connection ahead of the first request.
pub fn warm_up_key() -> AttributeMap {
    primary_key("WARMUP".into(), "WARMUP")
}
