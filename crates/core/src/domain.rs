//! Email-domain ownership: a domain routes sign-ins to a tenant only once the tenant has shown
//! it controls the domain's DNS, by publishing its verification token in a TXT record at a
//! fixed label under the domain (`_butterfly-verification.<domain>`, value
//! `butterfly-domain-verification=<token>`). Verified domains are re-checked on a schedule; a
//! domain whose record is gone at [`MISSES_BEFORE_WITHDRAWAL`] consecutive checks stops
//! routing and is released. The operator may vouch for a domain instead (audited).

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::email::EmailDomain;
use crate::ids::TenantId;
use crate::limit::{Throttle, Unlimited};
use crate::ports::DomainStore;
use crate::sso_settings::{verification_name, verification_value};
use crate::tenant::{DomainRecord, Tenant, VerifiedBy};
use crate::usecase::{changed_concurrently, record_or_log, retry_on_conflict, Attempt};
use crate::{Error, Result};
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;

/// Consecutive checks without the record before a verified domain is withdrawn (a single
/// missing answer may be a DNS operator's mistake being fixed).
pub const MISSES_BEFORE_WITHDRAWAL: u32 = 2;
/// How often the scheduled job re-checks a DNS-verified domain.
pub const RECHECK_EVERY_SECS: i64 = 24 * 3600;

/// DNS TXT lookups (the port domain verification needs).
#[async_trait]
pub trait TxtResolver: Send + Sync {
    /// The TXT strings published at `name` (each record's character-strings joined); empty if
    /// the name has none or does not exist. `Err` only when DNS could not answer.
    async fn txt(&self, name: &str) -> std::result::Result<Vec<String>, String>;
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Verified,
    /// The record is not there (or has another value).
    Missing,
    /// DNS did not answer: nothing changes.
    Unknown(String),
}

/// Summary of a scheduled re-check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecheckSummary {
    pub checked: u32,
    pub still_verified: u32,
    pub withdrawn: u32,
    pub unanswered: u32,
}

/// What a check found: the domain's record after it, and the tenant's verification token (the
/// TXT value to show next to a domain still unverified).
#[derive(Debug, Clone, PartialEq)]
pub struct DomainCheck {
    pub record: DomainRecord,
    pub txt_token: Option<String>,
}

pub struct DomainService {
    store: Arc<dyn DomainStore>,
    dns: Arc<dyn TxtResolver>,
    clock: Arc<dyn Clock>,
    /// A member's "Verify" clicks per tenant (each asks DNS and writes the tenant).
    throttle: Arc<dyn Throttle>,
}

/// How often a tenant write is retried when the tenant changed meanwhile.
const ATTEMPTS: usize = 4;

impl DomainService {
    pub fn new(store: Arc<dyn DomainStore>, dns: Arc<dyn TxtResolver>, clock: Arc<dyn Clock>) -> Self {
        DomainService { store, dns, clock, throttle: Arc::new(Unlimited) }
    }

    /// Limits members' checks per tenant, under the key `settings:{tenant}` (the budget the
    /// tenant's SSO settings saves spend too).
    pub fn with_throttle(mut self, throttle: Arc<dyn Throttle>) -> Self {
        self.throttle = throttle;
        self
    }

    async fn tenant(&self, id: &TenantId) -> Result<Tenant> {
        self.store.get_tenant(id).await?.ok_or_else(|| Error::NotFound(format!("tenant {id} does not exist")))
    }

    /// Looks for the tenant's verification record of `domain`.
    pub async fn check(&self, tenant: &Tenant, domain: &EmailDomain) -> CheckResult {
        let Some(token) = tenant.verification_token.as_deref() else { return CheckResult::Missing };
        let want = verification_value(token);
        match self.dns.txt(&verification_name(domain)).await {
            Ok(values) if values.iter().any(|v| v.trim() == want) => CheckResult::Verified,
            Ok(_) => CheckResult::Missing,
            Err(e) => CheckResult::Unknown(e),
        }
    }

    /// Checks one domain of a tenant now (an admin's "Verify" click): on success it is verified
    /// and claimed; a verified domain whose record is gone counts a miss.
    pub async fn verify(&self, tenant: &TenantId, domain: &str, actor: &Actor) -> Result<DomainCheck> {
        self.throttle.check(&format!("settings:{tenant}")).map_err(|retry_after_secs| Error::RateLimited {
            message: "too many checks for this organisation; retry after the delay".into(),
            retry_after_secs,
        })?;
        let domain = EmailDomain::parse(domain).map_err(Error::InvalidValue)?;
        let t = self.tenant(tenant).await?;
        if !t.domain_records().iter().any(|r| r.domain == domain) {
            return Err(Error::NotFound(format!("{domain} is not one of this organisation's domains; add it first")));
        }
        let result = self.check(&t, &domain).await;
        let txt_token = t.verification_token.clone();
        Ok(DomainCheck { record: self.apply(t, &domain, result, actor).await?, txt_token })
    }

    /// The operator vouches for a domain the tenant has added (or adds it): verified, audited.
    pub async fn mark_verified(&self, tenant: &TenantId, domain: &str) -> Result<DomainRecord> {
        let domain = EmailDomain::parse(domain).map_err(Error::InvalidValue)?;
        if domain.is_consumer() {
            return Err(Error::InvalidValue(format!("{domain} is a public mailbox provider")));
        }
        let first = self.tenant(tenant).await?;
        let domain = &domain;
        let saved = retry_on_conflict(ATTEMPTS, Some(first), |current| async move {
            let current = match current {
                Some(t) => t,
                None => self.tenant(tenant).await?,
            };
            let now = self.clock.now();
            let mut records = current.domain_records();
            let rec = DomainRecord::verified(domain.clone(), VerifiedBy::Operator, now);
            match records.iter_mut().find(|r| &r.domain == domain) {
                Some(r) => *r = DomainRecord { added: r.added, ..rec.clone() },
                None => records.push(rec.clone()),
            }
            let mut next = current.clone();
            next.set_domain_records(records);
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    self.record(tenant, AuditAction::DomainVerify, &Actor::Operator, domain, "operator").await;
                    Ok(Attempt::Done(rec))
                }
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(None)),
                Err(e) => Err(e),
            }
        })
        .await?;
        saved.ok_or_else(|| changed_concurrently("tenant"))
    }

    /// Writes what a check found into the tenant's record of `domain`.
    async fn apply(
        &self,
        tenant: Tenant,
        domain: &EmailDomain,
        result: CheckResult,
        actor: &Actor,
    ) -> Result<DomainRecord> {
        let id = tenant.id.clone();
        let (id, result) = (&id, &result);
        let saved = retry_on_conflict(ATTEMPTS, Some(tenant), |current| async move {
            let current = match current {
                Some(t) => t,
                None => self.tenant(id).await?,
            };
            let now = self.clock.now();
            let mut records = current.domain_records();
            let Some(rec) = records.iter_mut().find(|r| &r.domain == domain) else {
                return Err(Error::NotFound(format!("{domain} was removed meanwhile")));
            };
            let was_verified = rec.is_verified();
            let mut event = None;
            match result {
                CheckResult::Verified => {
                    if !was_verified {
                        event = Some((AuditAction::DomainVerify, "dns"));
                    }
                    if rec.verified_by != Some(VerifiedBy::Operator) {
                        rec.verified_by = Some(VerifiedBy::Dns);
                    }
                    rec.verified_at = rec.verified_at.or(Some(now));
                    rec.misses = 0;
                    rec.last_error = None;
                }
                CheckResult::Missing => {
                    rec.misses += 1;
                    rec.last_error = Some(format!(
                        "no TXT record {} with the value {}",
                        verification_name(domain),
                        verification_value(current.verification_token.as_deref().unwrap_or("…"))
                    ));
                    if was_verified
                        && rec.verified_by == Some(VerifiedBy::Dns)
                        && rec.misses >= MISSES_BEFORE_WITHDRAWAL
                    {
                        rec.verified_by = None;
                        rec.verified_at = None;
                        event = Some((AuditAction::DomainWithdraw, "dns record removed"));
                    }
                }
                CheckResult::Unknown(why) => {
                    rec.last_error = Some(format!("DNS did not answer: {}", crate::text::clean(why, 200)));
                }
            }
            rec.checked_at = Some(now);
            let out = rec.clone();
            let mut next = current.clone();
            next.set_domain_records(records);
            next.version = current.version + 1;
            match self.store.replace_tenant(&current, &next).await {
                Ok(()) => {
                    if let Some((action, how)) = event {
                        self.record(id, action, actor, domain, how).await;
                    }
                    Ok(Attempt::Done(out))
                }
                Err(Error::PreconditionFailed(_)) => Ok(Attempt::Retry(None)),
                Err(Error::Taken(_)) => Err(Error::Conflict(format!(
                    "{domain} is already verified by another Butterfly organisation; contact Butterfly support"
                ))),
                Err(e) => Err(e),
            }
        })
        .await?;
        saved.ok_or_else(|| changed_concurrently("tenant"))
    }

    async fn record(&self, tenant: &TenantId, action: AuditAction, actor: &Actor, domain: &EmailDomain, how: &str) {
        let e = AuditEvent::new(tenant, self.clock.now(), action, actor.to_string())
            .details(json!({ "domain": domain.as_str(), "how": how }));
        record_or_log(self.store.as_ref(), &e).await;
    }

    /// The scheduled job: re-checks every DNS-verified domain not checked for
    /// [`RECHECK_EVERY_SECS`], and every pending one (so a record published later verifies it).
    pub async fn recheck_all(&self) -> Result<RecheckSummary> {
        let mut sum = RecheckSummary::default();
        let now = self.clock.now();
        for t in self.store.list_tenants().await? {
            for rec in t.domain_records() {
                let due = match rec.verified_by {
                    Some(VerifiedBy::Operator) => false,
                    Some(VerifiedBy::Dns) => {
                        rec.checked_at.is_none_or(|c| now.millis() - c.millis() >= RECHECK_EVERY_SECS * 1000)
                    }
                    None => true,
                };
                if !due {
                    continue;
                }
                sum.checked += 1;
                let tenant = self.tenant(&t.id).await?;
                let result = self.check(&tenant, &rec.domain).await;
                if matches!(result, CheckResult::Unknown(_)) {
                    sum.unanswered += 1;
                }
                match self.apply(tenant, &rec.domain, result, &Actor::System).await {
                    Ok(r) if r.is_verified() => sum.still_verified += 1,
                    Ok(_) if rec.is_verified() => sum.withdrawn += 1,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(tenant = %t.id, domain = %rec.domain, error = %e, "domain re-check not saved")
                    }
                }
            }
        }
        Ok(sum)
    }
}
