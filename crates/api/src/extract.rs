//! The callers, as extractors: a handler names who may call it in its signature and gets a
//! typed caller, or the request is refused with the route's [`ApiError`] before the handler
//! runs. Cookies are read with the `cookie` crate; JSON bodies are parsed here.

use crate::admin::AdminState;
use crate::error::{ApiError, OAuth, Scim};
use crate::scim::BaseUrl;
use crate::scim::ScimState;
use crate::sso::{from_this_site, CookiePolicy, SsoState, CSRF_SESSION};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use butterfly_core::csrf::CsrfKey;
use butterfly_core::ids::TenantId;
use butterfly_core::role::{Permission, Role};
use butterfly_core::scim_users::Caller;
use butterfly_core::sessions::{SessionService, SignedInUser};
use butterfly_core::sso::SsoError;
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

/// What a route requires of a member's role, as a type (so a handler's signature says it).
pub trait Requires: Send + Sync + 'static {
    /// Whether `role` may use the route.
    fn allows(role: Role) -> bool;
}

/// Requires [`Permission::ManageSsoScim`].
pub struct ManageSsoScim;
impl Requires for ManageSsoScim {
    fn allows(role: Role) -> bool {
        role.can(Permission::ManageSsoScim)
    }
}

/// Requires [`Permission::ManageTeam`].
pub struct ManageTeam;
impl Requires for ManageTeam {
    fn allows(role: Role) -> bool {
        role.can(Permission::ManageTeam)
    }
}

/// Requires [`Permission::ViewAuditTrail`].
pub struct ViewAuditTrail;
impl Requires for ViewAuditTrail {
    fn allows(role: Role) -> bool {
        role.can(Permission::ViewAuditTrail)
    }
}

/// Any role: a signed-in, active member of the tenant (the console's overview).
pub struct AnyRole;
impl Requires for AnyRole {
    fn allows(_: Role) -> bool {
        true
    }
}

/// A signed-in member whose role grants `P`. For writes, also the CSRF defences: a
/// same-site request (`Sec-Fetch-Site`/`Origin`) carrying the session's token in
/// `X-CSRF-Token` (or, for the console's form posts, its `csrf` field).
pub struct Member<P> {
    pub tenant: TenantId,
    pub user: User,
    /// The session's CSRF token, for the forms of a page.
    pub csrf: Secret,
    permission: PhantomData<P>,
}

/// What a router state that admits members provides (the admin API, the console).
pub trait MemberGate: Send + Sync {
    fn sessions(&self) -> &SessionService;
    fn csrf_key(&self) -> &CsrfKey;
    fn base_url(&self) -> &BaseUrl;
    fn cookies(&self) -> &CookiePolicy;
}

/// Implements [`MemberGate`] for a router state with the fields `sessions`, `csrf`, `base_url`
/// and `cookies`.
macro_rules! member_gate {
    ($state:ty) => {
        impl $crate::extract::MemberGate for $state {
            fn sessions(&self) -> &butterfly_core::sessions::SessionService {
                &self.sessions
            }
            fn csrf_key(&self) -> &butterfly_core::csrf::CsrfKey {
                &self.csrf
            }
            fn base_url(&self) -> &$crate::scim::BaseUrl {
                &self.base_url
            }
            fn cookies(&self) -> &$crate::sso::CookiePolicy {
                &self.cookies
            }
        }
    };
}
pub(crate) use member_gate;

member_gate!(AdminState);

/// Where a write carries its CSRF token.
#[derive(Clone, Copy)]
pub enum CsrfFrom<'a> {
    /// The `X-CSRF-Token` header (scripts calling the admin API).
    Header,
    /// A form's `csrf` field (the console's forms, which work without JavaScript).
    Form(&'a str),
}

/// Why a member was not admitted.
#[derive(Debug)]
pub enum Denied {
    /// No valid session (or the session check failed).
    Session(SsoError),
    /// The member's role does not allow the route.
    Role { tenant: TenantId, user: Box<User> },
    /// A write from another site.
    CrossSite,
    /// A write without the session's CSRF token.
    Csrf,
}

/// Admits a member to a route requiring `P`: a live session, a role that allows it, and for
/// anything but `GET`/`HEAD` a same-site request with the session's CSRF token from `token`.
pub async fn admit<P: Requires, S: MemberGate>(
    parts: &Parts,
    state: &S,
    token: CsrfFrom<'_>,
) -> Result<Member<P>, Denied> {
    let cookie = read_cookie(&parts.headers, &state.cookies().session_name());
    let (session, user) = state.sessions().authenticate_member(cookie.as_deref()).await.map_err(Denied::Session)?;
    let role = user.effective_role();
    if !P::allows(role) {
        return Err(Denied::Role { tenant: session.tenant, user: Box::new(user) });
    }
    let cookie = cookie.unwrap_or_default();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        if !from_this_site(&parts.headers, &state.base_url().origin(&parts.headers)) {
            return Err(Denied::CrossSite);
        }
        let sent = match token {
            CsrfFrom::Form(t) => t,
            CsrfFrom::Header => parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or(""),
        };
        if !state.csrf_key().verify(&cookie, CSRF_SESSION, sent) {
            return Err(Denied::Csrf);
        }
    }
    let csrf = state.csrf_key().token(&cookie, CSRF_SESSION);
    Ok(Member { tenant: session.tenant, user, csrf, permission: PhantomData })
}

impl<P: Requires> FromRequestParts<AdminState> for Member<P> {
    type Rejection = ApiError<OAuth>;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, Self::Rejection> {
        admit(parts, state, CsrfFrom::Header).await.map_err(|denied| match denied {
            Denied::Session(e) => e.into(),
            Denied::Role { user, .. } => ApiError::refused(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                format!("your role {} does not allow this", user.effective_role().as_str()),
            ),
            Denied::CrossSite => {
                ApiError::refused(StatusCode::FORBIDDEN, "csrf", "Request refused", "cross-origin request refused")
            }
            Denied::Csrf => ApiError::refused(
                StatusCode::FORBIDDEN,
                "csrf",
                "Request refused",
                "missing or wrong X-CSRF-Token (GET /me returns it)",
            ),
        })
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
