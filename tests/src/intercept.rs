//! One delegating wrapper over every store port, with a hook consulted around each call. The
//! counting store of the HTTP suites ([`crate::CountingStore`]) and the fault-injecting store
//! of the reliability suite ([`crate::faults::FaultStore`]) are this wrapper with different
//! hooks, so the delegation is written once.
//!
//! Each port method is one store operation (`crates/core/src/ports.rs`), named here as the
//! suites name it (`create_user` for `create_user_audited`, and so on).

use async_trait::async_trait;
use butterfly_core::audit::AuditEvent;
use butterfly_core::claims::UserClaim;
use butterfly_core::clock::Timestamp;
use butterfly_core::email::EmailDomain;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::{
    AuditStore, LoginStore, OnceStore, QuotaStore, SecretStore, SessionStore, SetupLinkStore, TenantStore, TokenSlots,
    TokenStore, UserStore,
};
use butterfly_core::setup_link::SetupLinkRecord;
use butterfly_core::sso::{LoginTransaction, Session, Subject};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::{Secret, TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use std::future::Future;

/// What happens to one store call.
#[derive(Debug)]
pub enum Verdict {
    /// The call goes through untouched.
    Pass,
    /// The call fails with this error without reaching the store.
    FailBefore(Error),
    /// The call reaches the store; if it succeeds, its answer is replaced by this error (a
    /// write that committed but whose answer was lost).
    FailAfter(Error),
}

/// Consulted once per store call, before it is made.
pub trait Hook: Send + Sync {
    fn on_call(&self, op: &'static str) -> Verdict;
}

/// A store that delegates every port to `inner`, asking `hook` about each call.
pub struct Intercepted<S, H> {
    inner: S,
    hook: H,
}

impl<S, H: Hook> Intercepted<S, H> {
    pub fn with_hook(inner: S, hook: H) -> Self {
        Intercepted { inner, hook }
    }

    /// The store being wrapped.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    async fn call<T>(&self, op: &'static str, f: impl Future<Output = Result<T>>) -> Result<T> {
        match self.hook.on_call(op) {
            Verdict::Pass => f.await,
            Verdict::FailBefore(e) => Err(e),
            Verdict::FailAfter(e) => {
                f.await?;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl<S: TenantStore, H: Hook> TenantStore for Intercepted<S, H> {
    async fn create_tenant(&self, t: &Tenant) -> Result<()> {
        self.call("create_tenant", self.inner.create_tenant(t)).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        self.call("get_tenant", self.inner.get_tenant(id)).await
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.call("list_tenants", self.inner.list_tenants()).await
    }
    async fn replace_tenant(&self, p: &Tenant, n: &Tenant) -> Result<()> {
        self.call("replace_tenant", self.inner.replace_tenant(p, n)).await
    }
    async fn find_tenant_by_domain(&self, d: &EmailDomain) -> Result<Option<Tenant>> {
        self.call("find_tenant_by_domain", self.inner.find_tenant_by_domain(d)).await
    }
    async fn find_tenant_by_issuer(&self, i: &str) -> Result<Option<Tenant>> {
        self.call("find_tenant_by_issuer", self.inner.find_tenant_by_issuer(i)).await
    }
}

#[async_trait]
impl<S: SessionStore, H: Hook> SessionStore for Intercepted<S, H> {
    async fn create_session(&self, s: &Session) -> Result<()> {
        self.call("create_session", self.inner.create_session(s)).await
    }
    async fn session_with_user(&self, h: &TokenHash) -> Result<Option<(Session, Option<User>)>> {
        self.call("session_with_user", self.inner.session_with_user(h)).await
    }
    async fn touch_session(&self, h: &TokenHash, at: Timestamp) -> Result<()> {
        self.call("touch_session", self.inner.touch_session(h, at)).await
    }
    async fn delete_session(&self, h: &TokenHash) -> Result<bool> {
        self.call("delete_session", self.inner.delete_session(h)).await
    }
    async fn delete_user_sessions(&self, t: &TenantId, u: &UserId) -> Result<u32> {
        self.call("delete_user_sessions", self.inner.delete_user_sessions(t, u)).await
    }
    async fn delete_sid_sessions(&self, i: &str, sid: &str) -> Result<u32> {
        self.call("delete_sid_sessions", self.inner.delete_sid_sessions(i, sid)).await
    }
    async fn delete_issuer_sessions(&self, t: &TenantId, i: &str) -> Result<u32> {
        self.call("delete_issuer_sessions", self.inner.delete_issuer_sessions(t, i)).await
    }
}

#[async_trait]
impl<S: QuotaStore, H: Hook> QuotaStore for Intercepted<S, H> {
    async fn take_quota(&self, k: &str, start: Timestamp, secs: i64, want: u32, limit: u32) -> Result<u32> {
        self.call("take_quota", self.inner.take_quota(k, start, secs, want, limit)).await
    }
}

#[async_trait]
impl<S: LoginStore, H: Hook> LoginStore for Intercepted<S, H> {
    async fn put_login(&self, tx: &LoginTransaction) -> Result<()> {
        self.call("put_login", self.inner.put_login(tx)).await
    }
    async fn take_login(&self, h: &TokenHash) -> Result<Option<LoginTransaction>> {
        self.call("take_login", self.inner.take_login(h)).await
    }
}

#[async_trait]
impl<S: AuditStore, H: Hook> AuditStore for Intercepted<S, H> {
    async fn record_audit(&self, e: &AuditEvent) -> Result<()> {
        self.call("record_audit", self.inner.record_audit(e)).await
    }
    async fn audit_page(&self, t: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        self.call("audit_page", self.inner.audit_page(t, before, limit)).await
    }
}

#[async_trait]
impl<S: SecretStore, H: Hook> SecretStore for Intercepted<S, H> {
    async fn put_client_secret(&self, t: &TenantId, s: &Secret) -> Result<()> {
        self.call("put_client_secret", self.inner.put_client_secret(t, s)).await
    }
    async fn client_secret(&self, t: &TenantId) -> Result<Option<Secret>> {
        self.call("client_secret", self.inner.client_secret(t)).await
    }
}

#[async_trait]
impl<S: TokenStore, H: Hook> TokenStore for Intercepted<S, H> {
    async fn resolve_token(&self, h: &TokenHash) -> Result<Option<TokenRecord>> {
        self.call("resolve_token", self.inner.resolve_token(h)).await
    }
    async fn token_slots(&self, t: &TenantId) -> Result<Option<TokenSlots>> {
        self.call("token_slots", self.inner.token_slots(t)).await
    }
    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()> {
        self.call("install_token", self.inner.install_token(new, expected)).await
    }
    async fn install_token_with_overlap(&self, new: &TokenRecord, old: &TokenSlots, until: Timestamp) -> Result<()> {
        self.call("install_token_with_overlap", self.inner.install_token_with_overlap(new, old, until)).await
    }
    async fn retire_previous(&self, t: &TenantId, cur: &TokenHash, prev: &TokenHash) -> Result<()> {
        self.call("retire_previous", self.inner.retire_previous(t, cur, prev)).await
    }
    async fn record_token_use(&self, h: &TokenHash, at: Timestamp) -> Result<()> {
        self.call("record_token_use", self.inner.record_token_use(h, at)).await
    }
}

#[async_trait]
impl<S: UserStore, H: Hook> UserStore for Intercepted<S, H> {
    async fn resolve_token_and_get_user(
        &self,
        h: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        self.call("resolve_token_and_get_user", self.inner.resolve_token_and_get_user(h, id)).await
    }
    async fn resolve_token_and_find_user(
        &self,
        h: &TokenHash,
        c: &UserClaim,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        self.call("resolve_token_and_find_user", self.inner.resolve_token_and_find_user(h, c)).await
    }
    async fn create_user_checked(&self, u: &User, a: Option<&AuditEvent>, h: &TokenHash, now: Timestamp) -> Result<()> {
        self.call("create_user_checked", self.inner.create_user_checked(u, a, h, now)).await
    }
    async fn create_user_audited(&self, u: &User, a: Option<&AuditEvent>) -> Result<()> {
        self.call("create_user", self.inner.create_user_audited(u, a)).await
    }
    async fn get_user(&self, t: &TenantId, id: &UserId) -> Result<Option<User>> {
        self.call("get_user", self.inner.get_user(t, id)).await
    }
    async fn find_user_by_user_name(&self, t: &TenantId, f: &str) -> Result<Option<User>> {
        self.call("find_user_by_user_name", self.inner.find_user_by_user_name(t, f)).await
    }
    async fn find_user_by_external_id(&self, t: &TenantId, e: &str) -> Result<Option<User>> {
        self.call("find_user_by_external_id", self.inner.find_user_by_external_id(t, e)).await
    }
    async fn find_user_by_subject(&self, t: &TenantId, s: &Subject) -> Result<Option<User>> {
        self.call("find_user_by_subject", self.inner.find_user_by_subject(t, s)).await
    }
    async fn replace_user_audited(&self, p: &User, n: &User, a: Option<&AuditEvent>) -> Result<()> {
        self.call("replace_user", self.inner.replace_user_audited(p, n, a)).await
    }
    async fn replace_user_guarded(&self, p: &User, n: &User, a: Option<&AuditEvent>) -> Result<()> {
        self.call("replace_user_guarded", self.inner.replace_user_guarded(p, n, a)).await
    }
    async fn delete_user_audited(&self, p: &User, a: Option<&AuditEvent>) -> Result<()> {
        self.call("delete_user", self.inner.delete_user_audited(p, a)).await
    }
    async fn list_users(&self, t: &TenantId, after: Option<&UserId>, skip: u64, limit: usize) -> Result<Vec<User>> {
        self.call("list_users", self.inner.list_users(t, after, skip, limit)).await
    }
    async fn count_users(&self, t: &TenantId) -> Result<u64> {
        self.call("count_users", self.inner.count_users(t)).await
    }
}

#[async_trait]
impl<S: OnceStore, H: Hook> OnceStore for Intercepted<S, H> {
    async fn claim_once(&self, scope: &str, key: &str, expires_at: Timestamp) -> Result<bool> {
        self.call("claim_once", self.inner.claim_once(scope, key, expires_at)).await
    }
}

#[async_trait]
impl<S: SetupLinkStore, H: Hook> SetupLinkStore for Intercepted<S, H> {
    async fn put_setup_link(&self, l: &SetupLinkRecord) -> Result<Option<SetupLinkRecord>> {
        self.call("put_setup_link", self.inner.put_setup_link(l)).await
    }
    async fn get_setup_link(&self, t: &TenantId) -> Result<Option<SetupLinkRecord>> {
        self.call("get_setup_link", self.inner.get_setup_link(t)).await
    }
    async fn use_setup_link(&self, t: &TenantId, h: &TokenHash, at: Timestamp) -> Result<Option<SetupLinkRecord>> {
        self.call("use_setup_link", self.inner.use_setup_link(t, h, at)).await
    }
}
