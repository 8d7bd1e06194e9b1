//! The one error of the HTTP layer. Every handler answers `Result<Response, ApiError<R>>`: what
//! went wrong is the core's error (`Error`, `SsoError`, `LogoutError`) or a refusal made at the
//! edge (CSRF, a role, a body that is not JSON); `R` is how the route speaks, and the one
//! `IntoResponse` renders it that way:
//! - [`Scim`]: RFC 7644 §3.12 error JSON (`/scim/v2`, Okta's client);
//! - [`OAuth`]: RFC 6749-style `{"error", "error_description"}` JSON, never stored (admin API,
//!   `/me`, the lookup and logout endpoints);
//! - [`Page`]: a readable HTML page (the browser's sign-in flow).
//!
//! Each rendering has one table from error to answer, below. Texts are our words: what a store,
//! a provider or a request said goes to the log (bounded, with the request id), never to the
//! caller, except the SCIM and settings validation messages, which describe the caller's own
//! input.

use crate::auth_response::oauth_error;
use crate::wire::scim_response;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use butterfly_core::revocation::LogoutError;
use butterfly_core::scim::ERROR_SCHEMA;
use butterfly_core::sign_in::user_message;
use butterfly_core::sso::SsoError;
use butterfly_core::Error;
use serde_json::json;
use std::borrow::Cow;
use std::marker::PhantomData;

/// What went wrong, whatever the route.
#[derive(Debug)]
pub enum Failure {
    Domain(Error),
    Sso(SsoError),
    Logout(LogoutError),
    /// Refused at the edge before any use case ran.
    Refused(Refusal),
}

/// A refusal made by the HTTP layer itself.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// The OAuth-style `error` code.
    pub code: &'static str,
    /// The heading of the page, in the browser.
    pub title: &'static str,
    pub message: Cow<'static, str>,
    /// Seconds after which a retry may succeed (a `Retry-After` header), for refusals that pass.
    pub retry_after: Option<u32>,
}

/// How a route renders its errors (see the module doc).
pub trait Rendering: Send + 'static {
    fn render(failure: Failure) -> Response;
}

/// SCIM error JSON.
#[derive(Debug)]
pub enum Scim {}
/// OAuth-style JSON.
#[derive(Debug)]
pub enum OAuth {}
/// An HTML page.
#[derive(Debug)]
pub enum Page {}

/// The error of every handler, rendered as `R`.
pub struct ApiError<R> {
    failure: Failure,
    rendering: PhantomData<fn() -> R>,
}

/// What a handler returns.
pub type ApiResult<R> = Result<Response, ApiError<R>>;

impl<R> std::fmt::Debug for ApiError<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure.fmt(f)
    }
}

impl<R> ApiError<R> {
    fn new(failure: Failure) -> Self {
        ApiError { failure, rendering: PhantomData }
    }

    /// A refusal at the edge: `title` heads the page in the browser, `code` is the OAuth code.
    pub fn refused(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError::new(Failure::Refused(Refusal { status, code, title, message: message.into(), retry_after: None }))
    }

    /// A 503 that says only "try again" (after `retry_after_secs`): for an anonymous route
    /// whose failure is not the caller's to know about. Log what happened before answering it.
    pub fn try_again_later(retry_after_secs: u32) -> Self {
        ApiError::new(Failure::Refused(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            title: "Try again later",
            message: "try again".into(),
            retry_after: Some(retry_after_secs.max(1)),
        }))
    }

    /// A client error with the `invalid_request` code.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::refused(StatusCode::BAD_REQUEST, "invalid_request", "Request refused", message)
    }

    /// The same failure, rendered another way (a route that answers JSON and pages).
    pub fn rendered_as<T>(self) -> ApiError<T> {
        ApiError::new(self.failure)
    }

    /// Whether the caller has no valid session (some pages answer it with a redirect).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self.failure, Failure::Sso(SsoError::Unauthenticated))
    }
}

impl<R> From<Error> for ApiError<R> {
    fn from(e: Error) -> Self {
        ApiError::new(Failure::Domain(e))
    }
}

impl<R> From<SsoError> for ApiError<R> {
    fn from(e: SsoError) -> Self {
        match e {
            // One vocabulary for the store's failures, whichever service reported them.
            SsoError::Store(e) => ApiError::new(Failure::Domain(e)),
            e => ApiError::new(Failure::Sso(e)),
        }
    }
}

impl<R> From<LogoutError> for ApiError<R> {
    fn from(e: LogoutError) -> Self {
        ApiError::new(Failure::Logout(e))
    }
}

impl<R: Rendering> IntoResponse for ApiError<R> {
    fn into_response(self) -> Response {
        R::render(self.failure)
    }
}

// ---- what is logged ------------------------------------------------------------------------

/// Logs what the caller is not told: a store's or a provider's words, a refused sign-in's
/// reason. Returns nothing: every rendering calls it once.
fn log(failure: &Failure) {
    match failure {
        Failure::Domain(Error::Store(m)) => tracing::error!(error = %m, "store failure"),
        // What the store adapter said (operation, SDK error, endpoint) is for the log.
        Failure::Domain(Error::Unavailable { message, .. }) => tracing::warn!(error = %message, "store unavailable"),
        Failure::Domain(_) | Failure::Refused(_) => {}
        Failure::Sso(e) => {
            let reason = e.reason();
            match e {
                SsoError::ProviderUnavailable(m) => {
                    tracing::warn!(reason, error = %m, "identity provider unreachable")
                }
                SsoError::Settings(m) => tracing::warn!(reason, error = %m, "sign-in impossible: SSO settings"),
                SsoError::Rejected { detail, .. } => tracing::info!(reason, detail = %detail, "sign-in refused"),
                _ => tracing::info!(reason, "sign-in refused"),
            }
        }
        // A refused logout may be a lost revocation: say so loudly.
        Failure::Logout(LogoutError::Unavailable(m)) => {
            tracing::error!(error = %m, "logout could not be processed")
        }
        Failure::Logout(e) => tracing::warn!(error = %e, "logout refused"),
    }
}

fn retry_after(failure: &Failure) -> Option<u32> {
    match failure {
        Failure::Domain(Error::Unavailable { retry_after_secs, .. } | Error::RateLimited { retry_after_secs, .. }) => {
            Some((*retry_after_secs).max(1))
        }
        Failure::Sso(SsoError::Throttled(wait)) => Some((*wait).max(1)),
        Failure::Logout(LogoutError::Unavailable(_)) => Some(5),
        Failure::Refused(r) => r.retry_after,
        _ => None,
    }
}

fn with_retry_after(mut resp: Response, failure: &Failure) -> Response {
    if let Some(v) = retry_after(failure).and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The detail of every 503 for an unavailable store: our words only.
pub fn unavailable_detail(retry_after_secs: u32) -> String {
    format!("the service is temporarily unavailable; retry after {} seconds", retry_after_secs.max(1))
}

const INTERNAL: &str = "internal error; the request id in x-request-id identifies it in our logs";

// ---- SCIM ----------------------------------------------------------------------------------

/// The status of a domain error on a SCIM route (RFC 7644 §3.12).
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::InvalidValue(_)
        | Error::InvalidSyntax(_)
        | Error::InvalidFilter(_)
        | Error::InvalidPath(_)
        | Error::NoTarget(_)
        | Error::Mutability(_)
        | Error::InvalidCursor(_)
        | Error::ExpiredCursor(_) => StatusCode::BAD_REQUEST,
        Error::Uniqueness(_) | Error::Taken(_) | Error::Conflict(_) => StatusCode::CONFLICT,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn scim_body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> serde_json::Value {
    let mut v = json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let (Some(t), Some(o)) = (scim_type, v.as_object_mut()) {
        o.insert("scimType".into(), json!(t));
    }
    v
}

/// The 500 of a panic caught at the edge (SCIM's shape: it is the most demanding client).
pub fn internal_error_response() -> Response {
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    scim_response(status, &scim_body(status, None, INTERNAL))
}

impl Rendering for Scim {
    fn render(failure: Failure) -> Response {
        log(&failure);
        let (status, scim_type, detail) = match &failure {
            Failure::Domain(e @ Error::Store(_)) => (status_of(e), None, INTERNAL.to_string()),
            Failure::Domain(e @ Error::Unavailable { retry_after_secs, .. }) => {
                (status_of(e), None, unavailable_detail(*retry_after_secs))
            }
            Failure::Domain(e) => (status_of(e), e.scim_type(), e.to_string()),
            Failure::Refused(r) => (r.status, None, r.message.to_string()),
            // Not produced on SCIM routes; rendered plainly should that change.
            Failure::Sso(_) | Failure::Logout(_) => (StatusCode::INTERNAL_SERVER_ERROR, None, INTERNAL.to_string()),
        };
        let mut resp = scim_response(status, &scim_body(status, scim_type, &detail));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        with_retry_after(resp, &failure)
    }
}

// ---- OAuth-style JSON ----------------------------------------------------------------------

impl Rendering for OAuth {
    fn render(failure: Failure) -> Response {
        log(&failure);
        let too_many =
            (StatusCode::TOO_MANY_REQUESTS, "slow_down", Cow::from("too many requests; retry after the delay"));
        let (status, code, description): (StatusCode, &str, Cow<'_, str>) = match &failure {
            Failure::Refused(r) => (r.status, r.code, Cow::from(r.message.as_ref())),
            Failure::Domain(e) => match e {
                Error::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", INTERNAL.into()),
                Error::Unavailable { retry_after_secs, .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    unavailable_detail(*retry_after_secs).into(),
                ),
                Error::RateLimited { .. } => too_many.clone(),
                Error::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.into()),
                Error::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "invalid_token", m.into()),
                // These APIs take no If-Match: a lost optimistic race is a conflict.
                Error::Conflict(m) | Error::Uniqueness(m) | Error::PreconditionFailed(m) => {
                    (StatusCode::CONFLICT, "conflict", m.into())
                }
                Error::Taken(t) => (StatusCode::CONFLICT, "conflict", t.to_string().into()),
                Error::NotImplemented(m) => (StatusCode::NOT_IMPLEMENTED, "not_implemented", m.into()),
                e => (StatusCode::BAD_REQUEST, "invalid_request", e.to_string().into()),
            },
            Failure::Sso(e) => match e {
                SsoError::Unauthenticated => {
                    (StatusCode::UNAUTHORIZED, "unauthenticated", "no valid session; sign in at /login".into())
                }
                SsoError::Throttled(_) => too_many.clone(),
                SsoError::ProviderUnavailable(_) => (
                    StatusCode::BAD_GATEWAY,
                    "temporarily_unavailable",
                    "the identity provider did not answer; try again".into(),
                ),
                SsoError::Deactivated => (StatusCode::FORBIDDEN, "forbidden", e.to_string().into()),
                // Validation of the caller's own input (settings, an email, a parameter), in our words.
                e => (StatusCode::BAD_REQUEST, "invalid_request", e.to_string().into()),
            },
            Failure::Logout(e) => match e {
                LogoutError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.into()),
                LogoutError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "invalid_token", m.into()),
                LogoutError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.into()),
                LogoutError::Unprocessable(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "logout_failed", "the sessions could not be ended".into())
                }
                LogoutError::Unavailable(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later".into())
                }
            },
        };
        let mut resp = oauth_error(status, code, &description);
        if matches!(failure, Failure::Logout(LogoutError::Unauthorized(_))) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        with_retry_after(resp, &failure)
    }
}

// ---- pages -----------------------------------------------------------------------------------

/// What a page says for a failure: the table the browser renderings share.
enum PageAnswer<'a> {
    /// Something on our side (a store, a logout): a page that says "try again".
    Trouble(StatusCode),
    /// Too many requests: wait this many seconds.
    TooMany(u32),
    Shown(StatusCode, &'a str, Cow<'a, str>),
}

/// `domain_words`: whether the core's refusals are shown in their words — on the console, to a
/// signed-in member about their own form; never on the anonymous pages (sign-in, setup link),
/// which answer "try again" as for any failure on our side.
fn page_answer(failure: &Failure, domain_words: bool) -> PageAnswer<'_> {
    match failure {
        Failure::Refused(r) => PageAnswer::Shown(r.status, r.title, Cow::from(r.message.as_ref())),
        Failure::Domain(Error::Unavailable { .. }) => PageAnswer::Trouble(StatusCode::SERVICE_UNAVAILABLE),
        Failure::Domain(Error::RateLimited { retry_after_secs, .. }) => PageAnswer::TooMany((*retry_after_secs).max(1)),
        Failure::Domain(Error::Store(_)) | Failure::Logout(_) => PageAnswer::Trouble(StatusCode::INTERNAL_SERVER_ERROR),
        Failure::Domain(_) if !domain_words => PageAnswer::Trouble(StatusCode::INTERNAL_SERVER_ERROR),
        // What the member asked for cannot be done (the console's forms): our words.
        Failure::Domain(e @ Error::NotFound(_)) => {
            PageAnswer::Shown(StatusCode::NOT_FOUND, "Not found", e.to_string().into())
        }
        Failure::Domain(e @ Error::Unauthorized(_)) => {
            PageAnswer::Shown(StatusCode::UNAUTHORIZED, "Not signed in", e.to_string().into())
        }
        Failure::Domain(
            e @ (Error::Conflict(_) | Error::Uniqueness(_) | Error::Taken(_) | Error::PreconditionFailed(_)),
        ) => PageAnswer::Shown(StatusCode::CONFLICT, "Request refused", e.to_string().into()),
        Failure::Domain(e @ Error::NotImplemented(_)) => {
            PageAnswer::Shown(StatusCode::NOT_IMPLEMENTED, "Not available", e.to_string().into())
        }
        Failure::Domain(e) => PageAnswer::Shown(StatusCode::BAD_REQUEST, "Request refused", e.to_string().into()),
        Failure::Sso(e) => match e {
            SsoError::Throttled(wait) => PageAnswer::TooMany(*wait),
            SsoError::ProviderUnavailable(_) => PageAnswer::Shown(
                StatusCode::BAD_GATEWAY,
                "Identity provider unreachable",
                "Your organisation's identity provider did not answer. Please try again in a moment.".into(),
            ),
            SsoError::Deactivated => PageAnswer::Shown(
                StatusCode::FORBIDDEN,
                "Account deactivated",
                "Your Butterfly account is deactivated. Ask your administrator to restore your access.".into(),
            ),
            SsoError::LinkRefused(m) => {
                PageAnswer::Shown(StatusCode::FORBIDDEN, "Account not linked", format!("{m}.").into())
            }
            SsoError::Rejected { detail, .. } => PageAnswer::Shown(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                format!("{detail}. Please start again.").into(),
            ),
            SsoError::UnknownIssuer => PageAnswer::Shown(
                StatusCode::BAD_REQUEST,
                "Unknown identity provider",
                "This identity provider is not connected to Butterfly, or single sign-on is turned off.".into(),
            ),
            SsoError::Settings(_) => PageAnswer::Shown(
                StatusCode::CONFLICT,
                "Single sign-on is not ready",
                "Your organisation's single sign-on settings are incomplete. Ask your administrator.".into(),
            ),
            SsoError::Unauthenticated => PageAnswer::Shown(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in has expired or was already answered. Sign in again.".into(),
            ),
            other => PageAnswer::Shown(StatusCode::BAD_REQUEST, "Sign-in refused", user_message(other).into()),
        },
    }
}

const TROUBLE: &str = "Something went wrong on our side. Please try again.";

impl Rendering for Page {
    fn render(failure: Failure) -> Response {
        log(&failure);
        match page_answer(&failure, false) {
            PageAnswer::Trouble(status) => crate::sso::error_page(status, "Sign-in failed", TROUBLE),
            PageAnswer::TooMany(wait) => crate::limits::too_many(wait, true),
            PageAnswer::Shown(status, title, message) => crate::sso::error_page(status, title, &message),
        }
    }
}

/// An HTML page of the admin console (its layout and strict CSP).
#[derive(Debug)]
pub enum ConsolePage {}

impl Rendering for ConsolePage {
    fn render(failure: Failure) -> Response {
        log(&failure);
        match page_answer(&failure, true) {
            PageAnswer::Trouble(status) => crate::console::error_page(status, "Something went wrong", TROUBLE),
            PageAnswer::TooMany(wait) => crate::limits::too_many(wait, true),
            PageAnswer::Shown(status, title, message) => crate::console::error_page(status, title, &message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_WORDS: &str = "dynamodb.eu-west-1 ThrottlingException arn:aws:secret";

    async fn answer<R: Rendering>(e: ApiError<R>) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = e.into_response();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn failures() -> Vec<fn() -> Failure> {
        vec![
            || Failure::Domain(Error::store(SECRET_WORDS)),
            || Failure::Domain(Error::Unavailable { message: SECRET_WORDS.into(), retry_after_secs: 3 }),
            || Failure::Sso(SsoError::ProviderUnavailable(SECRET_WORDS.into())),
            || Failure::Sso(SsoError::Rejected { reason: "nonce", detail: "the nonce does not match".into() }),
            || Failure::Logout(LogoutError::Unavailable(SECRET_WORDS.into())),
            || Failure::Logout(LogoutError::Unprocessable(SECRET_WORDS.into())),
        ]
    }

    /// Every rendering of every failure whose text came from a store or a provider answers in
    /// our words only.
    #[tokio::test]
    async fn what_a_store_or_provider_said_is_never_answered() {
        for make in failures() {
            for (status, _, body) in [
                answer(ApiError::<Scim>::new(make())).await,
                answer(ApiError::<OAuth>::new(make())).await,
                answer(ApiError::<Page>::new(make())).await,
                answer(ApiError::<ConsolePage>::new(make())).await,
            ] {
                assert!(!body.contains("ThrottlingException") && !body.contains("arn:aws"), "{status}: {body}");
                assert!(status.is_client_error() || status.is_server_error(), "{status}");
            }
        }
    }

    /// The core's refusals carry what a caller sent (a value, a name): an anonymous page never
    /// shows them; the console shows a member the refusal of their own form.
    #[tokio::test]
    async fn anonymous_pages_never_show_the_core_s_words() {
        let refusal = || Error::InvalidValue(format!("{SECRET_WORDS} is not valid"));
        let (s, _, b) = answer(ApiError::<Page>::from(refusal())).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!b.contains("ThrottlingException") && b.contains("Please try again"), "{b}");
        let (s, _, b) = answer(ApiError::<ConsolePage>::from(refusal())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(b.contains("is not valid"), "{b}");
    }

    /// One table per rendering: the status, the code and the headers a client relies on.
    #[tokio::test]
    async fn each_rendering_answers_its_table() {
        let unavailable = || Error::Unavailable { message: "x".into(), retry_after_secs: 7 };
        let (s, h, b) = answer(ApiError::<Scim>::from(unavailable())).await;
        assert_eq!(
            (s, h.get(header::RETRY_AFTER).map(|v| v.as_bytes())),
            (StatusCode::SERVICE_UNAVAILABLE, Some(&b"7"[..]))
        );
        assert!(b.contains(ERROR_SCHEMA), "{b}");
        let (s, h, b) = answer(ApiError::<OAuth>::from(unavailable())).await;
        assert_eq!(
            (s, h.get(header::RETRY_AFTER).map(|v| v.as_bytes())),
            (StatusCode::SERVICE_UNAVAILABLE, Some(&b"7"[..]))
        );
        assert!(b.contains("\"error\":\"temporarily_unavailable\""), "{b}");
        assert_eq!(h.get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));
        let (s, _, b) = answer(ApiError::<Page>::from(unavailable())).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(b.starts_with("<!doctype html>") && b.contains("Please try again"), "{b}");

        let (s, h, b) = answer(ApiError::<Scim>::from(Error::Unauthorized("bad token".into()))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(h.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()), Some(&b"Bearer realm=\"scim\""[..]));
        assert!(b.contains("bad token"), "{b}");
        let (s, h, _) = answer(ApiError::<OAuth>::from(LogoutError::Unauthorized("no".into()))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(h.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()), Some(&b"Bearer error=\"invalid_token\""[..]));
        // The JSON APIs take no If-Match: a lost optimistic race is a conflict there, a 412 on SCIM.
        let race = || Error::PreconditionFailed("changed".into());
        assert_eq!(answer(ApiError::<OAuth>::from(race())).await.0, StatusCode::CONFLICT);
        assert_eq!(answer(ApiError::<Scim>::from(race())).await.0, StatusCode::PRECONDITION_FAILED);
        // A store failure reported through the SSO service is the store's answer, not a sign-in refusal.
        let (s, _, b) = answer(ApiError::<OAuth>::from(SsoError::Store(Error::store("x")))).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(b.contains("server_error"), "{b}");
        let (s, h, _) = answer(ApiError::<Page>::from(SsoError::Throttled(9))).await;
        assert_eq!(
            (s, h.get(header::RETRY_AFTER).map(|v| v.as_bytes())),
            (StatusCode::TOO_MANY_REQUESTS, Some(&b"9"[..]))
        );
        let (s, h, b) = answer(ApiError::<OAuth>::try_again_later(30)).await;
        assert_eq!(
            (s, h.get(header::RETRY_AFTER).map(|v| v.as_bytes())),
            (StatusCode::SERVICE_UNAVAILABLE, Some(&b"30"[..]))
        );
        assert!(b.contains("\"error_description\":\"try again\""), "{b}");
        let (s, _, b) =
            answer(ApiError::<Page>::refused(StatusCode::FORBIDDEN, "csrf", "Request refused", "<b>")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(b.contains("&lt;b&gt;") && !b.contains("<b>"), "page text is escaped: {b}");
    }
}
