//! The ports: what the domain needs from storage. Each method is one store operation, and
//! each maps to one DynamoDB request (see `docs/storage.md`), so counting calls counts round
//! trips. Adapters translate their failures into [`Error`]: conditional failures into
//! `Uniqueness`/`PreconditionFailed`/`Conflict`, throttling into `Unavailable`.

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{TenantId, UserId};
use crate::tenant::Tenant;
use crate::token::{TokenHash, TokenRecord};
use crate::user::User;
use async_trait::async_trait;

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant and claims its email domains, atomically. A domain already claimed by
    /// another tenant fails with `Uniqueness`.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    /// All tenants, for operators (not on any request path).
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The record of a token by its hash.
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>>;
    /// The tenant's current token, if any.
    async fn current_token(&self, tenant: &TenantId) -> Result<Option<TokenRecord>>;
    /// Makes `new` the tenant's token in one atomic write. With `replacing: None` the tenant
    /// must have no token (else `Conflict`); with `Some(old)`, `old` must be the current token
    /// (else `Conflict`) and stops working in the same write.
    async fn install_token(&self, new: &TokenRecord, replacing: Option<&TokenHash>) -> Result<()>;
    /// Records that a token was used at `at`.
    async fn record_token_use(&self, hash: &TokenHash, at: Timestamp) -> Result<()>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// One round trip for a request on `/Users/{id}`: the token's record and the user with
    /// that id (whatever its tenant; the caller checks the tenant).
    async fn resolve_token_and_get_user(
        &self,
        hash: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)>;
    /// Creates a user, claiming its case-folded `userName` and its `externalId` within the
    /// tenant in the same atomic write (`Uniqueness` naming the attribute if taken).
    async fn create_user(&self, user: &User) -> Result<()>;
    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>>;
    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>>;
    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>>;
    /// Replaces `previous` with `next` if the stored version is still `previous.version`
    /// (else `PreconditionFailed`; `NotFound` if gone), moving uniqueness claims that changed.
    async fn replace_user(&self, previous: &User, next: &User) -> Result<()>;
    /// Deletes a user and its uniqueness claims if the stored version is still `previous.version`.
    async fn delete_user(&self, previous: &User) -> Result<()>;
    /// Users of a tenant in id (creation) order: after `after` if given, skipping `skip`,
    /// at most `limit`.
    async fn list_users(&self, tenant: &TenantId, after: Option<&UserId>, skip: u64, limit: usize)
        -> Result<Vec<User>>;
    async fn count_users(&self, tenant: &TenantId) -> Result<u64>;
}

/// Everything the services need from one store.
pub trait Store: TenantStore + TokenStore + UserStore + OnceStore {}
impl<T: TenantStore + TokenStore + UserStore + OnceStore + ?Sized> Store for T {}

/// Keys that may be used once until they expire: replay caches (`jti` of logout tokens) and
/// single-use transactions. Expiry is enforced on read, so an item past its expiry is gone
/// even if the store has not deleted it yet (DynamoDB's TTL deletes lazily).
#[async_trait]
pub trait OnceStore: Send + Sync {
    /// Records `key` in `scope` until `expires_at`. Returns `true` the first time, `false`
    /// while an unexpired record exists. Atomic: of concurrent claims exactly one wins.
    async fn claim_once(&self, scope: &str, key: &str, expires_at: Timestamp) -> Result<bool>;
}

/// Per-tenant OIDC client secrets. Write-only from the outside: never returned by an API,
/// never logged, never stored next to the other tenant data in the table.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Creates the tenant's client secret, or stores a new version of it.
    async fn put_client_secret(&self, tenant: &TenantId, secret: &crate::token::Secret) -> Result<()>;
    /// The current version of the tenant's client secret.
    async fn client_secret(&self, tenant: &TenantId) -> Result<Option<crate::token::Secret>>;
}
