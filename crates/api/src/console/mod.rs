//! The customer's admin console: server-rendered pages for a tenant's members — Overview,
//! Single Sign-On, SCIM provisioning, Team, Audit — over the same use cases as the admin API.
//!
//! Every page works without JavaScript; one static script only reveals copy buttons. Pages
//! carry a strict CSP (scripts and styles from this site only, nothing inline), no framing, no
//! referrer, and `no-store`. Every page follows the role matrix ([`Member`] with a
//! [`Requires`] type); every form posts the session's CSRF token in a `csrf` field and must
//! come from this site ([`Posted`]). Templates are maud: values are escaped by default.

mod audit;
mod layout;
mod overview;
mod scim;
mod sso;
mod team;

use crate::error::ApiError;
use crate::extract::{admit, CsrfFrom, Denied, Member, Requires};
use crate::scim::BaseUrl;
use crate::sso::{add_cookie, CookiePolicy};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use butterfly_core::audit::AuditView;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::domain::DomainService;
use butterfly_core::scim_tokens::ScimTokenService;
use butterfly_core::sessions::SessionService;
use butterfly_core::sign_in::SignInService;
use butterfly_core::sso::SsoError;
use butterfly_core::sso_settings::SsoSettingsService;
use butterfly_core::team::TeamService;
use std::sync::Arc;

pub use layout::Section;

/// What the console's pages are built from.
#[derive(Clone)]
pub struct ConsoleState {
    pub sso: Arc<SsoSettingsService>,
    pub sessions: Arc<SessionService>,
    pub sign_in: Arc<SignInService>,
    pub domains: Arc<DomainService>,
    pub tokens: Arc<ScimTokenService>,
    pub team: Arc<TeamService>,
    pub audit: Arc<AuditView>,
    pub csrf: CsrfKey,
    pub base_url: BaseUrl,
    pub cookies: CookiePolicy,
}

crate::extract::member_gate!(ConsoleState);

/// The console's content security policy: scripts and styles from this site only, nothing
/// inline, no plugins or frames. No `form-action`: browsers apply it to the redirects a form
/// post answers with, and two console forms must end at the identity provider (Test sign-in,
/// and Sign out with the provider's end-session URL); the forms themselves all post to this site.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /console` and the other pages, their forms, the CSV export and the two static files.
pub fn console_router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/sso", get(sso::page).post(sso::save))
        .route("/console/sso/domains/verify", post(sso::verify_domain))
        .route("/console/sso/test", post(sso::test_sign_in))
        .route("/console/sso/policy", post(sso::save_policy))
        .route("/console/scim", get(scim::page))
        .route("/console/scim/token", post(scim::rotate))
        .route("/console/team", get(team::page))
        .route("/console/team/{id}/role", post(team::change_role))
        .route("/console/audit", get(audit::page))
        .route("/console/audit.csv", get(audit::csv))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .with_state(state)
}

// ---- responses -------------------------------------------------------------------------------

/// An HTML page of the console, with its security headers.
pub(crate) fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // no-store, no referrer, nosniff.
    crate::auth_response::no_store(resp)
}

/// A `303 See Other` to a page of this site.
pub(crate) use crate::sso::redirect as see_other;

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", include_str!("static/console.css"))
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("static/console.js"))
}

/// A query string's value for `name` (the last one if repeated; empty counts as absent).
pub(crate) fn query_value(uri: &axum::http::Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(k, v)| k == name && !v.is_empty())
        .last()
        .map(|(_, v)| v.into_owned())
}

/// Percent-encodes a query value.
pub(crate) fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The console's error page (the [`crate::error::ConsolePage`] rendering).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    layout::bare(status, title, message)
}

// ---- who may open a page ---------------------------------------------------------------------

/// What a refused page answers: the sign-in page for a browser without a session (coming back
/// here afterwards), a 403 page naming who can grant access for a role that does not allow the
/// page, a refusal page for a write without its token or from another site.
async fn refusal(state: &ConsoleState, parts: &Parts, denied: Denied) -> Response {
    match denied {
        Denied::Session(SsoError::Unauthenticated) => {
            let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
            let back = if parts.method == axum::http::Method::GET { back } else { "/console" };
            let mut resp = see_other(&format!("/login?return_to={}", enc(back)));
            // A cookie that names no live session is dropped.
            add_cookie(&mut resp, state.cookies.set(&state.cookies.session_name(), "", 0));
            resp
        }
        Denied::Session(e) => ApiError::<crate::error::ConsolePage>::from(e).into_response(),
        Denied::Role { tenant, user } => {
            let names = match state.team.super_admins(&tenant).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "super_admins for a 403 page");
                    vec![]
                }
            };
            layout::forbidden(&user, &names)
        }
        Denied::CrossSite => {
            layout::refused("This request came from another site. Open the Butterfly console and try again there.")
        }
        Denied::Csrf => {
            layout::refused("This form has expired or did not come from the console. Reload the page and try again.")
        }
    }
}

impl<P: Requires> FromRequestParts<ConsoleState> for Member<P> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        match admit(parts, state, CsrfFrom::Header).await {
            Ok(m) => Ok(m),
            Err(denied) => Err(refusal(state, parts, denied).await),
        }
    }
}

/// A form post of a member whose role grants `P`: from this site, with the session's CSRF
/// token in the form's `csrf` field (`application/x-www-form-urlencoded`, 64 KiB at most).
pub struct Posted<P> {
    pub member: Member<P>,
    pub form: Form,
}

/// The fields of a posted form.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// A field's value (the last one if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A field's value, or empty.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

/// The largest form body the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

impl<P: Requires> FromRequest<ConsoleState> for Posted<P> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => return Err(layout::refused("The form was too large or could not be read.")),
        };
        let form = Form(form_urlencoded::parse(&bytes).into_owned().collect());
        match admit(&parts, state, CsrfFrom::Form(form.text("csrf"))).await {
            Ok(member) => Ok(Posted { member, form }),
            Err(denied) => Err(refusal(state, &parts, denied).await),
        }
    }
}
