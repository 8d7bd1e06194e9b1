//! The HTTP layer. One router per endpoint family (so each Lambda serves one), the SCIM wire
//! format, the callers as extractors ([`extract`]) and the one error type ([`error::ApiError`])
//! that maps the core's errors to HTTP at the edge. Handlers are one call deep: extract, call
//! the use case, render the result.

pub mod admin;
pub mod auth_response;
pub mod console;
pub mod error;
pub mod extract;
pub mod limits;
pub mod logout;
pub mod scim;
pub mod setup;
pub mod sso;
pub mod wire;

use axum::http::{HeaderName, Request};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether a client-sent request id may be used as ours: 1 to 64 of `[A-Za-z0-9._:-]` (a
/// UUID, an Okta or API Gateway id). Anything else is replaced, so a client cannot put
/// spaces, fake log fields or control characters into our log lines.
pub fn request_id_acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Drops a client's `x-request-id` that [`request_id_acceptable`] refuses (one is generated).
async fn drop_unsafe_request_id(mut req: Request<axum::body::Body>) -> Request<axum::body::Body> {
    if req.headers().get(REQUEST_ID).is_some_and(|v| !request_id_acceptable(v.as_bytes())) {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// Wraps a router with what every endpoint gets: a request id (taken from a safe-looking
/// `x-request-id` or generated, and echoed), a tracing span carrying it, and a last-resort
/// guard that turns a panic into a 500 instead of a dropped connection.
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::custom(|_| error::internal_error_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Method and path only: query strings carry filters with email addresses, and
                    // headers carry tokens, so neither is logged; nor is a setup link in a path.
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    let path = setup::loggable_path(req.uri().path());
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
}

/// `GET /healthz`: liveness for the local stack and load balancers.
pub fn health_router() -> Router {
    use axum::routing::get;
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// What the SCIM router is built from, wherever it is served (the `scim-users` function, the
/// local stack, the test harness): the SCIM use cases over one store, and the base URL.
/// `cursor_key` signs paging cursors; `quota` is the per-tenant SCIM rate.
pub fn scim_state(
    store: std::sync::Arc<dyn butterfly_core::ports::Store>,
    clock: std::sync::Arc<dyn butterfly_core::clock::Clock>,
    cursor_key: butterfly_core::scim::cursor::CursorKey,
    base_url: scim::BaseUrl,
    quota: butterfly_core::limit::QuotaPolicy,
) -> scim::ScimState {
    scim::ScimState { service: butterfly_core::scim_users::ScimService::new(store, clock, cursor_key, quota), base_url }
}

/// The `scim-users` function's router: every `/scim/v2` route and `/healthz` (without the common
/// layers, which whoever serves it adds).
pub fn scim_router(state: scim::ScimState) -> Router {
    scim::router(state).merge(health_router())
}

/// The `scim-users` function's router with the common layers (the test harness serves it on
/// loopback).
pub fn scim_app(state: scim::ScimState) -> Router {
    with_common_layers(scim_router(state))
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
    pub sso_policy: butterfly_core::sso::SsoPolicy,
    /// Keys the CSRF tokens of signed-in browsers.
    pub csrf: butterfly_core::csrf::CsrfKey,
    /// DNS TXT lookups, for domain verification.
    pub dns: std::sync::Arc<dyn butterfly_core::domain::TxtResolver>,
    /// Abuse limits (one set per process, shared by every router built from these parts).
    pub limits: Limits,
}

/// The abuse limits of one process: per client address on the anonymous endpoints, per tenant
/// on SSO settings saves and domain checks, and the per-tenant SCIM rate (shared across
/// processes through the store). Nothing an anonymous caller can spend is shared with others:
/// a budget per email domain or issuer would let anyone lock a customer out.
#[derive(Clone)]
pub struct Limits {
    pub by_address: std::sync::Arc<limits::KeyedThrottle>,
    /// SSO settings saves and domain checks per tenant (each fetches a provider or asks DNS
    /// afresh): the whole minute's allowance at once (an admin fixing a typo), then one every
    /// few seconds.
    pub settings: std::sync::Arc<limits::KeyedThrottle>,
    pub scim: butterfly_core::limit::QuotaPolicy,
}

impl Limits {
    pub fn new(anonymous: limits::AnonymousLimits, scim: butterfly_core::limit::QuotaPolicy) -> Self {
        Limits {
            by_address: std::sync::Arc::new(limits::KeyedThrottle::per_minute(anonymous.per_address_per_minute)),
            settings: std::sync::Arc::new(limits::KeyedThrottle::per_minute_with_burst(
                anonymous.settings_per_minute,
                anonymous.settings_per_minute,
            )),
            scim,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(limits::AnonymousLimits::default(), butterfly_core::limit::QuotaPolicy::default())
    }
}

impl AppParts {
    pub fn sso_settings_service(&self) -> butterfly_core::sso_settings::SsoSettingsService {
        butterfly_core::sso_settings::SsoSettingsService::new(
            self.store.clone(),
            self.secrets.clone(),
            self.idp.clone(),
            self.clock.clone(),
            self.sso_policy.clone(),
        )
        .with_settings_throttle(self.limits.settings.clone())
    }

    pub fn sign_in_service(&self) -> butterfly_core::sign_in::SignInService {
        butterfly_core::sign_in::SignInService::new(
            self.store.clone(),
            self.secrets.clone(),
            self.idp.clone(),
            self.clock.clone(),
            self.sso_policy.clone(),
        )
    }

    pub fn session_service(&self) -> butterfly_core::sessions::SessionService {
        butterfly_core::sessions::SessionService::new(
            self.store.clone(),
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
            by_address: self.limits.by_address.clone(),
        }
    }

    pub fn domain_service(&self) -> butterfly_core::domain::DomainService {
        butterfly_core::domain::DomainService::new(self.store.clone(), self.dns.clone(), self.clock.clone())
            .with_throttle(self.limits.settings.clone())
    }

    pub fn admin_state(&self) -> admin::AdminState {
        admin::AdminState {
            sso: std::sync::Arc::new(self.sso_settings_service()),
            sessions: std::sync::Arc::new(self.session_service()),
            sign_in: std::sync::Arc::new(self.sign_in_service()),
            domains: std::sync::Arc::new(self.domain_service()),
            csrf: self.csrf.clone(),
            tokens: std::sync::Arc::new(butterfly_core::scim_tokens::ScimTokenService::new(
                self.store.clone(),
                self.clock.clone(),
            )),
            team: std::sync::Arc::new(butterfly_core::team::TeamService::new(self.store.clone(), self.clock.clone())),
            audit: std::sync::Arc::new(butterfly_core::audit::AuditTrail::new(self.store.clone())),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
        }
    }

    pub fn setup_state(&self) -> setup::SetupState {
        setup::SetupState {
            service: std::sync::Arc::new(butterfly_core::setup_link::SetupLinkService::new(
                self.store.clone(),
                self.clock.clone(),
                self.sso_policy.absolute_secs,
            )),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
            by_address: self.limits.by_address.clone(),
        }
    }

    pub fn console_state(&self) -> console::ConsoleState {
        console::ConsoleState {
            sso: std::sync::Arc::new(self.sso_settings_service()),
            sessions: std::sync::Arc::new(self.session_service()),
            sign_in: std::sync::Arc::new(self.sign_in_service()),
            domains: std::sync::Arc::new(self.domain_service()),
            tokens: std::sync::Arc::new(butterfly_core::scim_tokens::ScimTokenService::new(
                self.store.clone(),
                self.clock.clone(),
            )),
            team: std::sync::Arc::new(butterfly_core::team::TeamService::new(self.store.clone(), self.clock.clone())),
            audit: std::sync::Arc::new(butterfly_core::audit::AuditView::new(self.store.clone(), self.store.clone())),
            csrf: self.csrf.clone(),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
        }
    }

    pub fn sso_state(&self) -> sso::SsoState {
        sso::SsoState {
            sign_in: std::sync::Arc::new(self.sign_in_service()),
            sessions: std::sync::Arc::new(self.session_service()),
            base_url: self.base_url.clone(),
            cookies: self.cookies,
            csrf: self.csrf.clone(),
            by_address: self.limits.by_address.clone(),
        }
    }
}

/// Every router of the service over one store: what the local stack serves on one port, and
/// what the test harness spawns. Each Lambda serves one of the routers instead. `cursor_key`
/// signs SCIM paging cursors (only the SCIM routes page with it).
pub fn app(parts: &AppParts, cursor_key: butterfly_core::scim::cursor::CursorKey) -> Router {
    let scim_users =
        scim_state(parts.store.clone(), parts.clock.clone(), cursor_key, parts.base_url.clone(), parts.limits.scim);
    let sso_state = parts.sso_state();
    with_common_layers(
        scim_router(scim_users)
            .merge(sso::login_router(sso_state.clone()))
            .merge(sso::callback_router(sso_state.clone()))
            .merge(sso::session_router(sso_state))
            .merge(logout::logout_router(parts.logout_state()))
            .merge(admin::token_rotation_router(parts.admin_state()))
            .merge(admin::admin_router(parts.admin_state()))
            .merge(setup::setup_router(parts.setup_state()))
            .merge(console::console_router(parts.console_state())),
    )
}
