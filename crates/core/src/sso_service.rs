//! The single sign-on use cases: SSO settings, starting a login (by email domain or from the
//! provider's dashboard), completing it at the callback (with just-in-time users), and the
//! session checks behind every signed-in request.

use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::email::{check_email, fold, EmailDomain, UserName};
use crate::ids::{TenantId, UserId};
use crate::ports::{SecretStore, Store};
use crate::sso::{
    hash_secret, is_secret_shaped, pkce_challenge, random_secret, CodeRedemption, IdTokenExpectations,
    IdentityProvider, Issuer, LoginTransaction, ReturnPath, Session, SsoConfig, SsoError, Subject, VerifiedIdToken,
    SCOPES,
};
use crate::tenant::Tenant;
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
    pub domains: Vec<EmailDomain>,
    pub enabled: bool,
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

pub struct SsoService {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    policy: SsoPolicy,
}

const LINK_ATTEMPTS: usize = 4;

impl SsoService {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        idp: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        policy: SsoPolicy,
    ) -> Self {
        SsoService { store, secrets, idp, clock, policy }
    }

    pub fn policy(&self) -> &SsoPolicy {
        &self.policy
    }

    async fn tenant(&self, id: &TenantId) -> Result<Tenant, SsoError> {
        self.store.get_tenant(id).await?.ok_or_else(|| SsoError::Settings(format!("tenant {id} does not exist")))
    }

    // ---- settings ----------------------------------------------------------------------

    /// Validates and saves a tenant's SSO settings: the issuer must serve discovery naming
    /// itself; domains are normalised, must not be public mailbox providers and must not
    /// belong to another tenant; the secret goes to the secret store only.
    pub async fn configure(&self, tenant: &TenantId, input: SsoSettingsInput) -> Result<SsoSettingsView, SsoError> {
        self.configure_as(tenant, input, "operator").await
    }

    /// `configure` on behalf of `actor` (`user:<id>` from the admin API, `operator` from the CLI).
    pub async fn configure_as(
        &self,
        tenant: &TenantId,
        input: SsoSettingsInput,
        actor: &str,
    ) -> Result<SsoSettingsView, SsoError> {
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
        if input.enabled && domains.as_ref().unwrap_or(&current.domains).is_empty() {
            return Err(SsoError::Settings(
                "at least one email domain is needed: it routes sign-ins from the login page to your provider".into(),
            ));
        }
        if input.client_secret.is_none() && self.secrets.client_secret(tenant).await?.is_none() {
            return Err(SsoError::Settings("the client secret is required".into()));
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
            let mut next = current.clone();
            next.sso = Some(SsoConfig {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                enabled: input.enabled,
                updated: self.clock.now(),
            });
            if let Some(d) = &domains {
                next.domains = d.clone();
            }
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    let event = AuditEvent::new(tenant, self.clock.now(), AuditAction::SsoSettingsUpdate, actor)
                        .details(json!({
                            "issuer": issuer.as_str(),
                            "client_id": client_id,
                            "domains": next.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                            "enabled": input.enabled,
                            "client_secret_changed": input.client_secret.is_some(),
                        }));
                    let _ = self.store.record_audit(&event).await;
                    return Ok(self.view(&next, true));
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
            enabled: t.sso.as_ref().is_some_and(|s| s.enabled),
            updated: t.sso.as_ref().map(|s| s.updated),
        }
    }

    // ---- starting a login ----------------------------------------------------------------

    /// SP-initiated: the email's domain picks the tenant; its provider gets `login_hint`.
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
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let domain = EmailDomain::parse(domain).map_err(|_| SsoError::NoSso)?;
        let tenant = self.store.find_tenant_by_domain(&domain).await?.ok_or(SsoError::NoSso)?;
        let sso = tenant.sso.clone().filter(|s| s.enabled).ok_or(SsoError::NoSso)?;
        self.begin(&tenant.id, &sso, Some(email), return_to, redirect_uri).await
    }

    /// IdP-initiated (OIDC Core §4, Okta's "initiate login URI"): the exact issuer picks the
    /// tenant (an unknown issuer is never fetched); then a normal SP-initiated login.
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
        let sso = tenant.sso.clone().filter(|s| s.enabled).ok_or(SsoError::UnknownIssuer)?;
        let return_to = match target_link_uri.filter(|t| !t.is_empty()) {
            Some(t) => ReturnPath::from_target(t, origin)
                .ok_or_else(|| SsoError::InvalidInput("target_link_uri must be a page of this site".into()))?,
            None => ReturnPath::default(),
        };
        let hint = login_hint.map(str::trim).filter(|h| !h.is_empty() && h.len() <= 254);
        self.begin(&tenant.id, &sso, hint, return_to, redirect_uri).await
    }

    async fn begin(
        &self,
        tenant: &TenantId,
        sso: &SsoConfig,
        login_hint: Option<&str>,
        return_to: ReturnPath,
        redirect_uri: &str,
    ) -> Result<LoginStart, SsoError> {
        let info = self.idp.discover(&sso.issuer, false).await?;
        let rnd = || random_secret().map_err(|e| SsoError::Store(Error::Store(e)));
        let (state, nonce, verifier, binding) = (rnd()?, rnd()?, rnd()?, rnd()?);
        let now = self.clock.now();
        let tx = LoginTransaction {
            state_hash: hash_secret(state.expose()),
            binding_hash: hash_secret(binding.expose()),
            tenant: tenant.clone(),
            issuer: sso.issuer.clone(),
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
    /// `previous_session` is the session cookie the browser already had: it is ended, so the
    /// session id changes at every sign-in.
    pub async fn complete(
        &self,
        p: &CallbackParams,
        binding_cookie: Option<&str>,
        previous_session: Option<&str>,
    ) -> Result<SignedIn, SsoError> {
        let mut tenant = None;
        let result = self.complete_inner(p, binding_cookie, previous_session, &mut tenant).await;
        // Sign-ins and refusals go to the tenant's audit trail once the tenant is known (a
        // callback with no valid transaction has none: it is only logged). Best effort.
        if let Some(t) = tenant {
            let now = self.clock.now();
            let event = match &result {
                Ok(s) => AuditEvent::new(&t, now, AuditAction::SignIn, format!("user:{}", s.user.id))
                    .target(s.user.id)
                    .details(
                        json!({ "created": s.created, "issuer": s.tenant.sso.as_ref().map(|c| c.issuer.as_str()) }),
                    ),
                Err(e) => AuditEvent::new(&t, now, AuditAction::SignInRefused, "provider")
                    .refused()
                    .details(json!({ "reason": e.reason(), "detail": e.to_string() })),
            };
            let _ = self.store.record_audit(&event).await;
        }
        result
    }

    async fn complete_inner(
        &self,
        p: &CallbackParams,
        binding_cookie: Option<&str>,
        previous_session: Option<&str>,
        audit_tenant: &mut Option<TenantId>,
    ) -> Result<SignedIn, SsoError> {
        let state = p.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            SsoError::rejected("missing_state", "the response carries no state; start the sign-in again")
        })?;
        if !is_secret_shaped(state) {
            return Err(SsoError::rejected("unknown_transaction", "this sign-in is unknown"));
        }
        let tx = self.store.take_login(&hash_secret(state)).await?.ok_or_else(|| {
            SsoError::rejected("unknown_transaction", "this sign-in was already completed, has expired, or is unknown")
        })?;
        *audit_tenant = Some(tx.tenant.clone());
        let binding = binding_cookie.filter(|b| is_secret_shaped(b)).ok_or_else(|| {
            SsoError::rejected("missing_binding", "this browser did not start this sign-in (no transaction cookie)")
        })?;
        if !hash_secret(binding).ct_eq(&tx.binding_hash) {
            return Err(SsoError::rejected("binding_mismatch", "this browser did not start this sign-in"));
        }
        let now = self.clock.now();
        if now >= tx.expires {
            return Err(SsoError::rejected("transaction_expired", "the sign-in took too long; start again"));
        }
        if let Some(err) = p.error.as_deref() {
            let desc: String = p.error_description.as_deref().unwrap_or("").chars().take(300).collect();
            return Err(SsoError::rejected("provider_error", format!("the identity provider answered {err}: {desc}")));
        }
        let code = p
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| SsoError::rejected("missing_code", "the response carries no authorization code"))?;
        let tenant = self.tenant(&tx.tenant).await?;
        let sso =
            tenant.sso.clone().filter(|s| s.enabled && s.issuer == tx.issuer).ok_or_else(|| {
                SsoError::rejected("sso_changed", "single sign-on settings changed during the sign-in")
            })?;
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
        let (user, created) = self.map_user(&tenant, &token).await?;
        let session_secret = random_secret().map_err(|e| SsoError::Store(Error::Store(e)))?;
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
            expires: now.plus_secs(self.policy.absolute_secs),
        };
        self.store.create_session(&session).await?;
        if let Some(prev) = previous_session.filter(|c| is_secret_shaped(c)) {
            self.store.delete_session(&hash_secret(prev)).await?;
        }
        Ok(SignedIn {
            session_secret,
            user,
            tenant,
            return_to: tx.return_to,
            max_age_secs: self.policy.absolute_secs,
            created,
        })
    }

    /// The user for a verified identity: linked by (`iss`, `sub`); else the tenant's user with
    /// that email (a SCIM-provisioned user gets linked); else created just in time with
    /// `read_only`. Deactivated users are refused.
    async fn map_user(&self, tenant: &Tenant, token: &VerifiedIdToken) -> Result<(User, bool), SsoError> {
        let subject = Subject { issuer: token.issuer.clone(), sub: token.subject.clone() };
        if subject.sub.is_empty() || subject.sub.len() > 255 {
            return Err(SsoError::rejected("invalid_id_token", "the ID token has no usable subject"));
        }
        for _ in 0..LINK_ATTEMPTS {
            if let Some(u) = self.store.find_user_by_subject(&tenant.id, &subject).await? {
                return if u.active { Ok((u, false)) } else { Err(SsoError::Deactivated) };
            }
            let email = token
                .email
                .as_deref()
                .filter(|e| check_email(e).is_ok())
                .or(token.preferred_username.as_deref().filter(|e| check_email(e).is_ok()))
                .ok_or_else(|| {
                    SsoError::rejected("no_email", "the identity provider sent no email address for this user")
                })?;
            let user_name =
                UserName::parse(email).map_err(|e| SsoError::rejected("no_email", format!("the email address {e}")))?;
            let now = self.clock.now();
            match self.store.find_user_by_user_name(&tenant.id, &fold(email)).await? {
                Some(u) if !u.active => return Err(SsoError::Deactivated),
                Some(u) if u.subject.as_ref().is_some_and(|s| s != &subject) => {
                    return Err(SsoError::rejected(
                        "account_conflict",
                        "this email address is linked to another identity at the provider; ask your admin",
                    ))
                }
                Some(u) => {
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
                            value: email.to_string(),
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
    /// to send the browser to end the provider session (its `end_session_endpoint`).
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
                    format!("user:{}", session.user),
                )
                .target(session.user)
                .details(json!({ "provider_logout": provider_logout }));
                let _ = self.store.record_audit(&event).await;
            }
        }
        let Some((session, _)) = found.filter(|_| provider_logout) else { return Ok(None) };
        let Ok(issuer) = Issuer::parse(&session.issuer, self.policy.allow_loopback_http) else { return Ok(None) };
        let Ok(info) = self.idp.discover(&issuer, false).await else { return Ok(None) };
        let Some(end) = info.end_session_endpoint else { return Ok(None) };
        let Ok(mut url) = url::Url::parse(&end) else { return Ok(None) };
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
