//! The single sign-on use cases: SSO settings (with issuer binding), starting a login (by email
//! domain, from the provider's dashboard, or as an admin's test), completing it at the
//! callback (linking identities to accounts by strict rules, just-in-time users), confirming a
//! provider-initiated switch of account, and the session checks behind every signed-in request.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::email::{check_email, fold, link_key, EmailDomain, UserName};
use crate::ids::{TenantId, UserId};
use crate::limit::{Throttle, Unlimited};
use crate::ports::{SecretStore, Store};
use crate::role::Role;
use crate::sso::{
    hash_secret, is_secret_shaped, pkce_challenge, random_secret, CodeRedemption, IdTokenExpectations,
    IdentityProvider, Issuer, LoginPurpose, LoginTransaction, PreviousProvider, ReturnPath, Session, SsoConfig,
    SsoError, Subject, VerifiedIdToken, CONFIRMATION_TTL_SECS, SCOPES,
};
use crate::tenant::{DomainRecord, Tenant, VerifiedBy};
use crate::text;
use crate::token::{Secret, TokenHash};
use crate::user::{Email, Name, RoleSource, User};
use crate::Error;
use serde_json::json;
use std::sync::Arc;

/// Timeouts and what the deployment allows.
#[derive(Debug, Clone)]
pub struct SsoPolicy {
    /// How long a started login may take to come back (RFC 9700 advice: minutes).
    pub transaction_ttl_secs: i64,
    /// A session unused this long ends (OWASP: 15–30 minutes).
    pub idle_secs: i64,
    /// A session ends this long after sign-in whatever the activity (OWASP: 4–8 hours).
    pub absolute_secs: i64,
    /// Activity is written at most this often per session.
    pub touch_every_secs: i64,
    /// `http://` issuers on loopback (the local stack with a local test provider).
    pub allow_loopback_http: bool,
}

impl Default for SsoPolicy {
    fn default() -> Self {
        SsoPolicy {
            transaction_ttl_secs: 600,
            idle_secs: 30 * 60,
            absolute_secs: 8 * 3600,
            touch_every_secs: 60,
            allow_loopback_http: false,
        }
    }
}

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
    pub updated: Option<Timestamp>,
}

/// A login just started: send the browser to `authorize_url`, holding `binding` in the
/// transaction cookie named after `cookie_key`.
#[derive(Debug)]
pub struct LoginStart {
    pub authorize_url: String,
    pub cookie_key: String,
    pub binding: Secret,
    pub max_age_secs: i64,
}

/// The authorization response as it reached the callback.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A completed sign-in: set the session cookie to `session_secret` and go to `return_to`.
#[derive(Debug)]
pub struct SignedIn {
    pub session_secret: Secret,
    pub user: User,
    pub tenant: Tenant,
    pub return_to: ReturnPath,
    pub max_age_secs: i64,
    /// Whether the user was created just now.
    pub created: bool,
}

/// Who is on each side of a provider-initiated switch of account.
#[derive(Debug, Clone)]
pub struct AccountLabel {
    pub user_name: String,
    pub tenant_name: String,
}

/// A provider-initiated sign-in that would replace the browser's session: the new session
/// exists unconfirmed; the browser holds `pending_secret` until the user answers.
#[derive(Debug)]
pub struct PendingSwitch {
    pub pending_secret: Secret,
    pub current: AccountLabel,
    pub next: AccountLabel,
    pub return_to: ReturnPath,
    pub max_age_secs: i64,
}

/// One check of a test sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCheck {
    pub name: &'static str,
    pub passed: bool,
    /// Our words (never text the provider sent).
    pub detail: String,
}

/// What a test sign-in found.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub tenant: TenantId,
    pub issuer: Issuer,
    /// Claims received, as name → value (bounded, cleaned for display).
    pub claims: Vec<(String, String)>,
    pub checks: Vec<TestCheck>,
    /// Whether this test bound the issuer to the tenant.
    pub bound_now: bool,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// What the callback led to.
#[derive(Debug)]
pub enum CallbackOutcome {
    SignedIn(Box<SignedIn>),
    ConfirmSwitch(PendingSwitch),
    Tested(TestReport),
}

/// A valid session with its user and tenant.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub session: Session,
    pub user: User,
    pub tenant: Tenant,
}

/// The name of the transaction cookie for a `state`: one per login, so two tabs do not
/// overwrite each other's binding.
pub fn transaction_cookie_key(state: &str) -> String {
    hash_secret(state).to_hex()[..16].to_string()
}

/// The DNS name whose TXT record proves a domain: `_butterfly-verification.<domain>`.
pub fn verification_name(domain: &EmailDomain) -> String {
    format!("_butterfly-verification.{}", domain.as_str())
}

/// The TXT value a tenant publishes: `butterfly-domain-verification=<token>`.
pub fn verification_value(token: &str) -> String {
    format!("butterfly-domain-verification={token}")
}

pub struct SsoService {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    policy: SsoPolicy,
    /// Settings saves and domain verifications per tenant (each fetches the named provider afresh).
    settings_throttle: Arc<dyn Throttle>,
}

const LINK_ATTEMPTS: usize = 4;

/// An unexpected randomness failure, as a store-side error.
fn no_randomness(e: String) -> SsoError {
    SsoError::Store(Error::Store(e))
}

impl SsoService {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        idp: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        policy: SsoPolicy,
    ) -> Self {
        SsoService { store, secrets, idp, clock, policy, settings_throttle: Arc::new(Unlimited) }
    }

    /// Limits a tenant's members' settings saves (each one fetches a provider afresh).
    /// Sign-in starts have no limit per domain or issuer, only the callers' per-address limit:
    /// any shared budget an anonymous caller can spend is a way to lock a customer out.
    pub fn with_settings_throttle(mut self, throttle: Arc<dyn Throttle>) -> Self {
        self.settings_throttle = throttle;
        self
    }

    pub fn policy(&self) -> &SsoPolicy {
        &self.policy
    }

    async fn tenant(&self, id: &TenantId) -> Result<Tenant, SsoError> {
        self.store.get_tenant(id).await?.ok_or_else(|| SsoError::Settings(format!("tenant {id} does not exist")))
    }

    /// Records an audit event; a failure is logged (with the request's id, from the span),
    /// never silently dropped, and does not undo what was done.
    async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.store.record_audit(&event).await {
            tracing::error!(action = event.action.as_str(), error = %e, "audit event not recorded");
        }
    }

    // ---- settings ----------------------------------------------------------------------

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
        let current = self.tenant(tenant).await?;
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
        let mut current = current;
        for _ in 0..LINK_ATTEMPTS {
            let now = self.clock.now();
            let mut next = current.clone();
            // The provider the tenant trusts now stays bound (also when a pending change is
            // undone) — the same issuer *and* client ID: another app at the same provider is a
            // new provider (its tokens carry another audience) and waits for its test sign-in,
            // while the old app's logout messages stay trusted.
            let keeps_binding = current.trusted_provider().is_some_and(|(i, c)| i == &issuer && c == client_id);
            let bound_at = match (keeps_binding, actor.is_operator()) {
                (true, _) => current.sso.as_ref().and_then(|s| s.bound_at).or(Some(now)),
                (false, true) => Some(now),
                (false, false) => None,
            };
            // The provider bound before this change (or the one a pending change already replaces).
            let previously_bound = current
                .trusted_provider()
                .map(|(i, c)| PreviousProvider { issuer: i.clone(), client_id: c.to_string() })
                .filter(|r| r.issuer != issuer || r.client_id != client_id);
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
                    self.audit(event).await;
                    if let (Some(old), Some(_)) = (&previously_bound, bound_at) {
                        self.end_sessions_from(tenant, &old.issuer, actor).await?;
                    }
                    let secret_set =
                        input.client_secret.is_some() || self.secrets.client_secret(tenant).await?.is_some();
                    return Ok(self.view(&next, secret_set));
                }
                Err(Error::PreconditionFailed(_)) => current = self.tenant(tenant).await?,
                Err(Error::Uniqueness(m)) => return Err(SsoError::Settings(m)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(SsoError::Store(Error::Unavailable {
            message: "the tenant changed concurrently; retry".into(),
            retry_after_secs: 1,
        }))
    }

    /// Ends every session of the tenant that came from `old`, an issuer just replaced by a bound
    /// one (its users re-link through the new issuer by the linking rules). While a new issuer
    /// waits for its test sign-in, sessions from the old one keep working: the admin who saved
    /// the change must still be signed in to run the test.
    async fn end_sessions_from(&self, tenant: &TenantId, old: &Issuer, actor: &Actor) -> Result<(), SsoError> {
        let ended = self.store.delete_issuer_sessions(tenant, old.as_str()).await?;
        let event = AuditEvent::new(tenant, self.clock.now(), AuditAction::Revocation, actor.to_string())
            .details(json!({ "trigger": "issuer_change", "issuer": old.as_str(), "sessions_ended": ended }));
        self.audit(event).await;
        Ok(())
    }

    /// The settings, without the secret (only whether one is set).
    pub async fn settings(&self, tenant: &TenantId) -> Result<SsoSettingsView, SsoError> {
        let t = self.tenant(tenant).await?;
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
            updated: t.sso.as_ref().map(|s| s.updated),
        }
    }

    // ---- starting a login ----------------------------------------------------------------

    /// SP-initiated: the email's verified domain picks the tenant; its bound provider gets
    /// `login_hint`.
    pub async fn start_by_email(
        &self,
        email: &str,
        return_to: Option<&str>,
        redirect_uri: &str,
    ) -> Result<LoginStart, SsoError> {
        let email = email.trim();
        check_email(email).map_err(|e| SsoError::InvalidInput(format!("that email address {e}")))?;
        let return_to = match return_to.filter(|r| !r.is_empty()) {
            Some(r) => ReturnPath::parse(r)
                .ok_or_else(|| SsoError::InvalidInput("the return path must be a path on this site".into()))?,
            None => ReturnPath::default(),
        };
        let domain = Self::email_domain(email).ok_or(SsoError::NoSso)?;
        let tenant = self.store.find_tenant_by_domain(&domain).await?.ok_or(SsoError::NoSso)?;
        if !tenant.has_verified_domain(&domain) {
            return Err(SsoError::NoSso);
        }
        let sso = Self::usable_sso(&tenant).ok_or(SsoError::NoSso)?;
        self.begin(&tenant.id, &sso, Some(email), return_to, redirect_uri, LoginPurpose::SignIn, None).await
    }

    fn email_domain(email: &str) -> Option<EmailDomain> {
        email.rsplit_once('@').and_then(|(_, d)| EmailDomain::parse(d).ok())
    }

    /// The tenant's SSO settings if sign-ins may use them: enabled and the issuer bound.
    fn usable_sso(tenant: &Tenant) -> Option<SsoConfig> {
        tenant.sso.clone().filter(|s| s.enabled && s.bound_at.is_some())
    }

    /// IdP-initiated (OIDC Core §4, Okta's "initiate login URI"): the exact issuer picks the
    /// tenant (an unknown or unbound issuer is never fetched); then a normal login that, at the
    /// callback, will not silently replace a session the browser has.
    pub async fn start_by_issuer(
        &self,
        iss: &str,
        login_hint: Option<&str>,
        target_link_uri: Option<&str>,
        origin: &str,
        redirect_uri: &str,
    ) -> Result<LoginStart, SsoError> {
        if iss.trim().is_empty() || iss.len() > 512 {
            return Err(SsoError::InvalidInput("the iss parameter is required".into()));
        }
        let tenant =
            self.store.find_tenant_by_issuer(&Issuer::lookup_key(iss)).await?.ok_or(SsoError::UnknownIssuer)?;
        let sso = Self::usable_sso(&tenant)
            .filter(|s| s.issuer.as_str() == Issuer::lookup_key(iss))
            .ok_or(SsoError::UnknownIssuer)?;
        let return_to = match target_link_uri.filter(|t| !t.is_empty()) {
            Some(t) => ReturnPath::from_target(t, origin)
                .ok_or_else(|| SsoError::InvalidInput("target_link_uri must be a page of this site".into()))?,
            None => ReturnPath::default(),
        };
        let hint = login_hint.map(str::trim).filter(|h| !h.is_empty() && h.len() <= 254 && check_email(h).is_ok());
        self.begin(&tenant.id, &sso, hint, return_to, redirect_uri, LoginPurpose::ProviderInitiated, None).await
    }

    /// A super_admin's test sign-in through the tenant's configured provider (bound or not):
    /// the callback reports every check and binds the issuer if all pass.
    pub async fn start_test(&self, tester: &User, redirect_uri: &str) -> Result<LoginStart, SsoError> {
        if tester.effective_role() != Role::SuperAdmin || !tester.active {
            return Err(SsoError::InvalidInput("only a super_admin can test the single sign-on settings".into()));
        }
        let tenant = self.tenant(&tester.tenant).await?;
        let sso = tenant.sso.clone().ok_or_else(|| SsoError::Settings("save the SSO settings first".into()))?;
        if self.secrets.client_secret(&tenant.id).await?.is_none() {
            return Err(SsoError::Settings("save the client secret first".into()));
        }
        let return_to = ReturnPath::default();
        self.begin(&tenant.id, &sso, None, return_to, redirect_uri, LoginPurpose::Test, Some(tester.id)).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        tenant: &TenantId,
        sso: &SsoConfig,
        login_hint: Option<&str>,
        return_to: ReturnPath,
        redirect_uri: &str,
        purpose: LoginPurpose,
        tester: Option<UserId>,
    ) -> Result<LoginStart, SsoError> {
        let info = self.idp.discover(&sso.issuer, false).await?;
        let rnd = || random_secret().map_err(no_randomness);
        let (state, nonce, verifier, binding) = (rnd()?, rnd()?, rnd()?, rnd()?);
        let now = self.clock.now();
        let tx = LoginTransaction {
            purpose,
            tester,
            state_hash: hash_secret(state.expose()),
            binding_hash: hash_secret(binding.expose()),
            tenant: tenant.clone(),
            issuer: sso.issuer.clone(),
            client_id: sso.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            pkce_verifier: verifier.clone(),
            nonce: nonce.clone(),
            return_to,
            created: now,
            expires: now.plus_secs(self.policy.transaction_ttl_secs),
        };
        let mut url = url::Url::parse(&info.authorization_endpoint)
            .map_err(|e| SsoError::ProviderUnavailable(format!("bad authorization endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &sso.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", SCOPES)
                .append_pair("state", state.expose())
                .append_pair("nonce", nonce.expose())
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(h) = login_hint {
                q.append_pair("login_hint", h);
            }
            if purpose == LoginPurpose::Test {
                // A test always authenticates afresh at the provider.
                q.append_pair("prompt", "login");
            }
        }
        self.store.put_login(&tx).await?;
        Ok(LoginStart {
            authorize_url: url.to_string(),
            cookie_key: transaction_cookie_key(state.expose()),
            binding,
            max_age_secs: self.policy.transaction_ttl_secs,
        })
    }

    // ---- the callback --------------------------------------------------------------------

    /// Completes a login. Every refusal consumes the transaction and creates no session.
    /// `previous_session` is the session cookie the browser already had: a sign-in the user
    /// started here replaces it (the session id changes at every sign-in); a provider-initiated
    /// one that would replace another account's session waits for the user to confirm.
    /// Refusals are recorded in the tenant's audit trail only once the browser binding is
    /// proven (a forged callback can write nothing), with our reason code and a bounded,
    /// cleaned detail.
    pub async fn complete(
        &self,
        p: &CallbackParams,
        binding_cookie: Option<&str>,
        previous_session: Option<&str>,
    ) -> Result<CallbackOutcome, SsoError> {
        let tx = self.take_bound_transaction(p, binding_cookie).await?;
        if tx.purpose == LoginPurpose::Test {
            return self.complete_test(p, &tx).await.map(CallbackOutcome::Tested);
        }
        let result = self.complete_sign_in(p, &tx, previous_session).await;
        let now = self.clock.now();
        let event = match &result {
            Ok(CallbackOutcome::SignedIn(s)) => Some(
                AuditEvent::new(&tx.tenant, now, AuditAction::SignIn, Actor::User(s.user.id).to_string())
                    .target(s.user.id)
                    .details(json!({ "created": s.created, "issuer": tx.issuer.as_str(), "purpose": tx.purpose })),
            ),
            Ok(_) => None,
            Err(e) => {
                let (reason, detail) = refusal_of(e, p);
                Some(
                    AuditEvent::new(
                        &tx.tenant,
                        now,
                        AuditAction::SignInRefused,
                        Actor::Provider(tx.issuer.clone()).to_string(),
                    )
                    .refused()
                    .details(json!({ "reason": reason, "detail": detail, "purpose": tx.purpose })),
                )
            }
        };
        if let Some(e) = event {
            self.audit(e).await;
        }
        result
    }

    /// Takes the transaction named by `state` (consuming it) and proves this browser started
    /// it. Nothing is recorded for a callback that fails here.
    async fn take_bound_transaction(
        &self,
        p: &CallbackParams,
        binding_cookie: Option<&str>,
    ) -> Result<LoginTransaction, SsoError> {
        let state = p.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            SsoError::rejected("missing_state", "the response carries no state; start the sign-in again")
        })?;
        if !is_secret_shaped(state) {
            return Err(SsoError::rejected("unknown_transaction", "this sign-in is unknown"));
        }
        let tx = self.store.take_login(&hash_secret(state)).await?.ok_or_else(|| {
            SsoError::rejected("unknown_transaction", "this sign-in was already completed, has expired, or is unknown")
        })?;
        let binding = binding_cookie.filter(|b| is_secret_shaped(b)).ok_or_else(|| {
            SsoError::rejected("missing_binding", "this browser did not start this sign-in (no transaction cookie)")
        })?;
        if !hash_secret(binding).ct_eq(&tx.binding_hash) {
            return Err(SsoError::rejected("binding_mismatch", "this browser did not start this sign-in"));
        }
        if self.clock.now() >= tx.expires {
            return Err(SsoError::rejected("transaction_expired", "the sign-in took too long; start again"));
        }
        Ok(tx)
    }

    /// The provider's answer checked and the code redeemed: the verified ID token.
    async fn redeem(
        &self,
        p: &CallbackParams,
        tx: &LoginTransaction,
        tenant: &Tenant,
    ) -> Result<VerifiedIdToken, SsoError> {
        if p.error.is_some() {
            let code = p.error.as_deref().and_then(text::code).unwrap_or_else(|| "error".into());
            return Err(SsoError::rejected(
                "provider_error",
                format!("the identity provider did not sign you in ({code})"),
            ));
        }
        let code = p
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| SsoError::rejected("missing_code", "the response carries no authorization code"))?;
        let sso = tenant
            .sso
            .clone()
            .filter(|s| s.issuer == tx.issuer && (s.enabled || tx.purpose == LoginPurpose::Test))
            .ok_or_else(|| SsoError::rejected("sso_changed", "single sign-on settings changed during the sign-in"))?;
        let info = self.idp.discover(&tx.issuer, false).await?;
        // RFC 9207 mix-up defence.
        match p.iss.as_deref() {
            Some(iss) if iss != tx.issuer.as_str() => {
                return Err(SsoError::rejected(
                    "issuer_mismatch",
                    "the response comes from another identity provider than the one the sign-in started at",
                ))
            }
            None if info.iss_parameter_supported => {
                return Err(SsoError::rejected(
                    "issuer_mismatch",
                    "the identity provider promises an iss parameter and the response has none",
                ))
            }
            _ => {}
        }
        let secret = self
            .secrets
            .client_secret(&tenant.id)
            .await?
            .ok_or_else(|| SsoError::Settings("the tenant's client secret is not set".into()))?;
        let token = self
            .idp
            .redeem(CodeRedemption {
                expect: IdTokenExpectations {
                    issuer: &tx.issuer,
                    client_id: &sso.client_id,
                    client_secret: &secret,
                    redirect_uri: &tx.redirect_uri,
                    nonce: &tx.nonce,
                },
                code,
                pkce_verifier: &tx.pkce_verifier,
            })
            .await?;
        if token.issuer != tx.issuer.as_str() {
            return Err(SsoError::rejected("invalid_id_token", "the ID token names another issuer"));
        }
        if token.subject.is_empty() || token.subject.len() > 255 || token.subject.chars().any(char::is_control) {
            return Err(SsoError::rejected("invalid_id_token", "the ID token has no usable subject"));
        }
        Ok(token)
    }

    async fn complete_sign_in(
        &self,
        p: &CallbackParams,
        tx: &LoginTransaction,
        previous_session: Option<&str>,
    ) -> Result<CallbackOutcome, SsoError> {
        let tenant = self.tenant(&tx.tenant).await?;
        if Self::usable_sso(&tenant).is_none_or(|s| s.issuer != tx.issuer) {
            return Err(SsoError::rejected("sso_changed", "single sign-on settings changed during the sign-in"));
        }
        let token = self.redeem(p, tx, &tenant).await?;
        let (user, created) = self.map_user(&tenant, &token).await?;
        let now = self.clock.now();
        let previous = match previous_session.filter(|c| is_secret_shaped(c)) {
            Some(c) => self.store.session_with_user(&hash_secret(c)).await?.map(|(s, u)| (c, s, u)),
            None => None,
        };
        // A provider-initiated sign-in never silently replaces another account's live session.
        let other_live = previous.as_ref().filter(|(_, s, u)| {
            s.is_live(now, self.policy.idle_secs)
                && u.as_ref().is_some_and(|u| u.active)
                && (s.tenant != tenant.id || s.user != user.id)
        });
        let must_confirm = tx.purpose == LoginPurpose::ProviderInitiated && other_live.is_some();
        let session_secret = random_secret().map_err(no_randomness)?;
        let session = Session {
            hash: hash_secret(session_secret.expose()),
            tenant: tenant.id.clone(),
            user: user.id,
            issuer: token.issuer.clone(),
            subject: token.subject.clone(),
            sid: token.sid.clone(),
            id_token: Some(token.raw.clone()),
            created: now,
            last_seen: now,
            expires: if must_confirm {
                now.plus_secs(CONFIRMATION_TTL_SECS)
            } else {
                now.plus_secs(self.policy.absolute_secs)
            },
            confirmed: !must_confirm,
        };
        self.store.create_session(&session).await?;
        if let Some((_, current, current_user)) = other_live.filter(|_| must_confirm) {
            let current_tenant = self.store.get_tenant(&current.tenant).await?;
            return Ok(CallbackOutcome::ConfirmSwitch(PendingSwitch {
                pending_secret: session_secret,
                current: AccountLabel {
                    user_name: current_user.as_ref().map(|u| u.user_name.as_str().to_string()).unwrap_or_default(),
                    tenant_name: current_tenant.map(|t| t.name).unwrap_or_default(),
                },
                next: AccountLabel { user_name: user.user_name.as_str().to_string(), tenant_name: tenant.name.clone() },
                return_to: tx.return_to.clone(),
                max_age_secs: CONFIRMATION_TTL_SECS,
            }));
        }
        if let Some((cookie, _, _)) = &previous {
            self.store.delete_session(&hash_secret(cookie)).await?;
        }
        Ok(CallbackOutcome::SignedIn(Box::new(SignedIn {
            session_secret,
            user,
            tenant,
            return_to: tx.return_to.clone(),
            max_age_secs: self.policy.absolute_secs,
            created,
        })))
    }

    /// The user's answer to a provider-initiated switch. With `accept`, the pending session
    /// becomes the browser's (a fresh id) and the previous one ends; otherwise the pending one
    /// is dropped and the previous one stays.
    pub async fn confirm_switch(
        &self,
        pending: Option<&str>,
        previous_session: Option<&str>,
        accept: bool,
    ) -> Result<Option<SignedIn>, SsoError> {
        let cookie = pending.filter(|c| is_secret_shaped(c)).ok_or(SsoError::Unauthenticated)?;
        let hash = hash_secret(cookie);
        let (session, user) = self.store.session_with_user(&hash).await?.ok_or(SsoError::Unauthenticated)?;
        self.store.delete_session(&hash).await?;
        let now = self.clock.now();
        if session.confirmed || now >= session.expires {
            return Err(SsoError::Unauthenticated);
        }
        let user = user.filter(|u| u.tenant == session.tenant && u.active).ok_or(SsoError::Deactivated)?;
        if !accept {
            return Ok(None);
        }
        let tenant = self.store.get_tenant(&session.tenant).await?.ok_or(SsoError::Unauthenticated)?;
        let secret = random_secret().map_err(no_randomness)?;
        let confirmed = Session {
            hash: hash_secret(secret.expose()),
            created: now,
            last_seen: now,
            expires: now.plus_secs(self.policy.absolute_secs),
            confirmed: true,
            ..session
        };
        self.store.create_session(&confirmed).await?;
        if let Some(prev) = previous_session.filter(|c| is_secret_shaped(c)) {
            self.store.delete_session(&hash_secret(prev)).await?;
        }
        let event = AuditEvent::new(&tenant.id, now, AuditAction::SignIn, Actor::User(user.id).to_string())
            .target(user.id)
            .details(json!({ "created": false, "issuer": confirmed.issuer, "purpose": "provider_initiated", "confirmed_switch": true }));
        self.audit(event).await;
        Ok(Some(SignedIn {
            session_secret: secret,
            user,
            tenant,
            return_to: ReturnPath::default(),
            max_age_secs: self.policy.absolute_secs,
            created: false,
        }))
    }

    /// A test sign-in: every check, reported; nobody signed in; the issuer bound if all pass.
    async fn complete_test(&self, p: &CallbackParams, tx: &LoginTransaction) -> Result<TestReport, SsoError> {
        let tenant = self.tenant(&tx.tenant).await?;
        let mut report = TestReport {
            tenant: tenant.id.clone(),
            issuer: tx.issuer.clone(),
            claims: vec![],
            checks: vec![],
            bound_now: false,
        };
        let check =
            |name: &'static str, passed: bool, detail: &str| TestCheck { name, passed, detail: detail.to_string() };
        report.checks.push(check("browser", true, "this browser started the test (state and binding cookie match)"));
        let tester = match tx.tester {
            Some(id) => self.store.get_user(&tenant.id, &id).await?,
            None => None,
        };
        let tester_ok = tester.as_ref().is_some_and(|u| u.active && u.effective_role() == Role::SuperAdmin);
        report.checks.push(check(
            "tester",
            tester_ok,
            if tester_ok {
                "started by an active super_admin"
            } else {
                "the test was not started by an active super_admin"
            },
        ));
        let token = match self.redeem(p, tx, &tenant).await {
            Ok(t) => t,
            Err(e) => {
                report.checks.push(check("sign-in", false, &user_message(&e)));
                self.record_test(&tenant, tx, &report).await;
                return Ok(report);
            }
        };
        report.checks.push(check(
            "ID token",
            true,
            "the code was redeemed; the ID token's signature, issuer, audience, nonce and lifetime are valid",
        ));
        let show = |v: &str| text::clean(v, 120);
        report.claims.push(("iss".into(), show(&token.issuer)));
        report.claims.push(("sub".into(), show(&token.subject)));
        if let Some(e) = &token.email {
            report.claims.push(("email".into(), show(e)));
        }
        report.claims.push(("email_verified".into(), format!("{:?}", token.email_verified)));
        if let Some(n) = &token.name {
            report.claims.push(("name".into(), show(n)));
        }
        let email_ok = token.email.as_deref().is_some_and(|e| link_key(e).is_some());
        report.checks.push(check(
            "email",
            email_ok,
            if email_ok {
                "an email address is present and well-formed"
            } else {
                "no usable email address (add the email scope's claims)"
            },
        ));
        let verified = token.email_verified == Some(true);
        report.checks.push(check(
            "email verified",
            verified,
            if verified { "the provider says the email is verified" } else { "the provider does not say the email is verified: accounts are linked and created only for verified emails" },
        ));
        let domain_ok =
            token.email.as_deref().and_then(Self::email_domain).is_some_and(|d| tenant.has_verified_domain(&d));
        report.checks.push(check(
            "email domain",
            domain_ok,
            if domain_ok {
                "the email's domain is verified for this organisation"
            } else {
                "the email's domain is not one of this organisation's verified domains"
            },
        ));
        if report.passed()
            && tenant
                .sso
                .as_ref()
                .is_some_and(|s| s.issuer == tx.issuer && s.client_id == tx.client_id && s.bound_at.is_none())
        {
            match self.bind_issuer(&tenant, &tx.issuer, &tx.client_id, tx.tester).await {
                Ok(()) => {
                    report.bound_now = true;
                    report.checks.push(check(
                        "binding",
                        true,
                        "the identity provider is now bound to this organisation",
                    ));
                }
                Err(e) => report.checks.push(check("binding", false, &user_message(&e))),
            }
        }
        self.record_test(&tenant, tx, &report).await;
        Ok(report)
    }

    async fn record_test(&self, tenant: &Tenant, tx: &LoginTransaction, report: &TestReport) {
        let actor = tx.tester.map(Actor::User).unwrap_or(Actor::System);
        let mut e = AuditEvent::new(&tenant.id, self.clock.now(), AuditAction::SsoTest, actor.to_string()).details(json!({
            "issuer": tx.issuer.as_str(),
            "passed": report.passed(),
            "bound": report.bound_now,
            "checks": report.checks.iter().map(|c| json!({"check": c.name, "passed": c.passed})).collect::<Vec<_>>(),
        }));
        if !report.passed() {
            e = e.refused();
        }
        self.audit(e).await;
    }

    /// Binds `issuer` with `client_id` (the tenant's configured pair) to the tenant: the issuer
    /// is claimed (unique across tenants) and sessions from a previously bound provider end.
    async fn bind_issuer(
        &self,
        tenant: &Tenant,
        issuer: &Issuer,
        client_id: &str,
        by: Option<UserId>,
    ) -> Result<(), SsoError> {
        let mut current = tenant.clone();
        for _ in 0..LINK_ATTEMPTS {
            let mut next = current.clone();
            let replaced = match next.sso.as_mut() {
                Some(s) if &s.issuer == issuer && s.client_id == client_id => {
                    s.bound_at = Some(self.clock.now());
                    s.replaces.take()
                }
                _ => return Err(SsoError::Settings("the SSO settings changed during the test".into())),
            };
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    // Sessions carry their issuer only: when only the client ID changed, every
                    // session of that issuer came from the old app, whose logouts are no longer
                    // trusted, so they end too.
                    if let Some(old) = replaced.filter(|o| &o.issuer != issuer || o.client_id != client_id) {
                        let actor = by.map(Actor::User).unwrap_or(Actor::System);
                        self.end_sessions_from(&tenant.id, &old.issuer, &actor).await?;
                    }
                    return Ok(());
                }
                Err(Error::PreconditionFailed(_)) => current = self.tenant(&tenant.id).await?,
                Err(Error::Uniqueness(_)) => {
                    return Err(SsoError::Settings(
                        "this identity provider is already connected to another Butterfly organisation".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SsoError::Store(Error::Unavailable {
            message: "the tenant changed concurrently; retry".into(),
            retry_after_secs: 1,
        }))
    }

    /// The account for a verified identity, by these rules only (OIDC Core §5.7: `iss`+`sub`
    /// is the only stable identifier):
    /// 1. the user already linked to (`iss`, `sub`);
    /// 2. else the user whose SCIM `externalId` equals `sub` (Okta's provisioning and its
    ///    sign-in are the same tenant-controlled source), linked now;
    /// 3. else the user whose `userName` is the token's email, only if the provider says the
    ///    email is verified, the email's domain is verified for this tenant, and both addresses
    ///    have the same strict form ([`link_key`]: no case folding, no compatibility mapping);
    /// 4. else, for a verified email in one of the tenant's verified domains, a new user with
    ///    `read_only` (just in time).
    ///
    /// `preferred_username` is never used. A user already linked to another identity of the
    /// same issuer is never re-linked. Anything else is a refusal: nothing is linked or created.
    async fn map_user(&self, tenant: &Tenant, token: &VerifiedIdToken) -> Result<(User, bool), SsoError> {
        let subject = Subject { issuer: token.issuer.clone(), sub: token.subject.clone() };
        for _ in 0..LINK_ATTEMPTS {
            if let Some(u) = self.store.find_user_by_subject(&tenant.id, &subject).await? {
                return if u.active { Ok((u, false)) } else { Err(SsoError::Deactivated) };
            }
            let by_external_id = self.store.find_user_by_external_id(&tenant.id, &subject.sub).await?;
            let (candidate, how) = match by_external_id {
                Some(u) => (Some(u), "externalId"),
                None => match token.email.as_deref() {
                    Some(email) => (self.store.find_user_by_user_name(&tenant.id, &fold(email.trim())).await?, "email"),
                    None => (None, "email"),
                },
            };
            let now = self.clock.now();
            match candidate {
                Some(u) => {
                    if how == "email" {
                        self.check_email_link(tenant, token, &u)?;
                    }
                    if !u.active {
                        return Err(SsoError::Deactivated);
                    }
                    if u.subject.as_ref().is_some_and(|s| s.issuer == subject.issuer && s != &subject) {
                        return Err(SsoError::LinkRefused(
                            "this account is linked to another identity at your identity provider; ask your administrator"
                                .into(),
                        ));
                    }
                    let mut next = u.clone();
                    next.subject = Some(subject.clone());
                    next.version += 1;
                    next.last_modified = now;
                    match self.store.replace_user(&u, &next).await {
                        Ok(()) => return Ok((next, false)),
                        Err(Error::PreconditionFailed(_) | Error::Uniqueness(_) | Error::NotFound(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    let (email, user_name) = self.jit_email(tenant, token)?;
                    let name = Name {
                        formatted: token.name.clone(),
                        family_name: token.family_name.clone(),
                        given_name: token.given_name.clone(),
                        middle_name: None,
                    };
                    let user = User {
                        id: UserId::generate(),
                        tenant: tenant.id.clone(),
                        user_name,
                        external_id: None,
                        name: (!name.is_empty()).then_some(name),
                        display_name: token.name.clone(),
                        emails: vec![Email {
                            value: email,
                            kind: Some("work".into()),
                            primary: Some(true),
                            display: None,
                        }],
                        active: true,
                        locale: None,
                        role: None,
                        role_source: Some(RoleSource::Jit),
                        subject: Some(subject.clone()),
                        sessions_revoked_at: None,
                        created: now,
                        last_modified: now,
                        version: 1,
                    };
                    match self.store.create_user(&user).await {
                        Ok(()) => return Ok((user, true)),
                        // Created concurrently (another tab, or Okta's SCIM push): look again.
                        Err(Error::Uniqueness(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(SsoError::Store(Error::Unavailable {
            message: "the user changed concurrently; retry".into(),
            retry_after_secs: 1,
        }))
    }

    /// Rule 3 of [`Self::map_user`]: may this identity's email link it to `user`?
    fn check_email_link(&self, tenant: &Tenant, token: &VerifiedIdToken, user: &User) -> Result<(), SsoError> {
        let email = token.email.as_deref().unwrap_or("");
        if token.email_verified != Some(true) {
            return Err(SsoError::LinkRefused(
                "your identity provider does not say your email address is verified, so it cannot be linked to \
                 your Butterfly account; ask your administrator"
                    .into(),
            ));
        }
        let same = match (link_key(email), link_key(user.user_name.as_str())) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(SsoError::LinkRefused(
                "your email address only resembles the one of a Butterfly account, so they were not linked; ask your \
                 administrator"
                    .into(),
            ));
        }
        if !Self::email_domain(email).is_some_and(|d| tenant.has_verified_domain(&d)) {
            return Err(SsoError::LinkRefused(
                "your email address is not in one of your organisation's verified domains, so it cannot be linked to \
                 a Butterfly account; ask your administrator"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Rule 4 of [`Self::map_user`]: the email a just-in-time user is created with.
    fn jit_email(&self, tenant: &Tenant, token: &VerifiedIdToken) -> Result<(String, UserName), SsoError> {
        let email = token.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).ok_or_else(|| {
            SsoError::rejected("no_email", "the identity provider sent no email address for this user")
        })?;
        let user_name = UserName::parse(email).map_err(|_| {
            SsoError::rejected("no_email", "the identity provider sent an email address Butterfly cannot use")
        })?;
        if token.email_verified != Some(true) {
            return Err(SsoError::LinkRefused(
                "your identity provider does not say your email address is verified, so no Butterfly account was \
                 created; ask your administrator"
                    .into(),
            ));
        }
        if !Self::email_domain(email).is_some_and(|d| tenant.has_verified_domain(&d)) {
            return Err(SsoError::LinkRefused(
                "your email address is not in one of your organisation's verified domains, so no Butterfly account \
                 was created; ask your administrator"
                    .into(),
            ));
        }
        Ok((email.to_string(), user_name))
    }

    // ---- sessions ------------------------------------------------------------------------

    /// The signed-in user behind a session cookie. Refuses expired sessions, sessions whose
    /// user is gone, deactivated or moved, and ends them.
    pub async fn authenticate(&self, cookie: Option<&str>) -> Result<SignedInUser, SsoError> {
        let (session, user) = self.live_session(cookie).await?;
        let tenant = self.store.get_tenant(&session.tenant).await?.ok_or(SsoError::Unauthenticated)?;
        Ok(SignedInUser { session, user, tenant })
    }

    /// The session and its user behind a cookie, without the tenant record: what an API call
    /// needs to authorise (one store round trip fewer than [`Self::authenticate`]).
    pub async fn authenticate_member(&self, cookie: Option<&str>) -> Result<(Session, User), SsoError> {
        self.live_session(cookie).await
    }

    async fn live_session(&self, cookie: Option<&str>) -> Result<(Session, User), SsoError> {
        let value = cookie.filter(|c| is_secret_shaped(c)).ok_or(SsoError::Unauthenticated)?;
        let hash = hash_secret(value);
        let (session, user) = self.store.session_with_user(&hash).await?.ok_or(SsoError::Unauthenticated)?;
        if !session.confirmed {
            // A pending switch is not a session; only the confirmation page may use it.
            return Err(SsoError::Unauthenticated);
        }
        let now = self.clock.now();
        let user = user.filter(|u| {
            u.tenant == session.tenant && u.active && u.sessions_revoked_at.is_none_or(|at| session.created > at)
        });
        let Some(user) = user.filter(|_| session.is_live(now, self.policy.idle_secs)) else {
            self.store.delete_session(&hash).await?;
            return Err(SsoError::Unauthenticated);
        };
        if now.millis() - session.last_seen.millis() >= self.policy.touch_every_secs * 1000 {
            self.store.touch_session(&hash, now).await?;
        }
        Ok((session, user))
    }

    /// Ends the session behind the cookie (if any). With `provider_logout`, also returns where
    /// to send the browser to end the provider session: its `end_session_endpoint`, only if it
    /// is https (or loopback http where allowed) on the issuer's own host — otherwise no
    /// redirect, and the ID token is sent nowhere.
    pub async fn logout(
        &self,
        cookie: Option<&str>,
        provider_logout: bool,
        post_logout_redirect_uri: &str,
    ) -> Result<Option<String>, SsoError> {
        let Some(value) = cookie.filter(|c| is_secret_shaped(c)) else { return Ok(None) };
        let hash = hash_secret(value);
        let found = self.store.session_with_user(&hash).await?;
        if self.store.delete_session(&hash).await? {
            if let Some((session, _)) = &found {
                let event = AuditEvent::new(
                    &session.tenant,
                    self.clock.now(),
                    AuditAction::SignOut,
                    Actor::User(session.user).to_string(),
                )
                .target(session.user)
                .details(json!({ "provider_logout": provider_logout }));
                self.audit(event).await;
            }
        }
        let Some((session, _)) = found.filter(|_| provider_logout) else { return Ok(None) };
        let Ok(issuer) = Issuer::parse(&session.issuer, self.policy.allow_loopback_http) else { return Ok(None) };
        let Ok(info) = self.idp.discover(&issuer, false).await else { return Ok(None) };
        let Some(end) = info.end_session_endpoint else { return Ok(None) };
        let Ok(mut url) = url::Url::parse(&end) else { return Ok(None) };
        let Ok(issuer_url) = url::Url::parse(issuer.as_str()) else { return Ok(None) };
        if let Err(why) = crate::egress::check_provider_url(&url, &issuer_url, self.policy.allow_loopback_http) {
            tracing::warn!(issuer = %issuer, why, "end_session_endpoint refused: no provider logout");
            return Ok(None);
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(t) = &session.id_token {
                q.append_pair("id_token_hint", t.expose());
            }
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        }
        Ok(Some(url.to_string()))
    }

    /// The hash a session cookie is stored under (for revocation tests and tools).
    pub fn session_hash(cookie: &str) -> TokenHash {
        hash_secret(cookie)
    }
}

/// The message a user may see for an error: our words only.
pub fn user_message(e: &SsoError) -> String {
    match e {
        SsoError::Rejected { detail, .. } => detail.clone(),
        SsoError::ProviderUnavailable(_) => "the identity provider could not be reached".into(),
        SsoError::Store(_) => "something went wrong on our side".into(),
        SsoError::Settings(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The reason code and bounded detail an audit event records for a refused sign-in.
fn refusal_of(e: &SsoError, p: &CallbackParams) -> (String, String) {
    match e {
        SsoError::Rejected { reason: "provider_error", .. } => {
            let code = p.error.as_deref().and_then(text::code).unwrap_or_else(|| "invalid".into());
            let desc = p.error_description.as_deref().map(|d| text::clean(d, 200)).unwrap_or_default();
            (format!("provider_error:{code}"), desc)
        }
        other => (other.reason().to_string(), text::clean(&user_message(other), 300)),
    }
}
