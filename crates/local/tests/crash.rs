//! Crash consistency of the embedded store (`docs/reliability.md`, "Crash consistency"): the
//! real `butterfly` binary is killed with SIGKILL in the middle of a burst of group-committed
//! writes, then restarted over the same data directory; the store must open and hold every
//! write that was acknowledged (and each write whose answer never came whole: in or out).
//! Second, SIGKILL lands among deactivations, between a deactivation's write and the deletion
//! of its sessions: after restart no session of a deactivated user works.
//!
//! `BUTTERFLY_CRASH_ITERATIONS` (default 20) sets the number of kills of each test. Each test
//! prints one `CRASH_FIGURES` line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::{SessionStore, UserStore};
use butterfly_embedded::EmbeddedStore;
use butterfly_tests::faults::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_butterfly");
const WORKERS: usize = 32;

fn iterations() -> usize {
    std::env::var("BUTTERFLY_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// The local stack, as an operator runs it.
struct Stack {
    child: Child,
    base: String,
    origin: String,
}

impl Stack {
    /// Starts `butterfly serve` over `dir` and waits (20 s at most) for it to listen: the store
    /// opened.
    fn start(dir: &Path) -> Stack {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Lines arrive on a channel, so a stack that hangs before listening is caught by the deadline.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || tx.send(line).is_err() {
                return;
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains("listening on");
                    lines.push(line.trim_end().to_string());
                    if done {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the stack did not start in 20 s: {lines:?}"),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!("the stack exited ({status}) instead of opening the store: {lines:?}");
                }
            }
        }
        let origin = format!("http://127.0.0.1:{port}");
        Stack { child, base: format!("{origin}/scim/v2"), origin }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    /// SIGTERM: a graceful stop (the store is closed).
    fn stop(mut self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the stack did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new tenant and its SCIM token, made by the operator commands while the stack is down
/// (each command opens the store the kill left behind). One tenant per kill keeps every
/// burst under the per-tenant SCIM rate limit of the local stack.
fn new_tenant(dir: &Path, name: &str) -> (String, String) {
    let run = |args: &[&str]| {
        let o = Command::new(BIN).arg("--data-dir").arg(dir).args(args).output().unwrap();
        assert!(o.status.success(), "butterfly {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let id = run(&["tenant", "create", "--name", name, "--json"])["tenant_id"].as_str().unwrap().to_string();
    let token = run(&["scim-token", "issue", "--tenant", &id, "--json"])["token"].as_str().unwrap().to_string();
    (id, token)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn version_of(v: &Value) -> u64 {
    v.pointer("/meta/version")
        .and_then(Value::as_str)
        .and_then(|s| s.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(0)
}

fn user_body(user_name: &str, display: &str) -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":user_name,
           "name":{"givenName":"Crash","familyName":"Test"},"displayName":display,
           "emails":[{"primary":true,"value":user_name,"type":"work"}],"active":true})
}

fn patch(value: Value) -> Value {
    json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":value}]})
}

/// One user as its worker knows it: the last acknowledged state, and the write in flight when
/// the process died (its answer never came).
#[derive(Debug, Clone)]
struct Rec {
    id: String,
    user_name: String,
    display: String,
    version: u64,
    pending: Option<(String, u64)>,
}

#[derive(Default)]
struct Burst {
    recs: Vec<Rec>,
    pending_create: Option<String>,
    acked: usize,
}

/// Writes per worker and burst: 32 × 35 stays under the local stack's 1,200 SCIM requests a
/// minute per tenant; with the pause between writes a burst lasts longer than the 400 ms
/// before the kill.
const WRITES_PER_WORKER: usize = 35;
const PAUSE: Duration = Duration::from_millis(20);

/// One worker's writes until the stack dies (or its writes are done): creates of new users and
/// PATCHes of its own users, one at a time, as one Okta task queue.
/// `killed` is set just before the SIGKILL: a write not started by then is not sent (so only
/// writes really in flight at the kill count as unanswered).
async fn worker(
    c: reqwest::Client,
    base: String,
    token: String,
    (iter, w): (usize, usize),
    killed: Arc<AtomicBool>,
    mut recs: Vec<Rec>,
) -> Burst {
    let mut rng = Rng::at(iter as u64, "crash-worker", w as u64);
    let mut b = Burst::default();
    let until = Instant::now() + Duration::from_secs(30);
    for k in 0..WRITES_PER_WORKER {
        if Instant::now() > until {
            break;
        }
        if k > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        if killed.load(Ordering::SeqCst) {
            break;
        }
        if recs.len() < 2 || rng.below(100) < 35 {
            let user_name = format!("crash.i{iter}.w{w}.n{k}@example.com");
            let display = format!("created {iter}/{k}");
            b.pending_create = Some(user_name.clone());
            let Ok(r) =
                c.post(format!("{base}/Users")).bearer_auth(&token).json(&user_body(&user_name, &display)).send().await
            else {
                break;
            };
            let status = r.status();
            let Ok(v) = r.json::<Value>().await else { break };
            assert_eq!(status, StatusCode::CREATED, "{v}");
            b.pending_create = None;
            b.acked += 1;
            recs.push(Rec {
                id: v["id"].as_str().unwrap().to_string(),
                user_name,
                display,
                version: version_of(&v),
                pending: None,
            });
        } else {
            let i = rng.below(recs.len() as u64) as usize;
            let rec = &mut recs[i];
            let display = format!("patched {iter}/{k}");
            rec.pending = Some((display.clone(), rec.version + 1));
            let Ok(r) = c
                .patch(format!("{base}/Users/{}", rec.id))
                .bearer_auth(&token)
                .json(&patch(json!({"displayName": display})))
                .send()
                .await
            else {
                break;
            };
            let status = r.status();
            let Ok(v) = r.json::<Value>().await else { break };
            assert_eq!(status, StatusCode::OK, "{v}");
            assert_eq!(version_of(&v), rec.version + 1, "{v}");
            rec.pending = None;
            rec.display = display;
            rec.version += 1;
            b.acked += 1;
        }
    }
    b.recs = recs;
    b
}

#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    acked_writes: usize,
    unanswered_at_kill: usize,
    unanswered_found_committed: usize,
    lost: usize,
}

/// Opens the store the kill left behind, as the next start does, and checks it against the
/// model, from the store itself: every acknowledged write (or the unanswered one after it),
/// claims that resolve to the users, a count that agrees. Folds in the unanswered writes that
/// committed.
async fn verify(store: &EmbeddedStore, tenant: &TenantId, t: &mut Tenant, f: &mut Figures) -> Vec<String> {
    let mut problems = Vec::new();
    let mut users = Vec::new();
    let mut after: Option<UserId> = None;
    for _ in 0..1000 {
        let page = store.list_users(tenant, after.as_ref(), 0, 500).await.unwrap();
        let done = page.len() < 500;
        after = page.last().map(|u| u.id);
        users.extend(page);
        if done {
            break;
        }
    }
    if store.count_users(tenant).await.unwrap() != users.len() as u64 {
        problems.push(format!("the user count disagrees with the {} users listed", users.len()));
    }
    let mut seen = HashSet::new();
    for u in &users {
        let id = u.id.to_string();
        let user_name = u.user_name.as_str().to_string();
        let display = u.display_name.clone().unwrap_or_default();
        let version = u.version;
        match store.find_user_by_user_name(tenant, u.user_name.folded()).await.unwrap() {
            Some(c) if c.id == u.id && c.version == u.version => {}
            other => problems.push(format!("{id}: its userName claim finds {:?}", other.map(|c| (c.id, c.version)))),
        }
        seen.insert(id.clone());
        match t.model.get_mut(&id) {
            Some(rec) if rec.version == version && rec.display == display => {}
            Some(rec) if rec.pending.as_ref() == Some(&(display.clone(), version)) => {
                f.unanswered_found_committed += 1;
                rec.version = version;
                rec.display = display;
            }
            Some(rec) => {
                if version < rec.version {
                    f.lost += 1;
                }
                problems.push(format!(
                    "{id}: stored v{version} {display:?}, acknowledged v{} {:?} (unanswered: {:?})",
                    rec.version, rec.display, rec.pending
                ));
            }
            None if t.pending_creates.remove(&user_name) => {
                f.unanswered_found_committed += 1;
                t.model.insert(id.clone(), Rec { id, user_name, display, version, pending: None });
            }
            None => problems.push(format!("user {id} ({user_name}) exists, but no create of it was sent")),
        }
    }
    for (id, rec) in &t.model {
        if !seen.contains(id) {
            f.lost += 1;
            problems.push(format!("acknowledged user {id} ({}) is gone", rec.user_name));
        }
    }
    for rec in t.model.values_mut() {
        rec.pending = None;
    }
    t.pending_creates.clear();
    problems
}

/// One tenant's users as the workers know them.
#[derive(Default)]
struct Tenant {
    id: String,
    model: HashMap<String, Rec>,
    pending_creates: HashSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_write() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let mut tenants: Vec<Tenant> = Vec::new();
    let mut f = Figures::default();
    let n = iterations();
    for iter in 0..n {
        // A new tenant for each burst (the operator command opens the store the last kill left).
        let (tenant, token) = new_tenant(dir.path(), &format!("crash {iter}"));
        let s = Stack::start(dir.path());

        let killed = Arc::new(AtomicBool::new(false));
        // The burst: every worker creating and changing its own users, and a SIGKILL 100–400 ms in.
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                tokio::spawn(worker(c.clone(), s.base.clone(), token.clone(), (iter, w), killed.clone(), Vec::new()))
            })
            .collect();
        let delay = 100 + Rng::at(13, "crash-delay", iter as u64).below(300);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.store(true, Ordering::SeqCst);
        s.kill();
        f.kills += 1;
        let mut t = Tenant { id: tenant, ..Tenant::default() };
        for task in tasks {
            let b = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("workers end once the stack is gone")
                .unwrap();
            f.acked_writes += b.acked;
            for rec in b.recs {
                if rec.pending.is_some() {
                    f.unanswered_at_kill += 1;
                }
                t.model.insert(rec.id.clone(), rec);
            }
            if let Some(u) = b.pending_create {
                f.unanswered_at_kill += 1;
                t.pending_creates.insert(u);
            }
        }
        tenants.push(t);
        // The store opens as the next start opens it, and every write acknowledged before this
        // kill and the ones before is there, in every tenant.
        let store = EmbeddedStore::open(dir.path())
            .unwrap_or_else(|e| panic!("the store does not open after kill {iter}: {e}"));
        for (i, t) in tenants.iter_mut().enumerate() {
            let id = TenantId::parse(&t.id).unwrap();
            let problems = verify(&store, &id, t, &mut f).await;
            assert!(problems.is_empty(), "after kill {iter}, tenant {i}: {problems:#?}");
        }
        drop(store);
    }
    // And the stack itself starts on what the last kill left, and stops cleanly.
    Stack::start(dir.path()).stop();
    println!(
        "CRASH_FIGURES test=burst kills={} acknowledged_writes={} users={} unanswered_at_kill={} unanswered_found_committed={} writes_lost={} seconds={:.1}",
        f.kills,
        f.acked_writes,
        tenants.iter().map(|t| t.model.len()).sum::<usize>(),
        f.unanswered_at_kill,
        f.unanswered_found_committed,
        f.lost,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(f.lost, 0);
    assert!(f.acked_writes > n * WORKERS, "the bursts wrote: {f:?}");
    assert!(f.unanswered_at_kill > 0, "the kills landed mid-burst: {f:?}");
}

/// One signed-in user of the deactivation test.
struct Member {
    id: String,
    cookie: String,
    hash: butterfly_core::token::TokenHash,
}

async fn me(c: &reqwest::Client, stack: &Stack, cookie: &str) -> StatusCode {
    c.get(format!("{}/me", stack.origin))
        .header("Cookie", format!("bfy_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_deactivation_and_revocation_leaves_no_working_session() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let n = iterations();
    let (mut acked, mut landed, mut rows_left, mut checked) = (0, 0, 0, 0);
    for iter in 0..n {
        let (tenant, token) = new_tenant(dir.path(), &format!("deactivation {iter}"));
        let mut stack = Stack::start(dir.path());
        // Users, then (store closed) a session each, written as a sign-in writes it.
        let mut ids = Vec::new();
        for k in 0..WORKERS {
            let r = c
                .post(format!("{}/Users", stack.base))
                .bearer_auth(&token)
                .json(&user_body(&format!("deact.i{iter}.n{k}@example.com"), "to deactivate"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
        }
        stack.stop();
        let mut members = Vec::new();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let tenant = TenantId::parse(&tenant).unwrap();
            for id in ids {
                let (secret, s) = butterfly_tests::hour_session(
                    &tenant,
                    UserId::parse(&id).unwrap(),
                    "https://okta.example/oauth2/default",
                    &format!("00u{iter}{id}"),
                );
                store.create_session(&s).await.unwrap();
                members.push(Member { id, cookie: secret.expose().to_string(), hash: s.hash });
            }
        }
        stack = Stack::start(dir.path());
        for m in &members {
            assert_eq!(me(&c, &stack, &m.cookie).await, StatusCode::OK, "the session works before");
        }

        // Every user deactivated at once (Okta's PATCH), and a SIGKILL 0–120 ms in.
        let tasks: Vec<_> = members
            .iter()
            .map(|m| {
                let (c, url, token) = (c.clone(), format!("{}/Users/{}", stack.base, m.id), token.clone());
                tokio::spawn(async move {
                    let r = c.patch(url).bearer_auth(token).json(&patch(json!({"active": false}))).send().await.ok()?;
                    let status = r.status();
                    let v = r.json::<Value>().await.ok()?;
                    assert_eq!(status, StatusCode::OK, "{v}");
                    Some(())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(Rng::at(13, "deact-delay", iter as u64).below(120))).await;
        stack.kill();
        let mut answered = Vec::new();
        for t in tasks {
            answered.push(tokio::time::timeout(Duration::from_secs(60), t).await.unwrap().unwrap().is_some());
        }

        // From the store the kill left: an acknowledged deactivation stands; whose session rows
        // are still there (the kill fell between the deactivation's write and the deletion of
        // its sessions).
        let mut active = Vec::new();
        {
            let store = EmbeddedStore::open(dir.path())
                .unwrap_or_else(|e| panic!("the store does not open after kill {iter}: {e}"));
            let tenant = TenantId::parse(&tenant).unwrap();
            for (m, ok) in members.iter().zip(&answered) {
                let u =
                    store.get_user(&tenant, &UserId::parse(&m.id).unwrap()).await.unwrap().expect("the user is there");
                if *ok {
                    acked += 1;
                    assert!(!u.active, "an acknowledged deactivation of {} was lost", m.id);
                }
                if !u.active {
                    landed += 1;
                    if store.session_with_user(&m.hash).await.unwrap().is_some() {
                        rows_left += 1;
                    }
                }
                active.push(u.active);
            }
        }
        // After restart, no session of a deactivated user works (and the others still do).
        let stack = Stack::start(dir.path());
        for (m, active) in members.iter().zip(&active) {
            let works = me(&c, &stack, &m.cookie).await == StatusCode::OK;
            checked += 1;
            assert_eq!(works, *active, "user {} is active={active}, and its session works={works}", m.id);
        }
        stack.stop();
    }
    println!(
        "CRASH_FIGURES test=deactivation kills={n} sessions_checked={checked} deactivations_acknowledged={acked} deactivations_committed={landed} killed_between_write_and_revocation={rows_left} sessions_working_after_deactivation=0 seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
    assert!(landed > 0, "some deactivations committed before the kills");
}
