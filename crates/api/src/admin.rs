//! The admin API for a tenant's super_admins (and auditors, for the audit trail): SCIM token
//! rotation, SSO settings, the team and its roles, the audit trail. Session-authenticated;
//! every endpoint checks the permission matrix; cookie-authenticated writes need the session's
//! CSRF token in `X-CSRF-Token` and, when the browser sends one, a same-origin `Origin`.

use crate::auth_response::json_response;
use crate::error::{ApiError, ApiResult, OAuth};
use crate::extract::{JsonBody, ManageSsoScim, ManageTeam, Member, ViewAuditTrail};
use crate::scim::BaseUrl;
use crate::sso::{add_cookie, redirect_uri, transaction_cookie, CookiePolicy};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::Router;
use butterfly_core::actor::Actor;
use butterfly_core::audit::AuditTrail;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::domain::DomainService;
use butterfly_core::ids::UserId;
use butterfly_core::role::Role;
use butterfly_core::scim_tokens::{RotationMode, ScimTokenService};
use butterfly_core::sessions::SessionService;
use butterfly_core::sign_in::SignInService;
use butterfly_core::sso_settings::{verification_name, verification_value, SsoSettingsInput, SsoSettingsService};
use butterfly_core::team::{no_such_member, TeamService};
use butterfly_core::token::Secret;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type Answer = ApiResult<OAuth>;

#[derive(Clone)]
pub struct AdminState {
    pub sso: Arc<SsoSettingsService>,
    pub sessions: Arc<SessionService>,
    pub sign_in: Arc<SignInService>,
    pub domains: Arc<DomainService>,
    pub csrf: CsrfKey,
    pub tokens: Arc<ScimTokenService>,
    pub team: Arc<TeamService>,
    pub audit: Arc<AuditTrail>,
    pub base_url: BaseUrl,
    pub cookies: CookiePolicy,
}

/// `?limit=` and a cursor, as sent (any query reads: a repeated key keeps its last value, a
/// limit that is not a number is the default).
struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

impl PageQuery {
    fn from_pairs(Query(pairs): Query<Vec<(String, String)>>) -> Self {
        let last = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        PageQuery { limit: last("limit"), after: last("after"), before: last("before") }
    }

    fn limit(&self) -> usize {
        self.limit.as_deref().and_then(|l| l.parse().ok()).unwrap_or(50)
    }
}

// ---- token rotation ------------------------------------------------------------------------

/// `GET|POST /admin/scim-token`.
pub fn token_rotation_router(state: AdminState) -> Router {
    Router::new().route("/admin/scim-token", get(token_metadata).post(rotate_token)).with_state(state)
}

async fn token_metadata(State(s): State<AdminState>, who: Member<ManageSsoScim>) -> Answer {
    let live = s.tokens.live_tokens(&who.tenant).await?;
    let token_json = |t: &butterfly_core::token::TokenRecord| {
        json!({
            "display_prefix": t.display_prefix,
            "created": t.created.to_rfc3339(),
            "last_used": t.last_used.map(|t| t.to_rfc3339()),
            "expires": t.expires.map(|t| t.to_rfc3339()),
        })
    };
    let Some(c) = live.first() else {
        return Ok(json_response(StatusCode::OK, json!({ "token": null, "tokens": [] })));
    };
    Ok(json_response(
        StatusCode::OK,
        json!({
            "display_prefix": c.display_prefix,
            "created": c.created.to_rfc3339(),
            "last_used": c.last_used.map(|t| t.to_rfc3339()),
            "previous": live.get(1).map(token_json),
            // Every live token (two at most: the current one and the one it overlaps).
            "tokens": live.iter().map(token_json).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Deserialize)]
struct RotateBody {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    overlap_hours: Option<f64>,
}

impl RotateBody {
    fn mode(&self) -> Result<RotationMode, ApiError<OAuth>> {
        match self.mode.as_deref().unwrap_or("overlap") {
            mode @ ("immediate" | "overlap") => RotationMode::requested(mode == "immediate", self.overlap_hours)
                .map_err(|e| ApiError::invalid_request(format!("overlap_hours: {e}"))),
            other => Err(ApiError::invalid_request(format!("mode must be immediate or overlap, not {other:?}"))),
        }
    }
}

async fn rotate_token(
    State(s): State<AdminState>,
    who: Member<ManageSsoScim>,
    JsonBody(body): JsonBody<RotateBody>,
) -> Answer {
    let mode = body.mode()?;
    let issued = s.tokens.rotate_token_as(&who.tenant, mode, &Actor::User(who.user.id)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "token": issued.token.secret().expose(),
            "display_prefix": issued.record.display_prefix,
            "created": issued.record.created.to_rfc3339(),
            "mode": match mode { RotationMode::Immediate => "immediate", RotationMode::Overlap { .. } => "overlap" },
            "note": "shown once: paste it into Okta (Provisioning > Integration > API token) now",
        }),
    ))
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
async fn test_sign_in(State(s): State<AdminState>, who: Member<ManageSsoScim>, headers: HeaderMap) -> Answer {
    let start = s.sign_in.start_test(&who.user, &redirect_uri(&s.base_url, &headers)).await?;
    let mut resp = json_response(StatusCode::OK, json!({ "redirect_url": start.authorize_url }));
    add_cookie(&mut resp, transaction_cookie(&s.cookies, &start));
    Ok(resp)
}

/// `POST /admin/domains/{domain}/verify`: looks for the domain's TXT record now.
async fn verify_domain(State(s): State<AdminState>, who: Member<ManageSsoScim>, Path(domain): Path<String>) -> Answer {
    let check = s.domains.verify(&who.tenant, &domain, &Actor::User(who.user.id)).await?;
    Ok(json_response(StatusCode::OK, domain_json(&check.record, check.txt_token.as_deref())))
}

async fn sso_settings(State(s): State<AdminState>, who: Member<ManageSsoScim>) -> Answer {
    Ok(json_response(StatusCode::OK, settings_json(&s.sso.settings(&who.tenant).await?)))
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

async fn update_sso(State(s): State<AdminState>, who: Member<ManageSsoScim>, JsonBody(b): JsonBody<SsoBody>) -> Answer {
    let input = SsoSettingsInput {
        issuer: b.issuer,
        client_id: b.client_id,
        client_secret: b.client_secret.filter(|c| !c.is_empty()).map(Secret::new),
        domains: b.domains,
        enabled: b.enabled,
    };
    let view = s.sso.configure_as(&who.tenant, input, &Actor::User(who.user.id)).await?;
    Ok(json_response(StatusCode::OK, settings_json(&view)))
}

async fn members(State(s): State<AdminState>, who: Member<ManageTeam>, query: Query<Vec<(String, String)>>) -> Answer {
    let q = PageQuery::from_pairs(query);
    let (users, next) = s.team.members(&who.tenant, q.after.as_deref(), q.limit()).await?;
    Ok(json_response(
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
    ))
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn change_role(
    State(s): State<AdminState>,
    who: Member<ManageTeam>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RoleBody>,
) -> Answer {
    let role = Role::from_name(&b.role)?;
    let id = UserId::parse(&id).ok_or_else(no_such_member)?;
    let c = s.team.change_role(&who.tenant, &who.user.id, &id, role).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "id": c.user.id.to_string(),
            "role": c.user.effective_role().as_str(),
            "roleSource": c.user.role_source,
            "warning": c.warning,
        }),
    ))
}

async fn audit(
    State(s): State<AdminState>,
    who: Member<ViewAuditTrail>,
    query: Query<Vec<(String, String)>>,
) -> Answer {
    let q = PageQuery::from_pairs(query);
    let page = s.audit.page(&who.tenant, q.before.as_deref(), q.limit()).await?;
    Ok(json_response(StatusCode::OK, json!({ "events": page.events, "next": page.next })))
}
