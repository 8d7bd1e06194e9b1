//! The owner's one-time setup link: how the first super_admin of a tenant gets into the console
//! without SCIM and without an identity provider (and how a customer locked out by a broken
//! provider setup gets back in).
//!
//! The operator issues it (`butterfly tenant create --owner-email`, `butterfly tenant
//! owner-link`); it is shown once and stored only as its SHA-256. It names one tenant and one
//! owner email, works once, and expires [`SETUP_LINK_TTL_SECS`] after it was issued; issuing
//! another retires it. Using it creates (or finds) the owner's user as a manual `super_admin`
//! and a browser session for them, like a sign-in. The owner's later sign-in through the
//! tenant's provider links to that same user by the linking rules of `sign_in`.
//!
//! Format: `bfy_setup_` + the tenant id + `_` + 43 base64url characters (256 random bits from
//! the same source as SCIM tokens). The tenant id in the link is not secret; it is where the
//! store looks (one item per tenant), and the hash covers the whole link, so a secret of one
//! tenant's link with another tenant's id is a link nobody issued.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::email::UserName;
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::ports::SetupStore;
use crate::role::Role;
use crate::sso::{hash_secret, random_secret, Session};
use crate::token::{Secret, TokenHash};
use crate::usecase::{changed_concurrently, record_or_log, retry_on_conflict, Attempt};
use crate::user::{Email, RoleSource, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

pub const SETUP_LINK_PREFIX: &str = "bfy_setup_";
/// How long a setup link works after it was issued: 72 hours.
pub const SETUP_LINK_TTL_SECS: i64 = 72 * 3600;
/// The `issuer` of a session started by a setup link: not a provider (no provider logout, and
/// replacing the tenant's provider does not end it).
pub const SETUP_LINK_ISSUER: &str = "butterfly:setup-link";
const SECRET_LEN: usize = 43;
const TENANT_LEN: usize = 36;
const LINK_LEN: usize = SETUP_LINK_PREFIX.len() + TENANT_LEN + 1 + SECRET_LEN;

/// A setup link, freshly issued or as presented: never printed by `Debug`.
#[derive(Clone, Debug)]
pub struct SetupLink {
    tenant: TenantId,
    text: Secret,
}

impl SetupLink {
    fn generate(tenant: &TenantId) -> Result<Self> {
        let secret = random_secret().map_err(Error::store)?;
        let text = format!("{SETUP_LINK_PREFIX}{tenant}_{}", secret.expose());
        Ok(SetupLink { tenant: tenant.clone(), text: Secret::new(text) })
    }

    /// Accepts a presented link if it has our shape (a format check, not authentication: only
    /// the store says whether it is live). Anything else is `None`, without a store round trip.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != LINK_LEN || !s.is_ascii() {
            return None;
        }
        let rest = s.strip_prefix(SETUP_LINK_PREFIX)?;
        let (tenant, secret) = rest.split_at(TENANT_LEN);
        let secret = secret.strip_prefix('_')?;
        let tenant = TenantId::parse(tenant)?;
        if !crate::sso::is_secret_shaped(secret) {
            return None;
        }
        Some(SetupLink { tenant, text: Secret::new(s) })
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The link's path segment. Call only where it must leave the process (shown once).
    pub fn secret(&self) -> &Secret {
        &self.text
    }

    /// What the store keeps: SHA-256 of the whole link.
    pub fn hash(&self) -> TokenHash {
        hash_secret(self.text.expose())
    }
}

/// What the store keeps about a tenant's setup link: its owner, and the link only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupLinkRecord {
    pub tenant: TenantId,
    /// The email the owner's user is created (or found) with.
    pub owner: UserName,
    pub hash: TokenHash,
    pub created: Timestamp,
    pub expires: Timestamp,
    /// When the link was used; a used link never works again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<Timestamp>,
}

impl SetupLinkRecord {
    /// Whether the link still works at `now`.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.used.is_none() && now < self.expires
    }
}

/// A link just issued: show `link` once.
#[derive(Debug)]
pub struct IssuedSetupLink {
    pub link: SetupLink,
    pub record: SetupLinkRecord,
    /// Whether an unused link of the tenant stopped working in the same write.
    pub replaced_unused: bool,
}

/// A setup link just used: set the session cookie to `session_secret`.
#[derive(Debug)]
pub struct SetupSignIn {
    pub session_secret: Secret,
    pub user: User,
    /// Whether the owner's user was created just now.
    pub created: bool,
    pub max_age_secs: i64,
}

/// Why a setup link signed nobody in.
#[derive(Debug, thiserror::Error)]
pub enum SetupRefusal {
    /// The one refusal of a link that does not work, whatever the reason (unknown, used,
    /// expired, another tenant's): the same words for each, so the answer tells a guesser nothing.
    #[error("this setup link has expired, was already used, or is not a Butterfly setup link; ask Butterfly support for a new one")]
    InvalidLink,
    /// The owner's account was deactivated (by the provider, over SCIM).
    #[error("the account of this setup link's owner is deactivated; ask your identity provider's administrator to restore it")]
    OwnerDeactivated,
    #[error(transparent)]
    Store(#[from] Error),
}

/// How often the owner's user write is retried when the user changed meanwhile.
const ATTEMPTS: usize = 4;

/// Issues setup links (the operator) and uses them (the owner's browser).
#[derive(Clone)]
pub struct SetupLinkService {
    store: Arc<dyn SetupStore>,
    clock: Arc<dyn Clock>,
    /// How long a session started by a link lasts (the SSO sessions' absolute lifetime).
    session_secs: i64,
}

impl SetupLinkService {
    pub fn new(store: Arc<dyn SetupStore>, clock: Arc<dyn Clock>, session_secs: i64) -> Self {
        SetupLinkService { store, clock, session_secs }
    }

    /// Issues the tenant's setup link for `owner`, or, without `owner`, for the owner of the
    /// tenant's previous link. Any other link of the tenant stops working in the same write.
    /// Audited as the operator's `setup_link.issue` (the first) or `setup_link.reissue`.
    pub async fn issue(&self, tenant: &TenantId, owner: Option<&UserName>) -> Result<IssuedSetupLink> {
        self.store
            .get_tenant(tenant)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant} does not exist")))?;
        let owner =
            match owner {
                Some(o) => o.clone(),
                None => self.store.get_setup_link(tenant).await?.map(|r| r.owner).ok_or_else(|| {
                    Error::InvalidValue(format!("tenant {tenant} has no owner yet: name one by email"))
                })?,
            };
        let link = SetupLink::generate(tenant)?;
        let now = self.clock.now();
        let record = SetupLinkRecord {
            tenant: tenant.clone(),
            owner: owner.clone(),
            hash: link.hash(),
            created: now,
            expires: now.plus_secs(SETUP_LINK_TTL_SECS),
            used: None,
        };
        let previous = self.store.put_setup_link(&record).await?;
        let replaced_unused = previous.as_ref().is_some_and(|p| p.is_usable(now));
        let action = if previous.is_some() { AuditAction::SetupLinkReissue } else { AuditAction::SetupLinkIssue };
        let event = AuditEvent::new(tenant, now, action, Actor::Operator.to_string()).details(json!({
            "owner": owner.as_str(),
            "expires": record.expires.to_rfc3339(),
            "previous_owner": previous.as_ref().map(|p| p.owner.as_str().to_string()),
            "unused_link_retired": replaced_unused,
        }));
        record_or_log(self.store.as_ref(), &event).await;
        Ok(IssuedSetupLink { link, record, replaced_unused })
    }

    /// Uses a presented link: marks it used (atomically: of two uses one wins), makes its owner
    /// a manual `super_admin` (created if new) and starts a session for them. A link that does
    /// not work is [`SetupRefusal::InvalidLink`], whatever the reason.
    pub async fn use_link(&self, presented: &str) -> std::result::Result<SetupSignIn, SetupRefusal> {
        let link = SetupLink::parse(presented).ok_or(SetupRefusal::InvalidLink)?;
        let now = self.clock.now();
        // The store's use is the check: one conditional write on the tenant's link (this hash,
        // unused, unexpired), contract-tested on both stores.
        let record =
            self.store.use_setup_link(link.tenant(), &link.hash(), now).await?.ok_or(SetupRefusal::InvalidLink)?;
        let (user, created) = self.owner_as_super_admin(&record).await?.ok_or(SetupRefusal::OwnerDeactivated)?;
        let session_secret = random_secret().map_err(Error::store)?;
        let session = Session {
            hash: hash_secret(session_secret.expose()),
            tenant: record.tenant.clone(),
            user: user.id,
            issuer: SETUP_LINK_ISSUER.into(),
            subject: String::new(),
            sid: None,
            id_token: None,
            created: now,
            last_seen: now,
            expires: now.plus_secs(self.session_secs),
            // The deployment's idle and absolute timeouts, not the tenant's sign-in policy (a
            // setup session is not a provider sign-in; reading the tenant would be one more read).
            idle_secs: None,
            confirmed: true,
        };
        self.store.create_session(&session).await?;
        Ok(SetupSignIn { session_secret, user, created, max_age_secs: self.session_secs })
    }

    /// The owner's user, made a manual super_admin: created if there is none, promoted if it is
    /// something else; the `setup_link.use` event goes in the same write (or alone if nothing
    /// changed). `None`: the owner's account is deactivated.
    async fn owner_as_super_admin(&self, record: &SetupLinkRecord) -> Result<Option<(User, bool)>> {
        let tenant = &record.tenant;
        let done = retry_on_conflict(ATTEMPTS, (), |()| async move {
            let now = self.clock.now();
            let event = |user: &User, created: bool, from: Option<Role>| {
                AuditEvent::new(tenant, now, AuditAction::SetupLinkUse, Actor::User(user.id).to_string())
                    .target(user.id)
                    .details(json!({ "owner": record.owner.as_str(), "created": created,
                                     "from_role": from.map(Role::as_str) }))
            };
            match self.store.find_user_by_user_name(tenant, record.owner.folded()).await? {
                None => {
                    let user = new_owner(record, now);
                    match self.store.create_user_audited(&user, Some(&event(&user, true, None))).await {
                        Ok(()) => Ok(Attempt::Done(Some((user, true)))),
                        // Created meanwhile (Okta's SCIM push, a first sign-in): look again.
                        Err(Error::Taken(_)) => Ok(Attempt::Retry(())),
                        Err(e) => Err(e),
                    }
                }
                Some(u) if !u.active => Ok(Attempt::Done(None)),
                Some(u) if u.role == Some(Role::SuperAdmin) && u.role_source == Some(RoleSource::Manual) => {
                    record_or_log(self.store.as_ref(), &event(&u, false, u.role)).await;
                    Ok(Attempt::Done(Some((u, false))))
                }
                Some(u) => {
                    let mut next = u.clone();
                    next.role = Some(Role::SuperAdmin);
                    next.role_source = Some(RoleSource::Manual);
                    next.version = u.version + 1;
                    next.last_modified = now.max(u.last_modified);
                    match self
                        .store
                        .replace_user_audited(&u, &next, Some(&event(&u, false, Some(u.effective_role()))))
                        .await
                    {
                        Ok(()) => Ok(Attempt::Done(Some((next, false)))),
                        Err(Error::PreconditionFailed(_) | Error::NotFound(_)) => Ok(Attempt::Retry(())),
                        Err(e) => Err(e),
                    }
                }
            }
        })
        .await?;
        done.ok_or_else(|| changed_concurrently("user"))
    }
}

/// The owner's user as a setup link creates it: the email as `userName` and primary email, a
/// manual super_admin, not yet linked to a provider identity.
fn new_owner(record: &SetupLinkRecord, now: Timestamp) -> User {
    User {
        id: UserId::generate(),
        tenant: record.tenant.clone(),
        user_name: record.owner.clone(),
        external_id: None,
        name: None,
        display_name: None,
        emails: vec![Email {
            value: record.owner.as_str().to_string(),
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        }],
        active: true,
        locale: None,
        role: Some(Role::SuperAdmin),
        role_source: Some(RoleSource::Manual),
        subject: None,
        sessions_revoked_at: None,
        created: now,
        last_modified: now,
        version: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_only_in_their_own_shape() {
        let t = TenantId::generate();
        let l = SetupLink::generate(&t).unwrap();
        let s = l.secret().expose().to_string();
        assert!(s.starts_with(SETUP_LINK_PREFIX) && s.len() == LINK_LEN, "{s}");
        let again = SetupLink::parse(&s).unwrap();
        assert_eq!(again.tenant(), &t);
        assert_eq!(again.hash(), l.hash());
        assert_ne!(SetupLink::generate(&t).unwrap().hash(), l.hash(), "random");
        for bad in [
            "",
            "bfy_setup_",
            &s[..s.len() - 1],
            &format!("{s}x"),
            &s.replace(SETUP_LINK_PREFIX, "bfy_scim__"),
            &format!("{}!{}", &s[..s.len() - 1], ""),
            &s.replacen(&t.to_string(), &t.to_string().to_uppercase(), 1),
        ] {
            assert!(SetupLink::parse(bad).is_none(), "{bad:?}");
        }
        let mut chars: Vec<char> = s.chars().collect();
        let last = chars.len() - 1;
        chars[last] = '<';
        assert!(SetupLink::parse(&chars.into_iter().collect::<String>()).is_none());
    }

    #[test]
    fn a_link_never_prints() {
        let l = SetupLink::generate(&TenantId::generate()).unwrap();
        let secret_part = &l.secret().expose()[SETUP_LINK_PREFIX.len() + TENANT_LEN + 1..];
        assert!(!format!("{l:?}").contains(secret_part));
    }
}
