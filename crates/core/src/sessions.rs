//! Sessions: the signed-in user behind a session cookie (idle and absolute timeouts, a
//! deactivated or moved user ends the session), signing out (with the provider's logout
//! where it is safe), and ending the sessions a replaced identity provider started.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::ids::TenantId;
use crate::ports::{RevocationStore, TenantSessionStore};
use crate::sso::{hash_secret, is_secret_shaped, IdentityProvider, Issuer, Session, SsoError, SsoPolicy};
use crate::tenant::Tenant;
use crate::usecase::record_or_log;
use crate::user::User;
use serde_json::json;
use std::sync::Arc;

/// A valid session with its user and tenant.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub session: Session,
    pub user: User,
    pub tenant: Tenant,
}

/// The session checks behind every signed-in request, and signing out.
pub struct SessionService {
    store: Arc<dyn TenantSessionStore>,
    idp: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    policy: SsoPolicy,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn TenantSessionStore>,
        idp: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        policy: SsoPolicy,
    ) -> Self {
        SessionService { store, idp, clock, policy }
    }

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
                record_or_log(self.store.as_ref(), &event).await;
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
}

/// Ends every session of the tenant that came from `old`, an issuer just replaced by a bound
/// one (its users re-link through the new issuer by the linking rules). While a new issuer
/// waits for its test sign-in, sessions from the old one keep working: the admin who saved
/// the change must still be signed in to run the test.
pub(crate) async fn end_sessions_from(
    store: &dyn RevocationStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    old: &Issuer,
    actor: &Actor,
) -> Result<(), SsoError> {
    let ended = store.delete_issuer_sessions(tenant, old.as_str()).await?;
    let event = AuditEvent::new(tenant, clock.now(), AuditAction::Revocation, actor.to_string())
        .details(json!({ "trigger": "issuer_change", "issuer": old.as_str(), "sessions_ended": ended }));
    record_or_log(store, &event).await;
    Ok(())
}
