//! Signing in through a tenant's identity provider: starting a login (by email domain, from
//! the provider's dashboard, or as an admin's test), completing it at the callback (the
//! account linking rules and just-in-time users are in [`account_linking`]), and confirming a
//! provider-initiated switch of account.

mod account_linking;

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::email::{check_email, link_key, EmailDomain};
use crate::ids::{TenantId, UserId};
use crate::ports::{SecretStore, SignInStore};
use crate::role::Role;
use crate::sessions::end_sessions_from;
use crate::sso::{
    hash_secret, is_secret_shaped, pkce_challenge, random_secret, CodeRedemption, IdTokenExpectations,
    IdentityProvider, Issuer, LoginPurpose, LoginTransaction, ReturnPath, Session, SsoConfig, SsoError, SsoPolicy,
    VerifiedIdToken, CONFIRMATION_TTL_SECS, SCOPES,
};
use crate::sso_settings::{no_randomness, tenant_of};
use crate::tenant::{SignInPolicy, Tenant};
use crate::text;
use crate::token::Secret;
use crate::usecase::{changed_concurrently, record_or_log, retry_on_conflict, Attempt};
use crate::user::User;
use crate::Error;
use serde_json::json;
use std::sync::Arc;

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

/// The name of the transaction cookie for a `state`: one per login, so two tabs do not
/// overwrite each other's binding.
pub fn transaction_cookie_key(state: &str) -> String {
    hash_secret(state).to_hex()[..16].to_string()
}

/// Sign-in: login starts, the callback, switch confirmations.
pub struct SignInService {
    store: Arc<dyn SignInStore>,
    secrets: Arc<dyn SecretStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    policy: SsoPolicy,
}

/// How often a tenant or user write of a sign-in (binding an issuer, linking an account) is
/// retried when the record changed meanwhile.
const ATTEMPTS: usize = 4;

impl SignInService {
    pub fn new(
        store: Arc<dyn SignInStore>,
        secrets: Arc<dyn SecretStore>,
        idp: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        policy: SsoPolicy,
    ) -> Self {
        SignInService { store, secrets, idp, clock, policy }
    }

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
        let tenant = tenant_of(self.store.as_ref(), &tester.tenant).await?;
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
            record_or_log(self.store.as_ref(), &e).await;
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
        let tenant = tenant_of(self.store.as_ref(), &tx.tenant).await?;
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
        let policy = SignInPolicy::of(&tenant, &self.policy);
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
                now.plus_secs(policy.absolute_secs)
            },
            confirmed: !must_confirm,
            idle_secs: tenant.sign_in_policy.map(|p| p.idle_secs),
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
            max_age_secs: policy.absolute_secs,
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
        let policy = SignInPolicy::of(&tenant, &self.policy);
        let confirmed = Session {
            hash: hash_secret(secret.expose()),
            created: now,
            last_seen: now,
            expires: now.plus_secs(policy.absolute_secs),
            idle_secs: tenant.sign_in_policy.map(|p| p.idle_secs),
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
        record_or_log(self.store.as_ref(), &event).await;
        Ok(Some(SignedIn {
            session_secret: secret,
            user,
            tenant,
            return_to: ReturnPath::default(),
            max_age_secs: policy.absolute_secs,
            created: false,
        }))
    }

    /// A test sign-in: every check, reported; nobody signed in; the issuer bound if all pass.
    async fn complete_test(&self, p: &CallbackParams, tx: &LoginTransaction) -> Result<TestReport, SsoError> {
        let tenant = tenant_of(self.store.as_ref(), &tx.tenant).await?;
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
        record_or_log(self.store.as_ref(), &e).await;
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
        let bound = retry_on_conflict(ATTEMPTS, Some(tenant.clone()), |current| async move {
            let current = match current {
                Some(t) => t,
                None => tenant_of(self.store.as_ref(), &tenant.id).await?,
            };
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
                        end_sessions_from(self.store.as_ref(), &*self.clock, &tenant.id, &old.issuer, &actor).await?;
                    }
                    Ok(Attempt::Done(()))
                }
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(None)),
                Err(Error::Taken(_)) => Err(SsoError::Settings(
                    "this identity provider is already connected to another Butterfly organisation".into(),
                )),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        bound.ok_or_else(|| SsoError::Store(changed_concurrently("tenant")))
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
