//! Reading requests and writing responses in the SCIM wire format.

use crate::error::{ApiError, Scim};
use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Largest request body accepted (advertised as `maxPayloadSize`).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON response with the SCIM media type, never cached. Serialised straight into the body.
pub fn scim_response(status: StatusCode, v: &impl Serialize) -> Response {
    // Sized for a user or a lookup's page at once (growing from serde_json's 128 bytes cost
    // three reallocations a lookup).
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, v) {
        Ok(()) => {}
        // Nothing answered here has a map key that is not a string, the one way to fail.
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a JSON body: `application/json` or `application/scim+json` (any `+json`, any
/// charset, or no content type at all), at most [`MAX_BODY_BYTES`].
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError<Scim>> {
    if let Some(ct) = header_str(headers, header::CONTENT_TYPE) {
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let jsonish = media == "application/json" || media.ends_with("+json") || media.is_empty();
        if !jsonish {
            return Err(ApiError::refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "Unsupported media type",
                format!("Content-Type {media:?} is not supported: send application/scim+json or application/json"),
            ));
        }
    }
    if let Some(len) = header_str(headers, header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok()) {
        if len > MAX_BODY_BYTES {
            return Err(too_large());
        }
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(butterfly_core::Error::InvalidSyntax("the request body is empty; send a JSON object".into()).into());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| butterfly_core::Error::InvalidSyntax(format!("the request body is not valid JSON: {e}")).into())
}

fn too_large() -> ApiError<Scim> {
    ApiError::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "Request too large",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// The decoded query pairs (`+` is a space, as Entra encodes it); a part with nothing to
/// decode is borrowed from the query.
pub fn query_pairs(query: Option<&str>) -> Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).collect()
}
