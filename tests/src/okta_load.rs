//! Okta-shaped SCIM load against a deployment whose store fails on purpose, and the invariants
//! checked afterwards from the store itself (`docs/reliability.md`, "Injected store faults").
//!
//! The load: `concurrency` workers, each owning its own Okta users (Okta works through one
//! user's tasks in order), together sending `requests` HTTP requests: lookup by filter, create
//! (lookup first, as Okta does), GET, PUT (profile change and the custom-app deactivation),
//! PATCH (profile change, deactivation, reactivation), DELETE (Entra's). A request answered
//! 503 is retried as Okta retries it, the same request again, up to ten times. Before each
//! deactivation or deletion the user signs in (a session is written to the store), so there is
//! always a session to revoke. Each worker keeps a model of its users from the answers it got.
//!
//! Checked after the run, from the store (faults off) — each a `violation` when it fails:
//! 1. Every acknowledged (2xx) write is there: the user as last acknowledged, its userName and
//!    externalId claims resolving to it, and the audit event of that very version.
//! 2. Nothing is partial: no user, claim or count beyond the acknowledged ones; no audit
//!    event for a write that did not happen, none twice; no session of a user whose
//!    deactivation or deletion was acknowledged survives it: its row is gone or the user's
//!    own record (deleted, or the deactivation's `sessions_revoked_at` cut-off) ends it, and it
//!    authenticates nothing. Receipts missing for acknowledged revocations are counted (the
//!    suite bounds them by the faults that can cause them: the write's lost answer, the
//!    revocation after it).
//! 3. Every failure was a 503 with an integer `Retry-After` and a SCIM error body, or the
//!    SCIM error a retry should get (409 `uniqueness` for a create whose answer was lost, 404
//!    for a deletion whose answer was lost); never a 500, never store text.
//! 4. Retries converge: a retried create ends in 201, or in 409 with the one user the lost
//!    attempt created (found by Okta's lookup, equal to what was sent) — never two users.

use crate::faults::{Rng, INJECTED};
use butterfly_core::clock::{Clock, SystemClock};
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::Store;
use butterfly_core::scim::doc::user_json;
use butterfly_core::sessions::SessionService;
use butterfly_core::sso::{hash_secret, random_secret, Session};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Text that must never reach a client: what our adapters and the AWS SDK say about a failure.
pub const STORE_TEXT: &[&str] = &[
    INJECTED,
    "TransactWriteItems",
    "BatchGetItem",
    "GetItem",
    "PutItem",
    "UpdateItem",
    "Query",
    "Exception",
    "DispatchFailure",
    "dispatch failure",
    "timed out",
    "unreadable response",
    "127.0.0.1",
    "redb",
];

/// The size of a run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub requests: usize,
    pub concurrency: usize,
    pub seed: u64,
    /// Okta users in play (half of them exist before the run).
    pub identities: usize,
    /// How long a worker waits before retrying a 503 (Okta waits `Retry-After`; the suite keeps
    /// it short so a thousand requests take seconds).
    pub retry_pause: Duration,
}

impl LoadConfig {
    /// `BUTTERFLY_FAULT_REQUESTS` (default `requests`), `BUTTERFLY_FAULT_SEED` (default 13),
    /// 64 workers, four users each.
    pub fn from_env(requests: usize) -> Self {
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let concurrency = 64;
        LoadConfig {
            requests: num("BUTTERFLY_FAULT_REQUESTS").map(|n| n as usize).unwrap_or(requests),
            concurrency,
            seed: num("BUTTERFLY_FAULT_SEED").unwrap_or(13),
            identities: concurrency * 4,
            retry_pause: Duration::from_millis(20),
        }
    }
}

/// `BUTTERFLY_FAULT_FRACTION`, or the default.
pub fn fraction_from_env(default: f64) -> f64 {
    std::env::var("BUTTERFLY_FAULT_FRACTION").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the load talks to and checks.
pub struct Target {
    /// `{origin}/scim/v2`
    pub base: String,
    pub token: String,
    pub tenant: TenantId,
    /// The store itself, without faults: setup (sign-ins) and every check read it.
    pub store: Arc<dyn Store>,
    /// Sessions are checked the way the product checks them, over the same store.
    pub sso: SessionService,
}

/// Turns the faults on and off (the setup and the checks run without them).
pub trait Injector: Send + Sync {
    fn arm(&self, on: bool);
}

/// The figures of a run.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub requests: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub ops: BTreeMap<&'static str, usize>,
    pub retries: usize,
    /// Creates that got a 503 first and then a 201.
    pub creates_converged_201: usize,
    /// Creates whose lost first answer left the user there: 409, then found by lookup.
    pub creates_converged_409: usize,
    /// Deletes whose lost first answer left the user gone: 404 on retry.
    pub deletes_converged_404: usize,
    /// Operations still failing after ten attempts (their users are left out of the
    /// state comparison, never out of the structural checks).
    pub gave_up: usize,
    pub acknowledged_writes: usize,
    pub acknowledged_deactivations: usize,
    pub users_checked: usize,
    pub claims_checked: usize,
    pub audit_events_checked: usize,
    pub sessions_revoked_checked: usize,
    pub sessions_live_checked: usize,
    /// Session rows of a deactivated or deleted user still in the store, each dead by the
    /// user's own record (deleted, or a `sessions_revoked_at` cut-off after the session began):
    /// what a failed revocation leaves for the expiry sweep.
    pub session_rows_left_dead: usize,
    /// Acknowledged deactivations/deletions with no revocation receipt: allowed only where a
    /// fault hit the write's answer or the revocation after it (the test bounds it by those).
    pub missing_receipts: usize,
    pub violations: Vec<String>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// One line for the figures table.
    pub fn line(&self) -> String {
        let statuses = self.by_status.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(",");
        let ops = self.ops.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(",");
        format!(
            "requests={} statuses={statuses} ops={ops} retries={} creates_201_after_503={} creates_409_after_lost_answer={} deletes_404_after_lost_answer={} gave_up={} acked_writes={} acked_deactivations={} users_checked={} claims_checked={} audit_events_checked={} revoked_sessions_checked={} live_sessions_checked={} session_rows_left_dead={} missing_receipts={} violations={} seconds={:.1}",
            self.requests,
            self.retries,
            self.creates_converged_201,
            self.creates_converged_409,
            self.deletes_converged_404,
            self.gave_up,
            self.acknowledged_writes,
            self.acknowledged_deactivations,
            self.users_checked,
            self.claims_checked,
            self.audit_events_checked,
            self.sessions_revoked_checked,
            self.sessions_live_checked,
            self.session_rows_left_dead,
            self.missing_receipts,
            self.violations.len(),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// The attributes Okta sets and the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attrs {
    user_name: String,
    external_id: String,
    given: String,
    family: String,
    display: String,
    active: bool,
}

impl Attrs {
    fn of(v: &Value) -> Attrs {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        Attrs {
            user_name: s("/userName"),
            external_id: s("/externalId"),
            given: s("/name/givenName"),
            family: s("/name/familyName"),
            display: s("/displayName"),
            active: v["active"].as_bool().unwrap_or(false),
        }
    }

    /// The full Okta body (POST and PUT send every attribute).
    fn body(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": self.user_name,
            "name": {"givenName": self.given, "familyName": self.family},
            "emails": [{"primary": true, "value": self.user_name, "type": "work"}],
            "displayName": self.display,
            "locale": "en-US",
            "externalId": self.external_id,
            "groups": [],
            "password": "1mz050nq",
            "active": self.active
        })
    }
}

struct SessionRec {
    cookie: String,
    hash: butterfly_core::token::TokenHash,
    user: String,
    /// An acknowledged deactivation or deletion came after it.
    must_be_dead: bool,
}

/// One Okta user, as its worker knows it from the answers it got.
struct Ident {
    attrs: Attrs,
    id: Option<String>,
    version: u64,
    /// An operation gave up after ten 503s: what the store holds is not known.
    uncertain: bool,
    sessions: Vec<SessionRec>,
    /// Ids this identity had and lost by an acknowledged DELETE.
    deleted_ids: Vec<String>,
    edits: u32,
    /// Acknowledged deactivations and deletions (each owes a revocation receipt).
    revocations_acked: usize,
}

/// An acknowledged write: the user, the audit action, the version (none for a delete).
type Acked = (String, &'static str, Option<u64>);

struct Shared {
    cfg: LoadConfig,
    client: reqwest::Client,
    base: String,
    auth: String,
    tenant: TenantId,
    store: Arc<dyn Store>,
    sent: AtomicUsize,
    report: Mutex<LoadReport>,
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    body: Value,
}

fn version_of(v: &Value) -> u64 {
    v.pointer("/meta/version")
        .and_then(Value::as_str)
        .and_then(|s| s.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(0)
}

impl Shared {
    fn violation(&self, v: String) {
        if let Ok(mut r) = self.report.lock() {
            r.violations.push(v);
        }
    }

    fn bump(&self, f: impl FnOnce(&mut LoadReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }

    /// One HTTP request, with the failure-shape checks (3.) applied to every answer.
    async fn send(&self, what: &str, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.sent.fetch_add(1, Ordering::SeqCst);
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("User-Agent", "Okta SCIM Client 1.0.0")
            .header("Accept", "application/scim+json");
        if let Some(b) = body {
            req = req.header("Content-Type", "application/scim+json; charset=utf-8").body(b.to_string());
        }
        let (status, retry_after, text) = match req.send().await {
            Ok(r) => {
                let status = r.status();
                let ra = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                (status, ra, r.text().await.unwrap_or_default())
            }
            Err(e) => {
                self.violation(format!("{what}: {method} {path}: no answer: {e}"));
                (StatusCode::BAD_GATEWAY, None, String::new())
            }
        };
        self.bump(|r| {
            r.requests += 1;
            *r.by_status.entry(status.as_u16()).or_default() += 1;
        });
        // Error bodies only: a 2xx legitimately names the loopback origin in `meta.location`.
        if let Some(m) = STORE_TEXT.iter().find(|m| !status.is_success() && text.contains(*m)) {
            self.violation(format!("{what}: {method} {path}: {status} carries store text ({m:?}): {text}"));
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            self.violation(format!("{what}: {method} {path}: 500: {text}"));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let ok_retry = retry_after.as_deref().and_then(|s| s.parse::<u32>().ok()).is_some_and(|n| n >= 1);
            if !ok_retry {
                self.violation(format!("{what}: 503 without an integer Retry-After: {retry_after:?}"));
            }
            if body["schemas"] != json!(["urn:ietf:params:scim:api:messages:2.0:Error"]) || body["status"] != "503" {
                self.violation(format!("{what}: 503 without a SCIM error body: {text}"));
            }
        }
        Answer { status, body }
    }

    /// Sends until the answer is not a 503 (at most ten attempts, as Okta); `None` if every
    /// attempt was a 503. The flag says whether an earlier attempt was answered 503.
    async fn retried(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(Answer, bool)> {
        self.bump(|r| *r.ops.entry(what).or_default() += 1);
        let mut failed_before = false;
        for attempt in 0..10 {
            if attempt > 0 {
                self.bump(|r| r.retries += 1);
                tokio::time::sleep(self.cfg.retry_pause).await;
            }
            let a = self.send(what, method.clone(), path, body).await;
            if a.status != StatusCode::SERVICE_UNAVAILABLE {
                return Some((a, failed_before));
            }
            failed_before = true;
        }
        self.bump(|r| r.gave_up += 1);
        None
    }

    async fn sign_in(&self, ident: &mut Ident) {
        let Some(id) = ident.id.clone() else { return };
        let Some(uid) = UserId::parse(&id) else { return };
        let Ok(secret) = random_secret() else { return };
        let now = SystemClock.now();
        let s = Session {
            hash: hash_secret(secret.expose()),
            tenant: self.tenant.clone(),
            user: uid,
            issuer: "https://okta.example/oauth2/default".into(),
            subject: ident.attrs.external_id.clone(),
            sid: None,
            id_token: None,
            created: now,
            last_seen: now,
            expires: now.plus_secs(8 * 3600),
            confirmed: true,
            idle_secs: None,
        };
        match self.store.create_session(&s).await {
            Ok(()) => ident.sessions.push(SessionRec {
                cookie: secret.expose().to_string(),
                hash: s.hash,
                user: id,
                must_be_dead: false,
            }),
            Err(e) => self.violation(format!("sign-in (setup, no faults) failed: {e}")),
        }
    }

    fn lookup_path(user_name: &str) -> String {
        let f = format!("userName eq \"{user_name}\"");
        let enc: String = url::form_urlencoded::byte_serialize(f.as_bytes()).collect();
        format!("/Users?filter={enc}&startIndex=1&count=100")
    }

    /// Okta's lookup; checks the answer against the model when it is known.
    async fn lookup(&self, ident: &mut Ident) -> Option<Value> {
        let path = Self::lookup_path(&ident.attrs.user_name);
        let (a, _) = self.retried("lookup", Method::GET, &path, None).await?;
        if a.status != StatusCode::OK {
            self.violation(format!("lookup {}: {} {}", ident.attrs.user_name, a.status, a.body));
            return None;
        }
        let found = a.body["Resources"].as_array().cloned().unwrap_or_default();
        if found.len() > 1 {
            self.violation(format!("two users for {}: {}", ident.attrs.user_name, a.body));
        }
        let first = found.into_iter().next();
        if !ident.uncertain {
            match (&ident.id, &first) {
                (None, Some(u)) => self.violation(format!("lookup found a user that should not exist: {u}")),
                (Some(id), None) => self.violation(format!("lookup missed user {id} ({})", ident.attrs.user_name)),
                (Some(id), Some(u)) if u["id"] != id.as_str() || Attrs::of(u) != ident.attrs => {
                    self.violation(format!("lookup of {id}: {u} is not {:?}", ident.attrs))
                }
                _ => {}
            }
        }
        first
    }

    /// Okta's create: lookup, then POST (retried); 409 after a lost answer is resolved by the
    /// lookup Okta then makes.
    async fn create(&self, ident: &mut Ident, acked: &mut Vec<Acked>) {
        if let Some(u) = self.lookup(ident).await {
            // Okta links to the user it found (a model that lost track of a create).
            ident.id = u["id"].as_str().map(str::to_string);
            ident.version = version_of(&u);
            ident.attrs = Attrs::of(&u);
            return;
        }
        ident.attrs.active = true;
        let body = ident.attrs.body();
        let Some((a, failed_before)) = self.retried("create", Method::POST, "/Users", Some(&body)).await else {
            ident.uncertain = true;
            return;
        };
        match a.status {
            StatusCode::CREATED => {
                if Attrs::of(&a.body) != ident.attrs {
                    self.violation(format!("created {} is not what was sent: {}", ident.attrs.user_name, a.body));
                }
                let id = a.body["id"].as_str().unwrap_or("").to_string();
                acked.push((id.clone(), "scim.user.create", Some(version_of(&a.body))));
                ident.id = Some(id);
                ident.version = version_of(&a.body);
                if failed_before {
                    self.bump(|r| r.creates_converged_201 += 1);
                }
            }
            StatusCode::CONFLICT if failed_before && a.body["scimType"] == "uniqueness" => {
                // The lost attempt created the user: Okta looks it up and links to it.
                ident.id = None;
                let was_uncertain = std::mem::replace(&mut ident.uncertain, true);
                let found = self.lookup(ident).await;
                ident.uncertain = was_uncertain;
                match found {
                    Some(u) if Attrs::of(&u) == ident.attrs && version_of(&u) == 1 => {
                        let id = u["id"].as_str().unwrap_or("").to_string();
                        acked.push((id.clone(), "scim.user.create", Some(1)));
                        ident.id = Some(id);
                        ident.version = 1;
                        self.bump(|r| r.creates_converged_409 += 1);
                    }
                    other => {
                        self.violation(format!(
                            "create of {} answered 409 after a 503, and the lookup found {other:?}",
                            ident.attrs.user_name
                        ));
                        ident.uncertain = true;
                    }
                }
            }
            other => {
                self.violation(format!(
                    "create of {}: {other} {} (retried: {failed_before})",
                    ident.attrs.user_name, a.body
                ));
                ident.uncertain = true;
            }
        }
    }

    /// A write to `/Users/{id}` that should leave the user as `want`.
    async fn write(
        &self,
        what: &'static str,
        ident: &mut Ident,
        method: Method,
        body: Value,
        want: Attrs,
        acked: &mut Vec<Acked>,
    ) -> bool {
        let Some(id) = ident.id.clone() else { return false };
        let path = format!("/Users/{id}");
        let Some((a, _)) = self.retried(what, method, &path, Some(&body)).await else {
            ident.uncertain = true;
            return false;
        };
        if a.status != StatusCode::OK {
            self.violation(format!("{what} {id}: {} {}", a.status, a.body));
            ident.uncertain = true;
            return false;
        }
        let got = Attrs::of(&a.body);
        if got != want {
            self.violation(format!("{what} {id}: answered {got:?}, wanted {want:?}"));
        }
        let v = version_of(&a.body);
        if v < ident.version {
            self.violation(format!("{what} {id}: version went back from {} to {v}", ident.version));
        }
        if v != ident.version {
            acked.push((id, "scim.user.update", Some(v)));
        }
        ident.version = v;
        ident.attrs = got;
        true
    }

    async fn get(&self, ident: &mut Ident) {
        let Some(id) = ident.id.clone() else { return };
        let Some((a, _)) = self.retried("get", Method::GET, &format!("/Users/{id}"), None).await else { return };
        if a.status != StatusCode::OK {
            self.violation(format!("get {id}: {} {}", a.status, a.body));
        } else if !ident.uncertain && (Attrs::of(&a.body) != ident.attrs || version_of(&a.body) != ident.version) {
            self.violation(format!("get {id}: {} is not {:?} v{}", a.body, ident.attrs, ident.version));
        }
    }

    async fn delete(&self, ident: &mut Ident, acked: &mut Vec<Acked>) {
        let Some(id) = ident.id.clone() else { return };
        self.sign_in(ident).await;
        let Some((a, failed_before)) = self.retried("delete", Method::DELETE, &format!("/Users/{id}"), None).await
        else {
            ident.uncertain = true;
            return;
        };
        match a.status {
            StatusCode::NO_CONTENT => {}
            StatusCode::NOT_FOUND if failed_before => self.bump(|r| r.deletes_converged_404 += 1),
            other => {
                self.violation(format!("delete {id}: {other} {} (retried: {failed_before})", a.body));
                ident.uncertain = true;
                return;
            }
        }
        acked.push((id.clone(), "scim.user.delete", None));
        self.bump(|r| r.acknowledged_deactivations += 1);
        ident.revocations_acked += 1;
        for s in ident.sessions.iter_mut().filter(|s| s.user == id) {
            s.must_be_dead = true;
        }
        ident.deleted_ids.push(id);
        ident.id = None;
        ident.version = 0;
    }

    /// One Okta operation on one of the worker's users.
    async fn step(&self, rng: &mut Rng, ident: &mut Ident, acked: &mut Vec<Acked>) {
        if ident.uncertain {
            // Okta would retry the task later; here the user just keeps being read.
            if ident.id.is_some() {
                self.get(ident).await;
            }
            return;
        }
        if ident.id.is_none() {
            return self.create(ident, acked).await;
        }
        ident.edits += 1;
        let roll = rng.below(100);
        let patch = |value: Value| {
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations":[{"op":"replace","value":value}]})
        };
        if ident.attrs.active {
            match roll {
                0..=19 => self.get(ident).await,
                20..=34 => {
                    self.lookup(ident).await;
                }
                35..=49 => {
                    let mut want = ident.attrs.clone();
                    want.display = format!("{} {} (put {})", want.given, want.family, ident.edits);
                    let body = want.body();
                    self.write("put", ident, Method::PUT, body, want, acked).await;
                }
                50..=69 => {
                    let mut want = ident.attrs.clone();
                    want.display = format!("{} {} (patch {})", want.given, want.family, ident.edits);
                    want.given = format!("G{}", ident.edits);
                    let body = patch(json!({"displayName": want.display, "name.givenName": want.given}));
                    self.write("patch", ident, Method::PATCH, body, want, acked).await;
                }
                70..=94 => {
                    // Deactivation, by PATCH (Okta) or by PUT (custom apps); the user signed in first.
                    self.sign_in(ident).await;
                    let mut want = ident.attrs.clone();
                    want.active = false;
                    let (what, method, body) = if roll < 88 {
                        ("deactivate-patch", Method::PATCH, patch(json!({"active": false})))
                    } else {
                        ("deactivate-put", Method::PUT, want.body())
                    };
                    if self.write(what, ident, method, body, want, acked).await {
                        self.bump(|r| r.acknowledged_deactivations += 1);
                        ident.revocations_acked += 1;
                        let id = ident.id.clone().unwrap_or_default();
                        for s in ident.sessions.iter_mut().filter(|s| s.user == id) {
                            s.must_be_dead = true;
                        }
                    }
                }
                _ => self.delete(ident, acked).await,
            }
        } else {
            match roll {
                0..=19 => self.get(ident).await,
                20..=34 => {
                    self.lookup(ident).await;
                }
                35..=89 => {
                    let mut want = ident.attrs.clone();
                    want.active = true;
                    self.write("reactivate", ident, Method::PATCH, patch(json!({"active": true})), want, acked).await;
                }
                _ => self.delete(ident, acked).await,
            }
        }
    }
}

/// Runs the load and every check; the report lists the violations found.
pub async fn run(target: &Target, injector: &dyn Injector, cfg: LoadConfig) -> LoadReport {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        base: target.base.clone(),
        auth: format!("Bearer {}", target.token),
        tenant: target.tenant.clone(),
        store: target.store.clone(),
        sent: AtomicUsize::new(0),
        report: Mutex::new(LoadReport::default()),
        cfg: cfg.clone(),
    });

    // Setup, no faults: half of the users exist (created as Okta would) and have signed in.
    injector.arm(false);
    let mut idents: Vec<Ident> = (0..cfg.identities)
        .map(|i| {
            let user_name = format!("okta.user{i}.s{}@atko.example", cfg.seed);
            Ident {
                attrs: Attrs {
                    external_id: crate::okta_id(&user_name),
                    user_name,
                    given: format!("Given{i}"),
                    family: format!("Family{i}"),
                    display: format!("Given{i} Family{i}"),
                    active: true,
                },
                id: None,
                version: 0,
                uncertain: false,
                sessions: vec![],
                deleted_ids: vec![],
                edits: 0,
                revocations_acked: 0,
            }
        })
        .collect();
    let mut acked: Vec<Acked> = Vec::new();
    for ident in idents.iter_mut().step_by(2) {
        let a = shared.send("setup", Method::POST, "/Users", Some(&ident.attrs.body())).await;
        assert_eq!(a.status, StatusCode::CREATED, "setup create: {}", a.body);
        let id = a.body["id"].as_str().expect("id").to_string();
        acked.push((id.clone(), "scim.user.create", Some(1)));
        ident.id = Some(id);
        ident.version = 1;
        shared.sign_in(ident).await;
    }
    shared.sent.store(0, Ordering::SeqCst);
    if let Ok(mut r) = shared.report.lock() {
        *r = LoadReport::default();
    }

    // The load, with faults.
    injector.arm(true);
    let mut owned: Vec<Vec<Ident>> = (0..cfg.concurrency).map(|_| Vec::new()).collect();
    for (i, ident) in idents.into_iter().enumerate() {
        owned[i % cfg.concurrency].push(ident);
    }
    let mut tasks = Vec::new();
    for (w, mut mine) in owned.into_iter().enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::at(shared.cfg.seed, "worker", w as u64);
            let mut acked = Vec::new();
            // Bounded: each step sends at least one request, and the budget is finite.
            for _ in 0..shared.cfg.requests {
                if shared.sent.load(Ordering::SeqCst) >= shared.cfg.requests || mine.is_empty() {
                    break;
                }
                let i = rng.below(mine.len() as u64) as usize;
                shared.step(&mut rng, &mut mine[i], &mut acked).await;
            }
            (mine, acked)
        }));
    }
    let mut idents = Vec::new();
    for t in tasks {
        let (mine, a) = tokio::time::timeout(Duration::from_secs(900), t)
            .await
            .expect("the load finished within 15 minutes")
            .expect("worker");
        idents.extend(mine);
        acked.extend(a);
    }
    injector.arm(false);

    check(&shared, target, &idents, &acked).await;
    let mut report = shared.report.lock().map(|r| r.clone()).unwrap_or_default();
    report.acknowledged_writes = acked.len();
    report.elapsed = started.elapsed();
    report
}

/// The invariants, read from the store with faults off.
async fn check(shared: &Shared, target: &Target, idents: &[Ident], acked: &[Acked]) {
    let store = &target.store;
    let tenant = &target.tenant;
    let v = |m: String| shared.violation(m);
    let mut users_checked = 0;
    let mut claims_checked = 0;

    // 1. Every user as last acknowledged, with its claims.
    let mut live_ids: HashMap<String, u64> = HashMap::new();
    for ident in idents {
        let folded = butterfly_core::email::UserName::parse(&ident.attrs.user_name)
            .map(|u| u.folded().to_string())
            .unwrap_or_default();
        let by_name = store.find_user_by_user_name(tenant, &folded).await;
        let by_ext = store.find_user_by_external_id(tenant, &ident.attrs.external_id).await;
        let (Ok(by_name), Ok(by_ext)) = (by_name, by_ext) else {
            v(format!("claim reads failed for {}", ident.attrs.user_name));
            continue;
        };
        claims_checked += 2;
        if let Some(u) = &by_name {
            live_ids.insert(u.id.to_string(), u.version);
        }
        match (&by_name, &by_ext) {
            (Some(a), Some(b)) if a.id != b.id || a.version != b.version => v(format!(
                "{}: the userName claim names {} v{}, the externalId claim {} v{}",
                ident.attrs.user_name, a.id, a.version, b.id, b.version
            )),
            (Some(a), None) => v(format!("{}: user {} has no externalId claim", ident.attrs.user_name, a.id)),
            (None, Some(b)) => {
                v(format!("{}: an externalId claim names {} but no userName claim does", ident.attrs.user_name, b.id))
            }
            _ => {}
        }
        if let Some(u) = &by_name {
            match store.get_user(tenant, &u.id).await {
                Ok(Some(stored)) if stored.version == u.version => {}
                Ok(Some(stored)) => v(format!("{}: claim copy v{} but user v{}", u.id, u.version, stored.version)),
                Ok(None) => v(format!("{}: a claim names user {} that does not exist", ident.attrs.user_name, u.id)),
                Err(e) => v(format!("get_user failed: {e}")),
            }
        }
        for gone in &ident.deleted_ids {
            if let Some(uid) = UserId::parse(gone) {
                if !matches!(store.get_user(tenant, &uid).await, Ok(None)) {
                    v(format!("user {gone} was deleted (204) but is still there"));
                }
            }
        }
        if ident.uncertain {
            continue;
        }
        users_checked += 1;
        match (&ident.id, &by_name) {
            (None, None) => {}
            (None, Some(u)) => {
                v(format!("{}: user {} exists, but no create of it was acknowledged", ident.attrs.user_name, u.id))
            }
            (Some(id), None) => v(format!("{}: acknowledged user {id} is missing", ident.attrs.user_name)),
            (Some(id), Some(u)) => {
                let got = Attrs::of(&user_json(u, ""));
                if u.id.to_string() != *id || got != ident.attrs || u.version != ident.version {
                    v(format!(
                        "{id}: the store holds {} v{} {got:?}, the last acknowledged is v{} {:?}",
                        u.id, u.version, ident.version, ident.attrs
                    ));
                }
            }
        }
    }

    // 2a. The tenant holds no other user, and its count agrees.
    let mut all = Vec::new();
    let mut after: Option<UserId> = None;
    for _ in 0..1000 {
        match store.list_users(tenant, after.as_ref(), 0, 500).await {
            Ok(page) => {
                let done = page.len() < 500;
                after = page.last().map(|u| u.id);
                all.extend(page);
                if done {
                    break;
                }
            }
            Err(e) => {
                v(format!("list_users failed: {e}"));
                break;
            }
        }
    }
    let mut names = HashSet::new();
    for u in &all {
        if !names.insert(u.user_name.folded().to_string()) {
            v(format!("two users named {}", u.user_name.as_str()));
        }
        if !live_ids.contains_key(&u.id.to_string()) {
            v(format!("user {} ({}) is in the tenant but no claim names it", u.id, u.user_name.as_str()));
        }
    }
    match store.count_users(tenant).await {
        Ok(n) if n == all.len() as u64 => {}
        Ok(n) => v(format!("the user count says {n}, the tenant holds {}", all.len())),
        Err(e) => v(format!("count_users failed: {e}")),
    }

    // 1b/2b. Audit: every acknowledged write has its event; no event without its write, none twice.
    let mut events = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..1000 {
        match store.audit_page(tenant, before.as_deref(), 500).await {
            Ok(page) => {
                let done = page.len() < 500;
                before = page.last().map(|e| e.id.clone());
                events.extend(page);
                if done {
                    break;
                }
            }
            Err(e) => {
                v(format!("audit_page failed: {e}"));
                break;
            }
        }
    }
    let mut seen: HashMap<(String, &'static str, Option<u64>), usize> = HashMap::new();
    let mut deleted: HashSet<String> = HashSet::new();
    let mut receipts: HashMap<String, usize> = HashMap::new();
    let mut audit_checked = 0;
    for e in &events {
        let target = e.target.clone().unwrap_or_default();
        let action = e.action.as_str();
        let version = e.details["version"].as_u64();
        let key = match action {
            "scim.user.create" => (target.clone(), "scim.user.create", version),
            "scim.user.update" => (target.clone(), "scim.user.update", version),
            "scim.user.delete" => {
                deleted.insert(target.clone());
                (target.clone(), "scim.user.delete", None)
            }
            "revocation" => {
                *receipts.entry(target).or_default() += 1;
                continue;
            }
            _ => continue,
        };
        audit_checked += 1;
        *seen.entry(key).or_default() += 1;
    }
    for ((target, action, version), n) in &seen {
        if *n > 1 {
            v(format!("{n} audit events {action} for {target} v{version:?}"));
        }
        if *action == "scim.user.delete" {
            continue;
        }
        // An event for a write that happened: the user is at that version or later, or was deleted.
        match live_ids.get(target) {
            Some(cur) if version.is_some_and(|ver| ver <= *cur) => {}
            None if deleted.contains(target) => {}
            cur => v(format!("audit event {action} {target} v{version:?}, but the user is at {cur:?}")),
        }
    }
    for (id, action, version) in acked {
        let key = (id.clone(), *action, *version);
        if !seen.contains_key(&key) {
            v(format!("acknowledged {action} of {id} v{version:?} has no audit event"));
        }
    }

    // 2c. Sessions: none survives an acknowledged deactivation or deletion. Its row is gone,
    // or (when the revocation after the committed write failed) the user's own record kills
    // it: deleted, or a `sessions_revoked_at` cut-off written with the deactivation. And it
    // authenticates nothing (below); the others still work (so the check can tell).
    let mut revoked = 0;
    let mut live = 0;
    let mut rows_left = 0;
    let mut missing_receipts = 0;
    for ident in idents.iter().filter(|i| !i.uncertain) {
        for s in ident.sessions.iter().filter(|s| s.must_be_dead) {
            revoked += 1;
            match store.session_with_user(&s.hash).await {
                Ok(None) => {}
                Ok(Some((session, user))) => {
                    let killed = user.as_ref().is_none_or(|u| {
                        u.tenant != session.tenant
                            || !u.active
                            || u.sessions_revoked_at.is_some_and(|at| session.created <= at)
                    });
                    if killed {
                        rows_left += 1;
                    } else {
                        v(format!(
                            "a session of {} outlived its acknowledged deactivation/deletion: the row is there and the user record does not end it",
                            s.user
                        ));
                    }
                }
                Err(e) => v(format!("session_with_user failed: {e}")),
            }
        }
        let ids: HashSet<&String> = ident.deleted_ids.iter().chain(ident.id.iter()).collect();
        let got: usize = ids.iter().map(|id| receipts.get(*id).copied().unwrap_or(0)).sum();
        missing_receipts += ident.revocations_acked.saturating_sub(got);
    }
    for ident in idents.iter().filter(|i| !i.uncertain) {
        for s in &ident.sessions {
            let works = target.sso.authenticate_member(Some(&s.cookie)).await.is_ok();
            let should = !s.must_be_dead && ident.attrs.active && ident.id.as_deref() == Some(s.user.as_str());
            if works != should {
                v(format!("session of {}: authenticates = {works}, expected {should}", s.user));
            }
            if !s.must_be_dead {
                live += 1;
            }
        }
    }
    shared.bump(|r| {
        r.users_checked = users_checked;
        r.claims_checked = claims_checked;
        r.audit_events_checked = audit_checked;
        r.sessions_revoked_checked = revoked;
        r.sessions_live_checked = live;
        r.session_rows_left_dead = rows_left;
        r.missing_receipts = missing_receipts;
    });
}

/// The SCIM endpoint (the `scim-users` function's router, common layers included) served on
/// loopback over `store`, with a tenant and its token made in `setup_store` (no faults).
pub struct ScimServer {
    pub origin: String,
    pub tenant: TenantId,
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

impl ScimServer {
    pub async fn start(store: Arc<dyn Store>, setup_store: Arc<dyn Store>) -> ScimServer {
        let (t, token) =
            crate::tenant_with_token(setup_store, &format!("Faults {}", random_secret().expect("rng").expose())).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let app = butterfly_api::scim_app(butterfly_api::scim_state(
            store,
            Arc::new(SystemClock),
            butterfly_core::scim::cursor::CursorKey::new([7; 32]),
            butterfly_api::scim::BaseUrl::Fixed(origin.clone().into()),
            butterfly_core::limit::QuotaPolicy::per_minute(1_000_000),
        ));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScimServer { origin, tenant: t.id, token, task }
    }

    /// The load's target: this endpoint, checked through `store` (the same data, no faults).
    pub fn target(&self, store: Arc<dyn Store>) -> Target {
        let http = butterfly_outbound::GuardedHttp::new(
            &butterfly_outbound::DnsServers::System,
            false,
            butterfly_outbound::Limits::default(),
        )
        .expect("http client");
        let sso = SessionService::new(
            store.clone(),
            Arc::new(butterfly_outbound::OidcProvider::new(http)),
            Arc::new(SystemClock),
            butterfly_core::sso::SsoPolicy::default(),
        );
        Target {
            base: format!("{}/scim/v2", self.origin),
            token: self.token.clone(),
            tenant: self.tenant.clone(),
            store,
            sso,
        }
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Injector for crate::faults::Faults {
    fn arm(&self, on: bool) {
        crate::faults::Faults::arm(self, on);
    }
}

/// The proxy failing `fraction` of requests while armed, none otherwise.
pub struct ProxyFaults<'a>(pub &'a crate::fault_proxy::FaultProxy, pub f64);

impl Injector for ProxyFaults<'_> {
    fn arm(&self, on: bool) {
        self.0.set_fraction(if on { self.1 } else { 0.0 });
    }
}
