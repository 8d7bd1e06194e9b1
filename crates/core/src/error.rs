//! The domain error. It carries no HTTP status: the HTTP layer maps it at the edge.

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
    /// A unique attribute is already taken (SCIM `uniqueness`, HTTP 409).
    #[error("{0}")]
    Uniqueness(String),
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
    /// An unexpected store failure. The message is for logs, not for clients.
    #[error("store failure: {0}")]
    Store(String),
}

impl Error {
    /// The RFC 7644 §3.12 `scimType` for this error, where one applies.
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            Error::InvalidValue(_) => Some("invalidValue"),
            Error::InvalidSyntax(_) => Some("invalidSyntax"),
            Error::InvalidFilter(_) => Some("invalidFilter"),
            Error::InvalidPath(_) => Some("invalidPath"),
            Error::NoTarget(_) => Some("noTarget"),
            Error::Mutability(_) => Some("mutability"),
            Error::Uniqueness(_) => Some("uniqueness"),
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

impl<T, E: std::fmt::Display> StoreResultExt<T> for std::result::Result<T, E> {
    fn or_store_error(self) -> Result<T> {
        self.map_err(|e| Error::Store(e.to_string()))
    }
}
