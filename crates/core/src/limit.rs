//! Abuse limits. Two kinds:
//!
//! - [`Throttle`]: per-key admission for anonymous endpoints (by client address, by email
//!   domain or issuer), kept per process (a Lambda instance): cheap, no store round trip. The
//!   API Gateway stage throttle bounds the whole deployment.
//! - [`TenantQuota`]: the per-tenant SCIM limit, which must hold across Lambda instances. A
//!   shared counter per tenant and minute lives in the store ([`QuotaStore`]); each instance
//!   takes a lease of several requests in one conditional increment and spends it locally, so
//!   the counter costs one store round trip per lease, not per request.

use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-key admission: `Err(seconds)` to wait before the key is admitted again.
pub trait Throttle: Send + Sync {
    fn check(&self, key: &str) -> std::result::Result<(), u32>;
}

/// A throttle that admits everything (tools and tests that do not exercise limits).
pub struct Unlimited;

impl Throttle for Unlimited {
    fn check(&self, _key: &str) -> std::result::Result<(), u32> {
        Ok(())
    }
}

/// Counters shared by every instance, per key and fixed window.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Adds up to `want` to the counter `key` of the window that starts at `window_start`
    /// (`window_secs` long), never past `limit`, in one atomic step; returns how much was
    /// granted (`want`, or less when the limit is near, or 0 when it is reached).
    async fn take_quota(
        &self,
        key: &str,
        window_start: Timestamp,
        window_secs: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32>;
}

/// The per-tenant SCIM rate: `per_minute` requests per tenant and minute across instances.
#[derive(Debug, Clone, Copy)]
pub struct QuotaPolicy {
    pub per_minute: u32,
    /// How many requests an instance takes from the shared counter at a time.
    pub lease: u32,
}

impl QuotaPolicy {
    /// `per_minute` with a lease of a twentieth of it (at most 50, at least 1).
    pub fn per_minute(per_minute: u32) -> Self {
        QuotaPolicy { per_minute, lease: (per_minute / 20).clamp(1, 50) }
    }
}

impl Default for QuotaPolicy {
    /// 1,200 requests a minute per tenant: far above what Okta's provisioning sends (a few a
    /// second), far below what one tenant could use to crowd out the others.
    fn default() -> Self {
        QuotaPolicy::per_minute(1200)
    }
}

const WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy)]
struct Lease {
    window: i64,
    left: u32,
    exhausted: bool,
}

/// The SCIM limit of every tenant, as one instance spends it.
pub struct TenantQuota {
    store: Arc<dyn QuotaStore>,
    policy: QuotaPolicy,
    /// Per tenant: the window the lease belongs to, what is left of it, and whether the shared
    /// counter said the window is used up (then requests are refused here, at no store cost).
    leases: Mutex<HashMap<TenantId, Lease>>,
}

impl TenantQuota {
    pub fn new(store: Arc<dyn QuotaStore>, policy: QuotaPolicy) -> Self {
        TenantQuota { store, policy, leases: Mutex::new(HashMap::new()) }
    }

    fn window_of(now: Timestamp) -> i64 {
        now.millis().div_euclid(WINDOW_SECS * 1000)
    }

    /// Spends one request of the tenant's quota; `Error::RateLimited` with the seconds until
    /// the next window when none is left.
    pub async fn admit(&self, tenant: &TenantId, now: Timestamp) -> Result<()> {
        let window = Self::window_of(now);
        match self.spend_local(tenant, window) {
            Some(true) => return Ok(()),
            Some(false) => return Err(self.limited(window, now)),
            None => {}
        }
        let start = Timestamp(window * WINDOW_SECS * 1000);
        let key = format!("scim:{tenant}");
        let mut granted =
            self.store.take_quota(&key, start, WINDOW_SECS, self.policy.lease, self.policy.per_minute).await?;
        if granted == 0 && self.policy.lease > 1 {
            granted = self.store.take_quota(&key, start, WINDOW_SECS, 1, self.policy.per_minute).await?;
        }
        if let Ok(mut leases) = self.leases.lock() {
            if leases.len() > 10_000 {
                leases.retain(|_, l| l.window >= window);
            }
            let left = granted.saturating_sub(1);
            // Concurrent requests of one instance may each have taken a lease: add them up
            // (one answer must not discard what the others took, nor its refusal their rest).
            match leases.get_mut(tenant).filter(|l| l.window == window) {
                Some(l) => {
                    l.left = l.left.saturating_add(left);
                    l.exhausted |= granted == 0;
                }
                None => {
                    leases.insert(tenant.clone(), Lease { window, left, exhausted: granted == 0 });
                }
            }
        }
        if granted == 0 {
            // The shared counter is used up, maybe by this instance's own concurrent leases:
            // spend from them before refusing.
            return match self.spend_local(tenant, window) {
                Some(true) => Ok(()),
                _ => Err(self.limited(window, now)),
            };
        }
        Ok(())
    }

    /// Spends one request of the tenant's quota from what this instance already holds, without
    /// asking the shared counter: `false` when nothing is held here for this window (then call
    /// [`TenantQuota::admit`] once the caller is authenticated).
    pub fn spend_held(&self, tenant: &TenantId, now: Timestamp) -> bool {
        self.spend_local(tenant, Self::window_of(now)) == Some(true)
    }

    /// Gives back a request spent with [`TenantQuota::spend_held`] at `now` that did not go on:
    /// its token was then refused (a refused request does not count against the tenant), or
    /// its body, which then takes the path that checks the token first and spends there.
    pub fn give_back(&self, tenant: &TenantId, now: Timestamp) {
        let window = Self::window_of(now);
        if let Ok(mut leases) = self.leases.lock() {
            if let Some(l) = leases.get_mut(tenant).filter(|l| l.window == window) {
                l.left = l.left.saturating_add(1);
            }
        }
    }

    fn limited(&self, window: i64, now: Timestamp) -> Error {
        let next = (window + 1) * WINDOW_SECS * 1000;
        let wait = ((next - now.millis()) + 999) / 1000;
        Error::RateLimited {
            message: format!(
                "this organisation's SCIM client sent more than {} requests this minute",
                self.policy.per_minute
            ),
            retry_after_secs: wait.clamp(1, WINDOW_SECS) as u32,
        }
    }

    /// `Some(true)`: spent from the lease; `Some(false)`: the window is used up (known from the
    /// shared counter); `None`: ask the shared counter.
    fn spend_local(&self, tenant: &TenantId, window: i64) -> Option<bool> {
        let mut leases = self.leases.lock().ok()?;
        let lease = leases.get_mut(tenant).filter(|l| l.window == window)?;
        if lease.left > 0 {
            lease.left -= 1;
            Some(true)
        } else if lease.exhausted {
            Some(false)
        } else {
            None
        }
    }
}
