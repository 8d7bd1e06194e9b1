//! The domain error. It carries no HTTP status: the HTTP layer maps it at the edge.

use std::sync::Arc;

use crate::claims::{TenantClaim, UniqueAttribute};

/// Everything a use case can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A value is semantically wrong (SCIM `invalidValue`).
    #[error("{0}")]
    InvalidValue(String),
    /// The request body is not valid JSON or not the expected shape (SCIM `invalidSyntax`).
    #[error("{0}")]
    InvalidSyntax(String),
    /// A filter could not be parsed or uses something not supported (SCIM `invalidFilter`).
    #[error("{0}")]
    InvalidFilter(String),
    /// A PATCH path is malformed or names no known attribute (SCIM `invalidPath`).
    #[error("{0}")]
    InvalidPath(String),
    /// A PATCH path selects nothing (SCIM `noTarget`).
    #[error("{0}")]
    NoTarget(String),
    /// An attempt to change a read-only or required attribute (SCIM `mutability`).
    #[error("{0}")]
    Mutability(String),
    /// A unique attribute is already taken (SCIM `uniqueness`, HTTP 409): the refusal worded
    /// for the client by the use case.
    #[error("{0}")]
    Uniqueness(String),
    /// A store's refusal of a write because another holder has one of its uniqueness claims
    /// ([`crate::claims`]); the use case words it for its caller (it becomes [`Error::Uniqueness`],
    /// or a settings refusal).
    #[error("{0}")]
    Taken(Taken),
    /// A state conflict that is not about uniqueness (HTTP 409 without scimType).
    #[error("{0}")]
    Conflict(String),
    /// A paging cursor was not issued by us for this tenant and query (SCIM `invalidCursor`).
    #[error("{0}")]
    InvalidCursor(String),
    /// A paging cursor is older than the advertised cursor timeout (SCIM `expiredCursor`).
    #[error("{0}")]
    ExpiredCursor(String),
    /// The resource does not exist (or is not visible to this tenant).
    #[error("{0}")]
    NotFound(String),
    /// `If-Match` did not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Missing, malformed, unknown or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The operation is understood but not offered by this service.
    #[error("{0}")]
    NotImplemented(String),
    /// The caller sent too many requests; it may retry after the delay (HTTP 429).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u32 },
    /// The store is throttling or briefly unavailable; the caller may retry after the delay.
    #[error("the store is temporarily unavailable: {message}")]
    Unavailable { message: String, retry_after_secs: u32 },
    /// An unexpected store failure. It is for logs, not for clients.
    #[error("store failure: {0}")]
    Store(#[source] StoreFailure),
}

/// Which claim a store found taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Taken {
    /// Another user of the tenant holds this attribute's value.
    #[error("another user of this tenant already has this {}", .0.as_str())]
    User(UniqueAttribute),
    /// Another tenant holds this domain or issuer.
    #[error("{}", match .0 {
        TenantClaim::Domain(d) => format!("the domain {d} is already verified by another Butterfly organisation"),
        TenantClaim::Issuer(i) => format!("the issuer {i} is already connected to another Butterfly organisation"),
    })]
    Tenant(TenantClaim),
}

/// An unexpected store failure: what failed, in words for the log, and the adapter's own error
/// where there was one ([`std::error::Error::source`] returns it, so a caller can walk or
/// downcast the chain). Two failures are equal when their words are (the source is not
/// comparable in general).
#[derive(Debug, Clone)]
pub struct StoreFailure {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreFailure {
    /// A failure the adapter detected itself (a corrupt item, a closed writer).
    pub fn new(message: impl Into<String>) -> Self {
        StoreFailure { message: message.into(), source: None }
    }

    /// A failure caused by `source`, described by `message` (what was being done and what the
    /// source said, in the adapter's words).
    pub fn caused_by(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreFailure { message: message.into(), source: Some(Arc::new(source)) }
    }

    /// A failure that is its source, in the source's own words.
    pub fn from_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreFailure { message: source.to_string(), source: Some(Arc::new(source)) }
    }
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for StoreFailure {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for StoreFailure {}

impl Error {
    /// An unexpected store failure the adapter detected itself (no underlying error to keep).
    pub fn store(message: impl Into<String>) -> Self {
        Error::Store(StoreFailure::new(message))
    }

    /// The RFC 7644 §3.12 `scimType` for this error, where one applies.
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            Error::InvalidValue(_) => Some("invalidValue"),
            Error::InvalidSyntax(_) => Some("invalidSyntax"),
            Error::InvalidFilter(_) => Some("invalidFilter"),
            Error::InvalidPath(_) => Some("invalidPath"),
            Error::NoTarget(_) => Some("noTarget"),
            Error::Mutability(_) => Some("mutability"),
            Error::Uniqueness(_) | Error::Taken(_) => Some("uniqueness"),
            Error::InvalidCursor(_) => Some("invalidCursor"),
            Error::ExpiredCursor(_) => Some("expiredCursor"),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns an adapter's own failures (database, codec, SDK builder) into [`Error::Store`].
pub trait StoreResultExt<T> {
    fn or_store_error(self) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> StoreResultExt<T> for std::result::Result<T, E> {
    fn or_store_error(self) -> Result<T> {
        self.map_err(|e| Error::Store(StoreFailure::from_source(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_store_failure_keeps_the_adapter_error_as_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "disk says no");
        let e = Err::<(), _>(io).or_store_error().unwrap_err();
        assert_eq!(e.to_string(), "store failure: disk says no");
        // Error → StoreFailure → the io::Error, which a caller can downcast.
        let failure = e.source().expect("the store failure");
        let adapter = failure.source().expect("the adapter's error");
        let io = adapter.downcast_ref::<std::io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn store_failures_compare_by_their_words() {
        let with_source = Error::Store(StoreFailure::caused_by("put: x", std::fmt::Error));
        assert_eq!(with_source, Error::store("put: x"));
        assert_ne!(with_source, Error::store("put: y"));
        assert!(Error::store("corrupt item").source().and_then(|f| f.source()).is_none());
        assert_eq!(with_source.clone().to_string(), "store failure: put: x");
    }
}
