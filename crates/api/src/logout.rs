//! Provider-initiated logout: OIDC Back-Channel Logout 1.0 (`POST /sso/backchannel-logout`)
//! and Okta Universal Logout (`POST /sso/universal-logout/{tenant}`). Server to server: no
//! cookies, never cached.

use crate::auth_response::no_store;
use crate::error::{ApiError, ApiResult, OAuth};
use crate::scim::BaseUrl;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use butterfly_core::revocation::{LogoutService, Receipt};
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

/// The Universal Logout endpoint: one per deployment (the token's issuer names the tenant), or
/// the older per-tenant path.
pub fn universal_logout_endpoint(origin: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{origin}/sso/universal-logout/{t}"),
        None => format!("{origin}/sso/universal-logout"),
    }
}

/// The OIDC Back-Channel Logout URI.
pub fn back_channel_logout_uri(origin: &str) -> String {
    format!("{origin}/sso/backchannel-logout")
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

async fn back_channel(State(state): State<LogoutState>, headers: HeaderMap, body: Bytes) -> ApiResult<OAuth> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::invalid_request("send the logout_token as application/x-www-form-urlencoded"));
    }
    let token = form_urlencoded::parse(&body).find(|(k, _)| k == "logout_token").map(|(_, v)| v.into_owned());
    let receipt = state.service.back_channel_logout(token.as_deref()).await?;
    log_receipt(&receipt);
    Ok(no_store(StatusCode::OK.into_response()))
}

async fn universal_any(State(state): State<LogoutState>, headers: HeaderMap, body: Bytes) -> ApiResult<OAuth> {
    let endpoint = universal_logout_endpoint(&state.base_url.origin(&headers), None);
    universal(&state, None, &endpoint, &headers, &body).await
}

async fn universal_tenant(
    State(state): State<LogoutState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<OAuth> {
    let endpoint = universal_logout_endpoint(&state.base_url.origin(&headers), Some(&tenant));
    universal(&state, Some(&tenant), &endpoint, &headers, &body).await
}

async fn universal(
    state: &LogoutState,
    tenant: Option<&str>,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<OAuth> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let receipt = state.service.universal_logout(tenant, auth, endpoint, body).await?;
    log_receipt(&receipt);
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
