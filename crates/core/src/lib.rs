//! Butterfly identity domain.
//!
//! Pure domain code: tenants, users, roles and permissions, the SCIM 2.0 protocol rules
//! (schema, filter, PATCH, paging, errors), bearer tokens, and the ports (small traits) the
//! adapters implement. Nothing here depends on AWS, HTTP or an async runtime.

pub mod actor;
pub mod audit;
pub mod claims;
pub mod clock;
pub mod csrf;
pub mod domain;
pub mod egress;
pub mod email;
pub mod error;
pub mod ids;
pub mod limit;
pub mod ports;
pub mod revocation;
pub mod role;
pub mod scim;
pub mod scim_tokens;
pub mod scim_users;
pub mod sessions;
pub mod setup_link;
pub mod sign_in;
pub mod sso;
pub mod sso_settings;
pub mod team;
pub mod tenant;
pub mod tenants;
pub mod text;
pub mod token;
pub mod usecase;
pub mod user;

pub use error::{Error, Result, StoreFailure, Taken};
