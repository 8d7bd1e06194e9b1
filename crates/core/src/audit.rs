//! The audit trail: what happened in a tenant, newest first, kept for a retention period.

use crate::clock::Timestamp;
use crate::ids::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long audit events are kept by default (DynamoDB TTL; the embedded store filters).
pub const DEFAULT_RETENTION_DAYS: i64 = 400;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "scim.user.create")]
    ScimUserCreate,
    #[serde(rename = "scim.user.update")]
    ScimUserUpdate,
    #[serde(rename = "scim.user.delete")]
    ScimUserDelete,
    #[serde(rename = "signin")]
    SignIn,
    #[serde(rename = "signin.refused")]
    SignInRefused,
    #[serde(rename = "signout")]
    SignOut,
    #[serde(rename = "revocation")]
    Revocation,
    #[serde(rename = "scim_token.issue")]
    ScimTokenIssue,
    #[serde(rename = "scim_token.rotate")]
    ScimTokenRotate,
    #[serde(rename = "role.change")]
    RoleChange,
    #[serde(rename = "sso.settings.update")]
    SsoSettingsUpdate,
    #[serde(rename = "sso.test")]
    SsoTest,
    #[serde(rename = "domain.verify")]
    DomainVerify,
    #[serde(rename = "domain.withdraw")]
    DomainWithdraw,
    #[serde(rename = "setup_link.issue")]
    SetupLinkIssue,
    #[serde(rename = "setup_link.reissue")]
    SetupLinkReissue,
    #[serde(rename = "setup_link.use")]
    SetupLinkUse,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ScimUserCreate => "scim.user.create",
            AuditAction::ScimUserUpdate => "scim.user.update",
            AuditAction::ScimUserDelete => "scim.user.delete",
            AuditAction::SignIn => "signin",
            AuditAction::SignInRefused => "signin.refused",
            AuditAction::SignOut => "signout",
            AuditAction::Revocation => "revocation",
            AuditAction::ScimTokenIssue => "scim_token.issue",
            AuditAction::ScimTokenRotate => "scim_token.rotate",
            AuditAction::RoleChange => "role.change",
            AuditAction::SsoSettingsUpdate => "sso.settings.update",
            AuditAction::SsoTest => "sso.test",
            AuditAction::DomainVerify => "domain.verify",
            AuditAction::DomainWithdraw => "domain.withdraw",
            AuditAction::SetupLinkIssue => "setup_link.issue",
            AuditAction::SetupLinkReissue => "setup_link.reissue",
            AuditAction::SetupLinkUse => "setup_link.use",
        }
    }
}

/// One event. `id` is a UUIDv7, so ids sort by time; pages go from newest to oldest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub tenant: TenantId,
    pub at: Timestamp,
    pub action: AuditAction,
    /// Who did it: `scim`, `user:<id>`, `provider:<issuer>`, `operator`.
    pub actor: String,
    /// The user it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `success` or `refused`.
    pub outcome: String,
    /// Action-specific facts (never secrets).
    #[serde(default)]
    pub details: Value,
    /// When the event is dropped.
    pub expires: Timestamp,
}

impl AuditEvent {
    pub fn new(tenant: &TenantId, at: Timestamp, action: AuditAction, actor: impl Into<String>) -> Self {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.clone(),
            at,
            action,
            actor: actor.into(),
            target: None,
            outcome: "success".into(),
            details: Value::Null,
            expires: at.plus_secs(DEFAULT_RETENTION_DAYS * 86_400),
        }
    }

    pub fn target(mut self, t: impl ToString) -> Self {
        self.target = Some(t.to_string());
        self
    }

    pub fn refused(mut self) -> Self {
        self.outcome = "refused".into();
        self
    }

    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

/// One page of a tenant's audit trail, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `before` of the next page, if there is one.
    pub next: Option<String>,
}

/// Reading a tenant's audit trail: the use case behind the admin API's audit page.
pub struct AuditTrail {
    store: std::sync::Arc<dyn crate::ports::AuditStore>,
}

impl AuditTrail {
    /// Most events per page.
    pub const MAX_PAGE: usize = 200;

    pub fn new(store: std::sync::Arc<dyn crate::ports::AuditStore>) -> Self {
        AuditTrail { store }
    }

    /// The events older than `before` (a previous page's `next`; anything not shaped like an
    /// event id starts from the newest), at most `limit` (1 to [`Self::MAX_PAGE`]). One store
    /// round trip: one event more than asked says whether a next page exists.
    pub async fn page(
        &self,
        tenant: &crate::ids::TenantId,
        before: Option<&str>,
        limit: usize,
    ) -> crate::error::Result<AuditPage> {
        let limit = limit.clamp(1, Self::MAX_PAGE);
        let before = before.filter(|b| !b.is_empty() && b.len() <= 64);
        let mut events = self.store.audit_page(tenant, before, limit + 1).await?;
        let more = events.len() > limit;
        events.truncate(limit);
        let next = if more { events.last().map(|e| e.id.clone()) } else { None };
        Ok(AuditPage { events, next })
    }
}
