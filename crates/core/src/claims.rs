//! Uniqueness claims: the values only one holder may have at a time, and which of them a write
//! moves. A user claims its case-folded `userName`, its `externalId` and its link to the
//! provider identity within its tenant; a tenant claims its verified email domains and its SSO
//! issuer across all tenants. Core decides which claims a write adds, keeps and releases
//! ([`ClaimDiff`]); the stores only execute that diff, atomically with the write, and answer a
//! taken claim with [`UserClaim::taken`] / [`TenantClaim::taken`].

use crate::email::EmailDomain;
use crate::error::{Error, Taken};
use crate::ids::TenantId;
use crate::sso::Subject;
use crate::tenant::Tenant;
use crate::user::User;

/// A value at most one user of a tenant may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserClaim {
    /// The case-folded `userName`.
    UserName {
        tenant: TenantId,
        folded: String,
    },
    ExternalId {
        tenant: TenantId,
        external_id: String,
    },
    /// The link to the user's identity at the tenant's provider.
    Subject {
        tenant: TenantId,
        subject: Subject,
    },
}

/// The attribute a user claim is about, as the SCIM `uniqueness` error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueAttribute {
    UserName,
    ExternalId,
    Subject,
}

impl UniqueAttribute {
    /// The attribute's SCIM name.
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueAttribute::UserName => "userName",
            UniqueAttribute::ExternalId => "externalId",
            UniqueAttribute::Subject => "subject",
        }
    }
}

impl UserClaim {
    pub fn tenant(&self) -> &TenantId {
        match self {
            UserClaim::UserName { tenant, .. }
            | UserClaim::ExternalId { tenant, .. }
            | UserClaim::Subject { tenant, .. } => tenant,
        }
    }

    pub fn attribute(&self) -> UniqueAttribute {
        match self {
            UserClaim::UserName { .. } => UniqueAttribute::UserName,
            UserClaim::ExternalId { .. } => UniqueAttribute::ExternalId,
            UserClaim::Subject { .. } => UniqueAttribute::Subject,
        }
    }

    /// The refusal when another user holds this claim.
    pub fn taken(&self) -> Error {
        Error::Taken(Taken::User(self.attribute()))
    }
}

/// A value at most one tenant may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantClaim {
    /// A verified email domain: it routes sign-ins to the tenant.
    Domain(EmailDomain),
    /// The SSO issuer the tenant has claimed ([`Tenant::claimed_issuer`]), normalised form.
    Issuer(String),
}

impl TenantClaim {
    /// The refusal when another tenant holds this claim (its words are shown to the admin).
    pub fn taken(&self) -> Error {
        Error::Taken(Taken::Tenant(self.clone()))
    }
}

/// What holds uniqueness claims: users and tenants.
pub trait ClaimHolder {
    type Claim: PartialEq + Clone;
    /// Every claim this version holds, in a fixed order (the order a store checks them in, so
    /// the first taken one is the one reported).
    fn claims(&self) -> Vec<Self::Claim>;
}

impl ClaimHolder for User {
    type Claim = UserClaim;
    fn claims(&self) -> Vec<UserClaim> {
        User::claims(self)
    }
}

impl ClaimHolder for Tenant {
    type Claim = TenantClaim;
    fn claims(&self) -> Vec<TenantClaim> {
        Tenant::claims(self)
    }
}

/// How a write moves claims from one version of a holder to the next: a create (`before`
/// absent) adds every claim, a delete (`after` absent) releases every claim, a replace adds
/// the new ones, keeps the unchanged ones (a store refreshes or re-checks them) and releases
/// the ones the next version no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimDiff<C> {
    /// Claims the write takes: each must be free (else the write fails with its `taken`).
    pub add: Vec<C>,
    /// Claims both versions hold.
    pub keep: Vec<C>,
    /// Claims the write releases.
    pub remove: Vec<C>,
}

impl<C: PartialEq + Clone> ClaimDiff<C> {
    /// The diff between two versions of one holder (`None`: it does not exist on that side).
    pub fn between<H: ClaimHolder<Claim = C>>(before: Option<&H>, after: Option<&H>) -> Self {
        let before = before.map(H::claims).unwrap_or_default();
        let after = after.map(H::claims).unwrap_or_default();
        let (keep, add): (Vec<C>, Vec<C>) = after.into_iter().partition(|c| before.contains(c));
        let remove = before.into_iter().filter(|c| !keep.contains(c)).collect();
        ClaimDiff { add, keep, remove }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::UserName;
    use crate::ids::UserId;

    /// A user as a store would read it back (only the claimed attributes matter here).
    fn user(name: &str, external_id: Option<&str>) -> User {
        serde_json::from_value(serde_json::json!({
            "id": UserId::generate(), "tenant": TenantId::generate(), "user_name": name,
            "external_id": external_id, "active": true, "created": 0, "last_modified": 0, "version": 1,
        }))
        .unwrap()
    }

    #[test]
    fn a_create_adds_and_a_delete_releases_every_claim() {
        let u = user("Alice@Example.com", Some("00uA"));
        let create = ClaimDiff::between(None, Some(&u));
        assert_eq!(create.add, u.claims());
        assert!(create.keep.is_empty() && create.remove.is_empty());
        let delete = ClaimDiff::between(Some(&u), None);
        assert_eq!(delete.remove, u.claims());
        assert!(delete.add.is_empty() && delete.keep.is_empty());
    }

    #[test]
    fn a_replace_moves_only_what_changed() {
        let before = user("alice@example.com", Some("00uA"));
        let mut after = before.clone();
        // Only the case changed: the folded userName is the same claim.
        after.user_name = UserName::parse("ALICE@example.com").unwrap();
        after.external_id = Some("00uB".into());
        after.subject = Some(Subject { issuer: "https://a.okta.example".into(), sub: "00uA".into() });
        let diff = ClaimDiff::between(Some(&before), Some(&after));
        let attrs = |cs: &[UserClaim]| cs.iter().map(UserClaim::attribute).collect::<Vec<_>>();
        assert_eq!(attrs(&diff.keep), [UniqueAttribute::UserName]);
        assert_eq!(attrs(&diff.add), [UniqueAttribute::ExternalId, UniqueAttribute::Subject]);
        assert_eq!(attrs(&diff.remove), [UniqueAttribute::ExternalId]);
        assert_eq!(diff.remove[0], UserClaim::ExternalId { tenant: before.tenant.clone(), external_id: "00uA".into() });
    }

    #[test]
    fn taken_claims_name_what_was_taken() {
        let u = user("alice@example.com", Some("00uA"));
        let taken: Vec<Error> = u.claims().iter().map(UserClaim::taken).collect();
        assert_eq!(
            taken,
            [
                Error::Taken(Taken::User(UniqueAttribute::UserName)),
                Error::Taken(Taken::User(UniqueAttribute::ExternalId))
            ]
        );
        assert_eq!(taken[1].to_string(), "another user of this tenant already has this externalId");
        assert_eq!(taken[1].scim_type(), Some("uniqueness"));
        let d = TenantClaim::Domain(EmailDomain::parse("a.example").unwrap());
        assert_eq!(d.taken().to_string(), "the domain a.example is already verified by another Butterfly organisation");
        let i = TenantClaim::Issuer("https://a.okta.example".into());
        assert_eq!(
            i.taken().to_string(),
            "the issuer https://a.okta.example is already connected to another Butterfly organisation"
        );
    }
}
