//! Outbound adapters toward what tenants name: their identity providers (over the one guarded
//! HTTP client) and their domains' DNS.

pub mod dns;
pub mod http;
pub mod oidc;

pub use dns::{DnsServers, TxtLookup};
pub use http::{FetchError, GuardedHttp, Limits};
pub use oidc::OidcProvider;
