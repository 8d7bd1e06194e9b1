//! The callers, as extractors: a handler names who may call it in its signature and gets a
//! typed caller, or the request is refused with the route's [`ApiError`] before the handler
//! runs. Cookies are read with the `cookie` crate; JSON bodies are parsed here.

use crate::admin::AdminState;
use crate::error::{ApiError, OAuth, Scim};
use crate::scim::ScimState;
use crate::sso::{from_this_site, SsoState, CSRF_SESSION};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use butterfly_core::ids::TenantId;
use butterfly_core::role::Permission;
use butterfly_core::scim_users::Caller;
use butterfly_core::sessions::SignedInUser;
use butterfly_core::token::{ScimToken, Secret};
use butterfly_core::user::User;
use cookie::Cookie;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A cookie's value from the request's `Cookie` headers (the first of that name; quotes
/// around a value are not part of it).
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value_trimmed().to_string())
}

/// The SCIM token of the `Authorization` header, for the SCIM routes that check it together with
/// the user they touch (one store round trip). A missing or malformed header is a 401 here.
pub struct PresentedToken(pub ScimToken);

impl<S: Send + Sync> FromRequestParts<S> for PresentedToken {
    type Rejection = ApiError<Scim>;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        Ok(PresentedToken(ScimToken::from_authorization(header)?))
    }
}

/// The SCIM client (Okta), authenticated by its bearer token.
pub struct ScimCaller(pub Caller);

impl FromRequestParts<ScimState> for ScimCaller {
    type Rejection = ApiError<Scim>;

    async fn from_request_parts(parts: &mut Parts, state: &ScimState) -> Result<Self, Self::Rejection> {
        let PresentedToken(token) = PresentedToken::from_request_parts(parts, state).await?;
        Ok(ScimCaller(state.service.authenticate(&token).await?))
    }
}

/// A browser with a live session: the user, their tenant, and the session's CSRF token (for the
/// forms of the page and the admin API's writes).
pub struct SignedIn {
    pub who: SignedInUser,
    pub csrf: Secret,
}

impl FromRequestParts<SsoState> for SignedIn {
    type Rejection = ApiError<OAuth>;

    async fn from_request_parts(parts: &mut Parts, state: &SsoState) -> Result<Self, Self::Rejection> {
        let cookie = read_cookie(&parts.headers, &state.cookies.session_name());
        let who = state.sessions.authenticate(cookie.as_deref()).await?;
        let csrf = state.csrf.token(cookie.as_deref().unwrap_or_default(), CSRF_SESSION);
        Ok(SignedIn { who, csrf })
    }
}

/// A permission a route requires, as a type (so a handler's signature says it).
pub trait Requires: Send + Sync + 'static {
    const PERMISSION: Permission;
}

/// Requires [`Permission::ManageSsoScim`].
pub struct ManageSsoScim;
impl Requires for ManageSsoScim {
    const PERMISSION: Permission = Permission::ManageSsoScim;
}

/// Requires [`Permission::ManageTeam`].
pub struct ManageTeam;
impl Requires for ManageTeam {
    const PERMISSION: Permission = Permission::ManageTeam;
}

/// Requires [`Permission::ViewAuditTrail`].
pub struct ViewAuditTrail;
impl Requires for ViewAuditTrail {
    const PERMISSION: Permission = Permission::ViewAuditTrail;
}

/// A signed-in member whose role grants `P`. For writes, also the CSRF defences: a
/// same-site request (`Sec-Fetch-Site`/`Origin`) carrying the session's token in
/// `X-CSRF-Token`.
pub struct Member<P> {
    pub tenant: TenantId,
    pub user: User,
    permission: PhantomData<P>,
}

impl<P: Requires> FromRequestParts<AdminState> for Member<P> {
    type Rejection = ApiError<OAuth>;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        let cookie = read_cookie(&parts.headers, &state.cookies.session_name());
        let (session, user) = state.sessions.authenticate_member(cookie.as_deref()).await?;
        let role = user.effective_role();
        if !role.can(P::PERMISSION) {
            return Err(ApiError::refused(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                format!("your role {} does not allow this", role.as_str()),
            ));
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            if !from_this_site(&parts.headers, &state.base_url.origin(&parts.headers)) {
                return Err(ApiError::refused(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "Request refused",
                    "cross-origin request refused",
                ));
            }
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !state.csrf.verify(cookie.as_deref().unwrap_or_default(), CSRF_SESSION, sent) {
                return Err(ApiError::refused(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "Request refused",
                    "missing or wrong X-CSRF-Token (GET /me returns it)",
                ));
            }
        }
        Ok(Member { tenant: session.tenant, user, permission: PhantomData })
    }
}

/// A JSON request body as `T` (any content type; an empty body reads as `{}`), refused with a
/// 400 that says what did not parse.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError<OAuth>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::invalid_request("the request body could not be read"))?;
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
        serde_json::from_slice(body).map(JsonBody).map_err(|e| ApiError::invalid_request(format!("bad JSON: {e}")))
    }
}
