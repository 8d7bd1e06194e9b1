//! A tenant's SCIM tokens: the first one, rotations (immediate, or with an overlap until the
//! new token's first use), and which ones are live. A tenant has two live tokens at most, ever.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::ports::ScimTokenStore;
use crate::tenant::Tenant;
use crate::token::{ScimToken, TokenRecord};
use crate::usecase::record_or_log;
use std::sync::Arc;

/// How a rotation treats the old token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    /// The old token stops working in the same write.
    Immediate,
    /// The old token keeps working until the new one is first used, or for `secs` at most.
    Overlap { secs: i64 },
}

/// The longest an old token may overlap with its successor.
pub const MAX_OVERLAP_SECS: i64 = 7 * 86_400;
/// The overlap when none is asked for (the admin API's and the CLI's default).
pub const DEFAULT_OVERLAP_HOURS: f64 = 24.0;

impl RotationMode {
    /// An overlap of `hours` (more than 0, at most 168), or why not.
    pub fn overlap_hours(hours: f64) -> std::result::Result<Self, String> {
        if !(hours.is_finite() && hours > 0.0 && hours * 3600.0 <= MAX_OVERLAP_SECS as f64) {
            return Err(format!("the overlap must be more than 0 and at most {} hours", MAX_OVERLAP_SECS / 3600));
        }
        Ok(RotationMode::Overlap { secs: (hours * 3600.0) as i64 })
    }
}

impl RotationMode {
    /// What an admin or operator asked for: `immediate`, or an overlap of `overlap_hours`
    /// (the default overlap without it), or why not. `immediate` with hours is immediate.
    pub fn requested(immediate: bool, overlap_hours: Option<f64>) -> std::result::Result<Self, String> {
        match (immediate, overlap_hours) {
            (true, _) => Ok(RotationMode::Immediate),
            (false, None) => Ok(RotationMode::default()),
            (false, Some(hours)) => RotationMode::overlap_hours(hours),
        }
    }
}

impl Default for RotationMode {
    /// The current token keeps working until the new one is first used, 24 hours at most: no
    /// provisioning gap while the admin pastes the new token into Okta.
    fn default() -> Self {
        RotationMode::Overlap { secs: (DEFAULT_OVERLAP_HOURS * 3600.0) as i64 }
    }
}

/// A token just issued: the secret (show it once) and its record.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: ScimToken,
    pub record: TokenRecord,
    /// Tokens that stopped working in the same write.
    pub ended: usize,
    /// The token left working beside the new one (overlap rotation), until its deadline.
    pub overlapped: Option<TokenRecord>,
}

/// Issues and rotates SCIM tokens (the operator's CLI, a super_admin's admin API).
#[derive(Clone)]
pub struct ScimTokenService {
    store: Arc<dyn ScimTokenStore>,
    clock: Arc<dyn Clock>,
}

impl ScimTokenService {
    pub fn new(store: Arc<dyn ScimTokenStore>, clock: Arc<dyn Clock>) -> Self {
        ScimTokenService { store, clock }
    }

    async fn tenant(&self, id: &TenantId) -> Result<Tenant> {
        self.store.get_tenant(id).await?.ok_or_else(|| Error::NotFound(format!("tenant {id} does not exist")))
    }

    fn new_token(&self, tenant: &TenantId) -> Result<IssuedToken> {
        let token = ScimToken::generate_for(tenant).map_err(Error::store)?;
        let record = TokenRecord {
            hash: token.hash(),
            tenant: tenant.clone(),
            display_prefix: token.display_prefix(),
            created: self.clock.now(),
            last_used: None,
            expires: None,
            replaces: None,
        };
        Ok(IssuedToken { token, record, ended: 0, overlapped: None })
    }

    /// Issues the tenant's first SCIM token.
    pub async fn issue_token(&self, tenant: &TenantId) -> Result<IssuedToken> {
        self.tenant(tenant).await?;
        let issued = self.new_token(tenant)?;
        self.store.install_token(&issued.record, None).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "tenant {tenant} already has a SCIM token; use 'scim-token rotate' to replace it"
            )),
            other => other,
        })?;
        let event = AuditEvent::new(tenant, self.clock.now(), AuditAction::ScimTokenIssue, Actor::Operator.to_string())
            .details(serde_json::json!({ "display_prefix": issued.record.display_prefix }));
        record_or_log(self.store.as_ref(), &event).await;
        Ok(issued)
    }

    /// Replaces the tenant's SCIM token; every old one stops working at once.
    pub async fn rotate_token(&self, tenant: &TenantId) -> Result<IssuedToken> {
        self.rotate_token_as(tenant, RotationMode::Immediate, &Actor::Operator).await
    }

    /// Issues the first token, or rotates. A tenant has two live tokens at most, ever:
    /// `Immediate` ends every other token in the same write (the lost-token case); `Overlap`
    /// keeps only the current one working beside the new one, until the new one is first used
    /// or the deadline passes, whichever comes first (no provisioning gap while the admin pastes
    /// the new token into Okta), and ends any older one in the same write.
    pub async fn rotate_token_as(&self, tenant: &TenantId, mode: RotationMode, actor: &Actor) -> Result<IssuedToken> {
        self.tenant(tenant).await?;
        let slots = self.store.token_slots(tenant).await?;
        let current = match &slots {
            Some(s) => self.store.resolve_token(&s.current).await?,
            None => None,
        };
        let mut issued = self.new_token(tenant)?;
        let now = self.clock.now();
        let (action, details) = match (&slots, mode) {
            (None, _) => {
                self.store.install_token(&issued.record, None).await?;
                (AuditAction::ScimTokenIssue, serde_json::json!({ "display_prefix": issued.record.display_prefix }))
            }
            (Some(s), RotationMode::Immediate) => {
                self.store.install_token(&issued.record, Some(s)).await?;
                issued.ended = 1 + usize::from(s.previous.is_some());
                (
                    AuditAction::ScimTokenRotate,
                    serde_json::json!({ "mode": "immediate", "display_prefix": issued.record.display_prefix,
                                        "previous_prefix": current.as_ref().map(|c| c.display_prefix.clone()),
                                        "tokens_ended": 1 + usize::from(s.previous.is_some()) }),
                )
            }
            (Some(s), RotationMode::Overlap { secs }) => {
                let secs = secs.clamp(60, MAX_OVERLAP_SECS);
                let until = now.plus_secs(secs);
                issued.record.replaces = Some(s.current);
                self.store.install_token_with_overlap(&issued.record, s, until).await?;
                issued.ended = usize::from(s.previous.is_some());
                issued.overlapped = current.clone().map(|c| TokenRecord { expires: Some(until), ..c });
                (
                    AuditAction::ScimTokenRotate,
                    serde_json::json!({ "mode": "overlap", "display_prefix": issued.record.display_prefix,
                                        "previous_prefix": current.as_ref().map(|c| c.display_prefix.clone()),
                                        "previous_expires": until.to_rfc3339(),
                                        "tokens_ended": usize::from(s.previous.is_some()) }),
                )
            }
        };
        record_or_log(self.store.as_ref(), &AuditEvent::new(tenant, now, action, actor.to_string()).details(details))
            .await;
        Ok(issued)
    }

    /// The tenant's live tokens, current first (never the tokens themselves).
    pub async fn live_tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>> {
        self.tenant(tenant).await?;
        let Some(slots) = self.store.token_slots(tenant).await? else { return Ok(vec![]) };
        let now = self.clock.now();
        let mut out = Vec::new();
        for h in std::iter::once(slots.current).chain(slots.previous) {
            if let Some(r) = self.store.resolve_token(&h).await?.filter(|r| r.is_live(now)) {
                out.push(r);
            }
        }
        Ok(out)
    }
}
