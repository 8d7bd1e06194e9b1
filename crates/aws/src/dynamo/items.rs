//! Item codecs: how each record is written to, and read from, its DynamoDB item.

use super::keys::{
    audit_pk, issuer_sessions_pk, login_pk, primary_key, session_pk, sid_sessions_pk, tenant_claim_key, tenant_pk,
    tenant_users_gsi, token_pk, user_claim_key, user_pk, user_sessions_pk, SCIM_TOKEN_SK, SESSION_SK, TENANTS_GSI,
    TENANT_SK, USER_SK,
};
use aws_sdk_dynamodb::types::AttributeValue;
use butterfly_core::audit::AuditEvent;
use butterfly_core::claims::{TenantClaim, UserClaim};
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::sso::{LoginTransaction, Session};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::{TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use std::collections::HashMap;

/// One item (or key): attribute name → value.
pub type AttributeMap = HashMap<String, AttributeValue>;

/// A string attribute (`S`).
pub fn string_attr(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute (`N`).
pub fn number_attr(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// DynamoDB's TTL attribute (seconds) for an expiry in milliseconds.
pub fn ttl_attr(at: Timestamp) -> AttributeValue {
    number_attr(at.millis().div_euclid(1000) + 1)
}

pub fn read_string<'a>(item: &'a AttributeMap, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(Error::store(format!("item without string attribute {name}"))),
    }
}

pub fn read_number(item: &AttributeMap, name: &str) -> Result<Option<i64>> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| Error::store(format!("bad number in {name}"))),
        None => Ok(None),
        _ => Err(Error::store(format!("attribute {name} is not a number"))),
    }
}

pub fn read_tenant_id(item: &AttributeMap, name: &str) -> Result<TenantId> {
    TenantId::parse(read_string(item, name)?).ok_or_else(|| Error::store("bad tenant id"))
}

pub fn read_token_hash(item: &AttributeMap, name: &str) -> Result<TokenHash> {
    TokenHash::from_hex(read_string(item, name)?).ok_or_else(|| Error::store("bad token hash"))
}

/// The record a `body` attribute holds (JSON).
pub fn read_body<T: serde::de::DeserializeOwned>(item: &AttributeMap) -> Result<T> {
    serde_json::from_str(read_string(item, "body")?).map_err(|e| Error::store(format!("corrupt item body: {e}")))
}

fn body_attr<T: serde::Serialize>(v: &T) -> Result<AttributeValue> {
    serde_json::to_string(v).or_store_error().map(string_attr)
}

pub fn tenant_item(t: &Tenant) -> Result<AttributeMap> {
    let mut it = primary_key(tenant_pk(&t.id), TENANT_SK);
    it.insert("body".into(), body_attr(t)?);
    it.insert("version".into(), number_attr(t.version));
    it.insert("gsi1pk".into(), string_attr(TENANTS_GSI));
    it.insert("gsi1sk".into(), string_attr(format!("{:020}#{}", t.created.millis(), t.id)));
    Ok(it)
}

/// A domain or issuer claim: names the tenant that holds it.
pub fn tenant_claim_item(claim: &TenantClaim, tenant: &TenantId) -> AttributeMap {
    let mut it = tenant_claim_key(claim);
    it.insert("tenant".into(), string_attr(tenant.as_str()));
    it
}

pub fn user_item(u: &User) -> Result<AttributeMap> {
    let mut it = primary_key(user_pk(&u.id), USER_SK);
    it.insert("tenant".into(), string_attr(u.tenant.as_str()));
    it.insert("version".into(), number_attr(u.version));
    it.insert("body".into(), body_attr(u)?);
    it.insert("gsi1pk".into(), string_attr(tenant_users_gsi(&u.tenant)));
    it.insert("gsi1sk".into(), string_attr(u.id.to_string()));
    Ok(it)
}

/// A user claim: names the user and carries a copy of it, so a lookup is one read.
pub fn user_claim_item(claim: &UserClaim, u: &User) -> Result<AttributeMap> {
    let mut it = user_claim_key(claim);
    it.insert("user".into(), string_attr(u.id.to_string()));
    it.insert("body".into(), body_attr(u)?);
    Ok(it)
}

/// A user read from an item (the user or a claim's copy), if it belongs to `tenant`.
pub fn read_user_of(it: &AttributeMap, tenant: &TenantId) -> Result<Option<User>> {
    let u: User = read_body(it)?;
    Ok((&u.tenant == tenant).then_some(u))
}

pub fn token_item(r: &TokenRecord) -> AttributeMap {
    let mut it = primary_key(token_pk(&r.hash), SCIM_TOKEN_SK);
    it.insert("tenant".into(), string_attr(r.tenant.as_str()));
    it.insert("display_prefix".into(), string_attr(r.display_prefix.clone()));
    it.insert("created".into(), number_attr(r.created.millis()));
    if let Some(t) = r.last_used {
        it.insert("last_used".into(), number_attr(t.millis()));
    }
    if let Some(t) = r.expires {
        it.insert("token_expires".into(), number_attr(t.millis()));
        it.insert("expires_at".into(), ttl_attr(t));
    }
    if let Some(h) = &r.replaces {
        it.insert("replaces".into(), string_attr(h.to_hex()));
    }
    it
}

pub fn read_token(hash: TokenHash, it: &AttributeMap) -> Result<TokenRecord> {
    Ok(TokenRecord {
        hash,
        tenant: read_tenant_id(it, "tenant")?,
        display_prefix: read_string(it, "display_prefix")?.to_string(),
        created: Timestamp(read_number(it, "created")?.unwrap_or(0)),
        last_used: read_number(it, "last_used")?.map(Timestamp),
        expires: read_number(it, "token_expires")?.map(Timestamp),
        replaces: match it.get("replaces") {
            Some(AttributeValue::S(_)) => Some(read_token_hash(it, "replaces")?),
            _ => None,
        },
    })
}

/// The tenant's token pointer naming `current` (and the token it overlaps, if any).
pub fn token_pointer_item(tenant: &TenantId, current: &TokenHash, previous: Option<&TokenHash>) -> AttributeMap {
    let mut it = primary_key(tenant_pk(tenant), SCIM_TOKEN_SK);
    it.insert("hash".into(), string_attr(current.to_hex()));
    if let Some(p) = previous {
        it.insert("previous".into(), string_attr(p.to_hex()));
    }
    it
}

/// A session's item and its index items (by user, by issuer, and by provider session if it
/// has one). Each index item names the others, so deleting through any index removes them all.
pub fn session_items(session: &Session) -> Result<(AttributeMap, Vec<AttributeMap>)> {
    let hex = session.hash.to_hex();
    let expires = ttl_attr(session.expires);
    let user_idx = user_sessions_pk(&session.tenant, &session.user);
    let iss_idx = issuer_sessions_pk(&session.tenant, &session.issuer);
    let sid_idx = session.sid.as_deref().map(|sid| sid_sessions_pk(&session.issuer, sid));
    let mut main = primary_key(session_pk(&session.hash), SESSION_SK);
    main.insert("body".into(), body_attr(session)?);
    main.insert("user".into(), string_attr(session.user.to_string()));
    main.insert("last_seen".into(), number_attr(session.last_seen.millis()));
    main.insert("expires_at".into(), expires.clone());
    let mut by_user = primary_key(user_idx.clone(), &hex);
    by_user.insert("expires_at".into(), expires.clone());
    by_user.insert("iss_idx_pk".into(), string_attr(iss_idx.clone()));
    let mut by_iss = primary_key(iss_idx.clone(), &hex);
    by_iss.insert("expires_at".into(), expires.clone());
    by_iss.insert("user_idx_pk".into(), string_attr(user_idx.clone()));
    let mut index = Vec::with_capacity(3);
    if let Some(sp) = &sid_idx {
        by_user.insert("sid_pk".into(), string_attr(sp.clone()));
        by_iss.insert("sid_pk".into(), string_attr(sp.clone()));
        let mut by_sid = primary_key(sp.clone(), &hex);
        by_sid.insert("user_idx_pk".into(), string_attr(user_idx));
        by_sid.insert("iss_idx_pk".into(), string_attr(iss_idx));
        by_sid.insert("expires_at".into(), expires);
        index.push(by_sid);
    }
    index.push(by_user);
    index.push(by_iss);
    Ok((main, index))
}

/// The attributes of an index item that name the session's other index partitions.
pub const SESSION_INDEX_LINKS: [&str; 3] = ["user_idx_pk", "sid_pk", "iss_idx_pk"];

/// The keys of a session's index items.
pub fn session_index_keys(session: &Session) -> Vec<AttributeMap> {
    let hex = session.hash.to_hex();
    let mut keys = vec![
        primary_key(user_sessions_pk(&session.tenant, &session.user), &hex),
        primary_key(issuer_sessions_pk(&session.tenant, &session.issuer), &hex),
    ];
    if let Some(sid) = &session.sid {
        keys.push(primary_key(sid_sessions_pk(&session.issuer, sid), &hex));
    }
    keys
}

pub fn login_item(login: &LoginTransaction) -> Result<AttributeMap> {
    let mut it = primary_key(login_pk(&login.state_hash), super::keys::LOGIN_SK);
    it.insert("body".into(), body_attr(login)?);
    it.insert("expires_at".into(), ttl_attr(login.expires));
    Ok(it)
}

pub fn audit_item(e: &AuditEvent) -> Result<AttributeMap> {
    let mut it = primary_key(audit_pk(&e.tenant), &e.id);
    it.insert("body".into(), body_attr(e)?);
    it.insert("expires_at".into(), ttl_attr(e.expires));
    Ok(it)
}
