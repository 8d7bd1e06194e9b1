//! A tenant: one Butterfly customer organisation.

use crate::claims::TenantClaim;
use crate::clock::Timestamp;
use crate::email::EmailDomain;
use crate::ids::TenantId;
use crate::sso::{Issuer, SsoConfig};
use serde::{Deserialize, Serialize};

/// How a domain came to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedBy {
    /// The tenant's verification token was found in the domain's DNS.
    Dns,
    /// Butterfly's operator vouched for it (tenant creation, `butterfly domain verify --force`).
    Operator,
}

/// An email domain a tenant added, with its verification state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub domain: EmailDomain,
    pub added: Timestamp,
    /// Set once verified; a verified domain routes sign-ins and is claimed by this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<VerifiedBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Timestamp>,
    /// The last DNS check (at verification, and by the scheduled re-check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// Consecutive DNS checks that did not find the record (a verified domain is withdrawn
    /// after [`crate::domain::MISSES_BEFORE_WITHDRAWAL`]).
    #[serde(default)]
    pub misses: u32,
    /// Why the last check did not verify it (our words, never DNS data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl DomainRecord {
    pub fn pending(domain: EmailDomain, at: Timestamp) -> Self {
        DomainRecord {
            domain,
            added: at,
            verified_by: None,
            verified_at: None,
            checked_at: None,
            misses: 0,
            last_error: None,
        }
    }

    pub fn verified(domain: EmailDomain, by: VerifiedBy, at: Timestamp) -> Self {
        DomainRecord { verified_by: Some(by), verified_at: Some(at), checked_at: Some(at), ..Self::pending(domain, at) }
    }

    pub fn is_verified(&self) -> bool {
        self.verified_by.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The **verified** email domains: they route sign-ins to this tenant's identity provider
    /// and are claimed by it (one tenant per domain). Always the verified subset of
    /// `domain_records`; stores claim exactly these.
    #[serde(default)]
    pub domains: Vec<EmailDomain>,
    /// Every domain the tenant added, verified or not, with its state. Tenants saved before
    /// verification existed have none: their `domains` count as verified by the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_records: Vec<DomainRecord>,
    /// The value this tenant publishes in its domains' verification TXT records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_token: Option<String>,
    pub created: Timestamp,
    /// Single sign-on settings, once an admin has saved them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoConfig>,
    /// Incremented on every change of the tenant record (optimistic concurrency).
    #[serde(default)]
    pub version: u64,
    /// The sign-in policies a super_admin set (`None`: the deployment's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_policy: Option<SignInPolicy>,
}

/// A tenant's sign-in policies: whether a first sign-in creates the member (just in time, as
/// read_only), and how long its sessions last — idle and absolute, within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInPolicy {
    pub jit: bool,
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl SignInPolicy {
    /// Idle timeout bounds: 5 minutes to 4 hours.
    pub const IDLE_MINUTES: (i64, i64) = (5, 240);
    /// Absolute lifetime bounds: 15 minutes to 24 hours.
    pub const ABSOLUTE_MINUTES: (i64, i64) = (15, 1440);

    /// A policy from minutes, or why not: each within its bounds, idle at most absolute.
    pub fn from_minutes(jit: bool, idle: i64, absolute: i64) -> Result<Self, String> {
        let (imin, imax) = Self::IDLE_MINUTES;
        let (amin, amax) = Self::ABSOLUTE_MINUTES;
        if !(imin..=imax).contains(&idle) {
            return Err(format!("the idle timeout must be {imin} to {imax} minutes"));
        }
        if !(amin..=amax).contains(&absolute) {
            return Err(format!("the session lifetime must be {amin} to {amax} minutes"));
        }
        if idle > absolute {
            return Err("the idle timeout cannot be longer than the session lifetime".into());
        }
        Ok(SignInPolicy { jit, idle_secs: idle * 60, absolute_secs: absolute * 60 })
    }

    /// The policy in force for `tenant`: its own, else the deployment's timeouts with JIT on.
    pub fn of(tenant: &Tenant, defaults: &crate::sso::SsoPolicy) -> Self {
        tenant.sign_in_policy.unwrap_or(SignInPolicy {
            jit: true,
            idle_secs: defaults.idle_secs,
            absolute_secs: defaults.absolute_secs,
        })
    }
}

impl Tenant {
    /// Validates a tenant name: 1 to 200 characters, no control characters.
    pub fn check_name(name: &str) -> Result<String, String> {
        let n = name.trim();
        if n.is_empty() || n.chars().count() > 200 {
            return Err("tenant name must be 1 to 200 characters".into());
        }
        if n.chars().any(char::is_control) {
            return Err("tenant name must not contain control characters".into());
        }
        Ok(n.to_string())
    }

    /// Every domain with its state (tenants from before verification: their domains, verified
    /// by the operator).
    pub fn domain_records(&self) -> Vec<DomainRecord> {
        if self.domain_records.is_empty() {
            return self
                .domains
                .iter()
                .map(|d| DomainRecord::verified(d.clone(), VerifiedBy::Operator, self.created))
                .collect();
        }
        self.domain_records.clone()
    }

    /// Replaces the domain records, and `domains` with their verified subset.
    pub fn set_domain_records(&mut self, records: Vec<DomainRecord>) {
        self.domains = records.iter().filter(|r| r.is_verified()).map(|r| r.domain.clone()).collect();
        self.domain_records = records;
    }

    /// Whether `domain` is verified for this tenant (routes sign-ins, may vouch for emails).
    pub fn has_verified_domain(&self, domain: &EmailDomain) -> bool {
        self.domains.contains(domain)
    }

    /// The issuer this tenant has claimed: its SSO issuer once bound (a test sign-in through it
    /// succeeded, or the operator bound it); while a new issuer waits for its binding, the one
    /// it replaces. Stores keep this one unique across tenants.
    pub fn claimed_issuer(&self) -> Option<&Issuer> {
        self.trusted_provider().map(|(issuer, _)| issuer)
    }

    /// The uniqueness claims this tenant holds across tenants: its verified domains, then its
    /// claimed issuer.
    pub fn claims(&self) -> Vec<TenantClaim> {
        let mut claims: Vec<TenantClaim> = self.domains.iter().cloned().map(TenantClaim::Domain).collect();
        claims.extend(self.claimed_issuer().map(|i| TenantClaim::Issuer(i.as_str().to_string())));
        claims
    }

    /// The provider whose logout messages this tenant trusts, with our client ID there: the
    /// bound one, or, during an issuer change, the one still bound until the new one is.
    pub fn trusted_provider(&self) -> Option<(&Issuer, &str)> {
        let sso = self.sso.as_ref()?;
        match (&sso.bound_at, &sso.replaces) {
            (Some(_), _) => Some((&sso.issuer, sso.client_id.as_str())),
            (None, Some(prev)) => Some((&prev.issuer, prev.client_id.as_str())),
            (None, None) => None,
        }
    }
}
