//! The admin API for a tenant's super_admins (and auditors, for the audit trail): SCIM token
//! rotation, SSO settings, the team and its roles, the audit trail. Session-authenticated;
//! every endpoint checks the permission matrix; cookie-authenticated writes need the session's
//! CSRF token in `X-CSRF-Token` and, when the browser sends one, a same-origin `Origin`.

// Handlers' helpers return the refusal response itself as the error; it is built once and
// returned at once, so its size does not matter.
#![allow(clippy::result_large_err)]

use crate::auth_response::{json_response as ok, oauth_error as error};
use crate::scim::BaseUrl;
use crate::sso::{
    add_cookie, from_this_site, read_cookie, redirect_uri, transaction_cookie, CookiePolicy, CSRF_SESSION,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use butterfly_core::actor::Actor;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::domain::DomainService;
use butterfly_core::ids::TenantId;
use butterfly_core::ids::UserId;
use butterfly_core::role::{Permission, Role};
use butterfly_core::scim_tokens::{RotationMode, ScimTokenService};
use butterfly_core::sessions::SessionService;
use butterfly_core::sign_in::SignInService;
use butterfly_core::sso::SsoError;
use butterfly_core::sso_settings::{verification_name, verification_value, SsoSettingsInput, SsoSettingsService};
use butterfly_core::team::{no_such_member, TeamService};
use butterfly_core::token::Secret;
use butterfly_core::user::User;
use butterfly_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct AdminState {
    pub sso: Arc<SsoSettingsService>,
    pub sessions: Arc<SessionService>,
    pub sign_in: Arc<SignInService>,
    pub domains: Arc<DomainService>,
    pub csrf: CsrfKey,
    pub tokens: Arc<ScimTokenService>,
    pub team: Arc<TeamService>,
    pub store: Arc<dyn butterfly_core::ports::Store>,
    pub base_url: BaseUrl,
    pub cookies: CookiePolicy,
}

fn domain_error(e: Error) -> Response {
    match e {
        Error::InvalidValue(m) | Error::InvalidSyntax(m) => error(StatusCode::BAD_REQUEST, "invalid_request", &m),
        Error::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
        Error::Conflict(m) | Error::Uniqueness(m) | Error::PreconditionFailed(m) => {
            error(StatusCode::CONFLICT, "conflict", &m)
        }
        Error::Unavailable { message, retry_after_secs } => {
            tracing::warn!(error = %message, "store unavailable");
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &crate::error::unavailable_detail(retry_after_secs),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            r
        }
        Error::RateLimited { retry_after_secs, .. } => crate::limits::too_many(retry_after_secs, false),
        other => {
            tracing::error!(error = %other, "admin request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
        }
    }
}

/// The signed-in member an admin request acts as.
struct Member {
    tenant: TenantId,
    user: User,
}

/// Authenticates the session and checks `permission`; for writes, the CSRF defences.
async fn authorize(
    state: &AdminState,
    headers: &HeaderMap,
    method: &Method,
    permission: Permission,
) -> Result<Member, Response> {
    let name = state.cookies.session_name();
    let cookie = read_cookie(headers, &name);
    let (session, user) = match state.sessions.authenticate_member(cookie).await {
        Ok(w) => w,
        Err(SsoError::Unauthenticated) => {
            return Err(error(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first"))
        }
        Err(SsoError::Store(e)) => return Err(domain_error(e)),
        Err(e) => return Err(error(StatusCode::UNAUTHORIZED, "unauthenticated", &e.to_string())),
    };
    if !user.effective_role().can(permission) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("your role {} does not allow this", user.effective_role().as_str()),
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        if !from_this_site(headers, &state.base_url.origin(headers)) {
            return Err(error(StatusCode::FORBIDDEN, "csrf", "cross-origin request refused"));
        }
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !state.csrf.verify(cookie.unwrap_or_default(), CSRF_SESSION, sent) {
            return Err(error(StatusCode::FORBIDDEN, "csrf", "missing or wrong X-CSRF-Token (GET /me returns it)"));
        }
    }
    Ok(Member { tenant: session.tenant, user })
}

fn query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", &format!("bad JSON: {e}")))
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

// ---- token rotation ------------------------------------------------------------------------

/// `GET|POST /admin/scim-token`.
pub fn token_rotation_router(state: AdminState) -> Router {
    Router::new().route("/admin/scim-token", get(token_metadata).post(rotate_token)).with_state(state)
}

async fn token_metadata(State(s): State<AdminState>, method: Method, headers: HeaderMap) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    let live = match s.tokens.live_tokens(&who.tenant).await {
        Ok(l) => l,
        Err(e) => return domain_error(e),
    };
    let token_json = |t: &butterfly_core::token::TokenRecord| {
        json!({
            "display_prefix": t.display_prefix,
            "created": t.created.to_rfc3339(),
            "last_used": t.last_used.map(|t| t.to_rfc3339()),
            "expires": t.expires.map(|t| t.to_rfc3339()),
        })
    };
    let Some(c) = live.first() else { return ok(StatusCode::OK, json!({ "token": null, "tokens": [] })) };
    ok(
        StatusCode::OK,
        json!({
            "display_prefix": c.display_prefix,
            "created": c.created.to_rfc3339(),
            "last_used": c.last_used.map(|t| t.to_rfc3339()),
            "previous": live.get(1).map(token_json),
            // Every live token (two at most: the current one and the one it overlaps).
            "tokens": live.iter().map(token_json).collect::<Vec<_>>(),
        }),
    )
}

#[derive(Deserialize)]
struct RotateBody {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    overlap_hours: Option<f64>,
}

async fn rotate_token(State(s): State<AdminState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    let b: RotateBody =
        if body.is_empty() { RotateBody { mode: None, overlap_hours: None } } else { try_resp!(parse_json(&body)) };
    let mode = match b.mode.as_deref().unwrap_or("overlap") {
        mode @ ("immediate" | "overlap") => match RotationMode::requested(mode == "immediate", b.overlap_hours) {
            Ok(m) => m,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", &format!("overlap_hours: {e}")),
        },
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("mode must be immediate or overlap, not {other:?}"),
            )
        }
    };
    match s.tokens.rotate_token_with(&who.tenant, mode, &Actor::User(who.user.id)).await {
        Ok(issued) => ok(
            StatusCode::CREATED,
            json!({
                "token": issued.token.secret().expose(),
                "display_prefix": issued.record.display_prefix,
                "created": issued.record.created.to_rfc3339(),
                "mode": match mode { RotationMode::Immediate => "immediate", RotationMode::Overlap { .. } => "overlap" },
                "note": "shown once: paste it into Okta (Provisioning > Integration > API token) now",
            }),
        ),
        Err(e) => domain_error(e),
    }
}

// ---- the admin API ---------------------------------------------------------------------------

/// `GET|PUT /admin/sso`, `POST /admin/sso/test`, `POST /admin/domains/{domain}/verify`,
/// `GET /admin/users`, `PUT /admin/users/{id}/role`, `GET /admin/audit`.
pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/sso", get(sso_settings).put(update_sso))
        .route("/admin/sso/test", axum::routing::post(test_sign_in))
        .route("/admin/domains/{domain}/verify", axum::routing::post(verify_domain))
        .route("/admin/users", get(members))
        .route("/admin/users/{id}/role", put(change_role))
        .route("/admin/audit", get(audit))
        .with_state(state)
}

/// The SSO settings as the admin API and `butterfly sso show --json` print them (never the secret).
pub fn settings_json(v: &butterfly_core::sso_settings::SsoSettingsView) -> Value {
    json!({
        "tenant_id": v.tenant.as_str(),
        "issuer": v.issuer.as_ref().map(|i| i.as_str()),
        "issuer_bound": v.issuer_bound_at.is_some(),
        "client_id": v.client_id,
        "client_secret_set": v.client_secret_set,
        "domains": v.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "domain_verification": v.domain_records.iter().map(|r| domain_json(r, v.verification_token.as_deref())).collect::<Vec<_>>(),
        "enabled": v.enabled,
        "updated": v.updated.map(|t| t.to_rfc3339()),
    })
}

/// A domain with its state and the TXT record that verifies it.
fn domain_json(r: &butterfly_core::tenant::DomainRecord, token: Option<&str>) -> Value {
    json!({
        "domain": r.domain.as_str(),
        "verified": r.is_verified(),
        "verified_by": r.verified_by,
        "verified_at": r.verified_at.map(|t| t.to_rfc3339()),
        "checked_at": r.checked_at.map(|t| t.to_rfc3339()),
        "last_error": r.last_error,
        "txt_record": token.map(|t| json!({ "name": verification_name(&r.domain), "value": verification_value(t) })),
    })
}

/// `POST /admin/sso/test`: starts a test sign-in through the configured provider; answers the
/// URL to open (in this browser: the transaction cookie is set here).
async fn test_sign_in(State(s): State<AdminState>, method: Method, headers: HeaderMap) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    match s.sign_in.start_test(&who.user, &redirect_uri(&s.base_url, &headers)).await {
        Ok(start) => {
            let mut resp = ok(StatusCode::OK, json!({ "redirect_url": start.authorize_url }));
            add_cookie(&mut resp, transaction_cookie(&s.cookies, &start));
            resp
        }
        Err(SsoError::Store(e)) => domain_error(e),
        Err(SsoError::ProviderUnavailable(m)) => {
            tracing::warn!(error = %m, "identity provider unreachable");
            error(StatusCode::BAD_GATEWAY, "temporarily_unavailable", "the identity provider did not answer; try again")
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}

/// `POST /admin/domains/{domain}/verify`: looks for the domain's TXT record now.
async fn verify_domain(
    State(s): State<AdminState>,
    method: Method,
    headers: HeaderMap,
    Path(domain): Path<String>,
) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    match s.domains.verify(&who.tenant, &domain, &Actor::User(who.user.id)).await {
        Ok(r) => {
            let token = s.sso.settings(&who.tenant).await.ok().and_then(|v| v.verification_token);
            ok(StatusCode::OK, domain_json(&r, token.as_deref()))
        }
        Err(e) => domain_error(e),
    }
}

async fn sso_settings(State(s): State<AdminState>, method: Method, headers: HeaderMap) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    match s.sso.settings(&who.tenant).await {
        Ok(v) => ok(StatusCode::OK, settings_json(&v)),
        Err(SsoError::Store(e)) => domain_error(e),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}

#[derive(Deserialize)]
struct SsoBody {
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    domains: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

async fn update_sso(State(s): State<AdminState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageSsoScim).await);
    let b: SsoBody = try_resp!(parse_json(&body));
    let input = SsoSettingsInput {
        issuer: b.issuer,
        client_id: b.client_id,
        client_secret: b.client_secret.filter(|c| !c.is_empty()).map(Secret::new),
        domains: b.domains,
        enabled: b.enabled,
    };
    match s.sso.configure_as(&who.tenant, input, &Actor::User(who.user.id)).await {
        Ok(v) => ok(StatusCode::OK, settings_json(&v)),
        Err(SsoError::Store(e)) => domain_error(e),
        Err(SsoError::Throttled(wait)) => crate::limits::too_many(wait, false),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}

async fn members(State(s): State<AdminState>, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageTeam).await);
    let q = query(&uri);
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    match s.team.members(&who.tenant, q.get("after").map(String::as_str), limit).await {
        Ok((users, next)) => ok(
            StatusCode::OK,
            json!({
                "members": users.iter().map(|u| json!({
                    "id": u.id.to_string(),
                    "userName": u.user_name.as_str(),
                    "displayName": u.display_name,
                    "active": u.active,
                    "role": u.effective_role().as_str(),
                    // scim: Okta pushes it; jit: the default at first sign-in; manual: set here.
                    "roleSource": u.role_source,
                })).collect::<Vec<_>>(),
                "next": next,
            }),
        ),
        Err(e) => domain_error(e),
    }
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn change_role(
    State(s): State<AdminState>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ManageTeam).await);
    let b: RoleBody = try_resp!(parse_json(&body));
    let role = try_resp!(Role::from_name(&b.role).map_err(domain_error));
    let id = try_resp!(UserId::parse(&id).ok_or_else(|| domain_error(no_such_member())));
    match s.team.change_role(&who.tenant, &who.user.id, &id, role).await {
        Ok(c) => ok(
            StatusCode::OK,
            json!({
                "id": c.user.id.to_string(),
                "role": c.user.effective_role().as_str(),
                "roleSource": c.user.role_source,
                "warning": c.warning,
            }),
        ),
        Err(e) => domain_error(e),
    }
}

async fn audit(State(s): State<AdminState>, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let who = try_resp!(authorize(&s, &headers, &method, Permission::ViewAuditTrail).await);
    let q = query(&uri);
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 200);
    let before = q.get("before").filter(|b| !b.is_empty() && b.len() <= 64);
    match s.store.audit_page(&who.tenant, before.map(String::as_str), limit + 1).await {
        Ok(mut events) => {
            let more = events.len() > limit;
            events.truncate(limit);
            let next = if more { events.last().map(|e| e.id.clone()) } else { None };
            ok(StatusCode::OK, json!({ "events": events, "next": next }))
        }
        Err(e) => domain_error(e),
    }
}
