//! The tables and their keys: the embedded mirror of the item layout in `docs/storage.md`.

use butterfly_core::claims::{TenantClaim, UserClaim};
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::sso::Session;
use butterfly_core::Result;
use redb::{Database, TableDefinition};

pub const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// Verified email domain → tenant id.
pub const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
pub const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
/// Tenant id → its token slots (see `codec::encode_slots`).
pub const TENANT_TOKEN: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_token");
/// Key: tenant id (36 bytes) followed by the user id (16 bytes): users of a tenant are
/// contiguous and in id (= creation) order.
pub const USERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("users");
/// User claims: `tenant \x1f kind \x1f value` → user id.
pub const UNIQUE: TableDefinition<&str, &[u8]> = TableDefinition::new("unique");
pub const USER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("user_counts");
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Single-use keys: `scope \x1f key` → expiry (ms).
pub const ONCE: TableDefinition<&str, i64> = TableDefinition::new("once");
/// OIDC client secrets of the local stack: tenant id → secret. (In production they live in
/// Secrets Manager, never in the table.)
pub const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");
/// SSO issuer → tenant id (an issuer belongs to one tenant).
pub const ISSUERS: TableDefinition<&str, &str> = TableDefinition::new("issuers");
/// Sessions by the hash of their cookie value.
pub const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// Session indexes: `u \x1f tenant \x1f user \x1f hash`, `s \x1f issuer \x1f sid \x1f hash` and
/// `i \x1f tenant \x1f issuer \x1f hash`.
pub const SESSION_INDEX: TableDefinition<&str, ()> = TableDefinition::new("session_index");
/// Login transactions by the hash of their `state`.
pub const LOGINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("logins");
/// Shared request counters: `key \x1f window start (ms)` → requests granted in that window.
pub const QUOTAS: TableDefinition<&str, u64> = TableDefinition::new("quotas");
/// Audit events: `tenant \x1f event id` (UUIDv7, time-ordered) → event.
pub const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");
/// Owner setup links: tenant id → the link's record (its hash, owner, expiry, use).
pub const SETUP_LINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("setup_links");

/// Creates every table, so readers never meet a missing one.
pub fn init_tables(db: &Database) -> Result<()> {
    let tx = db.begin_write().or_store_error()?;
    {
        tx.open_table(TENANTS).or_store_error()?;
        tx.open_table(DOMAINS).or_store_error()?;
        tx.open_table(TOKENS).or_store_error()?;
        tx.open_table(TENANT_TOKEN).or_store_error()?;
        tx.open_table(USERS).or_store_error()?;
        tx.open_table(UNIQUE).or_store_error()?;
        tx.open_table(USER_COUNTS).or_store_error()?;
        tx.open_table(META).or_store_error()?;
        tx.open_table(ONCE).or_store_error()?;
        tx.open_table(SECRETS).or_store_error()?;
        tx.open_table(ISSUERS).or_store_error()?;
        tx.open_table(SESSIONS).or_store_error()?;
        tx.open_table(SESSION_INDEX).or_store_error()?;
        tx.open_table(QUOTAS).or_store_error()?;
        tx.open_table(LOGINS).or_store_error()?;
        tx.open_table(AUDIT).or_store_error()?;
        tx.open_table(SETUP_LINKS).or_store_error()?;
    }
    tx.commit().or_store_error()
}

pub fn user_key(tenant: &TenantId, id: &UserId) -> Vec<u8> {
    let mut k = Vec::with_capacity(52);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The first key of a tenant's users.
pub fn tenant_users_start(tenant: &TenantId) -> Vec<u8> {
    tenant.as_str().as_bytes().to_vec()
}

/// A key past every user of the tenant.
pub fn tenant_users_end(tenant: &TenantId) -> Vec<u8> {
    let mut k = tenant.as_str().as_bytes().to_vec();
    k.extend_from_slice(&[0xff; 17]);
    k
}

/// A user claim's key in [`UNIQUE`].
pub fn user_claim_key(claim: &UserClaim) -> String {
    // Joined by hand (a lookup builds one per request); the layout is that of docs/storage.md.
    let (tenant, kind, first, second) = match claim {
        UserClaim::UserName { tenant, folded } => (tenant, "\x1fu\x1f", folded.as_str(), None),
        UserClaim::ExternalId { tenant, external_id } => (tenant, "\x1fe\x1f", external_id.as_str(), None),
        UserClaim::Subject { tenant, subject } => {
            (tenant, "\x1fs\x1f", subject.issuer.as_str(), Some(subject.sub.as_str()))
        }
    };
    let mut key = String::with_capacity(tenant.as_str().len() + first.len() + second.map_or(0, str::len) + 4);
    key.push_str(tenant.as_str());
    key.push_str(kind);
    key.push_str(first);
    if let Some(second) = second {
        key.push('\x1f');
        key.push_str(second);
    }
    key
}

/// A tenant claim's table ([`DOMAINS`] or [`ISSUERS`]) and key there.
pub fn tenant_claim_key(claim: &TenantClaim) -> (TableDefinition<'static, &'static str, &'static str>, &str) {
    match claim {
        TenantClaim::Domain(d) => (DOMAINS, d.as_str()),
        TenantClaim::Issuer(i) => (ISSUERS, i.as_str()),
    }
}

pub fn user_sessions_prefix(tenant: &TenantId, user: &UserId) -> String {
    format!("u\x1f{}\x1f{}\x1f", tenant.as_str(), user)
}

pub fn sid_sessions_prefix(issuer: &str, sid: &str) -> String {
    format!("s\x1f{issuer}\x1f{sid}\x1f")
}

pub fn issuer_sessions_prefix(tenant: &TenantId, issuer: &str) -> String {
    format!("i\x1f{}\x1f{issuer}\x1f", tenant.as_str())
}

/// The keys of a session's entries in [`SESSION_INDEX`].
pub fn session_index_keys(s: &Session) -> Vec<String> {
    let hex = s.hash.to_hex();
    let mut keys = vec![
        format!("{}{hex}", user_sessions_prefix(&s.tenant, &s.user)),
        format!("{}{hex}", issuer_sessions_prefix(&s.tenant, &s.issuer)),
    ];
    if let Some(sid) = &s.sid {
        keys.push(format!("{}{hex}", sid_sessions_prefix(&s.issuer, sid)));
    }
    keys
}

pub fn once_key(scope: &str, key: &str) -> String {
    format!("{scope}\x1f{key}")
}

pub fn quota_key(key: &str, window_start_ms: i64) -> String {
    format!("{key}\x1f{window_start_ms}")
}

/// The window start (ms) of a [`quota_key`].
pub fn quota_window(key: &str) -> Option<i64> {
    key.rsplit('\x1f').next().and_then(|w| w.parse().ok())
}

pub fn audit_key(tenant: &TenantId, id: &str) -> String {
    format!("{}\x1f{id}", tenant.as_str())
}

/// A key past every audit event of the tenant.
pub fn audit_end(tenant: &TenantId) -> String {
    format!("{}\x1f\u{10ffff}", tenant.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use butterfly_core::sso::Subject;

    /// The claim keys stay byte for byte what stores written before held (a changed layout
    /// would lose every uniqueness claim on disk).
    #[test]
    fn user_claim_keys_keep_their_layout() {
        let tenant = TenantId::parse("0b6f1f7e-3c55-4a7e-9b7e-2f3f7c1d9a10").unwrap();
        let cases = [
            (UserClaim::UserName { tenant: tenant.clone(), folded: "ann@example.com".into() }, "u\x1fann@example.com"),
            (UserClaim::ExternalId { tenant: tenant.clone(), external_id: "00u1".into() }, "e\x1f00u1"),
            (
                UserClaim::Subject {
                    tenant: tenant.clone(),
                    subject: Subject { issuer: "https://x.okta.com".into(), sub: "00u9".into() },
                },
                "s\x1fhttps://x.okta.com\x1f00u9",
            ),
        ];
        for (claim, rest) in cases {
            assert_eq!(user_claim_key(&claim), format!("{}\x1f{rest}", tenant.as_str()));
        }
    }
}
