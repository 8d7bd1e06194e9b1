//! `/scim/v2`: Users, discovery, Roles, and clear refusals for what Butterfly does not offer.

use crate::error::{ApiError, ApiResult, Scim};
use crate::extract::{PresentedToken, ScimCaller};
use crate::wire::{header_str, json_body, query_pairs, scim_response};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use butterfly_core::role::Role;
use butterfly_core::scim::doc::{user_json, UserDoc};
use butterfly_core::scim::list::{list_response, service_provider_config, ListQuery, Paging};
use butterfly_core::scim::projection::Projection;
use butterfly_core::scim::schema::{resource_types_json, schemas_json};
use butterfly_core::scim::OKTA_ROLE_SCHEMA;
use butterfly_core::scim_users::{if_none_match, Precondition, ScimService};
use butterfly_core::user::User;
use butterfly_core::Error;
use serde_json::{json, Value};
use std::sync::Arc;

/// Where clients reach the service, for `Location` and `meta.location`.
#[derive(Clone, Debug)]
pub enum BaseUrl {
    /// A configured origin, e.g. `https://api.butterfly.example` (no trailing slash).
    Fixed(Arc<str>),
    /// The origin the request was addressed to (`X-Forwarded-Proto` and `Host`), as behind
    /// API Gateway without a custom domain.
    FromRequest,
}

impl BaseUrl {
    /// The origin for this request.
    pub fn origin(&self, headers: &HeaderMap) -> String {
        match self {
            BaseUrl::Fixed(o) => o.trim_end_matches('/').to_string(),
            BaseUrl::FromRequest => {
                let host = header_str(headers, header::HOST)
                    .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
                    .unwrap_or("localhost");
                let proto = match header_str(headers, HeaderName::from_static("x-forwarded-proto")) {
                    Some("http") => "http",
                    _ => "https",
                };
                format!("{proto}://{host}")
            }
        }
    }
}

/// The SCIM base URL Okta is given, e.g. `https://api.example.com/scim/v2`.
pub fn scim_base_url(base_url: &BaseUrl, headers: &HeaderMap) -> String {
    format!("{}/scim/v2", base_url.origin(headers))
}

/// What the SCIM router needs.
#[derive(Clone)]
pub struct ScimState {
    pub service: ScimService,
    pub base_url: BaseUrl,
}

impl ScimState {
    /// The SCIM base URL for this request, e.g. `https://api.example.com/scim/v2`.
    fn base(&self, headers: &HeaderMap) -> String {
        scim_base_url(&self.base_url, headers)
    }
}

/// What a SCIM handler answers.
type ScimAnswer = ApiResult<Scim>;
/// An error on a SCIM route.
type ScimError = ApiError<Scim>;

/// The SCIM router, serving every `/scim/v2` route.
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route("/scim/v2/Users", get(list_users).post(create_user).fallback(method_not_allowed))
        .route("/scim/v2/Users/.search", post(search_not_supported).fallback(method_not_allowed))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user).put(write_user).patch(write_user).delete(delete_user).fallback(method_not_allowed),
        )
        .route("/scim/v2/Groups", get(list_groups).fallback(groups_not_supported))
        .route("/scim/v2/Groups/{id}", get(get_group).fallback(groups_not_supported))
        .route("/scim/v2/ServiceProviderConfig", get(service_provider).fallback(method_not_allowed))
        .route("/scim/v2/docs", get(documentation).fallback(method_not_allowed))
        .route("/scim/v2/ResourceTypes", get(resource_types).fallback(method_not_allowed))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type).fallback(method_not_allowed))
        .route("/scim/v2/Schemas", get(schemas).fallback(method_not_allowed))
        .route("/scim/v2/Schemas/{id}", get(schema).fallback(method_not_allowed))
        .route("/scim/v2/Roles", get(roles).fallback(method_not_allowed))
        .route("/scim/v2/Roles/{id}", get(role).fallback(method_not_allowed))
        .route("/scim/v2/.search", any(search_not_supported))
        .route("/scim/v2/Bulk", any(bulk_not_supported))
        .route("/scim/v2/Me", any(me_not_supported))
        .route("/scim/v2", any(unknown_endpoint))
        .route("/scim/v2/", any(unknown_endpoint))
        .route("/scim/v2/{*rest}", any(unknown_endpoint))
        .with_state(state)
}

/// A resource id from the path. An id that does not even decode (bad percent-encoding, not
/// UTF-8) cannot be one of ours: it is passed on as such and ends as a SCIM 404 after the
/// token check, instead of axum's plain-text 400.
struct Id(String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Id(id),
            Err(_) => Id("\u{fffd}".into()),
        })
    }
}

/// `If-Match` as sent. A header that is present but not readable text matches nothing, so the
/// write fails with 412 rather than going ahead unconditionally.
fn if_match(h: &HeaderMap) -> Precondition {
    Precondition::from_header(h.get(header::IF_MATCH).map(|v| v.to_str().unwrap_or("\u{fffd}")))
}

fn projection(uri: &Uri) -> Projection {
    let pairs = query_pairs(uri.query());
    let find = |name: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref());
    Projection::parse(find("attributes"), find("excludedAttributes"))
}

/// A user response: the projected representation, `ETag`, and `Location` on 201.
fn user_response(base: &str, status: StatusCode, u: &User, p: &Projection) -> Response {
    let mut resp = if p.is_identity() {
        scim_response(status, &UserDoc { user: u, location_base: base })
    } else {
        let mut v = user_json(u, base);
        p.apply(&mut v);
        scim_response(status, &v)
    };
    if let Ok(etag) = HeaderValue::from_str(&u.etag()) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED {
        if let Ok(loc) = HeaderValue::from_str(&format!("{base}/Users/{}", u.id)) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
    }
    resp
}

async fn list_users(
    State(s): State<ScimState>,
    PresentedToken(token): PresentedToken,
    headers: HeaderMap,
    uri: Uri,
) -> ScimAnswer {
    let pairs = query_pairs(uri.query());
    let q = ListQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    // The token is checked before a query error is answered; a lookup may read both at once.
    let page = s.service.list_users_as(&token, q.as_ref()).await?;
    let q = q?;
    let base = s.base(&headers);
    let (total, start, next) = (page.total, page.start_index, page.next_cursor);
    if q.projection.is_identity() {
        let docs = page.users.iter().map(|u| UserDoc { user: u, location_base: &base }).collect();
        return Ok(scim_response(StatusCode::OK, &list_response::<UserDoc>(docs, total, start, next)));
    }
    let resources = page
        .users
        .iter()
        .map(|u| {
            let mut v = user_json(u, &base);
            q.projection.apply(&mut v);
            v
        })
        .collect();
    Ok(scim_response(StatusCode::OK, &list_response::<Value>(resources, total, start, next)))
}

async fn create_user(
    State(s): State<ScimState>,
    PresentedToken(token): PresentedToken,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ScimAnswer {
    // The token is checked before a body error is answered; it may be checked in the write.
    let u = s.service.create_user_as(&token, json_body(&headers, body).await).await?;
    Ok(user_response(&s.base(&headers), StatusCode::CREATED, &u, &projection(&uri)))
}

async fn get_user(
    State(s): State<ScimState>,
    PresentedToken(token): PresentedToken,
    Id(id): Id,
    headers: HeaderMap,
    uri: Uri,
) -> ScimAnswer {
    // The token and the user in one store round trip (no caller extractor: it would be two).
    let u = s.service.get_user(&token, &id).await?;
    if if_none_match(header_str(&headers, header::IF_NONE_MATCH), &u) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&u.etag()) {
            resp.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(resp);
    }
    Ok(user_response(&s.base(&headers), StatusCode::OK, &u, &projection(&uri)))
}

/// `PUT` (the full representation) and `PATCH` (operations) on `/Users/{id}`.
async fn write_user(
    State(s): State<ScimState>,
    method: Method,
    PresentedToken(token): PresentedToken,
    Id(id): Id,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ScimAnswer {
    // Authenticated before the body is read: a bad token is a 401 whatever the body says.
    let target = s.service.authorize_write(&token, &id).await?;
    let v = json_body(&headers, body).await?;
    let u = if method == Method::PATCH {
        s.service.patch_user(target, &v, &if_match(&headers)).await?
    } else {
        s.service.replace_user(target, &v, &if_match(&headers)).await?
    };
    Ok(user_response(&s.base(&headers), StatusCode::OK, &u, &projection(&uri)))
}

async fn delete_user(
    State(s): State<ScimState>,
    PresentedToken(token): PresentedToken,
    Id(id): Id,
    headers: HeaderMap,
) -> ScimAnswer {
    s.service.delete_user(&token, &id, &if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_groups(_caller: ScimCaller, uri: Uri) -> ScimAnswer {
    let pairs = query_pairs(uri.query());
    let q = ListQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
    let start = match q.paging {
        Paging::Index { start_index } => Some(start_index),
        Paging::Cursor(_) => None,
    };
    Ok(scim_response(StatusCode::OK, &list_response::<Value>(vec![], Some(0), start, None)))
}

async fn get_group(_caller: ScimCaller, Id(id): Id) -> ScimAnswer {
    Err(Error::NotFound(format!("Group {id} not found: Butterfly does not store groups")).into())
}

async fn groups_not_supported() -> ScimError {
    Error::NotImplemented(
        "Group push is not supported by Butterfly: assign roles to users instead (the 'roles' attribute or the \
         Butterfly extension's 'role'), and turn off Push Groups for this app"
            .into(),
    )
    .into()
}

async fn service_provider(State(s): State<ScimState>, _caller: ScimCaller, headers: HeaderMap) -> ScimAnswer {
    Ok(scim_response(
        StatusCode::OK,
        &service_provider_config(&s.base(&headers), &format!("{}/docs", s.base(&headers))),
    ))
}

/// `GET /scim/v2/docs`: the customer's configuration guide (what the ServiceProviderConfig's
/// `documentationUri` and the OIN listing's configuration guide point at): the Okta admin's
/// steps only, as a page (public, like any documentation).
async fn documentation() -> Response {
    let mut resp = (StatusCode::OK, include_str!("okta_guide.html")).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    resp
}

fn discovery_list(items: Vec<Value>) -> Response {
    let n = items.len() as u64;
    scim_response(StatusCode::OK, &list_response(items, Some(n), Some(1), None))
}

async fn resource_types(State(s): State<ScimState>, _caller: ScimCaller, headers: HeaderMap) -> ScimAnswer {
    Ok(discovery_list(resource_types_json(&s.base(&headers))))
}

async fn resource_type(State(s): State<ScimState>, _caller: ScimCaller, Id(id): Id, headers: HeaderMap) -> ScimAnswer {
    resource_types_json(&s.base(&headers))
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .map(|r| scim_response(StatusCode::OK, &r))
        .ok_or_else(|| Error::NotFound(format!("ResourceType {id} not found: Butterfly serves User and Role")).into())
}

async fn schemas(State(s): State<ScimState>, _caller: ScimCaller, headers: HeaderMap) -> ScimAnswer {
    Ok(discovery_list(schemas_json(&s.base(&headers))))
}

async fn schema(State(s): State<ScimState>, _caller: ScimCaller, Id(id): Id, headers: HeaderMap) -> ScimAnswer {
    schemas_json(&s.base(&headers))
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str).is_some_and(|i| i.eq_ignore_ascii_case(&id)))
        .map(|r| scim_response(StatusCode::OK, &r))
        .ok_or_else(|| Error::NotFound(format!("Schema {id} not found")).into())
}

fn role_json(base: &str, r: Role) -> Value {
    json!({
        "schemas": [OKTA_ROLE_SCHEMA],
        "id": r.as_str(),
        "displayName": r.display_name(),
        "description": r.description(),
        "meta": {"resourceType": "Role", "location": format!("{base}/Roles/{}", r.as_str())},
    })
}

async fn roles(State(s): State<ScimState>, _caller: ScimCaller, headers: HeaderMap, uri: Uri) -> ScimAnswer {
    let pairs = query_pairs(uri.query());
    let q = ListQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
    if q.filter.is_some() {
        return Err(
            Error::InvalidFilter("/Roles does not take a filter: it lists the five Butterfly roles".into()).into()
        );
    }
    let Paging::Index { start_index } = q.paging else {
        return Err(Error::InvalidValue("/Roles pages with startIndex and count only".into()).into());
    };
    let items: Vec<Value> = Role::ALL
        .into_iter()
        .skip((start_index - 1) as usize)
        .take(q.count as usize)
        .map(|r| role_json(&s.base(&headers), r))
        .collect();
    Ok(scim_response(StatusCode::OK, &list_response(items, Some(Role::ALL.len() as u64), Some(start_index), None)))
}

async fn role(State(s): State<ScimState>, _caller: ScimCaller, Id(id): Id, headers: HeaderMap) -> ScimAnswer {
    Role::ALL
        .into_iter()
        .find(|r| r.as_str() == id)
        .map(|r| scim_response(StatusCode::OK, &role_json(&s.base(&headers), r)))
        .ok_or_else(|| Error::NotFound(format!("Role {id} not found")).into())
}

async fn search_not_supported() -> ScimError {
    Error::NotImplemented("POST .search is not supported: use GET /Users?filter=...".into()).into()
}

async fn bulk_not_supported() -> ScimError {
    Error::NotImplemented("Bulk operations are not supported: send one request per user".into()).into()
}

async fn me_not_supported() -> ScimError {
    Error::NotImplemented("/Me is not supported".into()).into()
}

async fn method_not_allowed() -> ScimError {
    ApiError::refused(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "Method not allowed",
        "this method is not allowed on this endpoint",
    )
}

async fn unknown_endpoint(uri: Uri) -> ScimError {
    Error::NotFound(format!(
        "no SCIM endpoint at {}: Butterfly serves /Users, /Groups (empty), /Roles, /ServiceProviderConfig, /ResourceTypes and /Schemas",
        uri.path()
    ))
    .into()
}
