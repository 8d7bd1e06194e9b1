//! The owner's setup link (`crates/core/src/setup_link.rs`): `GET /console/setup/{link}` shows
//! one button and changes nothing (link scanners and prefetchers open links; they must not use
//! them up); `POST /console/setup` with the form field `link` uses it and signs the owner in, as
//! a super_admin, with the same session cookie as a sign-in through the provider.
//!
//! The POST carries the link itself, which is its proof (a forged cross-site POST would need a
//! live link); it must also come from this site like every other form post. Every link that
//! does not work gets the same page, whatever the reason. Both routes are anonymous, so they are
//! limited per client address; every answer is `no-store` with no referrer, and this service's
//! logs never show the path with the link ([`loggable_path`]; API Gateway's own access log
//! records the path, see `docs/security.md`).

use crate::error::{ApiError, ApiResult, Page};
use crate::scim::BaseUrl;
use crate::sso::{add_cookie, esc, from_this_site, html, page, redirect, CookiePolicy};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use butterfly_core::setup_link::{SetupLink, SetupLinkService, SetupRefusal, SETUP_LINK_PREFIX, SETUP_LINK_TTL_SECS};
use std::sync::Arc;

/// Where the browser goes once the link has signed the owner in: the console's first page.
pub const CONSOLE_HOME: &str = "/console";
/// The path a setup link is opened at, followed by the link.
pub const SETUP_PATH: &str = "/console/setup";

/// What the setup routes need.
#[derive(Clone)]
pub struct SetupState {
    pub service: Arc<SetupLinkService>,
    pub base_url: BaseUrl,
    pub cookies: CookiePolicy,
    /// The per-client-address limit of the anonymous endpoints.
    pub by_address: Arc<crate::limits::KeyedThrottle>,
}

/// `GET /console/setup/{link}`, `POST /console/setup`.
pub fn setup_router(state: SetupState) -> Router {
    Router::new()
        .route("/console/setup/{link}", get(setup_page))
        .route(SETUP_PATH, post(use_link))
        .route_layer(crate::limits::by_address(state.by_address.clone()))
        .with_state(state)
}

/// The URL of a setup link at the service reached at `base` (no trailing slash).
pub fn setup_link_url(base: &str, link: &SetupLink) -> String {
    format!("{base}{SETUP_PATH}/{}", link.secret().expose())
}

/// The path as logs show it: a setup link's path without the link — and any other path that
/// carries something shaped like a link (`/console//setup/…`, `/Console/setup/…`, an encoded
/// slash: they answer 404, but the secret in them is as live as in the real path).
pub fn loggable_path(path: &str) -> &str {
    let carries_a_link =
        path.as_bytes().windows(SETUP_LINK_PREFIX.len()).any(|w| w.eq_ignore_ascii_case(SETUP_LINK_PREFIX.as_bytes()));
    match path.strip_prefix(SETUP_PATH) {
        Some(rest) if rest.starts_with('/') => "/console/setup/{link}",
        _ if carries_a_link => "{a path carrying a setup link}",
        _ => path,
    }
}

/// The one answer to a link that does not work: unknown, used, expired or another tenant's.
fn invalid_link() -> ApiError<Page> {
    ApiError::refused(
        StatusCode::BAD_REQUEST,
        "invalid_link",
        "Setup link not valid",
        "This setup link has expired, was already used, or is not a Butterfly setup link. Ask Butterfly support for \
         a new one.",
    )
}

/// A core refusal of the setup routes, as a page.
fn refusal(e: SetupRefusal) -> ApiError<Page> {
    match e {
        SetupRefusal::InvalidLink => invalid_link(),
        SetupRefusal::OwnerDeactivated => ApiError::refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Account deactivated",
            "The account of this setup link's owner is deactivated. Ask your identity provider's administrator to \
             restore it.",
        ),
        SetupRefusal::Store(e) => e.into(),
    }
}

/// The page behind a link: what it does, and the one button that does it. Only a link of our
/// shape is put in the form (anything else gets the invalid-link page), and the store is not
/// asked, so this page tells nothing about whether the link works.
async fn setup_page(link: Result<Path<String>, PathRejection>) -> ApiResult<Page> {
    let Path(link) = link.map_err(|_| invalid_link())?;
    let link = SetupLink::parse(&link).ok_or_else(invalid_link)?;
    let body = format!(
        "<h1>Set up Butterfly</h1>\
         <p>This one-time link signs you in to Butterfly's console as your organisation's owner, with the \
         <strong>super_admin</strong> role, so that you can connect your identity provider and invite your team.</p>\
         <p>It works once, and expires {} hours after it was issued.</p>\
         <form method=\"post\" action=\"{SETUP_PATH}\"><input type=\"hidden\" name=\"link\" value=\"{}\">\
         <button type=\"submit\" id=\"continue\">Continue to the console</button></form>",
        SETUP_LINK_TTL_SECS / 3600,
        esc(link.secret().expose())
    );
    Ok(html(StatusCode::OK, page("Set up Butterfly", &body)))
}

/// `POST /console/setup` (`link`): uses the link, signs the owner in, goes to the console.
async fn use_link(State(state): State<SetupState>, headers: HeaderMap, body: Bytes) -> ApiResult<Page> {
    if !from_this_site(&headers, &state.base_url.origin(&headers)) {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "Request refused",
            "This request came from another site. Open your setup link again and use its button.",
        ));
    }
    // The last `link` field, as every other form here reads a repeated field.
    let link = form_urlencoded::parse(&body).filter(|(k, _)| k == "link").last().map(|(_, v)| v.into_owned());
    let signed_in = state.service.use_link(link.as_deref().unwrap_or("")).await.map_err(refusal)?;
    tracing::info!(tenant = %signed_in.user.tenant, user = %signed_in.user.id, created = signed_in.created,
                   "signed in with a setup link");
    let mut resp = redirect(CONSOLE_HOME);
    add_cookie(
        &mut resp,
        state.cookies.set(&state.cookies.session_name(), signed_in.session_secret.expose(), signed_in.max_age_secs),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_path_is_logged_without_its_link() {
        assert_eq!(loggable_path("/console/setup/bfy_setup_abc"), "/console/setup/{link}");
        assert_eq!(loggable_path("/console/setup/x/y"), "/console/setup/{link}");
        assert_eq!(loggable_path("/console/setup"), "/console/setup");
        assert_eq!(loggable_path("/console/setupx"), "/console/setupx");
        assert_eq!(loggable_path("/scim/v2/Users"), "/scim/v2/Users");
        // Not the route, but the link is in them all the same.
        for p in [
            "/console//setup/bfy_setup_x_y",
            "/Console/setup/bfy_setup_x",
            "/console/setup%2Fbfy_setup_x",
            "/a/BFY_SETUP_x",
        ] {
            assert_eq!(loggable_path(p), "{a path carrying a setup link}", "{p}");
        }
    }
}
