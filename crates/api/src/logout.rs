//! Provider-initiated logout: OIDC Back-Channel Logout 1.0 (`POST /sso/backchannel-logout`)
//! and Okta Universal Logout (`POST /sso/universal-logout/{tenant}`). Server to server: no
//! cookies, never cached.

use crate::auth_response::{no_store, oauth_error};
use crate::scim::BaseUrl;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use butterfly_core::revocation::{LogoutError, LogoutService, Receipt};
use std::sync::Arc;

#[derive(Clone)]
pub struct LogoutState {
    pub service: Arc<LogoutService>,
    pub base_url: BaseUrl,
    /// The per-client-address limit (these endpoints are anonymous until a token verifies).
    pub by_address: Arc<crate::limits::KeyedThrottle>,
}

/// `POST /sso/backchannel-logout`, `POST /sso/universal-logout` (one endpoint per deployment:
/// the token's issuer names the tenant) and `POST /sso/universal-logout/{tenant}`.
pub fn logout_router(state: LogoutState) -> Router {
    Router::new()
        .route("/sso/backchannel-logout", post(back_channel))
        .route("/sso/universal-logout", post(universal_any))
        .route("/sso/universal-logout/{tenant}", post(universal_tenant))
        .route_layer(crate::limits::by_address(state.by_address.clone()))
        .with_state(state)
}

fn log_receipt(r: &Receipt) {
    tracing::info!(
        trigger = ?r.trigger,
        tenant = %r.tenant,
        user = ?r.user.map(|u| u.to_string()),
        sessions_ended = r.sessions_ended,
        latency_ms = r.latency_ms(),
        "sessions revoked"
    );
}

async fn back_channel(State(state): State<LogoutState>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send the logout_token as application/x-www-form-urlencoded",
        );
    }
    let token = form_urlencoded::parse(&body).find(|(k, _)| k == "logout_token").map(|(_, v)| v.into_owned());
    match state.service.back_channel_logout(token.as_deref()).await {
        Ok(receipt) => {
            log_receipt(&receipt);
            no_store(StatusCode::OK.into_response())
        }
        Err(LogoutError::Unavailable(m)) => {
            tracing::error!(error = %m, "back-channel logout could not be processed");
            unavailable()
        }
        Err(e) => {
            // A refused logout may be a lost revocation: say so loudly.
            tracing::warn!(error = %e, "back-channel logout refused");
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
    }
}

/// The answer when a logout could not be processed now: our words only (what the provider or
/// the store said is in the log, with the request id).
fn unavailable() -> Response {
    let mut r = oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

async fn universal_any(State(state): State<LogoutState>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = format!("{}/sso/universal-logout", state.base_url.origin(&headers));
    universal(&state, None, &endpoint, &headers, &body).await
}

async fn universal_tenant(
    State(state): State<LogoutState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = format!("{}/sso/universal-logout/{tenant}", state.base_url.origin(&headers));
    universal(&state, Some(&tenant), &endpoint, &headers, &body).await
}

async fn universal(
    state: &LogoutState,
    tenant: Option<&str>,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.service.universal_logout(tenant, auth, endpoint, body).await {
        Ok(receipt) => {
            log_receipt(&receipt);
            no_store(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => {
            tracing::warn!(error = %e, "universal logout refused");
            match e {
                LogoutError::Invalid(m) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &m),
                LogoutError::Unauthorized(m) => {
                    let mut r = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", &m);
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
                    r
                }
                LogoutError::NotFound(m) => oauth_error(StatusCode::NOT_FOUND, "not_found", &m),
                LogoutError::Unprocessable(_) => {
                    oauth_error(StatusCode::UNPROCESSABLE_ENTITY, "logout_failed", "the sessions could not be ended")
                }
                LogoutError::Unavailable(_) => unavailable(),
            }
        }
    }
}
