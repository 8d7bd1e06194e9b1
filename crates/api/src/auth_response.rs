//! Responses of the authentication endpoints (sign-in, logout, admin): never cached, never
//! sniffed, no referrer; JSON bodies and RFC 6749-style errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Marks a response as never to be stored (auth responses carry sessions, codes and tokens).
pub fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// A JSON body, never stored.
pub fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    no_store(resp)
}

/// An RFC 6749-style error: `{"error", "error_description"}`, never stored.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(status, json!({ "error": error, "error_description": description }))
}
