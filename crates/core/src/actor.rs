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

// The audit trail's spelling of each actor, written by `Display` and read by `Actor::read`.
const OPERATOR: &str = "operator";
const USER: &str = "user:";
const SCIM: &str = "scim";
const PROVIDER: &str = "provider:";
const SYSTEM: &str = "system";

impl fmt::Display for Actor {
    /// The audit trail's spelling: `operator`, `user:<id>`, `scim`, `provider:<issuer>`, `system`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str(OPERATOR),
            Actor::User(id) => write!(f, "{USER}{id}"),
            Actor::Scim => f.write_str(SCIM),
            Actor::Provider(i) => write!(f, "{PROVIDER}{i}"),
            Actor::System => f.write_str(SYSTEM),
        }
    }
}

/// An actor read back from the audit trail's spelling (the issuer as it was recorded, not
/// parsed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedActor<'a> {
    Operator,
    User(UserId),
    Scim,
    Provider(&'a str),
    System,
    /// Not a spelling `Display` writes.
    Unknown(&'a str),
}

impl Actor {
    /// Reads an actor as the audit trail recorded it.
    pub fn read(recorded: &str) -> RecordedActor<'_> {
        match recorded {
            OPERATOR => RecordedActor::Operator,
            SCIM => RecordedActor::Scim,
            SYSTEM => RecordedActor::System,
            r => {
                if let Some(id) = r.strip_prefix(USER).and_then(UserId::parse) {
                    RecordedActor::User(id)
                } else if let Some(issuer) = r.strip_prefix(PROVIDER) {
                    RecordedActor::Provider(issuer)
                } else {
                    RecordedActor::Unknown(r)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_actor_reads_back_as_written() {
        let id = UserId::generate();
        let issuer = Issuer::parse("https://acme.okta.example", false).unwrap();
        let cases = [
            (Actor::Operator, RecordedActor::Operator),
            (Actor::User(id), RecordedActor::User(id)),
            (Actor::Scim, RecordedActor::Scim),
            (Actor::System, RecordedActor::System),
        ];
        for (actor, read) in cases {
            assert_eq!(Actor::read(&actor.to_string()), read);
        }
        let provider = Actor::Provider(issuer.clone()).to_string();
        assert_eq!(Actor::read(&provider), RecordedActor::Provider(issuer.as_str()));
        assert_eq!(Actor::read("user:not-an-id"), RecordedActor::Unknown("user:not-an-id"));
    }
}
