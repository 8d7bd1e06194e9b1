//! The ports: what the domain needs from storage. Each method is one store operation, and
//! each maps to one DynamoDB request (see `docs/storage.md`), so counting calls counts round
//! trips. Adapters translate their failures into [`Error`]: conditional failures into
//! `Taken` (a uniqueness claim held by another)/`PreconditionFailed`/`Conflict`, throttling into `Unavailable`.

use crate::audit::AuditEvent;
use crate::claims::UserClaim;
use crate::clock::Timestamp;
use crate::email::EmailDomain;
use crate::error::Result;
use crate::ids::{TenantId, UserId};
pub use crate::limit::QuotaStore;
use crate::setup_link::SetupLinkRecord;
use crate::sso::{LoginTransaction, Session, Subject};
use crate::tenant::Tenant;
use crate::token::{TokenHash, TokenRecord};
use crate::user::User;
use async_trait::async_trait;

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant and claims its email domains, atomically. A domain already claimed by
    /// another tenant fails with `Taken`.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    /// All tenants, for operators (not on any request path).
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// Replaces `previous` with `next` if the stored version is still `previous.version` (else
    /// `PreconditionFailed`), moving the domain claims and the SSO issuer claim that changed in
    /// the same atomic write (`Taken` if another tenant holds one).
    async fn replace_tenant(&self, previous: &Tenant, next: &Tenant) -> Result<()>;
    /// The tenant that claimed an email domain.
    async fn find_tenant_by_domain(&self, domain: &EmailDomain) -> Result<Option<Tenant>>;
    /// The tenant whose SSO settings name this issuer (exact, normalised form).
    async fn find_tenant_by_issuer(&self, issuer: &str) -> Result<Option<Tenant>>;
}

/// A tenant's live SCIM tokens, as its pointer names them: the current one, and the one it
/// overlaps (alive until the current one's first use or its own deadline). No other token of
/// the tenant exists: every rotation removes the rest in the same atomic write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSlots {
    pub current: TokenHash,
    pub previous: Option<TokenHash>,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The record of a token by its hash.
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>>;
    /// Which tokens are the tenant's (the pointer only).
    async fn token_slots(&self, tenant: &TenantId) -> Result<Option<TokenSlots>>;
    /// Makes `new` the tenant's only token in one atomic write. With `expected: None` the
    /// tenant must have no token (else `Conflict`); with `Some(slots)`, they must still be the
    /// tenant's (else `Conflict`), and every token they name stops working in the same write.
    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()>;
    /// Rotation with overlap, in one atomic write: `new` becomes current, `expected.current`
    /// keeps working until `old_expires` (or `new`'s first use), and `expected.previous` stops
    /// working. `expected` must still be the tenant's (else `Conflict`).
    async fn install_token_with_overlap(
        &self,
        new: &TokenRecord,
        expected: &TokenSlots,
        old_expires: Timestamp,
    ) -> Result<()>;
    /// At `current`'s first use: the token it overlaps (`previous`) stops working and the
    /// pointer forgets it, if the pointer still names both; otherwise nothing happens.
    async fn retire_previous(&self, tenant: &TenantId, current: &TokenHash, previous: &TokenHash) -> Result<()>;
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
    /// One round trip for a lookup with a token that names its tenant: the token's record and
    /// the user holding `claim` (a claim of that tenant). The user comes back only with a record
    /// of the claim's tenant; the caller still checks the record (hash, deadline, routing part).
    async fn resolve_token_and_find_user(
        &self,
        hash: &TokenHash,
        claim: &UserClaim,
    ) -> Result<(Option<TokenRecord>, Option<User>)>;
    /// One round trip for a create with a token that names its tenant: `create_user_audited`,
    /// in the same atomic write as the check that `token` is still a live token of
    /// `user.tenant` at `now` (not rotated away or retired, not past its deadline), else
    /// `Unauthorized` (checked before the uniqueness conditions: a refused token learns nothing).
    async fn create_user_checked(
        &self,
        user: &User,
        audit: Option<&AuditEvent>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<()>;
    /// Creates a user, claiming its case-folded `userName` and its `externalId` within the
    /// tenant in the same atomic write (`Taken` naming the attribute if taken).
    async fn create_user(&self, user: &User) -> Result<()> {
        self.create_user_audited(user, None).await
    }
    /// `create_user`, recording `audit` in the same atomic write.
    async fn create_user_audited(&self, user: &User, audit: Option<&AuditEvent>) -> Result<()>;
    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>>;
    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>>;
    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>>;
    /// The user linked to the provider identity (`issuer`, `sub`) within the tenant. The link
    /// is a uniqueness claim like `userName`, moved by `create_user`/`replace_user`.
    async fn find_user_by_subject(&self, tenant: &TenantId, subject: &Subject) -> Result<Option<User>>;
    /// Replaces `previous` with `next` if the stored version is still `previous.version`
    /// (else `PreconditionFailed`; `NotFound` if gone), moving uniqueness claims that changed.
    async fn replace_user(&self, previous: &User, next: &User) -> Result<()> {
        self.replace_user_audited(previous, next, None).await
    }
    /// `replace_user`, recording `audit` in the same atomic write.
    async fn replace_user_audited(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()>;
    /// `replace_user_audited`, refused with `Conflict` if the write would leave the tenant without
    /// an active super_admin, checked atomically with the write (two super_admins demoting each
    /// other at once cannot both succeed).
    async fn replace_user_guarded(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()>;
    /// Deletes a user and its uniqueness claims if the stored version is still `previous.version`.
    async fn delete_user(&self, previous: &User) -> Result<()> {
        self.delete_user_audited(previous, None).await
    }
    /// `delete_user`, recording `audit` in the same atomic write.
    async fn delete_user_audited(&self, previous: &User, audit: Option<&AuditEvent>) -> Result<()>;
    /// Users of a tenant in id (creation) order: after `after` if given, skipping `skip`,
    /// at most `limit`.
    async fn list_users(&self, tenant: &TenantId, after: Option<&UserId>, skip: u64, limit: usize)
        -> Result<Vec<User>>;
    async fn count_users(&self, tenant: &TenantId) -> Result<u64>;
}

/// What each use case needs from storage: one bundle of ports per service, so a service holds
/// only the ports it calls. [`Store`] is all of them; `Arc<dyn Store>` upcasts to each bundle.
///
/// Sessions and the audit trail: what revocation needs (ending sessions, recording receipts).
pub trait RevocationStore: SessionStore + AuditStore {}
impl<T: SessionStore + AuditStore + ?Sized> RevocationStore for T {}

/// The tenant records and the audit trail: what domain verification needs.
pub trait DomainStore: TenantStore + AuditStore {}
impl<T: TenantStore + AuditStore + ?Sized> DomainStore for T {}

/// Tenants, their SCIM tokens and the audit trail: what token issuance and rotation need.
pub trait ScimTokenStore: TenantStore + TokenStore + AuditStore {}
impl<T: TenantStore + TokenStore + AuditStore + ?Sized> ScimTokenStore for T {}

/// Users, tokens, the shared quota counters, and revocation: what SCIM provisioning needs.
pub trait ScimUserStore: UserStore + TokenStore + QuotaStore + RevocationStore {}
impl<T: UserStore + TokenStore + QuotaStore + RevocationStore + ?Sized> ScimUserStore for T {}

/// Tenants, sessions and the audit trail: what SSO settings (which end the sessions of a
/// replaced provider) and the session checks need.
pub trait TenantSessionStore: TenantStore + RevocationStore {}
impl<T: TenantStore + RevocationStore + ?Sized> TenantSessionStore for T {}

/// What signing in needs: tenants, users (account linking), login transactions, sessions and
/// the audit trail.
pub trait SignInStore: TenantSessionStore + UserStore + LoginStore {}
impl<T: TenantSessionStore + UserStore + LoginStore + ?Sized> SignInStore for T {}

/// What provider logout messages need: tenants (by issuer), users, the replay cache, and
/// revocation.
pub trait LogoutStore: TenantStore + UserStore + OnceStore + RevocationStore {}
impl<T: TenantStore + UserStore + OnceStore + RevocationStore + ?Sized> LogoutStore for T {}

/// What the owner's setup link needs: tenants, the link itself, users (the owner), sessions
/// and the audit trail.
pub trait SetupStore: SetupLinkStore + TenantStore + UserStore + SessionStore + AuditStore {}
impl<T: SetupLinkStore + TenantStore + UserStore + SessionStore + AuditStore + ?Sized> SetupStore for T {}

/// Every port of one store: what a process builds its services from.
pub trait Store: DomainStore + ScimTokenStore + ScimUserStore + SignInStore + LogoutStore + SetupStore {}
impl<T: DomainStore + ScimTokenStore + ScimUserStore + SignInStore + LogoutStore + SetupStore + ?Sized> Store for T {}

/// A tenant's owner setup link (`crate::setup_link`): one per tenant, kept only as a hash.
#[async_trait]
pub trait SetupLinkStore: Send + Sync {
    /// Makes `link` the tenant's setup link in one write; the record it replaces (used or not)
    /// is returned, and its link stops working in that write.
    async fn put_setup_link(&self, link: &SetupLinkRecord) -> Result<Option<SetupLinkRecord>>;
    /// The tenant's setup link record (who the owner is; operators only).
    async fn get_setup_link(&self, tenant: &TenantId) -> Result<Option<SetupLinkRecord>>;
    /// Marks the tenant's link used at `at`, in one atomic step, if its hash is `hash`, it is
    /// unused and it has not expired at `at`; returns the record as it was before. Anything
    /// else is `None` and changes nothing. Of concurrent uses exactly one gets the record.
    async fn use_setup_link(
        &self,
        tenant: &TenantId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<Option<SetupLinkRecord>>;
}

/// The audit trail, per tenant, newest first.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()>;
    /// The tenant's events older than the event `before` (newest first without it), at most
    /// `limit`, skipping expired ones.
    async fn audit_page(&self, tenant: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>>;
}

/// Server-side sessions, keyed by the hash of the cookie value, and indexed so that revoking
/// all sessions of a user, those of one provider session (`iss`, `sid`), or those a tenant got
/// from one issuer, is one query.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// One round trip: the session and its user (whatever the tenant; the caller checks).
    async fn session_with_user(&self, hash: &TokenHash) -> Result<Option<(Session, Option<User>)>>;
    /// Records activity (for the idle timeout).
    async fn touch_session(&self, hash: &TokenHash, at: Timestamp) -> Result<()>;
    /// Ends one session; `false` if there was none.
    async fn delete_session(&self, hash: &TokenHash) -> Result<bool>;
    /// Ends every session of a user; returns how many there were.
    async fn delete_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<u32>;
    /// Ends the sessions started from one provider session; returns how many there were.
    async fn delete_sid_sessions(&self, issuer: &str, sid: &str) -> Result<u32>;
    /// Ends every session of a tenant that came from `issuer` (its identity provider was
    /// replaced); returns how many there were.
    async fn delete_issuer_sessions(&self, tenant: &TenantId, issuer: &str) -> Result<u32>;
}

/// Login transactions between the redirect to the provider and the callback.
#[async_trait]
pub trait LoginStore: Send + Sync {
    async fn put_login(&self, tx: &LoginTransaction) -> Result<()>;
    /// Removes and returns the transaction in one atomic step: of two callbacks with the same
    /// `state` at most one gets it. Expired ones come back too (the caller checks `expires`).
    async fn take_login(&self, state_hash: &TokenHash) -> Result<Option<LoginTransaction>>;
}

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
