//! The HTTP layer. One router per endpoint family (so each Lambda serves one), the SCIM wire
//! format, and the mapping of domain errors to HTTP at the edge. Handlers are one call deep:
//! extract, call the use case, map the result.

pub mod admin;
pub mod auth_response;
pub mod error;
pub mod logout;
pub mod oidc;
pub mod scim;
pub mod sso;
pub mod wire;

use axum::http::{HeaderName, Request};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps a router with what every endpoint gets: a request id (taken from `x-request-id` or
/// generated, and echoed), a tracing span carrying it, and a last-resort guard that turns a
/// panic into a 500 instead of a dropped connection.
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(|_| error::internal_error_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Method and path only: query strings carry filters with email addresses, and
                    // headers carry tokens, so neither is logged.
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// `GET /healthz`: liveness for the local stack and load balancers.
pub fn health_router() -> Router {
    use axum::routing::get;
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// The SCIM router alone over one store (the `scim-users` function).
pub fn scim_app(
    store: std::sync::Arc<dyn butterfly_core::ports::Store>,
    clock: std::sync::Arc<dyn butterfly_core::clock::Clock>,
    cursor_key: butterfly_core::scim::cursor::CursorKey,
    base_url: scim::BaseUrl,
) -> Router {
    let scim_state =
        scim::ScimState { service: butterfly_core::service::ScimService::new(store, clock, cursor_key), base_url };
    with_common_layers(scim::router(scim_state).merge(health_router()))
}

/// Everything the routers are built from: the store and the other ports, and the
/// deployment's settings. Built once per process (per Lambda instance).
#[derive(Clone)]
pub struct AppParts {
    pub store: std::sync::Arc<dyn butterfly_core::ports::Store>,
    pub secrets: std::sync::Arc<dyn butterfly_core::ports::SecretStore>,
    pub idp: std::sync::Arc<dyn butterfly_core::sso::IdentityProvider>,
    pub clock: std::sync::Arc<dyn butterfly_core::clock::Clock>,
    pub base_url: scim::BaseUrl,
    pub cookies: sso::CookiePolicy,
    pub sso_policy: butterfly_core::sso_service::SsoPolicy,
}

impl AppParts {
    pub fn sso_service(&self) -> butterfly_core::sso_service::SsoService {
        butterfly_core::sso_service::SsoService::new(
            self.store.clone(),
            self.secrets.clone(),
            self.idp.clone(),
            self.clock.clone(),
            self.sso_policy.clone(),
        )
    }

    pub fn logout_state(&self) -> logout::LogoutState {
        logout::LogoutState {
            service: std::sync::Arc::new(butterfly_core::revocation::LogoutService::new(
                self.store.clone(),
                self.idp.clone(),
                self.clock.clone(),
            )),
            base_url: self.base_url.clone(),
        }
    }

    pub fn admin_state(&self) -> admin::AdminState {
        admin::AdminState {
            sso: std::sync::Arc::new(self.sso_service()),
            admin: std::sync::Arc::new(butterfly_core::service::AdminService::new(
                self.store.clone(),
                self.clock.clone(),
            )),
            team: std::sync::Arc::new(butterfly_core::team::TeamService::new(self.store.clone(), self.clock.clone())),
            store: self.store.clone(),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
        }
    }

    pub fn sso_state(&self) -> sso::SsoState {
        sso::SsoState {
            service: std::sync::Arc::new(self.sso_service()),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
        }
    }
}

/// Every router of the service over one store: what the local stack serves on one port, and
/// what the test harness spawns. Each Lambda serves one of the routers instead. `cursor_key`
/// signs SCIM paging cursors (only the SCIM routes page with it).
pub fn app(parts: &AppParts, cursor_key: butterfly_core::scim::cursor::CursorKey) -> Router {
    let scim_state = scim::ScimState {
        service: butterfly_core::service::ScimService::new(parts.store.clone(), parts.clock.clone(), cursor_key),
        base_url: parts.base_url.clone(),
    };
    let sso_state = parts.sso_state();
    with_common_layers(
        scim::router(scim_state)
            .merge(sso::login_router(sso_state.clone()))
            .merge(sso::callback_router(sso_state.clone()))
            .merge(sso::session_router(sso_state))
            .merge(logout::logout_router(parts.logout_state()))
            .merge(admin::token_rotation_router(parts.admin_state()))
            .merge(admin::admin_router(parts.admin_state()))
            .merge(health_router()),
    )
}
