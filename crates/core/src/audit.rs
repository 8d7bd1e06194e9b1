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

impl AuditAction {
    /// Every kind of event, for filters.
    pub const ALL: [AuditAction; 17] = [
        AuditAction::ScimUserCreate,
        AuditAction::ScimUserUpdate,
        AuditAction::ScimUserDelete,
        AuditAction::SignIn,
        AuditAction::SignInRefused,
        AuditAction::SignOut,
        AuditAction::Revocation,
        AuditAction::ScimTokenIssue,
        AuditAction::ScimTokenRotate,
        AuditAction::RoleChange,
        AuditAction::SsoSettingsUpdate,
        AuditAction::SsoTest,
        AuditAction::DomainVerify,
        AuditAction::DomainWithdraw,
        AuditAction::SetupLinkIssue,
        AuditAction::SetupLinkReissue,
        AuditAction::SetupLinkUse,
    ];

    /// The kind named by [`Self::as_str`].
    pub fn parse(s: &str) -> Option<AuditAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What happened, for people.
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::ScimUserCreate => "Member provisioned (SCIM)",
            AuditAction::ScimUserUpdate => "Member updated (SCIM)",
            AuditAction::ScimUserDelete => "Member deleted (SCIM)",
            AuditAction::SignIn => "Signed in",
            AuditAction::SignInRefused => "Sign-in refused",
            AuditAction::SignOut => "Signed out",
            AuditAction::Revocation => "Sessions ended",
            AuditAction::ScimTokenIssue => "SCIM token issued",
            AuditAction::ScimTokenRotate => "SCIM token rotated",
            AuditAction::RoleChange => "Role changed",
            AuditAction::SsoSettingsUpdate => "SSO settings saved",
            AuditAction::SsoTest => "Test sign-in",
            AuditAction::DomainVerify => "Domain verified",
            AuditAction::DomainWithdraw => "Domain withdrawn",
            AuditAction::SetupLinkIssue => "Setup link issued",
            AuditAction::SetupLinkReissue => "Setup link re-issued",
            AuditAction::SetupLinkUse => "Setup link used",
        }
    }
}

/// Which events a reader wants: one kind, and/or those a member did or that concern them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    pub member: Option<MemberRef>,
}

/// A member, as a reader names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    Id(crate::ids::UserId),
    /// Their userName (an email), looked up once per page.
    Email(crate::email::UserName),
}

impl AuditFilter {
    pub fn is_empty(&self) -> bool {
        self.action.is_none() && self.member.is_none()
    }
}

/// A filter with its member resolved to an id.
struct Resolved {
    action: Option<AuditAction>,
    member: Option<String>,
}

impl Resolved {
    fn matches(&self, e: &AuditEvent) -> bool {
        self.action.is_none_or(|a| a == e.action)
            && self
                .member
                .as_deref()
                .is_none_or(|id| e.target.as_deref() == Some(id) || e.actor.strip_prefix("user:") == Some(id))
    }
}

/// An event with its actor and target named for people.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedEvent {
    pub event: AuditEvent,
    pub actor: String,
    pub target: Option<String>,
}

/// One page of [`AuditView::page`].
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPage {
    pub events: Vec<NamedEvent>,
    /// The `before` of the next page, if there may be one.
    pub next: Option<String>,
}

/// The audit trail as people read it (the console): filtered, with names instead of ids.
pub struct AuditView {
    events: std::sync::Arc<dyn crate::ports::AuditStore>,
    users: std::sync::Arc<dyn crate::ports::UserStore>,
}

impl AuditView {
    /// Most events per page.
    pub const MAX_PAGE: usize = 100;
    /// Store pages one filtered page reads at most (each of [`AuditTrail::MAX_PAGE`] events):
    /// a rare kind of event shows a short page with a link to older ones, never an unbounded scan.
    pub const SCAN_PAGES: usize = 5;

    pub fn new(
        events: std::sync::Arc<dyn crate::ports::AuditStore>,
        users: std::sync::Arc<dyn crate::ports::UserStore>,
    ) -> Self {
        AuditView { events, users }
    }

    /// The events older than `before` that match `filter`, newest first, at most `limit`
    /// (1 to [`Self::MAX_PAGE`]), each actor and target named. Reads at most
    /// [`Self::SCAN_PAGES`] store pages, then one member read per distinct member named.
    pub async fn page(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: usize,
        filter: &AuditFilter,
    ) -> crate::error::Result<NamedPage> {
        let limit = limit.clamp(1, Self::MAX_PAGE);
        let member = match &filter.member {
            None => None,
            Some(MemberRef::Id(id)) => Some(id.to_string()),
            Some(MemberRef::Email(name)) => match self.users.find_user_by_user_name(tenant, name.folded()).await? {
                Some(u) => Some(u.id.to_string()),
                // Nobody by that name: no event concerns them.
                None => return Ok(NamedPage { events: vec![], next: None }),
            },
        };
        let filter = Resolved { action: filter.action, member };
        let batch = if filter.action.is_none() && filter.member.is_none() { limit + 1 } else { AuditTrail::MAX_PAGE };
        let mut cursor = before.filter(|b| !b.is_empty() && b.len() <= 64).map(str::to_string);
        let mut shown: Vec<AuditEvent> = Vec::new();
        let (mut filled, mut exhausted) = (false, false);
        for _ in 0..Self::SCAN_PAGES {
            let events = self.events.audit_page(tenant, cursor.as_deref(), batch).await?;
            for e in events.iter().filter(|e| filter.matches(e)) {
                if shown.len() == limit {
                    filled = true;
                    break;
                }
                shown.push(e.clone());
            }
            if filled {
                break;
            }
            if events.len() < batch {
                exhausted = true;
                break;
            }
            cursor = events.last().map(|e| e.id.clone());
        }
        let next = match (filled, exhausted) {
            // One more match exists: the next page starts after the last one shown.
            (true, _) => shown.last().map(|e| e.id.clone()),
            (false, true) => None,
            // The scan bound was reached: the next page starts where this one stopped reading.
            (false, false) => cursor,
        };
        let names = self.names(tenant, &shown).await?;
        let name_of = |who: &str| -> String {
            match who.strip_prefix("user:") {
                Some(id) => names
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_else(|| format!("former member {}", id.get(..8).unwrap_or(id))),
                None => actor_label(who),
            }
        };
        let events = shown
            .into_iter()
            .map(|event| NamedEvent {
                actor: name_of(&event.actor),
                target: event.target.as_deref().map(|t| name_of(&format!("user:{t}"))),
                event,
            })
            .collect();
        Ok(NamedPage { events, next })
    }

    /// Each member's latest sign-in (by their provider or by a setup link) among the tenant's latest events: [`Self::SCAN_PAGES`] store
    /// pages of [`AuditTrail::MAX_PAGE`] at most, newest first (a member who signed in only
    /// before that has none here).
    pub async fn last_sign_ins(&self, tenant: &TenantId) -> crate::error::Result<Vec<(String, Timestamp)>> {
        let mut out: Vec<(String, Timestamp)> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..Self::SCAN_PAGES {
            let events = self.events.audit_page(tenant, cursor.as_deref(), AuditTrail::MAX_PAGE).await?;
            // A setup link's use signs its owner in, as a provider sign-in does.
            let signed_in = |e: &&AuditEvent| {
                matches!(e.action, AuditAction::SignIn | AuditAction::SetupLinkUse) && e.outcome == "success"
            };
            for e in events.iter().filter(signed_in) {
                if let Some(id) = e.actor.strip_prefix("user:") {
                    if !out.iter().any(|(i, _)| i == id) {
                        out.push((id.to_string(), e.at));
                    }
                }
            }
            if events.len() < AuditTrail::MAX_PAGE {
                break;
            }
            cursor = events.last().map(|e| e.id.clone());
        }
        Ok(out)
    }

    /// Every event matching `filter`, newest first, at most `max` (for an export): pages of
    /// [`Self::MAX_PAGE`], at most `max / MAX_PAGE + 1` of them.
    pub async fn export(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        max: usize,
    ) -> crate::error::Result<Vec<NamedEvent>> {
        let mut out = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..=(max / Self::MAX_PAGE) {
            let page = self.page(tenant, before.as_deref(), Self::MAX_PAGE, filter).await?;
            out.extend(page.events);
            match page.next {
                Some(n) if out.len() < max => before = Some(n),
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// The member named by each distinct member id of `events` (one read each).
    async fn names(&self, tenant: &TenantId, events: &[AuditEvent]) -> crate::error::Result<Vec<(String, String)>> {
        let mut ids: Vec<crate::ids::UserId> = Vec::new();
        for e in events {
            let actor = e.actor.strip_prefix("user:");
            for id in [actor, e.target.as_deref()].into_iter().flatten().filter_map(crate::ids::UserId::parse) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.users.get_user(tenant, &id).await? {
                out.push((id.to_string(), crate::team::member_label(&u)));
            }
        }
        Ok(out)
    }
}

/// Who an actor that is not a member is, for people.
pub fn actor_label(actor: &str) -> String {
    match actor {
        "scim" => "Identity provider (SCIM provisioning)".into(),
        "operator" => "Butterfly support (operator)".into(),
        "system" => "Butterfly (automatic)".into(),
        a => match a.strip_prefix("provider:") {
            Some(issuer) => format!("Identity provider {issuer}"),
            None => a.to_string(),
        },
    }
}
