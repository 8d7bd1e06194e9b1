//! Abuse limits. Two kinds:
//!
//! - [`Throttle`]: per-key admission for anonymous endpoints (by client address, by email
//!   domain or issuer), kept per process (a Lambda instance): cheap, no store round trip. The
//!   API Gateway stage throttle bounds the whole deployment.
//! - [`TenantQuota`]: the per-tenant SCIM limit, which must hold across Lambda instances. A
//!   shared counter per tenant and minute lives in the store ([`QuotaStore`]); each instance
//!   takes a lease of several requests in one conditional increment and spends it locally, so
//!   the counter costs one store round trip per lease, not per request (near the limit, once
//!   a whole lease no longer fits, and while the counter fails, one per request).

use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

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
    /// granted: `want`, or 0 when it does not fit (a store may instead grant the part that
    /// fits).
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

/// How many other requests' takes of the shared counter one request waits for before it asks
/// the counter itself, for itself alone.
const WAITS_AT_MOST: u32 = 8;

/// Tenants whose leases one instance keeps; past it, a new tenant sheds past minutes' leases.
const MAX_LEASES: usize = 10_000;

/// What this instance holds of one tenant's quota.
#[derive(Debug)]
struct Lease {
    window: i64,
    left: u32,
    /// The shared counter refused a request of this window: it is used up.
    exhausted: bool,
    /// A whole lease no longer fits in this window: requests ask for one each, side by side.
    scarce: bool,
    /// A request of this instance is asking the shared counter for a lease. The others wait
    /// for its answer instead of asking too: concurrent asks would each take a lease (32 first
    /// requests, 1,600 of a 1,200 limit), and a refusal answered while the grants were still
    /// on their way back would be a 429 under the limit (a refused request that finds a take
    /// in flight waits for it and looks again).
    taking: bool,
    /// Takes started so far: a waiter knows the take it waits for has ended when this moves on.
    takes: u64,
    /// The last take ended without an answer (the counter failed, or its request went away):
    /// until the counter answers again, each request asks it for itself, side by side, rather
    /// than failing one after another behind a single asker.
    failing: bool,
    waiting: Vec<Waker>,
}

impl Lease {
    fn new(window: i64) -> Self {
        Lease {
            window,
            left: 0,
            exhausted: false,
            scarce: false,
            taking: false,
            takes: 0,
            failing: false,
            waiting: Vec::new(),
        }
    }

    /// Spends one request held for `window`, if any.
    fn spend(&mut self, window: i64) -> bool {
        let held = self.window == window && self.left > 0;
        if held {
            self.left -= 1;
        }
        held
    }
}

/// What a request found in the instance's lease.
enum Found {
    Admitted,
    Refused,
    /// Nothing held: this request asks the shared counter for a lease (it holds `taking`).
    Take,
    /// Another request is asking the shared counter (its take is number `.0`): wait for it.
    Wait(u64),
    /// Ask the shared counter for this request alone (one request's worth): the counter is
    /// failing or scarce, the request waited long enough, or it belongs to a minute the lease
    /// has left.
    Alone,
}

/// The SCIM limit of every tenant, as one instance spends it.
pub struct TenantQuota {
    store: Arc<dyn QuotaStore>,
    policy: QuotaPolicy,
    /// Per tenant: the window the lease belongs to, what is left of it, what the shared
    /// counter said of the window (used up: requests are refused here, at no store cost), and
    /// whether a request is asking the counter for a lease.
    leases: Mutex<HashMap<TenantId, Lease>>,
}

impl TenantQuota {
    pub fn new(store: Arc<dyn QuotaStore>, policy: QuotaPolicy) -> Self {
        TenantQuota { store, policy, leases: Mutex::new(HashMap::new()) }
    }

    fn window_of(now: Timestamp) -> i64 {
        now.millis().div_euclid(WINDOW_SECS * 1000)
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<TenantId, Lease>> {
        // Each change to the map is made whole under the lock: a panic elsewhere while the
        // lock was held leaves nothing half-written.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends one request of the tenant's quota; `Error::RateLimited` with the seconds until
    /// the next window when none is left.
    pub async fn admit(&self, tenant: &TenantId, now: Timestamp) -> Result<()> {
        let window = Self::window_of(now);
        let (mut waits, mut asked_alone) = (0, false);
        // Each turn answers, waits for another request's take (WAITS_AT_MOST times, and once
        // more after a refusal alone: the take in flight may bring some) or asks the counter
        // alone (once): the last turn always answers.
        for _ in 0..WAITS_AT_MOST + 3 {
            let may_wait = waits < WAITS_AT_MOST || (asked_alone && waits == WAITS_AT_MOST);
            match self.find(tenant, window, may_wait, !asked_alone) {
                Found::Admitted => return Ok(()),
                Found::Refused => return Err(self.limited(window, now)),
                Found::Take => return self.take(tenant, window, now).await,
                Found::Alone => {
                    if self.take_alone(tenant, window).await? {
                        return Ok(());
                    }
                    // Refused: unless a lease take in flight brings some, the window is used up.
                    asked_alone = true;
                }
                Found::Wait(take) => {
                    waits += 1;
                    TakeEnded { quota: self, tenant, take }.await;
                }
            }
        }
        Err(self.limited(window, now))
    }

    /// One request's look at the lease: spent from it, refused by it, or what to do next.
    fn find(&self, tenant: &TenantId, window: i64, may_wait: bool, may_ask_alone: bool) -> Found {
        let mut leases = self.leases();
        if !leases.contains_key(tenant) && leases.len() >= MAX_LEASES {
            // A lease being taken stays: its waiting requests' wakers are in it.
            leases.retain(|_, l| l.window >= window || l.taking);
        }
        let lease = leases.entry(tenant.clone()).or_insert_with(|| Lease::new(window));
        if lease.spend(window) {
            return Found::Admitted;
        }
        let this_window = lease.window == window;
        let alone = if may_ask_alone { Found::Alone } else { Found::Refused };
        if lease.window > window {
            // A request of a minute the lease has left (it waited across the turn) asks its
            // own minute's counter for one request's worth, not for a lease it would drop.
            alone
        } else if lease.taking {
            if may_wait {
                Found::Wait(lease.takes)
            } else {
                alone
            }
        } else if this_window && lease.exhausted {
            Found::Refused
        } else if lease.failing || (this_window && lease.scarce) || !may_ask_alone {
            alone
        } else {
            lease.taking = true;
            lease.takes += 1;
            Found::Take
        }
    }

    /// Asks the shared counter for a lease (this request holds the `taking` flag): spends one
    /// request of what is granted and keeps the rest here.
    async fn take(&self, tenant: &TenantId, window: i64, now: Timestamp) -> Result<()> {
        // Ends the take however it ends (answer, error, or the request cancelled mid-await):
        // the flag is cleared and the waiting requests look again.
        let mut taking = Taking { quota: self, tenant, answered: false };
        let mut granted = self.ask(tenant, window, self.policy.lease).await?;
        if granted == 0 && self.policy.lease > 1 {
            // The counter refuses a whole lease past the limit (DynamoDB's conditional ADD):
            // what is left of the minute may still be less than a lease.
            granted = self.ask(tenant, window, 1).await?;
        }
        taking.answered = true;
        let scarce = granted < self.policy.lease;
        self.keep(tenant, window, granted.saturating_sub(1), granted == 0, scarce);
        drop(taking);
        if granted == 0 {
            return Err(self.limited(window, now));
        }
        Ok(())
    }

    /// Asks the shared counter for this one request, beside any other asker: whether granted.
    async fn take_alone(&self, tenant: &TenantId, window: i64) -> Result<bool> {
        let granted = self.ask(tenant, window, 1).await?;
        self.keep(tenant, window, 0, granted == 0, false);
        Ok(granted > 0)
    }

    /// Asks the tenant's shared counter of `window` for `want` requests: how many it granted.
    async fn ask(&self, tenant: &TenantId, window: i64, want: u32) -> Result<u32> {
        let start = Timestamp(window * WINDOW_SECS * 1000);
        self.store.take_quota(&format!("scim:{tenant}"), start, WINDOW_SECS, want, self.policy.per_minute).await
    }

    /// Records the counter's answer for `window`: `left` more held here, the window used up,
    /// or a whole lease no longer fitting in it.
    fn keep(&self, tenant: &TenantId, window: i64, left: u32, used_up: bool, scarce: bool) {
        let mut leases = self.leases();
        if let Some(lease) = leases.get_mut(tenant) {
            lease.failing = false;
            if lease.window < window {
                // The first answer of a new minute: what was left of the last one is gone.
                (lease.window, lease.left, lease.exhausted, lease.scarce) = (window, 0, false, false);
            }
            if lease.window == window {
                lease.left = lease.left.saturating_add(left);
                lease.exhausted |= used_up;
                lease.scarce |= scarce;
            }
        }
    }

    /// Spends one request of the tenant's quota from what this instance already holds, without
    /// asking the shared counter: `false` when nothing is held here for this window (then call
    /// [`TenantQuota::admit`] once the caller is authenticated).
    pub fn spend_held(&self, tenant: &TenantId, now: Timestamp) -> bool {
        let window = Self::window_of(now);
        self.leases().get_mut(tenant).is_some_and(|lease| lease.spend(window))
    }

    /// Gives back a request spent with [`TenantQuota::spend_held`] at `now` that did not go on:
    /// its token was then refused (a refused request does not count against the tenant), or
    /// its body, which then takes the path that checks the token first and spends there. A
    /// request dropped mid-write gets nothing back: its write may have landed.
    pub fn give_back(&self, tenant: &TenantId, now: Timestamp) {
        let window = Self::window_of(now);
        if let Some(l) = self.leases().get_mut(tenant).filter(|l| l.window == window) {
            l.left = l.left.saturating_add(1);
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
}

/// Held by the request asking the shared counter; dropped when the take ends, however it ends.
struct Taking<'a> {
    quota: &'a TenantQuota,
    tenant: &'a TenantId,
    /// The counter answered (else it failed, or the request went away mid-take).
    answered: bool,
}

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        let waiting = match self.quota.leases().get_mut(self.tenant) {
            Some(lease) => {
                lease.taking = false;
                lease.failing |= !self.answered;
                std::mem::take(&mut lease.waiting)
            }
            None => Vec::new(),
        };
        for w in waiting {
            w.wake();
        }
    }
}

/// Ready when take number `take` of the tenant's lease has ended.
struct TakeEnded<'a> {
    quota: &'a TenantQuota,
    tenant: &'a TenantId,
    take: u64,
}

impl Future for TakeEnded<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut leases = self.quota.leases();
        match leases.get_mut(self.tenant) {
            Some(lease) if lease.taking && lease.takes == self.take => {
                if !lease.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    lease.waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}
