//! A tenant: one Butterfly customer organisation.

use crate::clock::Timestamp;
use crate::email::EmailDomain;
use crate::ids::TenantId;
use crate::sso::SsoConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Email domains whose users sign in through this tenant's identity provider.
    #[serde(default)]
    pub domains: Vec<EmailDomain>,
    pub created: Timestamp,
    /// Single sign-on settings, once an admin has saved them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoConfig>,
    /// Incremented on every change of the tenant record (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
}

impl Tenant {
    /// Validates a tenant name: 1 to 200 characters, no control characters.
    pub fn check_name(name: &str) -> Result<String, String> {
        let n = name.trim();
        if n.is_empty() || n.chars().count() > 200 {
            return Err("tenant name must be 1 to 200 characters".into());
        }
        if n.chars().any(char::is_control) {
            return Err("tenant name must not contain control characters".into());
        }
        Ok(n.to_string())
    }
}
