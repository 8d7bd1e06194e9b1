//! Who did something: what the audit trail records as the actor of an event.

use crate::ids::UserId;
use crate::sso::Issuer;
use std::fmt;

/// The actor of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Butterfly's operator, through the CLI (AWS credentials).
    Operator,
    /// A signed-in member of the tenant.
    User(UserId),
    /// The tenant's SCIM client (Okta provisioning).
    Scim,
    /// The tenant's identity provider (a logout signal).
    Provider(Issuer),
    /// A scheduled job of the service itself.
    System,
}

impl Actor {
    /// Whether this actor is trusted to vouch for domains and issuers without proof.
    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Operator)
    }
}

impl fmt::Display for Actor {
    /// The audit trail's spelling: `operator`, `user:<id>`, `scim`, `provider:<issuer>`, `system`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Scim => f.write_str("scim"),
            Actor::Provider(i) => write!(f, "provider:{i}"),
            Actor::System => f.write_str("system"),
        }
    }
}
