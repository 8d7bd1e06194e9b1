//! The audit trail: what happened in a tenant, newest first, kept for a retention period.

use crate::actor::{Actor, RecordedActor};
use crate::clock::Timestamp;
use crate::ids::{TenantId, UserId};
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
        let mut events = self.store.audit_page(tenant, cursor(before), limit + 1).await?;
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

/// Which events a reader wants: one kind, and/or those a member (named by their userName) did
/// or that concern them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    pub member: Option<crate::email::UserName>,
}

/// Which kinds of event a scan keeps.
#[derive(Debug, Clone, Copy)]
enum Kinds {
    Any,
    One(AuditAction),
    /// A member signed in: by their provider, or by a setup link.
    SignIns,
}

/// A filter with its member resolved to an id.
struct Resolved {
    kinds: Kinds,
    member: Option<UserId>,
}

impl Resolved {
    fn matches(&self, e: &AuditEvent) -> bool {
        let kind = match self.kinds {
            Kinds::Any => true,
            Kinds::One(a) => a == e.action,
            Kinds::SignIns => matches!(e.action, AuditAction::SignIn | AuditAction::SetupLinkUse),
        };
        kind && self
            .member
            .is_none_or(|id| e.target.as_deref().and_then(UserId::parse) == Some(id) || member_of(&e.actor) == Some(id))
    }

    fn is_everything(&self) -> bool {
        matches!(self.kinds, Kinds::Any) && self.member.is_none()
    }
}

/// The member an event's recorded actor is, if a member.
fn member_of(actor: &str) -> Option<UserId> {
    match Actor::read(actor) {
        RecordedActor::User(id) => Some(id),
        _ => None,
    }
}

/// A `before` cursor as callers pass it: anything not shaped like an event id starts from the
/// newest.
fn cursor(before: Option<&str>) -> Option<&str> {
    before.filter(|b| !b.is_empty() && b.len() <= 64)
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

/// Matching events of one scan, and where the next scan starts.
struct Scanned {
    events: Vec<AuditEvent>,
    next: Option<String>,
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
        let Some(filter) = self.resolve(tenant, filter).await? else {
            return Ok(NamedPage { events: vec![], next: None });
        };
        let scanned = self.scan(tenant, cursor(before), limit.clamp(1, Self::MAX_PAGE), &filter).await?;
        let events = self.named(tenant, scanned.events).await?;
        Ok(NamedPage { events, next: scanned.next })
    }

    /// Every event matching `filter`, newest first, at most `max` (for an export): the filter's
    /// member looked up once, scans of [`Self::MAX_PAGE`] events, at most `max / MAX_PAGE + 1`
    /// of them, then each distinct member named once.
    pub async fn export(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        max: usize,
    ) -> crate::error::Result<Vec<NamedEvent>> {
        let Some(filter) = self.resolve(tenant, filter).await? else { return Ok(vec![]) };
        let mut out = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..=(max / Self::MAX_PAGE) {
            let scanned = self.scan(tenant, before.as_deref(), Self::MAX_PAGE, &filter).await?;
            out.extend(scanned.events);
            match scanned.next {
                Some(n) if out.len() < max => before = Some(n),
                _ => break,
            }
        }
        out.truncate(max);
        self.named(tenant, out).await
    }

    /// The latest sign-in (by a provider or a setup link) among the tenant's latest events.
    pub async fn last_sign_in(&self, tenant: &TenantId) -> crate::error::Result<Option<NamedEvent>> {
        let filter = Resolved { kinds: Kinds::SignIns, member: None };
        let scanned = self.scan(tenant, None, 1, &filter).await?;
        Ok(self.named(tenant, scanned.events).await?.into_iter().next())
    }

    /// Each member's latest sign-in (by their provider or by a setup link) among the tenant's
    /// latest events: [`Self::SCAN_PAGES`] store pages of [`AuditTrail::MAX_PAGE`] at most,
    /// newest first (a member who signed in only before that has none here).
    pub async fn last_sign_ins(&self, tenant: &TenantId) -> crate::error::Result<Vec<(UserId, Timestamp)>> {
        let filter = Resolved { kinds: Kinds::SignIns, member: None };
        let mut out: Vec<(UserId, Timestamp)> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..Self::SCAN_PAGES {
            let events = self.events.audit_page(tenant, cursor.as_deref(), AuditTrail::MAX_PAGE).await?;
            for e in events.iter().filter(|e| filter.matches(e)) {
                if let Some(id) = member_of(&e.actor) {
                    if !out.iter().any(|(i, _)| *i == id) {
                        out.push((id, e.at));
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

    /// The filter with its member looked up, or `None` when nobody has that name (no event
    /// concerns them).
    async fn resolve(&self, tenant: &TenantId, filter: &AuditFilter) -> crate::error::Result<Option<Resolved>> {
        let kinds = filter.action.map_or(Kinds::Any, Kinds::One);
        let member = match &filter.member {
            None => None,
            Some(name) => match self.users.find_user_by_user_name(tenant, name.folded()).await? {
                Some(u) => Some(u.id),
                None => return Ok(None),
            },
        };
        Ok(Some(Resolved { kinds, member }))
    }

    /// At most `limit` events older than `before` that match `filter`, reading at most
    /// [`Self::SCAN_PAGES`] store pages (one page of `limit + 1` when nothing is filtered out).
    async fn scan(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: usize,
        filter: &Resolved,
    ) -> crate::error::Result<Scanned> {
        let batch = if filter.is_everything() { limit + 1 } else { AuditTrail::MAX_PAGE };
        let mut cursor = before.map(str::to_string);
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
        Ok(Scanned { events: shown, next })
    }

    /// `events` with each actor and target named: one member read per distinct member.
    async fn named(&self, tenant: &TenantId, events: Vec<AuditEvent>) -> crate::error::Result<Vec<NamedEvent>> {
        let mut ids: Vec<UserId> = Vec::new();
        for e in &events {
            for id in [member_of(&e.actor), e.target.as_deref().and_then(UserId::parse)].into_iter().flatten() {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut names: Vec<(UserId, String)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.users.get_user(tenant, &id).await? {
                names.push((id, crate::team::member_label(&u)));
            }
        }
        let name_of = |id: UserId| -> String {
            names.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap_or_else(|| {
                let id = id.to_string();
                format!("former member {}", id.get(..8).unwrap_or(&id))
            })
        };
        Ok(events
            .into_iter()
            .map(|event| NamedEvent {
                actor: member_of(&event.actor).map_or_else(|| actor_label(&event.actor), name_of),
                target: event.target.as_deref().map(|t| UserId::parse(t).map_or_else(|| t.to_string(), name_of)),
                event,
            })
            .collect())
    }
}

/// Who an actor that is not a member is, for people.
pub fn actor_label(actor: &str) -> String {
    match Actor::read(actor) {
        RecordedActor::Scim => "Identity provider (SCIM provisioning)".into(),
        RecordedActor::Operator => "Butterfly support (operator)".into(),
        RecordedActor::System => "Butterfly (automatic)".into(),
        RecordedActor::Provider(issuer) => format!("Identity provider {issuer}"),
        RecordedActor::User(id) => format!("member {id}"),
        RecordedActor::Unknown(a) => a.to_string(),
    }
}
