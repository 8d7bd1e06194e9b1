//! The user: what Butterfly stores about a team member.

use crate::claims::UserClaim;
use crate::clock::Timestamp;
use crate::email::UserName;
use crate::ids::{TenantId, UserId};
use crate::role::Role;
use crate::sso::Subject;
use serde::{Deserialize, Serialize};

/// A team member of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantId,
    pub user_name: UserName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The assigned role; `None` means none was assigned and the user is `read_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Who set the role last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_source: Option<RoleSource>,
    /// The user's identity at the tenant's provider, linked at first sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Sessions started at or before this instant are dead (set when the user is deactivated,
    /// in the same write; reactivation leaves it, so old sessions stay dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_revoked_at: Option<Timestamp>,
    pub created: Timestamp,
    pub last_modified: Timestamp,
    /// Incremented on every write; the SCIM `meta.version` (weak ETag).
    pub version: u64,
}

/// The refusal of a write that would leave a tenant without an active super_admin.
pub const LAST_SUPER_ADMIN: &str = "this is the last super_admin: make someone else super_admin first";

impl User {
    /// Whether this user counts towards the tenant's active super_admins (the last one may not
    /// be demoted by hand).
    pub fn counts_as_super_admin(&self) -> bool {
        self.active && self.effective_role() == Role::SuperAdmin
    }

    /// The uniqueness claims this user holds within its tenant: the case-folded `userName`,
    /// the `externalId` and the provider identity link, in that order.
    pub fn claims(&self) -> Vec<UserClaim> {
        let tenant = &self.tenant;
        let mut claims = vec![UserClaim::UserName { tenant: tenant.clone(), folded: self.user_name.folded().into() }];
        if let Some(e) = &self.external_id {
            claims.push(UserClaim::ExternalId { tenant: tenant.clone(), external_id: e.clone() });
        }
        if let Some(s) = &self.subject {
            claims.push(UserClaim::Subject { tenant: tenant.clone(), subject: s.clone() });
        }
        claims
    }

    /// The role in force: the assigned one, else `read_only`.
    pub fn effective_role(&self) -> Role {
        self.role.unwrap_or(Role::ReadOnly)
    }

    /// The weak ETag for this version, e.g. `W/"3"`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

/// The components of a user's name (RFC 7643 §4.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
}

impl Name {
    pub fn is_empty(&self) -> bool {
        self.formatted.is_none()
            && self.family_name.is_none()
            && self.given_name.is_none()
            && self.middle_name.is_none()
    }
}

/// One of a user's email addresses (RFC 7643 §4.1.2), kept as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// Where a user's role came from, so admins can tell whether Okta will overwrite it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// Pushed by the identity provider over SCIM.
    Scim,
    /// Default given when the user was created at first sign-in.
    Jit,
    /// Set by a Butterfly super_admin.
    Manual,
}
