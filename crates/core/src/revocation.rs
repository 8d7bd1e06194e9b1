//! Immediate revocation: one use case every trigger calls (OIDC Back-Channel Logout, Okta
//! Universal Logout, SCIM deactivation and deletion), each leaving a receipt in the audit
//! trail; and the validation of the two logout messages a provider sends.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::email::{check_email, fold};
use crate::ids::{TenantId, UserId};
use crate::ports::{LogoutStore, RevocationStore};
use crate::sso::{IdentityProvider, Issuer, JwtKind, SsoError, Subject};
use crate::tenant::Tenant;
use crate::usecase::record_or_log;
use crate::Error;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The OIDC Back-Channel Logout event member of `events`.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token's or GTR JWT's `jti` is remembered (beyond its own expiry).
pub const JTI_MEMORY_SECS: i64 = 600;

/// What asked for the revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    BackChannelLogout,
    UniversalLogout,
    ScimDeactivation,
    ScimDelete,
}

/// The record of one revocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub trigger: Trigger,
    pub tenant: TenantId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub sessions_ended: u32,
    pub signal_at: Timestamp,
    pub revoked_at: Timestamp,
}

impl Receipt {
    /// Time from the signal (the request's arrival, or the token's `iat`) to revocation.
    pub fn latency_ms(&self) -> i64 {
        (self.revoked_at.millis() - self.signal_at.millis()).max(0)
    }

    /// The audit event this receipt is recorded as.
    pub fn audit(&self, actor: &Actor) -> AuditEvent {
        let mut e =
            AuditEvent::new(&self.tenant, self.revoked_at, AuditAction::Revocation, actor.to_string()).details(json!({
                "trigger": self.trigger,
                "sessions_ended": self.sessions_ended,
                "sid": self.sid,
                "latency_ms": self.latency_ms(),
            }));
        if let Some(u) = &self.user {
            e = e.target(u);
        }
        e
    }
}

/// Ends sessions and records receipts.
#[derive(Clone)]
pub struct Revoker {
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn Clock>,
}

impl Revoker {
    pub fn new(store: Arc<dyn RevocationStore>, clock: Arc<dyn Clock>) -> Self {
        Revoker { store, clock }
    }

    /// Ends every session of a user, and records the receipt. The receipt is written after
    /// the sessions are gone; a failure to write it is logged (what was lost, with the request's
    /// id from its span) rather than undoing a revocation that happened.
    pub async fn revoke_user(
        &self,
        trigger: Trigger,
        tenant: &TenantId,
        user: &UserId,
        actor: &Actor,
        signal_at: Timestamp,
    ) -> Result<Receipt, Error> {
        let n = self.store.delete_user_sessions(tenant, user).await?;
        self.finish(trigger, tenant, Some(*user), None, n, actor, signal_at).await
    }

    /// Ends the sessions started from one provider session.
    pub async fn revoke_sid(
        &self,
        trigger: Trigger,
        tenant: &TenantId,
        issuer: &str,
        sid: &str,
        actor: &Actor,
        signal_at: Timestamp,
    ) -> Result<Receipt, Error> {
        let n = self.store.delete_sid_sessions(issuer, sid).await?;
        self.finish(trigger, tenant, None, Some(sid.to_string()), n, actor, signal_at).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        trigger: Trigger,
        tenant: &TenantId,
        user: Option<UserId>,
        sid: Option<String>,
        sessions_ended: u32,
        actor: &Actor,
        signal_at: Timestamp,
    ) -> Result<Receipt, Error> {
        let receipt = Receipt {
            trigger,
            tenant: tenant.clone(),
            user,
            sid,
            sessions_ended,
            signal_at,
            revoked_at: self.clock.now(),
        };
        record_or_log(self.store.as_ref(), &receipt.audit(actor)).await;
        Ok(receipt)
    }
}

/// Why a logout message was refused. The HTTP layer maps each to its documented status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// Malformed message (BCL: any invalid logout token; GTR: a bad body). 400.
    #[error("{0}")]
    Invalid(String),
    /// GTR: missing or invalid authentication. 401.
    #[error("{0}")]
    Unauthorized(String),
    /// GTR: no such tenant or user. 404.
    #[error("{0}")]
    NotFound(String),
    /// GTR: the user could not be logged out. 422.
    #[error("{0}")]
    Unprocessable(String),
    /// The identity provider's keys could not be fetched or used; the provider may retry.
    /// The text is for the log only.
    #[error("{0}")]
    Unavailable(String),
}

fn unverified_claim(token: &str, name: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(String::from)
}

fn str_claim<'a>(c: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    c.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Validates provider logout messages and revokes what they name.
pub struct LogoutService {
    store: Arc<dyn LogoutStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    revoker: Revoker,
}

impl LogoutService {
    pub fn new(store: Arc<dyn LogoutStore>, idp: Arc<dyn IdentityProvider>, clock: Arc<dyn Clock>) -> Self {
        let revoker = Revoker::new(store.clone(), clock.clone());
        // No limit per claimed issuer here: the claim is unverified, so anyone could spend a
        // customer's budget and have its provider's real revocations refused. Callers are
        // limited per address; fetches per issuer are bounded by the provider cache.
        LogoutService { store, idp, clock, revoker }
    }

    /// The provider and client whose logout messages the tenant trusts: the bound one (during an
    /// issuer change, the one still bound). A provider whose binding is not proven yet is trusted
    /// for none.
    fn sso_of(tenant: &Tenant) -> Option<(Issuer, String)> {
        tenant.trusted_provider().map(|(i, c)| (i.clone(), c.to_string()))
    }

    /// OIDC Back-Channel Logout 1.0 §2.6: validates the logout token and ends the sessions it
    /// names (`sid`: that provider session; else all of `sub`'s). Idempotent: a valid token
    /// naming no live session is still a success.
    pub async fn back_channel_logout(&self, logout_token: Option<&str>) -> Result<Receipt, LogoutError> {
        let signal_at = self.clock.now();
        let token = logout_token
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
            .ok_or_else(|| LogoutError::Invalid("the logout_token parameter is required".into()))?;
        // The issuer picks the tenant and hence the keys; nothing is trusted before the signature.
        let iss =
            unverified_claim(token, "iss").ok_or_else(|| LogoutError::Invalid("malformed logout token".into()))?;
        let tenant = self
            .store
            .find_tenant_by_issuer(&Issuer::lookup_key(&iss))
            .await
            .map_err(|e| LogoutError::Unavailable(e.to_string()))?
            .ok_or_else(|| LogoutError::Invalid("the logout token's issuer is not connected to Butterfly".into()))?;
        let (issuer, client_id) =
            Self::sso_of(&tenant).ok_or_else(|| LogoutError::Invalid("no SSO settings for this issuer".into()))?;
        let claims = self.idp.verify_jwt(&issuer, token, &client_id, JwtKind::LogoutToken).await.map_err(jwt_error)?;
        for required in ["iat", "jti"] {
            if !claims.contains_key(required) {
                return Err(LogoutError::Invalid(format!("the logout token has no {required}")));
            }
        }
        let events = claims
            .get("events")
            .and_then(Value::as_object)
            .ok_or_else(|| LogoutError::Invalid("the logout token has no events claim".into()))?;
        if !events.get(BACKCHANNEL_LOGOUT_EVENT).is_some_and(Value::is_object) {
            return Err(LogoutError::Invalid("the events claim lacks the back-channel logout event".into()));
        }
        if claims.contains_key("nonce") {
            return Err(LogoutError::Invalid("a logout token must not contain a nonce".into()));
        }
        let sub = str_claim(&claims, "sub");
        let sid = str_claim(&claims, "sid");
        if sub.is_none() && sid.is_none() {
            return Err(LogoutError::Invalid("the logout token names neither sub nor sid".into()));
        }
        self.remember_jti(&issuer, &claims, "bcl").await?;
        let actor = Actor::Provider(issuer.clone());
        let receipt = match (sid, sub) {
            (Some(sid), _) => self
                .revoker
                .revoke_sid(Trigger::BackChannelLogout, &tenant.id, issuer.as_str(), sid, &actor, signal_at)
                .await
                .map_err(|e| LogoutError::Unavailable(e.to_string()))?,
            (None, Some(sub)) => {
                let subject = Subject { issuer: issuer.as_str().to_string(), sub: sub.to_string() };
                let user = self
                    .store
                    .find_user_by_subject(&tenant.id, &subject)
                    .await
                    .map_err(|e| LogoutError::Unavailable(e.to_string()))?;
                match user {
                    Some(u) => self
                        .revoker
                        .revoke_user(Trigger::BackChannelLogout, &tenant.id, &u.id, &actor, signal_at)
                        .await
                        .map_err(|e| LogoutError::Unavailable(e.to_string()))?,
                    // Nobody signed in with this identity: nothing to end, still a receipt.
                    None => self
                        .revoker
                        .finish(Trigger::BackChannelLogout, &tenant.id, None, None, 0, &actor, signal_at)
                        .await
                        .map_err(|e| LogoutError::Unavailable(e.to_string()))?,
                }
            }
            (None, None) => return Err(LogoutError::Invalid("no sub or sid".into())),
        };
        Ok(receipt)
    }

    async fn remember_jti(&self, issuer: &Issuer, claims: &Map<String, Value>, scope: &str) -> Result<(), LogoutError> {
        let jti = str_claim(claims, "jti").ok_or_else(|| LogoutError::Invalid("the token has no jti".into()))?;
        if jti.len() > 256 {
            return Err(LogoutError::Invalid("the jti is too long".into()));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let until = Timestamp(exp.saturating_mul(1000)).max(self.clock.now()).plus_secs(JTI_MEMORY_SECS);
        let first = self
            .store
            .claim_once(&format!("{scope}:{issuer}"), jti, until)
            .await
            .map_err(|e| LogoutError::Unavailable(e.to_string()))?;
        if first {
            Ok(())
        } else if scope == "gtr" {
            Err(LogoutError::Unauthorized("this token was already used (jti replay)".into()))
        } else {
            Err(LogoutError::Invalid("this logout token was already used (jti replay)".into()))
        }
    }

    /// Okta Universal Logout (Global Token Revocation): a Bearer JWT signed by the tenant's
    /// issuer (`typ` `global-token-revocation+jwt`, `iss` = the issuer, `sub` = our client ID,
    /// `aud` = `endpoint`), and a body naming the user by email or issuer + subject. Ends all
    /// of the user's sessions.
    pub async fn universal_logout(
        &self,
        tenant_id: Option<&str>,
        authorization: Option<&str>,
        endpoint: &str,
        body: &[u8],
    ) -> Result<Receipt, LogoutError> {
        let signal_at = self.clock.now();
        let bearer = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 16 * 1024);
        let tenant = match tenant_id {
            Some(id) => {
                let id = TenantId::parse(id).ok_or_else(|| LogoutError::NotFound("no such tenant".into()))?;
                self.store
                    .get_tenant(&id)
                    .await
                    .map_err(|e| LogoutError::Unavailable(e.to_string()))?
                    .ok_or_else(|| LogoutError::NotFound("no such tenant".into()))?
            }
            // One endpoint per deployment: the token's issuer (bound issuers are unique) picks
            // the tenant, whose keys then verify the token; nothing is fetched for an unknown one.
            None => {
                let token = bearer.ok_or_else(|| LogoutError::Unauthorized("a Bearer token is required".into()))?;
                let iss = unverified_claim(token, "iss")
                    .ok_or_else(|| LogoutError::Unauthorized("the token is not a JWT naming its issuer".into()))?;
                self.store
                    .find_tenant_by_issuer(&Issuer::lookup_key(&iss))
                    .await
                    .map_err(|e| LogoutError::Unavailable(e.to_string()))?
                    .ok_or_else(|| {
                        LogoutError::Unauthorized("the token's issuer is not connected to Butterfly".into())
                    })?
            }
        };
        let token = bearer.ok_or_else(|| LogoutError::Unauthorized("a Bearer token is required".into()))?;
        let (issuer, client_id) = Self::sso_of(&tenant)
            .ok_or_else(|| LogoutError::Unauthorized("single sign-on is not set up for this tenant".into()))?;
        let claims =
            self.idp.verify_jwt(&issuer, token, endpoint, JwtKind::GlobalTokenRevocation).await.map_err(|e| {
                match jwt_error(e) {
                    LogoutError::Invalid(m) => LogoutError::Unauthorized(m),
                    other => other,
                }
            })?;
        if str_claim(&claims, "sub") != Some(client_id.as_str()) {
            return Err(LogoutError::Unauthorized("the token's sub is not this app's client ID".into()));
        }
        self.remember_jti(&issuer, &claims, "gtr").await?;
        let v: Value =
            serde_json::from_slice(body).map_err(|_| LogoutError::Invalid("the body is not a JSON object".into()))?;
        let sub_id = v
            .get("sub_id")
            .or_else(|| v.get("subject"))
            .and_then(Value::as_object)
            .ok_or_else(|| LogoutError::Invalid("the body needs a sub_id object".into()))?;
        let user = match sub_id.get("format").and_then(Value::as_str) {
            Some("email") => {
                let email = sub_id
                    .get("email")
                    .and_then(Value::as_str)
                    .filter(|e| check_email(e).is_ok())
                    .ok_or_else(|| LogoutError::Invalid("sub_id.email must be an email address".into()))?;
                self.store.find_user_by_user_name(&tenant.id, &fold(email)).await
            }
            Some("iss_sub") => {
                let (Some(iss), Some(sub)) = (
                    sub_id.get("iss").and_then(Value::as_str).filter(|s| !s.is_empty()),
                    sub_id.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()),
                ) else {
                    return Err(LogoutError::Invalid("sub_id of format iss_sub needs iss and sub".into()));
                };
                let subject = Subject { issuer: Issuer::lookup_key(iss), sub: sub.to_string() };
                match self.store.find_user_by_subject(&tenant.id, &subject).await {
                    // Okta may send the app's own user id as sub.
                    Ok(None) => match UserId::parse(sub) {
                        Some(id) => self.store.get_user(&tenant.id, &id).await,
                        None => Ok(None),
                    },
                    other => other,
                }
            }
            Some(_) => return Err(LogoutError::Invalid("unsupported sub_id format (email or iss_sub)".into())),
            None => return Err(LogoutError::Invalid("sub_id.format is required".into())),
        }
        .map_err(|e| LogoutError::Unprocessable(e.to_string()))?
        .ok_or_else(|| LogoutError::NotFound("no such user in this tenant".into()))?;
        let receipt = self
            .revoker
            .revoke_user(Trigger::UniversalLogout, &tenant.id, &user.id, &Actor::Provider(issuer.clone()), signal_at)
            .await
            .map_err(|e| LogoutError::Unprocessable(e.to_string()))?;
        Ok(receipt)
    }
}

/// A refused JWT is the caller's fault, in our words; anything else (the provider's
/// discovery document or keys unusable, the store) is ours or the provider's to fix, and the
/// provider may retry. Its text, which may come from the provider, is only logged.
fn jwt_error(e: SsoError) -> LogoutError {
    match e {
        SsoError::Rejected { detail, .. } => LogoutError::Invalid(detail),
        other => LogoutError::Unavailable(crate::text::clean(&other.to_string(), 300)),
    }
}
