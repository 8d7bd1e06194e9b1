//! A tenant's single sign-on settings: the identity provider (issuer, client ID, client
//! secret), the email domains that route sign-ins to it, and whether it is on. A member's new
//! issuer is bound only by a test sign-in through it; the operator's is bound at once.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::email::EmailDomain;
use crate::ids::TenantId;
use crate::limit::{Throttle, Unlimited};
use crate::ports::{SecretStore, TenantSessionStore, TenantStore};
use crate::sessions::end_sessions_from;
use crate::sso::{random_secret, IdentityProvider, Issuer, PreviousProvider, SsoConfig, SsoError, SsoPolicy};
use crate::tenant::{DomainRecord, SignInPolicy, Tenant, VerifiedBy};
use crate::token::Secret;
use crate::usecase::{changed_concurrently, record_or_log, retry_on_conflict, Attempt};
use crate::Error;
use serde_json::json;
use std::sync::Arc;

/// What an admin saves.
#[derive(Debug, Clone)]
pub struct SsoSettingsInput {
    /// Okta domain (`acme.okta.com`) or issuer URL.
    pub issuer: String,
    pub client_id: String,
    /// Write-only; `None` keeps the stored one (required the first time).
    pub client_secret: Option<Secret>,
    /// Comma-separated email domains; `None` keeps the current ones.
    pub domains: Option<String>,
    pub enabled: bool,
}

/// What anyone may read back: everything but the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoSettingsView {
    pub tenant: TenantId,
    pub issuer: Option<Issuer>,
    pub client_id: Option<String>,
    pub client_secret_set: bool,
    /// Verified domains (they route sign-ins).
    pub domains: Vec<EmailDomain>,
    /// Every domain with its state, and the TXT record that verifies it.
    pub domain_records: Vec<DomainRecord>,
    pub verification_token: Option<String>,
    pub enabled: bool,
    /// When the issuer was bound (`None`: a test sign-in through it is still needed).
    pub issuer_bound_at: Option<Timestamp>,
    /// The sign-in policies in force (the tenant's, else the deployment's defaults).
    pub sign_in_policy: SignInPolicy,
    pub updated: Option<Timestamp>,
}

/// The DNS name whose TXT record proves a domain: `_butterfly-verification.<domain>`.
pub fn verification_name(domain: &EmailDomain) -> String {
    format!("_butterfly-verification.{}", domain.as_str())
}

/// The TXT value a tenant publishes: `butterfly-domain-verification=<token>`.
pub fn verification_value(token: &str) -> String {
    format!("butterfly-domain-verification={token}")
}

/// Saves and shows SSO settings (a super_admin's admin API, the operator's CLI).
pub struct SsoSettingsService {
    store: Arc<dyn TenantSessionStore>,
    secrets: Arc<dyn SecretStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    policy: SsoPolicy,
    /// Settings saves per tenant (each fetches the named provider afresh).
    settings_throttle: Arc<dyn Throttle>,
}

/// How often a settings save is retried when the tenant changed meanwhile.
const ATTEMPTS: usize = 4;

/// An unexpected randomness failure, as a store-side error.
pub(crate) fn no_randomness(e: String) -> SsoError {
    SsoError::Store(Error::store(e))
}

/// The tenant, or a settings error naming it.
pub(crate) async fn tenant_of(store: &dyn TenantStore, id: &TenantId) -> Result<Tenant, SsoError> {
    store.get_tenant(id).await?.ok_or_else(|| SsoError::Settings(format!("tenant {id} does not exist")))
}

impl SsoSettingsService {
    pub fn new(
        store: Arc<dyn TenantSessionStore>,
        secrets: Arc<dyn SecretStore>,
        idp: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        policy: SsoPolicy,
    ) -> Self {
        SsoSettingsService { store, secrets, idp, clock, policy, settings_throttle: Arc::new(Unlimited) }
    }

    /// Limits a tenant's members' settings saves (each one fetches a provider afresh).
    /// Sign-in starts have no limit per domain or issuer, only the callers' per-address limit:
    /// any shared budget an anonymous caller can spend is a way to lock a customer out.
    pub fn with_settings_throttle(mut self, throttle: Arc<dyn Throttle>) -> Self {
        self.settings_throttle = throttle;
        self
    }

    /// Saves a tenant's SSO settings as the operator (the CLI): the issuer is bound and new
    /// domains are verified at once, on the operator's word.
    pub async fn configure(&self, tenant: &TenantId, input: SsoSettingsInput) -> Result<SsoSettingsView, SsoError> {
        self.configure_as(tenant, input, &Actor::Operator).await
    }

    /// Validates and saves a tenant's SSO settings: the issuer must serve discovery naming
    /// itself; domains are normalised and must not be public mailbox providers; the secret goes
    /// to the secret store only. For a member (not the operator), a new issuer is bound only by
    /// a successful test sign-in through it, and new domains route only once DNS verifies them.
    /// Changing the bound issuer ends every session that came from the old one.
    pub async fn configure_as(
        &self,
        tenant: &TenantId,
        input: SsoSettingsInput,
        actor: &Actor,
    ) -> Result<SsoSettingsView, SsoError> {
        if !actor.is_operator() {
            self.settings_throttle.check(&format!("settings:{tenant}")).map_err(SsoError::Throttled)?;
        }
        let issuer = Issuer::parse(&input.issuer, self.policy.allow_loopback_http).map_err(SsoError::Settings)?;
        let client_id = input.client_id.trim().to_string();
        if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(|c| c.is_control() || c == ' ') {
            return Err(SsoError::Settings("the client ID must be 1 to 255 characters without spaces".into()));
        }
        if let Some(s) = &input.client_secret {
            let v = s.expose();
            if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
                return Err(SsoError::Settings("the client secret must be 1 to 1024 printable characters".into()));
            }
        }
        let domains = match &input.domains {
            Some(d) => {
                let list = EmailDomain::parse_list(d).map_err(SsoError::Settings)?;
                if list.len() > 50 {
                    return Err(SsoError::Settings("at most 50 email domains".into()));
                }
                if let Some(c) = list.iter().find(|d| d.is_consumer()) {
                    return Err(SsoError::Settings(format!(
                        "{c} is a public mailbox provider; only domains your organisation owns can route sign-ins"
                    )));
                }
                Some(list)
            }
            None => None,
        };
        let current = tenant_of(self.store.as_ref(), tenant).await?;
        let has_domain = match &domains {
            Some(d) => !d.is_empty(),
            None => !current.domain_records().is_empty(),
        };
        if input.enabled && !has_domain {
            return Err(SsoError::Settings(
                "at least one email domain is needed: it routes sign-ins from the login page to your provider".into(),
            ));
        }
        if input.client_secret.is_none() && self.secrets.client_secret(tenant).await?.is_none() {
            return Err(SsoError::Settings(
                "the client secret is required the first time (the CLI reads it with --client-secret-stdin)".into(),
            ));
        }
        // The provider must answer discovery for exactly this issuer, now.
        self.idp.discover(&issuer, true).await.map_err(|e| match e {
            SsoError::ProviderUnavailable(m) | SsoError::Settings(m) => {
                SsoError::Settings(format!("the issuer {issuer} failed discovery: {m}"))
            }
            other => other,
        })?;
        if let Some(s) = &input.client_secret {
            self.secrets.put_client_secret(tenant, s).await?;
        }
        let (issuer, client_id, input, domains) = (&issuer, &client_id, &input, &domains);
        let saved = retry_on_conflict(ATTEMPTS, Some(current), |current| async move {
            let current = match current {
                Some(t) => t,
                None => tenant_of(self.store.as_ref(), tenant).await?,
            };
            let now = self.clock.now();
            let mut next = current.clone();
            // The provider the tenant trusts now stays bound (also when a pending change is
            // undone) — the same issuer *and* client ID: another app at the same provider is a
            // new provider (its tokens carry another audience) and waits for its test sign-in,
            // while the old app's logout messages stay trusted.
            let keeps_binding = current.trusted_provider().is_some_and(|(i, c)| i == issuer && c == client_id.as_str());
            let bound_at = match (keeps_binding, actor.is_operator()) {
                (true, _) => current.sso.as_ref().and_then(|s| s.bound_at).or(Some(now)),
                (false, true) => Some(now),
                (false, false) => None,
            };
            // The provider bound before this change (or the one a pending change already replaces).
            let previously_bound = current
                .trusted_provider()
                .map(|(i, c)| PreviousProvider { issuer: i.clone(), client_id: c.to_string() })
                .filter(|r| &r.issuer != issuer || &r.client_id != client_id);
            next.sso = Some(SsoConfig {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                enabled: input.enabled,
                updated: now,
                bound_at,
                replaces: if bound_at.is_some() { None } else { previously_bound.clone() },
            });
            if let Some(d) = &domains {
                let records = current.domain_records();
                let kept: Vec<DomainRecord> = d
                    .iter()
                    .map(|dom| match records.iter().find(|r| &r.domain == dom) {
                        Some(r) => r.clone(),
                        None if actor.is_operator() => DomainRecord::verified(dom.clone(), VerifiedBy::Operator, now),
                        None => DomainRecord::pending(dom.clone(), now),
                    })
                    .collect();
                next.set_domain_records(kept);
            }
            if next.verification_token.is_none() {
                next.verification_token = Some(random_secret().map_err(no_randomness)?.expose()[..32].to_string());
            }
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    let event = AuditEvent::new(tenant, now, AuditAction::SsoSettingsUpdate, actor.to_string())
                        .details(json!({
                            "issuer": issuer.as_str(),
                            "issuer_bound": bound_at.is_some(),
                            "client_id": client_id,
                            "domains": next.domain_records().iter().map(|r| json!({
                                "domain": r.domain.as_str(), "verified": r.is_verified()
                            })).collect::<Vec<_>>(),
                            "enabled": input.enabled,
                            "client_secret_changed": input.client_secret.is_some(),
                        }));
                    record_or_log(self.store.as_ref(), &event).await;
                    if let (Some(old), Some(_)) = (&previously_bound, bound_at) {
                        end_sessions_from(self.store.as_ref(), &*self.clock, tenant, &old.issuer, actor).await?;
                    }
                    let secret_set =
                        input.client_secret.is_some() || self.secrets.client_secret(tenant).await?.is_some();
                    Ok(Attempt::Done(self.view(&next, secret_set)))
                }
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(None)),
                Err(Error::Taken(taken)) => Err(SsoError::Settings(taken.to_string())),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        saved.ok_or_else(|| SsoError::Store(changed_concurrently("tenant")))
    }

    /// Sets the tenant's sign-in policies (JIT, session lifetimes; bounded by
    /// [`SignInPolicy::from_minutes`]). New sessions follow them; running ones keep theirs.
    pub async fn set_sign_in_policy(
        &self,
        tenant: &TenantId,
        policy: SignInPolicy,
        actor: &Actor,
    ) -> Result<SignInPolicy, SsoError> {
        let policy = &policy;
        let saved = retry_on_conflict(ATTEMPTS, None, |current: Option<Tenant>| async move {
            let current = match current {
                Some(t) => t,
                None => tenant_of(self.store.as_ref(), tenant).await?,
            };
            let mut next = current.clone();
            next.sign_in_policy = Some(*policy);
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    let event =
                        AuditEvent::new(tenant, self.clock.now(), AuditAction::SsoSettingsUpdate, actor.to_string())
                            .details(json!({ "sign_in_policy": {
                                "jit": policy.jit, "idle_secs": policy.idle_secs, "absolute_secs": policy.absolute_secs
                            } }));
                    record_or_log(self.store.as_ref(), &event).await;
                    Ok(Attempt::Done(*policy))
                }
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(None)),
                Err(e) => Err(SsoError::from(e)),
            }
        })
        .await?;
        saved.ok_or_else(|| SsoError::Store(changed_concurrently("tenant")))
    }

    /// The settings, without the secret (only whether one is set).
    pub async fn settings(&self, tenant: &TenantId) -> Result<SsoSettingsView, SsoError> {
        let t = tenant_of(self.store.as_ref(), tenant).await?;
        let has_secret = self.secrets.client_secret(tenant).await?.is_some();
        Ok(self.view(&t, has_secret))
    }

    fn view(&self, t: &Tenant, secret_set: bool) -> SsoSettingsView {
        SsoSettingsView {
            tenant: t.id.clone(),
            issuer: t.sso.as_ref().map(|s| s.issuer.clone()),
            client_id: t.sso.as_ref().map(|s| s.client_id.clone()),
            client_secret_set: secret_set,
            domains: t.domains.clone(),
            domain_records: t.domain_records(),
            verification_token: t.verification_token.clone(),
            enabled: t.sso.as_ref().is_some_and(|s| s.enabled),
            issuer_bound_at: t.sso.as_ref().and_then(|s| s.bound_at),
            sign_in_policy: SignInPolicy::of(t, &self.policy),
            updated: t.sso.as_ref().map(|s| s.updated),
        }
    }
}
