//! The sign-in endpoints: the hosted login page and domain lookup, IdP-initiated login, the
//! authorize callback, and the session endpoints (`/me`, `/logout`, the signed-in page).
//! Three routers, one per Lambda: [`login_router`], [`callback_router`], [`session_router`].
//!
//! Every response here carries `Cache-Control: no-store`; pages also carry a strict CSP, no
//! referrer (the callback URL holds the code) and no framing.

use crate::auth_response::{json_response, no_store};
use crate::error::{ApiError, ApiResult, OAuth, Page};
use crate::extract::{read_cookie, SignedIn};
use crate::scim::BaseUrl;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::sessions::{SessionService, SignedInUser};
use butterfly_core::sign_in::{
    transaction_cookie_key, CallbackOutcome, CallbackParams, LoginStart, PendingSwitch, SignInService, TestReport,
};
use butterfly_core::sso::SsoError;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// How cookies are named and flagged. `secure` everywhere but a plain-http loopback local
/// stack, where browsers would drop `Secure` cookies and the `__Host-` prefix.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    fn prefix(&self) -> &'static str {
        if self.secure {
            "__Host-"
        } else {
            ""
        }
    }

    pub fn session_name(&self) -> String {
        format!("{}bfy_session", self.prefix())
    }

    pub fn transaction_name(&self, key: &str) -> String {
        format!("{}bfy_tx_{key}", self.prefix())
    }

    /// The cookie holding a provider-initiated sign-in that waits for the user's confirmation.
    pub fn pending_name(&self) -> String {
        format!("{}bfy_pending", self.prefix())
    }

    /// A `Set-Cookie` value: host-only, whole site, script-proof, not sent on cross-site posts.
    pub(crate) fn set(&self, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
        let cookie = cookie::Cookie::build((name, value))
            .path("/")
            .max_age(cookie::time::Duration::seconds(max_age))
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .secure(self.secure)
            .build();
        HeaderValue::from_str(&cookie.to_string()).ok()
    }

    fn clear(&self, name: &str) -> Option<HeaderValue> {
        self.set(name, "", 0)
    }
}

/// Whether a state-changing request may have come from a page of this site: a browser's
/// `Sec-Fetch-Site` must be `same-origin` or `none` (typed or bookmarked), else its `Origin`
/// must be this site. A cross-site form post (login CSRF, forced logout) is refused; clients
/// that are not browsers send neither header and are not affected.
pub fn from_this_site(headers: &HeaderMap, origin: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-site") {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => header("origin").is_none_or(|o| o == origin),
    }
}

/// The CSRF token purpose of the session's forms and API writes.
pub const CSRF_SESSION: &str = "session";
/// The CSRF token purpose of the account-switch confirmation form.
pub const CSRF_SWITCH: &str = "switch";

/// What the sign-in routers need.
#[derive(Clone)]
pub struct SsoState {
    pub sign_in: Arc<SignInService>,
    pub sessions: Arc<SessionService>,
    pub base_url: BaseUrl,
    pub cookies: CookiePolicy,
    pub csrf: CsrfKey,
    /// The per-client-address limit of the anonymous sign-in endpoints.
    pub by_address: Arc<crate::limits::KeyedThrottle>,
}

impl SsoState {
    fn origin(&self, headers: &HeaderMap) -> String {
        self.base_url.origin(headers)
    }

    fn redirect_uri(&self, headers: &HeaderMap) -> String {
        redirect_uri(&self.base_url, headers)
    }
}

// ---- responses ---------------------------------------------------------------------------

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    no_store(resp)
}

pub(crate) fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    no_store(resp)
}

pub(crate) fn add_cookie(resp: &mut Response, v: Option<HeaderValue>) {
    if let Some(v) = v {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1d2433}\
h1{font-size:1.5rem}label{display:block;margin:1rem 0 .3rem}input[type=email]{width:100%;padding:.5rem;font-size:1rem}\
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.msg{padding:.7rem;border-radius:4px;background:#fdecea}\
.ok{background:#e8f5e9}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}";

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>{t} · Butterfly</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        t = esc(title)
    )
}

fn login_page(message: Option<(&str, bool)>, email: &str, return_to: &str) -> String {
    let msg = match message {
        Some((m, ok)) => format!("<p class=\"msg{}\" role=\"alert\">{}</p>", if ok { " ok" } else { "" }, esc(m)),
        None => String::new(),
    };
    let rt = if return_to.is_empty() {
        String::new()
    } else {
        format!("<input type=\"hidden\" name=\"return_to\" value=\"{}\">", esc(return_to))
    };
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to Butterfly</h1>{msg}<form method=\"post\" action=\"/login\">\
             <label for=\"email\">Work email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{}\">{rt}\
             <button type=\"submit\">Continue</button></form>\
             <p>You will sign in with your organisation's identity provider.</p>",
            esc(email)
        ),
    )
}

/// A readable error page with a way back to the sign-in page.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(
        status,
        page(
            title,
            &format!(
                "<h1>{}</h1><p class=\"msg\">{}</p><p><a href=\"/login\">Back to sign-in</a></p>",
                esc(title),
                esc(message)
            ),
        ),
    )
}

/// A state-changing request that came from another site (see [`from_this_site`]).
fn cross_site<R>() -> ApiError<R> {
    ApiError::refused(
        StatusCode::FORBIDDEN,
        "invalid_request",
        "Request refused",
        "This request came from another site. Open Butterfly's sign-in page and try again there.",
    )
}

/// The cookie that binds a started login to this browser.
pub(crate) fn transaction_cookie(cookies: &CookiePolicy, start: &LoginStart) -> Option<HeaderValue> {
    cookies.set(&cookies.transaction_name(&start.cookie_key), start.binding.expose(), start.max_age_secs)
}

/// The redirect URI registered at the provider: one per deployment.
pub fn redirect_uri(base_url: &BaseUrl, headers: &HeaderMap) -> String {
    format!("{}/sso/callback", base_url.origin(headers))
}

/// The initiate login URI (OIDC Core §4) the provider's dashboard starts sign-ins at.
pub fn initiate_login_uri(base_url: &BaseUrl, headers: &HeaderMap) -> String {
    format!("{}/sso/initiate", base_url.origin(headers))
}

/// The redirect to the provider, with the transaction cookie.
fn start_response(state: &SsoState, start: LoginStart) -> Response {
    let mut resp = redirect(&start.authorize_url);
    add_cookie(&mut resp, transaction_cookie(&state.cookies, &start));
    resp
}

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

// ---- the login router: /login, /sso/lookup, /sso/initiate -----------------------------------

/// `GET /login`, `POST /login`, `POST /sso/lookup`, `GET|POST /sso/initiate`.
pub fn login_router(state: SsoState) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/sso/lookup", post(lookup))
        .route("/sso/initiate", get(initiate_get).post(initiate_post))
        .route_layer(crate::limits::by_address(state.by_address.clone()))
        .with_state(state)
}

async fn login_form(uri: axum::http::Uri) -> Response {
    let q = query_map(&uri);
    let msg = q.contains_key("signed_out").then_some(("You are signed out.", true));
    html(StatusCode::OK, login_page(msg, "", q.get("return_to").map(String::as_str).unwrap_or("")))
}

async fn login_submit(State(state): State<SsoState>, headers: HeaderMap, body: Bytes) -> ApiResult<Page> {
    if !from_this_site(&headers, &state.origin(&headers)) {
        return Err(cross_site());
    }
    let f = form(&body);
    let email = f.get("email").map(String::as_str).unwrap_or("").trim().to_string();
    let return_to = f.get("return_to").cloned().unwrap_or_default();
    // The form answers its own outcomes in place; the rest are error pages.
    Ok(match state.sign_in.start_by_email(&email, Some(&return_to), &state.redirect_uri(&headers)).await {
        Ok(start) => start_response(&state, start),
        Err(SsoError::NoSso) => html(
            StatusCode::OK,
            login_page(
                Some((
                    "Single sign-on is not set up for this email domain. Use the email address your \
                     organisation signs in with, or ask your administrator.",
                    false,
                )),
                &email,
                &return_to,
            ),
        ),
        Err(SsoError::InvalidInput(m)) => {
            html(StatusCode::BAD_REQUEST, login_page(Some((&m, false)), &email, &return_to))
        }
        Err(e) => return Err(e.into()),
    })
}

#[derive(Deserialize)]
struct LookupBody {
    email: String,
    #[serde(default)]
    return_to: Option<String>,
}

/// `POST /sso/lookup {"email"}`: whether SSO applies and where to go. The answer names no
/// tenant; only the provider URL in `redirect_url` shows where the domain signs in.
async fn lookup(State(state): State<SsoState>, headers: HeaderMap, body: Bytes) -> ApiResult<OAuth> {
    if !from_this_site(&headers, &state.origin(&headers)) {
        return Err(cross_site());
    }
    // Not echoed: the parser's words would quote what an anonymous caller sent.
    let b = serde_json::from_slice::<LookupBody>(&body)
        .map_err(|_| ApiError::invalid_request("send a JSON object with an \"email\" string"))?;
    match state.sign_in.start_by_email(&b.email, b.return_to.as_deref(), &state.redirect_uri(&headers)).await {
        Ok(start) => {
            let mut resp = json_response(StatusCode::OK, json!({ "sso": true, "redirect_url": start.authorize_url }));
            add_cookie(&mut resp, transaction_cookie(&state.cookies, &start));
            Ok(resp)
        }
        Err(SsoError::NoSso) => Ok(json_response(
            StatusCode::OK,
            json!({ "sso": false, "message": "Single sign-on is not set up for this email domain." }),
        )),
        // The caller's own input, a limit, the provider not answering, the store: their own answers.
        Err(e @ (SsoError::InvalidInput(_) | SsoError::Throttled(_) | SsoError::ProviderUnavailable(_))) => {
            Err(e.into())
        }
        Err(SsoError::Store(e)) => Err(e.into()),
        // Anything else is the tenant's setup (its provider's discovery document included): what
        // it says is for the log and the tenant's admin, not for an anonymous caller.
        Err(e) => {
            tracing::warn!(reason = e.reason(), error = %e, "lookup failed");
            Err(ApiError::try_again_later(30))
        }
    }
}

struct InitiateParams {
    iss: Option<String>,
    login_hint: Option<String>,
    target_link_uri: Option<String>,
}

impl InitiateParams {
    fn from_pairs(mut p: HashMap<String, String>) -> Self {
        InitiateParams {
            iss: p.remove("iss"),
            login_hint: p.remove("login_hint"),
            target_link_uri: p.remove("target_link_uri"),
        }
    }
}

async fn initiate_get(State(state): State<SsoState>, headers: HeaderMap, uri: axum::http::Uri) -> ApiResult<Page> {
    initiate(state, headers, InitiateParams::from_pairs(query_map(&uri))).await
}

async fn initiate_post(State(state): State<SsoState>, headers: HeaderMap, body: Bytes) -> ApiResult<Page> {
    initiate(state, headers, InitiateParams::from_pairs(form(&body))).await
}

/// `GET /sso/initiate?iss=…`: the provider's dashboard starts a login (OIDC Core §4).
async fn initiate(state: SsoState, headers: HeaderMap, p: InitiateParams) -> ApiResult<Page> {
    let origin = state.origin(&headers);
    let start = state
        .sign_in
        .start_by_issuer(
            p.iss.as_deref().unwrap_or(""),
            p.login_hint.as_deref(),
            p.target_link_uri.as_deref(),
            &origin,
            &state.redirect_uri(&headers),
        )
        .await?;
    Ok(start_response(&state, start))
}

// ---- the callback router: /sso/callback -------------------------------------------------------

/// `GET /sso/callback`, `POST /sso/confirm` (the answer to a provider-initiated switch).
pub fn callback_router(state: SsoState) -> Router {
    Router::new()
        .route("/sso/callback", get(callback))
        .route("/sso/confirm", post(confirm))
        .route_layer(crate::limits::by_address(state.by_address.clone()))
        .with_state(state)
}

fn query_map(uri: &axum::http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

async fn callback(State(state): State<SsoState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let mut q = query_map(&uri);
    let params = CallbackParams {
        state: q.remove("state"),
        code: q.remove("code"),
        iss: q.remove("iss"),
        error: q.remove("error"),
        error_description: q.remove("error_description"),
    };
    let tx_cookie = params.state.as_deref().map(|s| state.cookies.transaction_name(&transaction_cookie_key(s)));
    let binding = tx_cookie.as_deref().and_then(|n| read_cookie(&headers, n));
    let previous = read_cookie(&headers, &state.cookies.session_name());
    let result = state.sign_in.complete(&params, binding.as_deref(), previous.as_deref()).await;
    // The transaction cookie is cleared whatever the outcome.
    let mut resp = match result {
        Ok(CallbackOutcome::SignedIn(signed_in)) => signed_in_response(&state, *signed_in),
        Ok(CallbackOutcome::ConfirmSwitch(pending)) => switch_page(&state, pending),
        Ok(CallbackOutcome::Tested(report)) => test_report_page(&report),
        Err(e) => ApiError::<Page>::from(e).into_response(),
    };
    if let Some(name) = tx_cookie {
        add_cookie(&mut resp, state.cookies.clear(&name));
    }
    resp
}

/// The redirect after a sign-in, with a fresh session cookie (any session cookie the browser
/// had is replaced).
fn signed_in_response(state: &SsoState, signed_in: butterfly_core::sign_in::SignedIn) -> Response {
    tracing::info!(tenant = %signed_in.tenant.id, user = %signed_in.user.id, created = signed_in.created, "signed in");
    let mut resp = redirect(signed_in.return_to.as_str());
    add_cookie(
        &mut resp,
        state.cookies.set(&state.cookies.session_name(), signed_in.session_secret.expose(), signed_in.max_age_secs),
    );
    resp
}

/// The interstitial of a provider-initiated sign-in that would replace the browser's session.
fn switch_page(state: &SsoState, p: PendingSwitch) -> Response {
    let csrf = state.csrf.token(p.pending_secret.expose(), CSRF_SWITCH);
    let who = |a: &butterfly_core::sign_in::AccountLabel| {
        format!("<strong>{}</strong> ({})", esc(&a.user_name), esc(&a.tenant_name))
    };
    let body = format!(
        "<h1>Switch account?</h1>\
         <p>You are signed in to Butterfly as {current}.</p>\
         <p>Your identity provider has just signed you in as {next}. Continuing ends your current session.</p>\
         <form method=\"post\" action=\"/sso/confirm\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"accept\" value=\"yes\"><button type=\"submit\" id=\"continue\">Continue as {next_plain}</button></form>\
         <form method=\"post\" action=\"/sso/confirm\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"accept\" value=\"no\"><button type=\"submit\" id=\"stay\">Stay signed in as {current_plain}</button></form>",
        current = who(&p.current),
        next = who(&p.next),
        next_plain = esc(&p.next.user_name),
        current_plain = esc(&p.current.user_name),
        csrf = esc(csrf.expose()),
    );
    let mut resp = html(StatusCode::OK, page("Switch account?", &body));
    add_cookie(&mut resp, state.cookies.set(&state.cookies.pending_name(), p.pending_secret.expose(), p.max_age_secs));
    resp
}

/// What a test sign-in found, for the admin who started it.
fn test_report_page(r: &TestReport) -> Response {
    let claims: String = r.claims.iter().map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v))).collect();
    let checks: String = r
        .checks
        .iter()
        .map(|c| {
            format!(
                "<li class=\"{}\"><strong>{}</strong> {}: {}</li>",
                if c.passed { "pass" } else { "fail" },
                if c.passed { "✓" } else { "✗" },
                esc(c.name),
                esc(&c.detail)
            )
        })
        .collect();
    let verdict = if r.passed() { "The test sign-in passed." } else { "The test sign-in failed." };
    let bound = if r.bound_now {
        "<p class=\"msg ok\">The identity provider is now bound: sign-ins through it are enabled.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Test sign-in</h1><p class=\"msg{}\" role=\"status\" id=\"verdict\">{verdict}</p>{bound}\
         <h2>Checks</h2><ul id=\"checks\">{checks}</ul><h2>Claims received</h2><dl id=\"claims\">{claims}</dl>\
         <p>Nobody was signed in by this test.</p><p><a href=\"/console/sso\">Back to the single sign-on settings</a></p>",
        if r.passed() { " ok" } else { "" },
    );
    html(StatusCode::OK, page("Test sign-in", &body))
}

/// `POST /sso/confirm` (`accept=yes|no`, `csrf`): the answer to a provider-initiated switch.
async fn confirm(State(state): State<SsoState>, headers: HeaderMap, body: Bytes) -> ApiResult<Page> {
    if !from_this_site(&headers, &state.origin(&headers)) {
        return Err(cross_site());
    }
    let f = form(&body);
    let pending_name = state.cookies.pending_name();
    let pending = read_cookie(&headers, &pending_name);
    let csrf_ok = pending
        .as_deref()
        .is_some_and(|p| state.csrf.verify(p, CSRF_SWITCH, f.get("csrf").map(String::as_str).unwrap_or("")));
    // The pending sign-in is answered once: its cookie is cleared whatever the outcome.
    let mut resp = if !csrf_ok {
        ApiError::<Page>::refused(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "Request refused",
            "This confirmation is not valid any more. Sign in again.",
        )
        .into_response()
    } else {
        let accept = f.get("accept").is_some_and(|a| a == "yes");
        let previous = read_cookie(&headers, &state.cookies.session_name());
        match state.sign_in.confirm_switch(pending.as_deref(), previous.as_deref(), accept).await {
            Ok(Some(signed_in)) => signed_in_response(&state, signed_in),
            Ok(None) => redirect("/"),
            Err(e) => ApiError::<Page>::from(e).into_response(),
        }
    };
    add_cookie(&mut resp, state.cookies.clear(&pending_name));
    Ok(resp)
}

// ---- the session router: /me, /logout, / -------------------------------------------------------

/// `GET /me`, `POST /logout`, `GET /` (the signed-in page).
pub fn session_router(state: SsoState) -> Router {
    Router::new().route("/me", get(me)).route("/logout", post(logout)).route("/", get(home)).with_state(state)
}

fn me_json(s: &SignedInUser) -> serde_json::Value {
    let role = s.user.effective_role();
    json!({
        "user": {
            "id": s.user.id.to_string(),
            "userName": s.user.user_name.as_str(),
            "displayName": s.user.display_name,
            "active": s.user.active,
        },
        "tenant": { "id": s.tenant.id.as_str(), "name": s.tenant.name },
        "role": role.as_str(),
        "roleSource": s.user.role_source,
        "permissions": role.permissions().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "session": {
            "issuer": s.session.issuer,
            "created": s.session.created.to_rfc3339(),
            "expires": s.session.expires.to_rfc3339(),
        },
    })
}

async fn me(State(state): State<SsoState>, signed_in: Result<SignedIn, ApiError<OAuth>>) -> ApiResult<OAuth> {
    match signed_in {
        Ok(SignedIn { who, csrf }) => {
            let mut v = me_json(&who);
            // For the admin API's cookie-authenticated writes (X-CSRF-Token).
            v["csrfToken"] = json!(csrf.expose());
            Ok(json_response(StatusCode::OK, v))
        }
        Err(e) if e.is_unauthenticated() => {
            // A cookie that names no live session is dropped.
            let mut resp = e.into_response();
            add_cookie(&mut resp, state.cookies.clear(&state.cookies.session_name()));
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

/// `GET /`: who is signed in, what their role allows, and the sign-out button.
async fn home(signed_in: Result<SignedIn, ApiError<OAuth>>) -> ApiResult<Page> {
    let SignedIn { who: s, csrf } = match signed_in {
        Ok(s) => s,
        Err(e) if e.is_unauthenticated() => return Ok(redirect("/login")),
        Err(e) => return Err(e.rendered_as()),
    };
    let role = s.user.effective_role();
    let perms: String =
        role.permissions().iter().map(|p| format!("<li><code>{}</code></li>", esc(p.as_str()))).collect();
    let name = s.user.display_name.clone().unwrap_or_else(|| s.user.user_name.as_str().to_string());
    Ok(html(
        StatusCode::OK,
        page(
            "Signed in",
            &format!(
                "<h1>Signed in</h1><p class=\"msg ok\">You are signed in as <strong id=\"who\">{}</strong>.</p>\
                 <dl><dt>Email</dt><dd id=\"email\">{}</dd><dt>Organisation</dt><dd id=\"tenant\">{}</dd>\
                 <dt>Role</dt><dd id=\"role\">{}</dd><dt>Session ends</dt><dd>{}</dd></dl>\
                 <h2>What you can do</h2><ul>{perms}</ul>\
                 <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form>",
                esc(&name),
                esc(s.user.user_name.as_str()),
                esc(&s.tenant.name),
                esc(role.as_str()),
                esc(&s.session.expires.to_rfc3339()),
                esc(csrf.expose()),
            ),
        ),
    ))
}

/// `POST /logout`: ends the session. With `provider=1` (form or query), continues to the
/// provider's end-session endpoint so the provider session ends too.
async fn logout(
    State(state): State<SsoState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> ApiResult<Page> {
    let name = state.cookies.session_name();
    let query = query_map(&uri);
    let f = form(&body);
    if !from_this_site(&headers, &state.origin(&headers)) {
        return Err(cross_site());
    }
    let cookie = read_cookie(&headers, &name);
    if let Some(cookie) = cookie.as_deref() {
        let sent = f
            .get("csrf")
            .map(String::as_str)
            .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        if !state.csrf.verify(cookie, CSRF_SESSION, sent) {
            return Err(ApiError::refused(
                StatusCode::FORBIDDEN,
                "csrf",
                "Sign-out refused",
                "Use the Sign out button on a Butterfly page (the request did not carry its token).",
            ));
        }
    }
    let provider = [f.get("provider"), query.get("provider")].into_iter().flatten().any(|v| v == "1" || v == "true");
    let after = format!("{}/login?signed_out=1", state.origin(&headers));
    let mut resp = match state.sessions.logout(cookie.as_deref(), provider, &after).await? {
        Some(end_session) => redirect(&end_session),
        None => redirect("/login?signed_out=1"),
    };
    add_cookie(&mut resp, state.cookies.clear(&name));
    Ok(resp)
}
