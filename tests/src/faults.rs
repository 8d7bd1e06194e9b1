//! Store faults at the port: [`Faults`] is a [`Hook`] that fails a seeded fraction of store
//! calls, either before the call (nothing happened) or after it (the call's effect stands but
//! its answer is lost: a write that committed and then timed out on its way back). Failures are
//! what an adapter reports for throttling, a 5xx or a timeout: `Error::Unavailable`.
//!
//! Deterministic: whether the n-th call of an operation fails, and how, is a pure function of
//! (seed, operation name, n). Under concurrency *which request* makes the n-th call depends on
//! scheduling, so two runs with one seed fail the same number of calls of each operation at the
//! same positions of its call sequence, not necessarily the same requests.

use crate::intercept::{Hook, Intercepted, Verdict};
use butterfly_core::Error;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A store whose calls may fail on purpose.
pub type FaultStore<S> = Intercepted<S, Faults>;

/// SplitMix64: a small, fast, seedable generator (also the hash behind every fault decision).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A generator for one (seed, name, index) triple.
    pub fn at(seed: u64, name: &str, index: u64) -> Rng {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let mut r = Rng(seed ^ h);
        r.0 ^= r.next_u64() ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93);
        r
    }
}

/// Which calls fail.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    /// The fraction of calls that fail, 0 to 1.
    pub fraction: f64,
    /// Of the failing calls, the fraction that fail after the store did the work.
    pub after_share: f64,
    /// Only these operations fail (all when empty).
    pub only: Vec<&'static str>,
}

impl FaultPlan {
    pub fn new(seed: u64, fraction: f64) -> Self {
        FaultPlan { seed, fraction, after_share: 0.5, only: vec![] }
    }
}

/// How often one operation was called and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpFaults {
    pub calls: u64,
    pub failed_before: u64,
    pub failed_after: u64,
}

/// The fault-injecting hook. Off until [`Faults::arm`].
pub struct Faults {
    plan: FaultPlan,
    armed: AtomicBool,
    ops: Mutex<BTreeMap<&'static str, OpFaults>>,
}

/// The marker every injected error carries (a client must never see it).
pub const INJECTED: &str = "injected fault";

impl Faults {
    pub fn new(plan: FaultPlan) -> Self {
        Faults { plan, armed: AtomicBool::new(false), ops: Mutex::new(BTreeMap::new()) }
    }

    /// Starts (or stops) failing calls; calls made while disarmed are neither counted nor failed.
    pub fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::SeqCst);
    }

    /// Per operation: calls made while armed, and how many failed before / after.
    pub fn report(&self) -> BTreeMap<&'static str, OpFaults> {
        self.ops.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Totals over every operation.
    pub fn totals(&self) -> OpFaults {
        self.report().values().fold(OpFaults::default(), |a, o| OpFaults {
            calls: a.calls + o.calls,
            failed_before: a.failed_before + o.failed_before,
            failed_after: a.failed_after + o.failed_after,
        })
    }

    /// The verdict for the `n`-th call of `op`: a pure function of the plan, `op` and `n`.
    pub fn decide(plan: &FaultPlan, op: &str, n: u64) -> Option<bool> {
        if !plan.only.is_empty() && !plan.only.contains(&op) {
            return None;
        }
        let mut r = Rng::at(plan.seed, op, n);
        (r.unit() < plan.fraction).then(|| r.unit() < plan.after_share)
    }
}

impl Hook for Faults {
    fn on_call(&self, op: &'static str) -> Verdict {
        if !self.armed.load(Ordering::SeqCst) {
            return Verdict::Pass;
        }
        let Ok(mut ops) = self.ops.lock() else { return Verdict::Pass };
        let stats = ops.entry(op).or_default();
        let n = stats.calls;
        stats.calls += 1;
        let Some(after) = Self::decide(&self.plan, op, n) else { return Verdict::Pass };
        let error = |when: &str| Error::Unavailable {
            message: format!("{INJECTED}: {op} call #{n}, {when} the store"),
            retry_after_secs: 1,
        };
        if after {
            stats.failed_after += 1;
            Verdict::FailAfter(error("after"))
        } else {
            stats.failed_before += 1;
            Verdict::FailBefore(error("before"))
        }
    }
}
