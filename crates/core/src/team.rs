//! Team management for super_admins: the members with their roles and where each role came
//! from, and manual role changes (never removing the last super_admin).

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::email::{fold, UserName};
use crate::ids::{TenantId, UserId};
use crate::ports::UserStore;
use crate::role::Role;
use crate::usecase::{retry_on_conflict, Attempt};
use crate::user::{RoleSource, User};
use crate::{Error, Result};
use serde_json::json;
use std::sync::Arc;

/// The outcome of a role change.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub user: User,
    /// Set when the identity provider manages this user's role and will overwrite it.
    pub warning: Option<String>,
}

/// The refusal of a role change for a member that does not exist (or whose id is not one).
pub fn no_such_member() -> Error {
    Error::NotFound("no such member".into())
}

/// How a member is named to people: "Display Name (email)", or the email alone.
pub fn member_label(u: &User) -> String {
    match u.display_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} ({})", u.user_name.as_str()),
        None => u.user_name.as_str().to_string(),
    }
}

pub struct TeamService {
    store: Arc<dyn UserStore>,
    clock: Arc<dyn Clock>,
}

/// How a role change names the member.
enum Member {
    Id(UserId),
    /// The case-folded `userName`.
    UserName(String),
}

const PAGE_MAX: usize = 200;
/// How often a role change is retried when the member changed meanwhile.
const ATTEMPTS: usize = 4;

impl TeamService {
    pub fn new(store: Arc<dyn UserStore>, clock: Arc<dyn Clock>) -> Self {
        TeamService { store, clock }
    }

    /// Members in creation order, after the member `after`; the next cursor if there are more.
    pub async fn members(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>)> {
        let after = match after.filter(|a| !a.is_empty()) {
            Some(a) => Some(UserId::parse(a).ok_or_else(|| Error::InvalidValue("after must be a member id".into()))?),
            None => None,
        };
        let limit = limit.clamp(1, PAGE_MAX);
        let mut page = self.store.list_users(tenant, after.as_ref(), 0, limit + 1).await?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|u| u.id.to_string()) } else { None };
        Ok((page, next))
    }

    /// The names of the tenant's active super_admins (who can grant access), among its first
    /// [`PAGE_MAX`] members: one store round trip.
    pub async fn super_admins(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let members = self.store.list_users(tenant, None, 0, PAGE_MAX).await?;
        Ok(members.iter().filter(|u| u.counts_as_super_admin()).map(member_label).collect())
    }

    /// The member whose userName is `email` (compared case-folded), if any.
    pub async fn find_member(&self, tenant: &TenantId, email: &str) -> Result<Option<User>> {
        let name = UserName::parse(email).map_err(Error::InvalidValue)?;
        self.store.find_user_by_user_name(tenant, name.folded()).await
    }

    /// Sets a member's role by hand. Refuses to demote the tenant's last active super_admin,
    /// atomically with the write (the store counts them in the same transaction).
    /// The HTTP layer parses the role with [`Role::from_name`] and the member's id with
    /// [`UserId::parse`] (an id that is not one is [`no_such_member`]).
    pub async fn change_role(&self, tenant: &TenantId, actor: &UserId, id: &UserId, role: Role) -> Result<RoleChange> {
        self.change(tenant, &Actor::User(*actor), &Member::Id(*id), role).await
    }

    /// [`Self::change_role`] for the member whose `userName` is `email` (case-insensitive), by
    /// any actor: the operator's `butterfly user set-role` (support), audited as `operator`.
    pub async fn change_role_by_email(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        email: &str,
        role: Role,
    ) -> Result<RoleChange> {
        self.change(tenant, actor, &Member::UserName(fold(email.trim())), role).await
    }

    async fn change(&self, tenant: &TenantId, actor: &Actor, member: &Member, role: Role) -> Result<RoleChange> {
        let role = &role;
        let changed = retry_on_conflict(ATTEMPTS, (), |()| async move {
            let current = match member {
                Member::Id(id) => self.store.get_user(tenant, id).await?,
                Member::UserName(folded) => self.store.find_user_by_user_name(tenant, folded).await?,
            }
            .ok_or_else(no_such_member)?;
            let from = current.effective_role();
            let warning = (current.role_source == Some(RoleSource::Scim)).then(|| {
                "your identity provider manages this role over SCIM and will overwrite it on its next push; \
                 change it there to make it stick"
                    .to_string()
            });
            let mut next = current.clone();
            next.role = Some(*role);
            next.role_source = Some(RoleSource::Manual);
            if next == current {
                return Ok(Attempt::Done(RoleChange { user: current, warning }));
            }
            let now = self.clock.now();
            next.version = current.version + 1;
            next.last_modified = now.max(current.last_modified);
            let audit = AuditEvent::new(tenant, now, AuditAction::RoleChange, actor.to_string())
                .target(current.id)
                .details(json!({ "from": from.as_str(), "to": role.as_str(), "previous_source": current.role_source }));
            match self.store.replace_user_guarded(&current, &next, Some(&audit)).await {
                Ok(()) => Ok(Attempt::Done(RoleChange { user: next, warning })),
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(())),
                Err(e) => Err(e),
            }
        })
        .await?;
        changed.ok_or_else(|| Error::Conflict("the member changed concurrently; retry".into()))
    }
}
