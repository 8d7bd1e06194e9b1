//! Domain errors → HTTP, in the SCIM error schema (RFC 7644 §3.12).

use crate::wire::scim_response;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use butterfly_core::scim::ERROR_SCHEMA;
use butterfly_core::Error;
use serde_json::json;

/// An error answered on a SCIM route.
#[derive(Debug)]
pub enum ScimError {
    Domain(Error),
    /// A status the domain does not produce (405, 413, 415), with its detail.
    Http(StatusCode, String),
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        ScimError::Domain(e)
    }
}

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
        Error::Uniqueness(_) | Error::Conflict(_) => StatusCode::CONFLICT,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> serde_json::Value {
    let mut v = json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let (Some(t), Some(o)) = (scim_type, v.as_object_mut()) {
        o.insert("scimType".into(), json!(t));
    }
    v
}

/// The detail of every 503 for an unavailable store: our words only.
pub fn unavailable_detail(retry_after_secs: u32) -> String {
    format!("the service is temporarily unavailable; retry after {} seconds", retry_after_secs.max(1))
}

pub fn internal_error_response() -> Response {
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    scim_response(
        status,
        &body(status, None, "internal error; the request id in x-request-id identifies it in our logs"),
    )
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        match self {
            ScimError::Http(status, detail) => scim_response(status, &body(status, None, &detail)),
            ScimError::Domain(e) => {
                let status = status_of(&e);
                if let Error::Store(m) = &e {
                    tracing::error!(error = %m, "store failure");
                    return internal_error_response();
                }
                let detail = match &e {
                    // What the store adapter said (operation, SDK error, endpoint) is for the log.
                    Error::Unavailable { message, retry_after_secs } => {
                        tracing::warn!(error = %message, "store unavailable");
                        unavailable_detail(*retry_after_secs)
                    }
                    other => other.to_string(),
                };
                let mut resp = scim_response(status, &body(status, e.scim_type(), &detail));
                match &e {
                    Error::Unauthorized(_) => {
                        resp.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
                    }
                    Error::Unavailable { retry_after_secs, .. } | Error::RateLimited { retry_after_secs, .. } => {
                        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(&1).to_string()) {
                            resp.headers_mut().insert(header::RETRY_AFTER, v);
                        }
                    }
                    _ => {}
                }
                resp
            }
        }
    }
}
