//! The embedded store: one redb file, durable across restarts (every commit is fsynced),
//! implementing every store port. It follows the item layout of `docs/storage.md`: the same
//! uniqueness claims, version conditions and key order as the DynamoDB table, so both
//! adapters pass one contract suite.

use async_trait::async_trait;
use butterfly_core::audit::AuditEvent;
use butterfly_core::clock::Timestamp;
use butterfly_core::email::EmailDomain;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::{
    AuditStore, LoginStore, OnceStore, QuotaStore, SecretStore, SessionStore, TenantStore, TokenSlots, TokenStore,
    UserStore,
};
use butterfly_core::sso::{LoginTransaction, Session, Subject};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::{Secret, TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod writer;
use writer::Writer;

const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
const TENANT_TOKEN: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_token");
/// Key: tenant id (36 bytes) followed by the user id (16 bytes): users of a tenant are
/// contiguous and in id (= creation) order.
const USERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("users");
/// Uniqueness claims: `tenant \x1f kind \x1f value` → user id.
const UNIQUE: TableDefinition<&str, &[u8]> = TableDefinition::new("unique");
const USER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("user_counts");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Single-use keys: `scope \x1f key` → expiry (ms).
const ONCE: TableDefinition<&str, i64> = TableDefinition::new("once");
/// OIDC client secrets of the local stack: tenant id → secret. (In production they live in
/// Secrets Manager, never in the table.)
const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");
/// SSO issuer → tenant id (an issuer belongs to one tenant).
const ISSUERS: TableDefinition<&str, &str> = TableDefinition::new("issuers");
/// Sessions by the hash of their cookie value.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// Session indexes: `u \x1f tenant \x1f user \x1f hash` and `s \x1f issuer \x1f sid \x1f hash`.
const SESSION_INDEX: TableDefinition<&str, ()> = TableDefinition::new("session_index");
/// Login transactions by the hash of their `state`.
const LOGINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("logins");
/// Shared request counters: `key \x1f window start (ms)` → requests granted in that window.
const QUOTAS: TableDefinition<&str, u64> = TableDefinition::new("quotas");
/// Audit events: `tenant \x1f event id` (UUIDv7, time-ordered) → event.
const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the data directory {0} is in use by another butterfly process (stop the local stack first, or use another --data-dir)")]
    InUse(PathBuf),
    #[error("cannot create the data directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store at {path}: {message}")]
    Other { path: PathBuf, message: String },
}

/// The embedded store. Cheap to clone. Reads run concurrently (redb's MVCC); writes go
/// through one writer thread that commits the writes waiting at the same moment together
/// (group commit, see `writer.rs`).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(store_err)
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(store_err)
}

/// Makes the data directory `0700` and the data file (created empty if new) `0600`.
#[cfg(unix)]
fn restrict(dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !file.exists() {
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file)?;
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_dir: &Path, _file: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The refusal of a write that would leave a tenant without an active super_admin.
pub const LAST_SUPER_ADMIN: &str = "this is the last super_admin: make someone else super_admin first";

/// Every user of a tenant (a contiguous key range), for checks inside a write transaction.
fn tenant_users<'a>(
    users: &'a impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &TenantId,
) -> Result<impl Iterator<Item = User> + 'a> {
    let start = tenant.as_str().as_bytes().to_vec();
    let end = tenant_prefix_end(tenant);
    let rows = users.range::<&[u8]>(start.as_slice()..end.as_slice()).map_err(store_err)?;
    Ok(rows.filter_map(|row| row.ok().and_then(|(_, v)| dec::<User>(v.value()).ok())))
}

fn user_key(tenant: &TenantId, id: &UserId) -> Vec<u8> {
    let mut k = Vec::with_capacity(52);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn tenant_prefix_end(tenant: &TenantId) -> Vec<u8> {
    let mut k = tenant.as_str().as_bytes().to_vec();
    k.extend_from_slice(&[0xff; 17]);
    k
}

fn uname_key(tenant: &TenantId, folded: &str) -> String {
    format!("{}\x1fu\x1f{folded}", tenant.as_str())
}

fn ext_key(tenant: &TenantId, external_id: &str) -> String {
    format!("{}\x1fe\x1f{external_id}", tenant.as_str())
}

fn sub_key(tenant: &TenantId, s: &Subject) -> String {
    format!("{}\x1fs\x1f{}\x1f{}", tenant.as_str(), s.issuer, s.sub)
}

/// The tenant-token pointer: the current token's hash, then the overlapped one's if any.
fn encode_slots(s: &TokenSlots) -> Vec<u8> {
    let mut v = s.current.as_bytes().to_vec();
    if let Some(p) = &s.previous {
        v.extend_from_slice(p.as_bytes());
    }
    v
}

fn decode_slots(b: &[u8]) -> Option<TokenSlots> {
    let hash = |s: &[u8]| <[u8; 32]>::try_from(s).ok().map(TokenHash::from_bytes);
    match b.len() {
        32 => Some(TokenSlots { current: hash(b)?, previous: None }),
        64 => Some(TokenSlots { current: hash(&b[..32])?, previous: Some(hash(&b[32..])?) }),
        _ => None,
    }
}

fn user_sessions_prefix(tenant: &TenantId, user: &UserId) -> String {
    format!("u\x1f{}\x1f{}\x1f", tenant.as_str(), user)
}

fn sid_sessions_prefix(issuer: &str, sid: &str) -> String {
    format!("s\x1f{issuer}\x1f{sid}\x1f")
}

fn issuer_sessions_prefix(tenant: &TenantId, issuer: &str) -> String {
    format!("i\x1f{}\x1f{issuer}\x1f", tenant.as_str())
}

fn session_index_keys(s: &Session) -> Vec<String> {
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

/// The keys of a table starting with `prefix`.
fn keys_with_prefix(t: &impl ReadableTable<&'static str, ()>, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in t.range::<&str>(prefix..).map_err(store_err)? {
        let (k, _) = row.map_err(store_err)?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        out.push(k.to_string());
    }
    Ok(out)
}

/// Creates every table, so readers never meet a missing one.
fn init_tables(db: &Database) -> Result<()> {
    let tx = db.begin_write().map_err(store_err)?;
    {
        tx.open_table(TENANTS).map_err(store_err)?;
        tx.open_table(DOMAINS).map_err(store_err)?;
        tx.open_table(TOKENS).map_err(store_err)?;
        tx.open_table(TENANT_TOKEN).map_err(store_err)?;
        tx.open_table(USERS).map_err(store_err)?;
        tx.open_table(UNIQUE).map_err(store_err)?;
        tx.open_table(USER_COUNTS).map_err(store_err)?;
        tx.open_table(META).map_err(store_err)?;
        tx.open_table(ONCE).map_err(store_err)?;
        tx.open_table(SECRETS).map_err(store_err)?;
        tx.open_table(ISSUERS).map_err(store_err)?;
        tx.open_table(SESSIONS).map_err(store_err)?;
        tx.open_table(SESSION_INDEX).map_err(store_err)?;
        tx.open_table(QUOTAS).map_err(store_err)?;
        tx.open_table(LOGINS).map_err(store_err)?;
        tx.open_table(AUDIT).map_err(store_err)?;
    }
    tx.commit().map_err(store_err)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` (file `butterfly.redb`).
    /// Opens (or creates) the store in `dir`. The directory is created `0700` and the file
    /// `0600`: it holds the tenants' OIDC client secrets.
    pub fn open(dir: &Path) -> std::result::Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join("butterfly.redb");
        restrict(dir, &path).map_err(|source| OpenError::Dir { path: dir.to_path_buf(), source })?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse(dir.to_path_buf()),
            other => OpenError::Other { path: path.clone(), message: other.to_string() },
        })?;
        let db = Arc::new(db);
        init_tables(&db).map_err(|e| OpenError::Other { path: path.clone(), message: e.to_string() })?;
        let writer = Writer::start(db.clone()).map_err(|e| OpenError::Other { path, message: e.to_string() })?;
        Ok(EmbeddedStore { db, writer: Arc::new(writer) })
    }

    /// Deletes what has expired by `now`: login transactions, single-use keys, sessions (with
    /// their index entries). Reads already treat these as absent; this keeps the file from
    /// growing with every anonymous sign-in start. Returns how many items went.
    pub async fn sweep_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let mut removed = 0u64;
            {
                let mut logins = tx.open_table(LOGINS).map_err(store_err)?;
                let expired: Vec<Vec<u8>> = logins
                    .iter()
                    .map_err(store_err)?
                    .filter_map(|row| row.ok())
                    .filter(|(_, v)| dec::<LoginTransaction>(v.value()).is_ok_and(|t| t.expires <= now))
                    .map(|(k, _)| k.value().to_vec())
                    .collect();
                for k in expired {
                    logins.remove(k.as_slice()).map_err(store_err)?;
                    removed += 1;
                }
            }
            {
                let mut once = tx.open_table(ONCE).map_err(store_err)?;
                let expired: Vec<String> = once
                    .iter()
                    .map_err(store_err)?
                    .filter_map(|row| row.ok())
                    .filter(|(_, v)| v.value() <= now.millis())
                    .map(|(k, _)| k.value().to_string())
                    .collect();
                for k in expired {
                    once.remove(k.as_str()).map_err(store_err)?;
                    removed += 1;
                }
            }
            {
                // Counters of windows that ended more than a minute ago.
                let mut quotas = tx.open_table(QUOTAS).map_err(store_err)?;
                let old: Vec<String> = quotas
                    .iter()
                    .map_err(store_err)?
                    .filter_map(|row| row.ok())
                    .map(|(k, _)| k.value().to_string())
                    .filter(|k| {
                        k.rsplit('\x1f')
                            .next()
                            .and_then(|w| w.parse::<i64>().ok())
                            .is_some_and(|w| w + 120_000 <= now.millis())
                    })
                    .collect();
                for k in old {
                    quotas.remove(k.as_str()).map_err(store_err)?;
                    removed += 1;
                }
            }
            {
                let mut sessions = tx.open_table(SESSIONS).map_err(store_err)?;
                let mut index = tx.open_table(SESSION_INDEX).map_err(store_err)?;
                let expired: Vec<(Vec<u8>, Session)> = sessions
                    .iter()
                    .map_err(store_err)?
                    .filter_map(|row| row.ok())
                    .filter_map(|(k, v)| dec::<Session>(v.value()).ok().map(|s| (k.value().to_vec(), s)))
                    .filter(|(_, s)| s.expires <= now)
                    .collect();
                for (k, s) in expired {
                    sessions.remove(k.as_slice()).map_err(store_err)?;
                    for ik in session_index_keys(&s) {
                        index.remove(ik.as_str()).map_err(store_err)?;
                    }
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Runs a write in the next group commit and waits until it is durable. `f` may run more
    /// than once (a failed write in its group makes every write of the group run again alone).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.writer.write(f).await
    }

    /// Runs blocking store work off the async executor.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(store_err)?
    }

    /// A 32-byte server secret stored under `name`, created at random on first use
    /// (the local stack's cursor-signing key).
    pub async fn server_secret(&self, name: &str) -> Result<Vec<u8>> {
        let name = name.to_string();
        self.write(move |tx| {
            let secret = {
                let mut t = tx.open_table(META).map_err(store_err)?;
                let existing = t.get(name.as_str()).map_err(store_err)?.map(|v| v.value().to_vec());
                match existing {
                    Some(s) => s,
                    None => {
                        let mut s = vec![0u8; 32];
                        getrandom::fill(&mut s).map_err(store_err)?;
                        t.insert(name.as_str(), s.as_slice()).map_err(store_err)?;
                        s
                    }
                }
            };
            Ok(secret)
        })
        .await
    }

    /// Whether the store holds no tenant yet.
    pub async fn is_empty(&self) -> Result<bool> {
        self.run(|db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(TENANTS).map_err(store_err)?;
            t.is_empty().map_err(store_err)
        })
        .await
    }
}

fn audit_key(tenant: &TenantId, id: &str) -> String {
    format!("{}\x1f{id}", tenant.as_str())
}

/// Adds an audit event to a write transaction (committed, or dropped, with it).
fn write_audit(tx: &redb::WriteTransaction, e: Option<&AuditEvent>) -> Result<()> {
    if let Some(e) = e {
        let mut t = tx.open_table(AUDIT).map_err(store_err)?;
        t.insert(audit_key(&e.tenant, &e.id).as_str(), enc(e)?.as_slice()).map_err(store_err)?;
    }
    Ok(())
}

fn read_user(t: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8]) -> Result<Option<User>> {
    match t.get(key).map_err(store_err)? {
        Some(v) => Ok(Some(dec(v.value())?)),
        None => Ok(None),
    }
}

#[async_trait]
impl TenantStore for EmbeddedStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            {
                let mut tenants = tx.open_table(TENANTS).map_err(store_err)?;
                let mut domains = tx.open_table(DOMAINS).map_err(store_err)?;
                if tenants.get(tenant.id.as_str()).map_err(store_err)?.is_some() {
                    return Err(Error::Conflict(format!("tenant {} already exists", tenant.id)));
                }
                for d in &tenant.domains {
                    if domains.get(d.as_str()).map_err(store_err)?.is_some() {
                        return Err(Error::Uniqueness(format!(
                            "the domain {d} is already verified by another Butterfly organisation"
                        )));
                    }
                    domains.insert(d.as_str(), tenant.id.as_str()).map_err(store_err)?;
                }
                tenants.insert(tenant.id.as_str(), enc(&tenant)?.as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let id = id.clone();
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(TENANTS).map_err(store_err)?;
            match t.get(id.as_str()).map_err(store_err)? {
                Some(v) => Ok(Some(dec(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn replace_tenant(&self, previous: &Tenant, next: &Tenant) -> Result<()> {
        let (previous, next) = (previous.clone(), next.clone());
        self.write(move |tx| {
            {
                let mut tenants = tx.open_table(TENANTS).map_err(store_err)?;
                let mut domains = tx.open_table(DOMAINS).map_err(store_err)?;
                let mut issuers = tx.open_table(ISSUERS).map_err(store_err)?;
                let stored: Tenant = match tenants.get(previous.id.as_str()).map_err(store_err)? {
                    Some(v) => dec(v.value())?,
                    None => return Err(Error::NotFound(format!("tenant {} does not exist", previous.id))),
                };
                if stored.version != previous.version {
                    return Err(Error::PreconditionFailed("the tenant changed meanwhile".into()));
                }
                let id = next.id.as_str();
                for d in &next.domains {
                    let owner = domains.get(d.as_str()).map_err(store_err)?.map(|v| v.value().to_string());
                    if owner.is_some_and(|o| o != id) {
                        return Err(Error::Uniqueness(format!(
                            "the domain {d} is already verified by another Butterfly organisation"
                        )));
                    }
                }
                for d in previous.domains.iter().filter(|d| !next.domains.contains(d)) {
                    domains.remove(d.as_str()).map_err(store_err)?;
                }
                for d in &next.domains {
                    domains.insert(d.as_str(), id).map_err(store_err)?;
                }
                let old_iss = previous.claimed_issuer().map(|i| i.as_str().to_string());
                let new_iss = next.claimed_issuer().map(|i| i.as_str().to_string());
                if old_iss != new_iss {
                    if let Some(i) = &new_iss {
                        let owner = issuers.get(i.as_str()).map_err(store_err)?.map(|v| v.value().to_string());
                        if owner.is_some_and(|o| o != id) {
                            return Err(Error::Uniqueness(format!(
                                "the issuer {i} is already connected to another Butterfly organisation"
                            )));
                        }
                        issuers.insert(i.as_str(), id).map_err(store_err)?;
                    }
                    if let Some(i) = &old_iss {
                        issuers.remove(i.as_str()).map_err(store_err)?;
                    }
                }
                tenants.insert(id, enc(&next)?.as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn find_tenant_by_domain(&self, domain: &EmailDomain) -> Result<Option<Tenant>> {
        self.tenant_via(DOMAINS, domain.as_str().to_string()).await
    }

    async fn find_tenant_by_issuer(&self, issuer: &str) -> Result<Option<Tenant>> {
        self.tenant_via(ISSUERS, issuer.to_string()).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.run(|db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(TENANTS).map_err(store_err)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(store_err)? {
                let (_, v) = row.map_err(store_err)?;
                out.push(dec::<Tenant>(v.value())?);
            }
            out.sort_by_key(|t: &Tenant| t.created);
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let hash = *hash;
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(TOKENS).map_err(store_err)?;
            match t.get(hash.as_bytes().as_slice()).map_err(store_err)? {
                Some(v) => Ok(Some(dec(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn token_slots(&self, tenant: &TenantId) -> Result<Option<TokenSlots>> {
        let tenant = tenant.clone();
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let ptr = tx.open_table(TENANT_TOKEN).map_err(store_err)?;
            match ptr.get(tenant.as_str()).map_err(store_err)? {
                Some(v) => Ok(decode_slots(v.value())),
                None => Ok(None),
            }
        })
        .await
    }

    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()> {
        let new = new.clone();
        let expected = expected.copied();
        self.write(move |tx| {
            {
                let mut ptr = tx.open_table(TENANT_TOKEN).map_err(store_err)?;
                let mut tokens = tx.open_table(TOKENS).map_err(store_err)?;
                let stored = ptr.get(new.tenant.as_str()).map_err(store_err)?.and_then(|v| decode_slots(v.value()));
                match (stored, expected) {
                    (None, None) => {}
                    (Some(cur), Some(exp)) if cur == exp => {
                        // Every live token of the tenant stops working in this write.
                        tokens.remove(cur.current.as_bytes().as_slice()).map_err(store_err)?;
                        if let Some(p) = cur.previous {
                            tokens.remove(p.as_bytes().as_slice()).map_err(store_err)?;
                        }
                    }
                    (Some(_), None) => return Err(Error::Conflict("the tenant already has a SCIM token".into())),
                    _ => return Err(Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into())),
                }
                tokens.insert(new.hash.as_bytes().as_slice(), enc(&new)?.as_slice()).map_err(store_err)?;
                let slots = TokenSlots { current: new.hash, previous: None };
                ptr.insert(new.tenant.as_str(), encode_slots(&slots).as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn install_token_with_overlap(
        &self,
        new: &TokenRecord,
        expected: &TokenSlots,
        old_expires: Timestamp,
    ) -> Result<()> {
        let (new, expected) = (new.clone(), *expected);
        self.write(move |tx| {
            {
                let mut ptr = tx.open_table(TENANT_TOKEN).map_err(store_err)?;
                let mut tokens = tx.open_table(TOKENS).map_err(store_err)?;
                let stored = ptr.get(new.tenant.as_str()).map_err(store_err)?.and_then(|v| decode_slots(v.value()));
                if stored != Some(expected) {
                    return Err(Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into()));
                }
                let old = expected.current;
                let mut old_rec: TokenRecord = match tokens.get(old.as_bytes().as_slice()).map_err(store_err)? {
                    Some(v) => dec(v.value())?,
                    None => return Err(Error::Conflict("the current SCIM token is gone; retry".into())),
                };
                old_rec.expires = Some(old_rec.expires.map_or(old_expires, |e| e.min(old_expires)));
                if let Some(p) = expected.previous {
                    tokens.remove(p.as_bytes().as_slice()).map_err(store_err)?;
                }
                tokens.insert(old.as_bytes().as_slice(), enc(&old_rec)?.as_slice()).map_err(store_err)?;
                tokens.insert(new.hash.as_bytes().as_slice(), enc(&new)?.as_slice()).map_err(store_err)?;
                let slots = TokenSlots { current: new.hash, previous: Some(old) };
                ptr.insert(new.tenant.as_str(), encode_slots(&slots).as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn retire_previous(&self, tenant: &TenantId, current: &TokenHash, previous: &TokenHash) -> Result<()> {
        let (tenant, current, previous) = (tenant.clone(), *current, *previous);
        self.write(move |tx| {
            {
                let mut ptr = tx.open_table(TENANT_TOKEN).map_err(store_err)?;
                let mut tokens = tx.open_table(TOKENS).map_err(store_err)?;
                let stored = ptr.get(tenant.as_str()).map_err(store_err)?.and_then(|v| decode_slots(v.value()));
                if stored == Some(TokenSlots { current, previous: Some(previous) }) {
                    tokens.remove(previous.as_bytes().as_slice()).map_err(store_err)?;
                    let slots = TokenSlots { current, previous: None };
                    ptr.insert(tenant.as_str(), encode_slots(&slots).as_slice()).map_err(store_err)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn record_token_use(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let hash = *hash;
        self.write(move |tx| {
            {
                let mut tokens = tx.open_table(TOKENS).map_err(store_err)?;
                let rec: Option<TokenRecord> = match tokens.get(hash.as_bytes().as_slice()).map_err(store_err)? {
                    Some(v) => Some(dec(v.value())?),
                    None => None,
                };
                // A token rotated away meanwhile stays gone.
                if let Some(mut rec) = rec {
                    if rec.last_used.is_none_or(|t| t < at) {
                        rec.last_used = Some(at);
                        tokens.insert(hash.as_bytes().as_slice(), enc(&rec)?.as_slice()).map_err(store_err)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn resolve_token_and_get_user(
        &self,
        hash: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (hash, id) = (*hash, *id);
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let tokens = tx.open_table(TOKENS).map_err(store_err)?;
            let rec: Option<TokenRecord> = match tokens.get(hash.as_bytes().as_slice()).map_err(store_err)? {
                Some(v) => Some(dec(v.value())?),
                None => None,
            };
            let Some(rec) = rec else {
                return Ok((None, None));
            };
            let users = tx.open_table(USERS).map_err(store_err)?;
            let user = read_user(&users, &user_key(&rec.tenant, &id))?;
            Ok((Some(rec), user))
        })
        .await
    }

    async fn create_user_with(&self, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let user = user.clone();
        let audit = audit.cloned();
        self.write(move |tx| {
            write_audit(tx, audit.as_ref())?;
            {
                let mut users = tx.open_table(USERS).map_err(store_err)?;
                let mut unique = tx.open_table(UNIQUE).map_err(store_err)?;
                let mut counts = tx.open_table(USER_COUNTS).map_err(store_err)?;
                let key = user_key(&user.tenant, &user.id);
                if users.get(key.as_slice()).map_err(store_err)?.is_some() {
                    return Err(Error::Conflict("a user with this id already exists".into()));
                }
                let uk = uname_key(&user.tenant, user.user_name.folded());
                if unique.get(uk.as_str()).map_err(store_err)?.is_some() {
                    return Err(Error::Uniqueness("userName".into()));
                }
                if let Some(e) = &user.external_id {
                    let ek = ext_key(&user.tenant, e);
                    if unique.get(ek.as_str()).map_err(store_err)?.is_some() {
                        return Err(Error::Uniqueness("externalId".into()));
                    }
                    unique.insert(ek.as_str(), user.id.as_bytes().as_slice()).map_err(store_err)?;
                }
                if let Some(sub) = &user.subject {
                    let sk = sub_key(&user.tenant, sub);
                    if unique.get(sk.as_str()).map_err(store_err)?.is_some() {
                        return Err(Error::Uniqueness("subject".into()));
                    }
                    unique.insert(sk.as_str(), user.id.as_bytes().as_slice()).map_err(store_err)?;
                }
                unique.insert(uk.as_str(), user.id.as_bytes().as_slice()).map_err(store_err)?;
                users.insert(key.as_slice(), enc(&user)?.as_slice()).map_err(store_err)?;
                let n = counts.get(user.tenant.as_str()).map_err(store_err)?.map(|v| v.value()).unwrap_or(0);
                counts.insert(user.tenant.as_str(), n + 1).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let key = user_key(tenant, id);
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let users = tx.open_table(USERS).map_err(store_err)?;
            read_user(&users, &key)
        })
        .await
    }

    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>> {
        self.find_unique(tenant.clone(), uname_key(tenant, folded)).await
    }

    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>> {
        self.find_unique(tenant.clone(), ext_key(tenant, external_id)).await
    }

    async fn find_user_by_subject(&self, tenant: &TenantId, subject: &Subject) -> Result<Option<User>> {
        self.find_unique(tenant.clone(), sub_key(tenant, subject)).await
    }

    async fn replace_user_with(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, false).await
    }

    async fn replace_user_guarded(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, true).await
    }

    async fn delete_user_with(&self, previous: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let previous = previous.clone();
        let audit = audit.cloned();
        self.write(move |tx| {
            write_audit(tx, audit.as_ref())?;
            {
                let mut users = tx.open_table(USERS).map_err(store_err)?;
                let mut unique = tx.open_table(UNIQUE).map_err(store_err)?;
                let mut counts = tx.open_table(USER_COUNTS).map_err(store_err)?;
                let key = user_key(&previous.tenant, &previous.id);
                let Some(stored) = read_user(&users, &key)? else {
                    return Err(Error::NotFound(format!("User {} not found", previous.id)));
                };
                if stored.version != previous.version {
                    return Err(Error::PreconditionFailed("version changed".into()));
                }
                unique.remove(uname_key(&stored.tenant, stored.user_name.folded()).as_str()).map_err(store_err)?;
                if let Some(e) = &stored.external_id {
                    unique.remove(ext_key(&stored.tenant, e).as_str()).map_err(store_err)?;
                }
                if let Some(sub) = &stored.subject {
                    unique.remove(sub_key(&stored.tenant, sub).as_str()).map_err(store_err)?;
                }
                users.remove(key.as_slice()).map_err(store_err)?;
                let n = counts.get(stored.tenant.as_str()).map_err(store_err)?.map(|v| v.value()).unwrap_or(1);
                counts.insert(stored.tenant.as_str(), n.saturating_sub(1)).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<User>> {
        let start = match after {
            Some(a) => {
                let mut k = user_key(tenant, a);
                k.push(0); // strictly after
                k
            }
            None => tenant.as_str().as_bytes().to_vec(),
        };
        let end = tenant_prefix_end(tenant);
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let users = tx.open_table(USERS).map_err(store_err)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for row in users.range::<&[u8]>(start.as_slice()..end.as_slice()).map_err(store_err)?.skip(skip as usize) {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.map_err(store_err)?;
                out.push(dec::<User>(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn count_users(&self, tenant: &TenantId) -> Result<u64> {
        let tenant = tenant.clone();
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let counts = tx.open_table(USER_COUNTS).map_err(store_err)?;
            Ok(counts.get(tenant.as_str()).map_err(store_err)?.map(|v| v.value()).unwrap_or(0))
        })
        .await
    }
}

impl EmbeddedStore {
    async fn tenant_via(
        &self,
        index: TableDefinition<'static, &'static str, &'static str>,
        k: String,
    ) -> Result<Option<Tenant>> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let idx = tx.open_table(index).map_err(store_err)?;
            let Some(id) = idx.get(k.as_str()).map_err(store_err)? else { return Ok(None) };
            let tenants = tx.open_table(TENANTS).map_err(store_err)?;
            match tenants.get(id.value()).map_err(store_err)? {
                Some(v) => Ok(Some(dec(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn find_unique(&self, tenant: TenantId, claim: String) -> Result<Option<User>> {
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let unique = tx.open_table(UNIQUE).map_err(store_err)?;
            let Some(id) = unique.get(claim.as_str()).map_err(store_err)? else {
                return Ok(None);
            };
            let id: [u8; 16] = id.value().try_into().map_err(|_| Error::Store("corrupt uniqueness claim".into()))?;
            let users = tx.open_table(USERS).map_err(store_err)?;
            read_user(&users, &user_key(&tenant, &UserId::from_bytes(id)))
        })
        .await
    }
}

#[async_trait]
impl OnceStore for EmbeddedStore {
    async fn claim_once(&self, scope: &str, key: &str, expires_at: Timestamp) -> Result<bool> {
        let k = format!("{scope}\x1f{key}");
        let now = butterfly_core::clock::Clock::now(&butterfly_core::clock::SystemClock);
        self.write(move |tx| {
            let first = {
                let mut t = tx.open_table(ONCE).map_err(store_err)?;
                let live = t.get(k.as_str()).map_err(store_err)?.is_some_and(|v| v.value() > now.millis());
                if !live {
                    t.insert(k.as_str(), expires_at.millis()).map_err(store_err)?;
                }
                !live
            };
            Ok(first)
        })
        .await
    }
}

#[async_trait]
impl QuotaStore for EmbeddedStore {
    async fn take_quota(
        &self,
        k: &str,
        window_start: Timestamp,
        _window_secs: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32> {
        let k = format!("{k}\x1f{}", window_start.millis());
        self.write(move |tx| {
            let granted = {
                let mut t = tx.open_table(QUOTAS).map_err(store_err)?;
                let used = t.get(k.as_str()).map_err(store_err)?.map(|v| v.value()).unwrap_or(0);
                let granted = u64::from(want).min(u64::from(limit).saturating_sub(used));
                if granted > 0 {
                    t.insert(k.as_str(), used + granted).map_err(store_err)?;
                }
                granted
            };
            Ok(granted as u32)
        })
        .await
    }
}

#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn put_client_secret(&self, tenant: &TenantId, secret: &Secret) -> Result<()> {
        let (tenant, secret) = (tenant.clone(), secret.clone());
        self.write(move |tx| {
            {
                let mut t = tx.open_table(SECRETS).map_err(store_err)?;
                t.insert(tenant.as_str(), secret.expose()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn client_secret(&self, tenant: &TenantId) -> Result<Option<Secret>> {
        let tenant = tenant.clone();
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(SECRETS).map_err(store_err)?;
            Ok(t.get(tenant.as_str()).map_err(store_err)?.map(|v| Secret::new(v.value())))
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let session = session.clone();
        self.write(move |tx| {
            {
                let mut sessions = tx.open_table(SESSIONS).map_err(store_err)?;
                let mut index = tx.open_table(SESSION_INDEX).map_err(store_err)?;
                if sessions.get(session.hash.as_bytes().as_slice()).map_err(store_err)?.is_some() {
                    return Err(Error::Conflict("a session with this id exists".into()));
                }
                sessions.insert(session.hash.as_bytes().as_slice(), enc(&session)?.as_slice()).map_err(store_err)?;
                for k in session_index_keys(&session) {
                    index.insert(k.as_str(), ()).map_err(store_err)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn session_with_user(&self, hash: &TokenHash) -> Result<Option<(Session, Option<User>)>> {
        let hash = *hash;
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let sessions = tx.open_table(SESSIONS).map_err(store_err)?;
            let session: Session = match sessions.get(hash.as_bytes().as_slice()).map_err(store_err)? {
                Some(v) => dec(v.value())?,
                None => return Ok(None),
            };
            let users = tx.open_table(USERS).map_err(store_err)?;
            let user = read_user(&users, &user_key(&session.tenant, &session.user))?;
            Ok(Some((session, user)))
        })
        .await
    }

    async fn touch_session(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let hash = *hash;
        self.write(move |tx| {
            {
                let mut sessions = tx.open_table(SESSIONS).map_err(store_err)?;
                let found: Option<Session> = match sessions.get(hash.as_bytes().as_slice()).map_err(store_err)? {
                    Some(v) => Some(dec(v.value())?),
                    None => None,
                };
                // A session ended meanwhile stays ended.
                if let Some(mut s) = found.filter(|s| s.last_seen < at) {
                    s.last_seen = at;
                    sessions.insert(hash.as_bytes().as_slice(), enc(&s)?.as_slice()).map_err(store_err)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool> {
        let hash = *hash;
        self.write(move |tx| {
            let found = {
                let mut sessions = tx.open_table(SESSIONS).map_err(store_err)?;
                let mut index = tx.open_table(SESSION_INDEX).map_err(store_err)?;
                let removed =
                    sessions.remove(hash.as_bytes().as_slice()).map_err(store_err)?.map(|v| v.value().to_vec());
                match removed {
                    Some(b) => {
                        for k in session_index_keys(&dec::<Session>(&b)?) {
                            index.remove(k.as_str()).map_err(store_err)?;
                        }
                        true
                    }
                    None => false,
                }
            };
            Ok(found)
        })
        .await
    }

    async fn delete_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        self.delete_indexed_sessions(user_sessions_prefix(tenant, user)).await
    }

    async fn delete_sid_sessions(&self, issuer: &str, sid: &str) -> Result<u32> {
        self.delete_indexed_sessions(sid_sessions_prefix(issuer, sid)).await
    }

    async fn delete_issuer_sessions(&self, tenant: &TenantId, issuer: &str) -> Result<u32> {
        self.delete_indexed_sessions(issuer_sessions_prefix(tenant, issuer)).await
    }
}

impl EmbeddedStore {
    /// Replaces a user in one write transaction: version check, claim moves and, with
    /// `keep_a_super_admin`, the tenant's active super_admins counted in the same transaction
    /// (writes are serialised, so two demotions cannot both see the other one).
    async fn replace_user_in_tx(
        &self,
        previous: &User,
        next: &User,
        audit: Option<&AuditEvent>,
        keep_a_super_admin: bool,
    ) -> Result<()> {
        let (previous, next) = (previous.clone(), next.clone());
        let audit = audit.cloned();
        self.write(move |tx| {
            write_audit(tx, audit.as_ref())?;
            {
                let mut users = tx.open_table(USERS).map_err(store_err)?;
                let mut unique = tx.open_table(UNIQUE).map_err(store_err)?;
                let key = user_key(&previous.tenant, &previous.id);
                let Some(stored) = read_user(&users, &key)? else {
                    return Err(Error::NotFound(format!("User {} not found", previous.id)));
                };
                if stored.version != previous.version {
                    return Err(Error::PreconditionFailed("version changed".into()));
                }
                if keep_a_super_admin && stored.counts_as_super_admin() && !next.counts_as_super_admin() {
                    let others = tenant_users(&users, &previous.tenant)?
                        .filter(|u| u.id != previous.id && u.counts_as_super_admin())
                        .count();
                    if others == 0 {
                        return Err(Error::Conflict(LAST_SUPER_ADMIN.into()));
                    }
                }
                let t = &next.tenant;
                if previous.user_name.folded() != next.user_name.folded() {
                    let nk = uname_key(t, next.user_name.folded());
                    if unique.get(nk.as_str()).map_err(store_err)?.is_some() {
                        return Err(Error::Uniqueness("userName".into()));
                    }
                    unique.remove(uname_key(t, previous.user_name.folded()).as_str()).map_err(store_err)?;
                    unique.insert(nk.as_str(), next.id.as_bytes().as_slice()).map_err(store_err)?;
                }
                if previous.external_id != next.external_id {
                    if let Some(e) = &next.external_id {
                        let ek = ext_key(t, e);
                        if unique.get(ek.as_str()).map_err(store_err)?.is_some() {
                            return Err(Error::Uniqueness("externalId".into()));
                        }
                        unique.insert(ek.as_str(), next.id.as_bytes().as_slice()).map_err(store_err)?;
                    }
                    if let Some(e) = &previous.external_id {
                        unique.remove(ext_key(t, e).as_str()).map_err(store_err)?;
                    }
                }
                if previous.subject != next.subject {
                    if let Some(sub) = &next.subject {
                        let sk = sub_key(t, sub);
                        if unique.get(sk.as_str()).map_err(store_err)?.is_some() {
                            return Err(Error::Uniqueness("subject".into()));
                        }
                        unique.insert(sk.as_str(), next.id.as_bytes().as_slice()).map_err(store_err)?;
                    }
                    if let Some(sub) = &previous.subject {
                        unique.remove(sub_key(t, sub).as_str()).map_err(store_err)?;
                    }
                }
                users.insert(key.as_slice(), enc(&next)?.as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes the sessions an index prefix lists, with all their index entries, in one write.
    async fn delete_indexed_sessions(&self, prefix: String) -> Result<u32> {
        self.write(move |tx| {
            let n = {
                let mut sessions = tx.open_table(SESSIONS).map_err(store_err)?;
                let mut index = tx.open_table(SESSION_INDEX).map_err(store_err)?;
                let mut n = 0u32;
                for k in keys_with_prefix(&index, &prefix)? {
                    index.remove(k.as_str()).map_err(store_err)?;
                    let Some(hash) = k.rsplit('\x1f').next().and_then(TokenHash::from_hex) else { continue };
                    let removed =
                        sessions.remove(hash.as_bytes().as_slice()).map_err(store_err)?.map(|v| v.value().to_vec());
                    if let Some(b) = removed {
                        for other in session_index_keys(&dec::<Session>(&b)?) {
                            index.remove(other.as_str()).map_err(store_err)?;
                        }
                        n += 1;
                    }
                }
                n
            };
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl LoginStore for EmbeddedStore {
    async fn put_login(&self, login: &LoginTransaction) -> Result<()> {
        let login = login.clone();
        self.write(move |tx| {
            {
                let mut t = tx.open_table(LOGINS).map_err(store_err)?;
                t.insert(login.state_hash.as_bytes().as_slice(), enc(&login)?.as_slice()).map_err(store_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn take_login(&self, state_hash: &TokenHash) -> Result<Option<LoginTransaction>> {
        let h = *state_hash;
        self.write(move |tx| {
            let found = {
                let mut t = tx.open_table(LOGINS).map_err(store_err)?;
                let removed = t.remove(h.as_bytes().as_slice()).map_err(store_err)?.map(|v| v.value().to_vec());
                match removed {
                    Some(b) => Some(dec::<LoginTransaction>(&b)?),
                    None => None,
                }
            };
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        let event = event.clone();
        self.write(move |tx| {
            write_audit(tx, Some(&event))?;
            Ok(())
        })
        .await
    }

    async fn audit_page(&self, tenant: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let start = audit_key(tenant, "");
        let end = match before {
            Some(b) => audit_key(tenant, b),
            None => format!("{}\x1f\u{10ffff}", tenant.as_str()),
        };
        let now = butterfly_core::clock::Clock::now(&butterfly_core::clock::SystemClock);
        self.run(move |db| {
            let tx = db.begin_read().map_err(store_err)?;
            let t = tx.open_table(AUDIT).map_err(store_err)?;
            let mut out = Vec::with_capacity(limit.min(1000));
            for row in t.range::<&str>(start.as_str()..end.as_str()).map_err(store_err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.map_err(store_err)?;
                let e: AuditEvent = dec(v.value())?;
                if e.expires > now {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }
}
