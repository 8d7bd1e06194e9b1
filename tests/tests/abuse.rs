//! Abuse limits, expiry and small hardening items of the SCIM/store-side security review, each
//! as the attack that worked before: anonymous floods of login starts, a tenant flooding SCIM,
//! unbounded growth of the embedded store, look-alike userNames, a 400 that told an
//! unauthenticated caller about the body, an unsafe client request id, world-readable data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_api::limits::AnonymousLimits;
use butterfly_api::Limits;
use butterfly_core::clock::{Clock, SystemClock};
use butterfly_core::limit::QuotaPolicy;
use butterfly_core::sso::SsoPolicy;
use butterfly_core::sso_settings::SsoSettingsInput;
use butterfly_core::token::Secret;
use butterfly_tests::hostile::FakeIdp;
use butterfly_tests::{expect_error, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn with_sso(app: &TestApp, idp: &FakeIdp) {
    idp.serve_good("/t");
    app.sso
        .configure(
            &app.tenant,
            SsoSettingsInput {
                issuer: idp.issuer("/t"),
                client_id: "butterfly".into(),
                client_secret: Some(Secret::new("s")),
                domains: Some("acme.test".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    app.store.take();
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no integer Retry-After: {:?}", r.headers().get("retry-after")))
}

/// 4,000 anonymous login starts ran at ~800/s and wrote 4,000 items. Now one address gets its
/// burst, then 429 with an integer Retry-After, and the refused ones write nothing.
#[tokio::test]
async fn anonymous_login_starts_are_limited_per_address() {
    let limits =
        Limits::new(AnonymousLimits { per_address_per_minute: 60, settings_per_minute: 10 }, QuotaPolicy::default());
    let app = TestApp::spawn_with_limits(limits).await;
    let idp = FakeIdp::start().await;
    with_sso(&app, &idp).await;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (mut ok, mut limited, mut last) = (0, 0, None);
    for i in 0..200 {
        let r =
            c.post(format!("{}/login", app.origin)).form(&[("email", format!("u{i}@acme.test"))]).send().await.unwrap();
        match r.status() {
            StatusCode::SEE_OTHER => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                last = Some(r);
            }
            s => panic!("{s}"),
        }
    }
    assert!(ok <= 10, "{ok} starts passed a burst of 6");
    assert!(limited >= 190);
    let r = last.unwrap();
    assert!(retry_after(&r) >= 1);
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let (_, ops) = app.store.take();
    let writes = ops.iter().filter(|o| **o == "put_login").count();
    assert_eq!(writes, ok, "refused starts wrote items: {ops:?}");
    // The JSON lookup answers 429 the OAuth way too.
    let r = c.post(format!("{}/sso/lookup", app.origin)).json(&json!({"email": "x@acme.test"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "slow_down");
}

/// A per-domain budget on sign-in starts was a lever: anyone, from a handful of addresses, could
/// spend a tenant's budget by naming its domain and lock every member out. Starts are limited
/// per client address only (API Gateway's stage throttling bounds the total): twenty addresses
/// each spending their own burst on acme.test leave a member from another address unaffected.
#[tokio::test]
async fn naming_a_domain_from_many_addresses_does_not_lock_its_members_out() {
    let limits =
        Limits::new(AnonymousLimits { per_address_per_minute: 60, settings_per_minute: 10 }, QuotaPolicy::default());
    let app = TestApp::spawn_with_limits(limits).await;
    let idp = FakeIdp::start().await;
    with_sso(&app, &idp).await;
    let (mut admitted, mut limited) = (0, 0);
    for a in 1..=20u8 {
        let from = std::net::IpAddr::from([127, 0, 0, 10 + a]);
        let c =
            reqwest::Client::builder().local_address(from).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for i in 0..10 {
            let r = c
                .post(format!("{}/login", app.origin))
                .form(&[("email", format!("flood{a}-{i}@acme.test"))])
                .send()
                .await
                .unwrap();
            match r.status() {
                StatusCode::SEE_OTHER => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => limited += 1,
                s => panic!("{s}"),
            }
        }
    }
    assert!(admitted >= 100, "each address has its own burst: {admitted} admitted");
    assert!(limited >= 20, "and each is limited past it: {limited}");
    let member = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 250]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = member.post(format!("{}/login", app.origin)).form(&[("email", "alice@acme.test")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "a member of the named domain still signs in");
}

/// A tenant's SCIM client over its per-minute quota gets 429, an integer Retry-After and a
/// SCIM error body; another tenant is not affected; the shared counter costs one store round
/// trip per lease, not per request.
#[tokio::test]
async fn scim_is_limited_per_tenant_with_retry_after() {
    let limits = Limits::new(AnonymousLimits::default(), QuotaPolicy::per_minute(40));
    let app = TestApp::spawn_with_limits(limits).await;
    let (_, other_token) = app.other_tenant().await;
    app.store.take();
    let mut codes = Vec::new();
    let mut limited = None;
    for _ in 0..60 {
        let r = app.get("/Users?count=1").await;
        codes.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(r);
        }
    }
    // Near the window's end a second window may start in the middle of the run.
    let ok = codes.iter().filter(|c| **c == StatusCode::OK).count();
    assert!((40..=80).contains(&ok), "{ok} admitted: {codes:?}");
    let r = limited.expect("never limited");
    let wait = retry_after(&r);
    assert!((1..=60).contains(&wait), "{wait}");
    let body = expect_error(r, StatusCode::TOO_MANY_REQUESTS, None).await;
    assert_eq!(body["status"], "429");
    let (_, ops) = app.store.take();
    // Leases of 2 (a twentieth of 40): ~20 round trips for 40 admitted requests, then one or two
    // to learn the window is used up; the refused requests cost no quota round trip at all.
    let leases = ops.iter().filter(|o| **o == "take_quota").count();
    assert!(leases <= 2 * (40 / 2 + 2), "{leases} quota round trips for 60 requests: {ops:?}");
    // The other tenant has its own quota.
    let r = app.req_as(Method::GET, "/Users?count=1", &other_token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The tests' shared counters: each answers a take of a tenant's minute (its start in epoch
/// milliseconds) its own way, and one adapter makes each the quota's `QuotaStore`.
#[async_trait::async_trait]
trait Take: Send + Sync + 'static {
    async fn take(&self, key: &str, minute: i64, want: u32, limit: u32) -> butterfly_core::Result<u32>;
}

struct Counter<T>(std::sync::Arc<T>);

#[async_trait::async_trait]
impl<T: Take> butterfly_core::limit::QuotaStore for Counter<T> {
    async fn take_quota(
        &self,
        key: &str,
        start: butterfly_core::clock::Timestamp,
        _secs: i64,
        want: u32,
        limit: u32,
    ) -> butterfly_core::Result<u32> {
        self.0.take(key, start.0, want, limit).await
    }
}

/// A shared counter that answers after 20 ms (a DynamoDB round trip, a group commit).
#[derive(Default)]
struct SlowCounter(std::sync::Mutex<std::collections::HashMap<(String, i64), u32>>);

#[async_trait::async_trait]
impl Take for SlowCounter {
    async fn take(&self, key: &str, minute: i64, want: u32, limit: u32) -> butterfly_core::Result<u32> {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut m = self.0.lock().unwrap();
        let used = m.entry((key.to_string(), minute)).or_default();
        let granted = want.min(limit - *used);
        *used += granted;
        Ok(granted)
    }
}

/// Found by the crash suite: concurrent first requests of a window (the local stack, or
/// `serve --store dynamodb`) each took a lease of 50 from the shared counter and each
/// overwrote the instance's lease with its own, so the 1,200 a minute were spent on a few
/// dozen requests and a refused lease marked the window used up: the tenant got 429s for the
/// rest of the minute. And requests past the 24th concurrent lease were refused while this
/// very instance held over a thousand unspent requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_do_not_spend_the_tenants_minute() {
    admit_64_at_once_then_to_the_limit(&std::sync::Arc::new(SlowCounter::default()), || {}).await;
}

/// A quota of `per_minute` requests a minute over `counter`, a tenant, and an instant in the
/// middle of a minute (every request of a test at that instant falls in the same minute).
fn quota_over<T: Take>(
    counter: &std::sync::Arc<T>,
    per_minute: u32,
) -> (std::sync::Arc<butterfly_core::limit::TenantQuota>, butterfly_core::ids::TenantId, butterfly_core::clock::Timestamp)
{
    let counter = std::sync::Arc::new(Counter(counter.clone()));
    let quota = butterfly_core::limit::TenantQuota::new(counter, QuotaPolicy::per_minute(per_minute));
    let now = butterfly_core::clock::Timestamp(29_000_000 * 60_000 + 30_000);
    (std::sync::Arc::new(quota), butterfly_core::ids::TenantId::generate(), now)
}

/// 64 concurrent first requests of one tenant (limit 1,200 a minute), all admitted; `then`
/// looks at the counter; then requests one at a time: exactly 1,200 admitted in the minute.
async fn admit_64_at_once_then_to_the_limit<T: Take>(counter: &std::sync::Arc<T>, then: impl FnOnce()) {
    let (quota, tenant, now) = quota_over(counter, 1200);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (q, t) = (quota.clone(), tenant.clone());
            tokio::spawn(async move { q.admit(&t, now).await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 64, "64 concurrent requests of a 1,200 limit");
    then();
    for _ in 0..1200 {
        admitted += usize::from(quota.admit(&tenant, now).await.is_ok());
    }
    assert_eq!(admitted, 1200, "exactly the limit is admitted in the minute");
}

/// The embedded store grew 1.2 KB per anonymous lookup: expired transactions, replay-cache
/// keys and sessions are now swept.
#[tokio::test]
async fn expired_items_are_swept_from_the_embedded_store() {
    let app =
        TestApp::spawn_with(SsoPolicy { transaction_ttl_secs: 1, allow_loopback_http: true, ..SsoPolicy::default() })
            .await;
    let idp = FakeIdp::start().await;
    with_sso(&app, &idp).await;
    let c = reqwest::Client::new();
    for i in 0..50 {
        let r = c
            .post(format!("{}/sso/lookup", app.origin))
            .json(&json!({"email": format!("s{i}@acme.test")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let removed = app.store.inner().sweep_expired(SystemClock.now()).await.unwrap();
    assert!(removed >= 50, "{removed} swept");
    assert_eq!(app.store.inner().sweep_expired(SystemClock.now()).await.unwrap(), 0, "nothing left to sweep");
}

/// The data file holds OIDC client secrets: it is created 0600 in a 0700 directory.
#[cfg(unix)]
#[tokio::test]
async fn the_data_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let dir = std::fs::metadata(app.data_dir()).unwrap().permissions().mode() & 0o777;
    let file = std::fs::metadata(app.data_dir().join("butterfly.redb")).unwrap().permissions().mode() & 0o777;
    assert_eq!((dir, file), (0o700, 0o600));
}

/// userNames with zero-width, bidi-control or fullwidth characters were accepted next to
/// their ASCII twins.
#[tokio::test]
async fn look_alike_user_names_are_refused() {
    let app = TestApp::spawn().await;
    app.create_user(&okta_user("admin@acme.test", "A", "D")).await;
    for bad in
        ["ad\u{200b}min@acme.test", "\u{ff41}dmin@acme.test", "admin\u{202e}@acme.test", "\u{0430}dmin@acme.test"]
    {
        let r = app.send_json(Method::POST, "/Users", &okta_user(bad, "E", "V")).await;
        let body = expect_error(r, StatusCode::BAD_REQUEST, Some("invalidValue")).await;
        assert!(body["detail"].as_str().unwrap().contains("userName"), "{body}");
    }
}

/// PUT and PATCH parsed the body before the token check: a bad token now gets 401 whatever
/// the body is.
#[tokio::test]
async fn scim_writes_authenticate_before_reading_the_body() {
    let app = TestApp::spawn().await;
    let created = app.create_user(&okta_user("w@acme.test", "W", "X")).await;
    let id = created["id"].as_str().unwrap();
    let forged = butterfly_core::token::ScimToken::generate_for(&app.tenant).unwrap();
    for method in [Method::PUT, Method::PATCH] {
        let r = app
            .req_as(method.clone(), &format!("/Users/{id}"), forged.secret().expose())
            .header("content-type", "application/scim+json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    }
}

/// A client request id is used only when it looks like one; anything else is replaced.
#[tokio::test]
async fn unsafe_client_request_ids_are_replaced() {
    let app = TestApp::spawn().await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/healthz", app.origin)).header("x-request-id", "okta-req_1.2:3").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "okta-req_1.2:3");
    for bad in ["a b", "x\tINFO role changed", &"a".repeat(65), "é"] {
        let r = c.get(format!("{}/healthz", app.origin)).header("x-request-id", bad).send().await.unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 36, "a UUID: {echoed}");
    }
}

/// A shared counter that answers a refusal at once and a grant after 20 ms, and counts how many
/// takes are in flight at once.
#[derive(Default)]
struct RefusalsFirst {
    used: std::sync::Mutex<u32>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    takes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Take for RefusalsFirst {
    async fn take(&self, _key: &str, _minute: i64, want: u32, limit: u32) -> butterfly_core::Result<u32> {
        use std::sync::atomic::Ordering::SeqCst;
        self.takes.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        let granted = {
            let mut used = self.used.lock().unwrap();
            let granted = want.min(limit - *used);
            *used += granted;
            granted
        };
        if granted > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.in_flight.fetch_sub(1, SeqCst);
        Ok(granted)
    }
}

/// Found by the crash suite (a 429 inside a burst of 1,120 writes, under the 1,200 limit): 32
/// concurrent first requests each asked the shared counter for a lease of 50; the 25th and later
/// were refused (24 leases are the whole minute), and a refusal that came back before the
/// grants were added to the instance's lease was a 429, though the instance held over a
/// thousand unspent requests. Now one request at a time asks the counter for a tenant, the
/// others wait for its answer: no request is refused under the limit, whatever order the
/// answers come in, and 64 requests cost two takes, not 64.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_answered_before_a_grant_does_not_refuse_under_the_limit() {
    use std::sync::atomic::Ordering::SeqCst;
    let counter = std::sync::Arc::new(RefusalsFirst::default());
    admit_64_at_once_then_to_the_limit(&counter, || {
        assert_eq!(counter.most_in_flight.load(SeqCst), 1, "one take of the shared counter at a time");
        assert_eq!(counter.takes.load(SeqCst), 2, "64 requests, leases of 50");
    })
    .await;
}

/// A shared counter whose first take never answers (a request cancelled mid-take: its client
/// went away) and whose later takes fail once, then answer.
#[derive(Default)]
struct HangsThenFails {
    takes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Take for HangsThenFails {
    async fn take(&self, _key: &str, _minute: i64, want: u32, _limit: u32) -> butterfly_core::Result<u32> {
        match self.takes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => std::future::pending().await,
            1 => Err(butterfly_core::Error::Unavailable { message: "the counter is down".into(), retry_after_secs: 1 }),
            _ => Ok(want),
        }
    }
}

/// Requests waiting for another request's take of the counter are not stranded when that
/// request is cancelled, nor when a take fails: they ask the counter themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_go_on_when_the_take_they_wait_for_is_cancelled_or_fails() {
    let counter = std::sync::Arc::new(HangsThenFails::default());
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let first = {
        let (q, t) = (quota.clone(), tenant.clone());
        tokio::spawn(async move { q.admit(&t, now).await.is_ok() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let (q, t) = (quota.clone(), tenant.clone());
            tokio::spawn(async move { q.admit(&t, now).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(counter.takes.load(std::sync::atomic::Ordering::SeqCst), 1, "the others wait for the first take");
    first.abort();
    let mut results = Vec::new();
    for w in waiting {
        results.push(tokio::time::timeout(std::time::Duration::from_secs(5), w).await.expect("stranded").unwrap());
    }
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 1, "the failed take fails its own request only: {results:?}");
    // After a take ended without an answer, waiting requests ask the counter side by side
    // until it answers again; then one lease serves the rest.
    let takes = counter.takes.load(std::sync::atomic::Ordering::SeqCst);
    assert!((3..=9).contains(&takes), "{takes} takes for 9 requests");
}

/// A shared counter that is down: every take fails after 200 ms (a DynamoDB brownout), and
/// counts how many takes are in flight at once.
#[derive(Default)]
struct Down {
    takes: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Take for Down {
    async fn take(&self, _key: &str, _minute: i64, _want: u32, _limit: u32) -> butterfly_core::Result<u32> {
        use std::sync::atomic::Ordering::SeqCst;
        self.takes.fetch_add(1, SeqCst);
        self.most_in_flight.fetch_max(self.in_flight.fetch_add(1, SeqCst) + 1, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        Err(butterfly_core::Error::Unavailable { message: "down".into(), retry_after_secs: 1 })
    }
}

/// Found by the review of the one-asker change: while the counter failed, a tenant's waiting
/// requests asked it one after another, so the 20th of 20 concurrent requests failed after 20
/// failed takes (4 s here; 80 s at DynamoDB's 4 s bound). After a take ends without an answer
/// the others ask side by side, and all 20 fail after about two takes' time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_counter_fails_waiting_requests_side_by_side_not_one_by_one() {
    use std::sync::atomic::Ordering::SeqCst;
    let counter = std::sync::Arc::new(Down::default());
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (q, t) = (quota.clone(), tenant.clone());
            tokio::spawn(async move { (q.admit(&t, now).await.is_err(), started.elapsed()) })
        })
        .collect();
    let mut slowest = std::time::Duration::ZERO;
    for t in tasks {
        let (failed, took) = t.await.unwrap();
        assert!(failed, "the counter is down");
        slowest = slowest.max(took);
    }
    assert!(slowest < std::time::Duration::from_millis(1500), "the last request failed after {slowest:?}");
    assert_eq!(counter.takes.load(SeqCst), 20, "one take per request");
    assert!(counter.most_in_flight.load(SeqCst) > 1, "side by side");
}

/// Polls a request once: the tests that answer the counter's takes by hand drive the requests
/// themselves.
fn poll<F: std::future::Future>(f: &mut std::pin::Pin<Box<F>>) -> std::task::Poll<F::Output> {
    f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// Every take waits until the test answers it: with a grant (at most what was asked) or, for
/// `None`, an error.
#[derive(Default)]
struct Gated {
    pending: std::sync::Mutex<Vec<(usize, tokio::sync::oneshot::Sender<Option<u32>>)>>,
    takes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Take for Gated {
    async fn take(&self, _key: &str, _minute: i64, want: u32, _limit: u32) -> butterfly_core::Result<u32> {
        let n = self.takes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.lock().unwrap().push((n, tx));
        match rx.await {
            Ok(Some(granted)) => Ok(granted.min(want)),
            _ => Err(butterfly_core::Error::Unavailable { message: "the counter is down".into(), retry_after_secs: 1 }),
        }
    }
}

impl Gated {
    fn answer_all(&self, grant: u32) {
        for (_, tx) in self.pending.lock().unwrap().drain(..) {
            let _ = tx.send(Some(grant));
        }
    }
    /// Answers take number `n` (counted from 0).
    fn answer(&self, n: usize, grant: Option<u32>) {
        let mut pending = self.pending.lock().unwrap();
        let i = pending.iter().position(|(k, _)| *k == n).unwrap_or_else(|| panic!("take {n} is not waiting"));
        let _ = pending.remove(i).1.send(grant);
    }
}

/// Found by the review: a waiting request counted a wait only when it found the lease empty
/// again itself, so requests that kept arriving and asking the counter just before it starved
/// it: with a lease of 1 it waited through all 31 takes of the minute and was refused. Now each
/// take it waits for counts, and after eight it asks the counter for itself.
#[test]
fn a_waiting_request_waits_for_eight_other_takes_at_most() {
    use std::task::Poll;
    let counter = std::sync::Arc::new(Gated::default());
    // A lease of 1: every request asks the counter.
    let (quota, tenant, now) = quota_over(&counter, 30);
    let mut taker = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut taker).is_pending(), "the first request asks the counter");
    let mut victim = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut victim).is_pending(), "the second waits for its answer");
    let mut rounds = 0;
    let outcome = loop {
        rounds += 1;
        assert!(rounds <= 30, "the waiting request is still waiting after {rounds} takes");
        counter.answer_all(1);
        assert!(matches!(poll(&mut taker), Poll::Ready(Ok(()))));
        // The next request arrives, and asks the counter, before the waiting one looks again.
        taker = Box::pin(quota.admit(&tenant, now));
        assert!(poll(&mut taker).is_pending());
        if let Poll::Ready(r) = poll(&mut victim) {
            break r;
        }
    };
    assert!(outcome.is_ok(), "{outcome:?}");
    // Eight takes waited for, then its own (answered in the ninth round).
    assert_eq!(rounds, 9);
}

/// Found by the review: a request of a minute the lease had left (it waited across the turn)
/// took a whole lease of 50 from its minute's counter, spent one and dropped the rest, so 24
/// such requests used up that minute and the rest were refused. Now each takes one.
#[tokio::test]
async fn requests_of_a_minute_the_lease_has_left_take_one_each() {
    use std::sync::atomic::Ordering::SeqCst;
    let counter = std::sync::Arc::new(RefusalsFirst::default());
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let minute = now.0 - now.0.rem_euclid(60_000);
    quota.admit(&tenant, butterfly_core::clock::Timestamp(minute + 60_010)).await.unwrap();
    let (before, used) = (counter.takes.load(SeqCst), *counter.used.lock().unwrap());
    let mut admitted = 0;
    for _ in 0..40 {
        admitted += u32::from(quota.admit(&tenant, butterfly_core::clock::Timestamp(minute + 59_999)).await.is_ok());
    }
    assert_eq!(admitted, 40);
    // One counter serves both minutes here: the later minute's lease (50), then one each.
    assert_eq!(*counter.used.lock().unwrap() - used, 40, "the earlier minute is charged what it admitted");
    assert_eq!(counter.takes.load(SeqCst) - before, 40);
}

/// Found by the second review: right after a failed take, requests ask the counter alone; one
/// of them, refused because a new lease take had just used up the counter, was a 429 (and so
/// was a request arriving after it) while that lease, on its way back, brought 49 unspent. Now a
/// refused request waits for the take in flight and spends from it.
#[test]
fn a_refusal_alone_waits_for_the_lease_on_its_way() {
    use std::task::Poll;
    let counter = std::sync::Arc::new(Gated::default());
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let mut r0 = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut r0).is_pending(), "take 0: a lease");
    counter.answer(0, None);
    assert!(matches!(poll(&mut r0), Poll::Ready(Err(butterfly_core::Error::Unavailable { .. }))));
    // The counter failed: the next two ask for themselves (takes 1 and 2).
    let (mut r1, mut r2) = (Box::pin(quota.admit(&tenant, now)), Box::pin(quota.admit(&tenant, now)));
    assert!(poll(&mut r1).is_pending() && poll(&mut r2).is_pending());
    counter.answer(1, Some(1));
    assert!(matches!(poll(&mut r1), Poll::Ready(Ok(()))));
    // The counter answers again: the next request asks for a lease (take 3), which uses up the
    // counter before take 2 is answered, refused.
    let mut r3 = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut r3).is_pending());
    counter.answer(2, Some(0));
    assert!(poll(&mut r2).is_pending(), "refused alone, it waits for the lease on its way");
    let mut r4 = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut r4).is_pending(), "so does a request arriving meanwhile");
    counter.answer(3, Some(50));
    for (name, r) in [("r3", &mut r3), ("r2", &mut r2), ("r4", &mut r4)] {
        assert!(matches!(poll(r), Poll::Ready(Ok(()))), "{name} admitted from the lease");
    }
    assert_eq!(counter.takes.load(std::sync::atomic::Ordering::SeqCst), 4);
}

/// A counter that grants all that is asked or nothing (DynamoDB's conditional `ADD`), started
/// with `used` of the minute already taken by other instances.
struct AllOrNothing {
    used: std::sync::Mutex<u32>,
    takes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Take for AllOrNothing {
    async fn take(&self, _key: &str, _minute: i64, want: u32, limit: u32) -> butterfly_core::Result<u32> {
        self.takes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut used = self.used.lock().unwrap();
        Ok(if *used + want <= limit {
            *used += want;
            want
        } else {
            0
        })
    }
}

/// Found by the second review: once a whole lease no longer fitted in the minute, every
/// request asked for a lease (refused) and then for one: two counter calls a request, one
/// request at a time. Now, once a lease is refused, requests ask for one each; and once the
/// counter refuses one, the rest of the minute is refused here at no cost.
#[tokio::test]
async fn near_the_limit_each_request_costs_one_counter_call() {
    use std::sync::atomic::Ordering::SeqCst;
    let counter = std::sync::Arc::new(AllOrNothing { used: std::sync::Mutex::new(1170), takes: Default::default() });
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let mut admitted = 0;
    for _ in 0..40 {
        admitted += u32::from(quota.admit(&tenant, now).await.is_ok());
    }
    assert_eq!(admitted, 30, "exactly what was left of the minute");
    // A lease refused and one granted, 29 of one each, one refused; the last nine cost nothing.
    assert_eq!(counter.takes.load(SeqCst), 2 + 29 + 1);
}

/// Found by the second review: a create on the one-write path spent the tenant's quota before
/// its write; a refused token gave it back, but a request dropped mid-write (its client went
/// away) did not, and the token's hint stayed: a revoked token, within five minutes of its last
/// use, spent the tenant's quota one dropped create after another (the tenant's own client was
/// refused 16 of 40 requests). Now a dropped one-write create forgets the token's hint, so the
/// next create with it reads the token first and is refused without spending.
///
/// Whether a create is dropped mid-write is a race with the store's writer thread: a create
/// whose write was answered before its one poll is not dropped, and the token's hint goes with
/// that answer, so a run has one chance. The scenario is run again (five times at most) until a
/// create was dropped; every run must hold the tenant's quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_dropped_creates_do_not_spend_the_tenants_quota() {
    for _ in 0..5 {
        let (refused, dropped, spent) = revoked_token_creates_dropped_mid_write().await;
        assert_eq!(refused, 0, "the tenant's own client was refused");
        assert_eq!(spent, 50, "one lease, taken by the tenant's own client");
        if dropped >= 1 {
            return;
        }
    }
    panic!("no create was dropped mid-write in five runs");
}

/// A tenant's client uses its new token while the revoked one sends creates, each dropped
/// while its write is in flight, 40 rounds: how many of the client's requests were refused,
/// how many creates were dropped, and how much of the minute's quota was spent.
async fn revoked_token_creates_dropped_mid_write() -> (u32, u32, u32) {
    use butterfly_core::clock::{Clock, Timestamp};
    use butterfly_core::limit::QuotaStore;
    use butterfly_core::scim_tokens::ScimTokenService;
    use butterfly_core::scim_users::ScimService;
    use butterfly_core::tenants::TenantService;
    use std::sync::Arc;
    struct Fixed(Timestamp);
    impl Clock for Fixed {
        fn now(&self) -> Timestamp {
            self.0
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(butterfly_embedded::EmbeddedStore::open(dir.path()).unwrap());
    let now = Timestamp(29_000_000 * 60_000 + 1_000);
    let clock: Arc<dyn Clock> = Arc::new(Fixed(now));
    let tenant = TenantService::new(store.clone(), clock.clone()).create_tenant("acme", &[]).await.unwrap();
    let tokens = ScimTokenService::new(store.clone(), clock.clone());
    let old = tokens.issue_token(&tenant.id).await.unwrap().token;
    let key = butterfly_core::scim::cursor::CursorKey::new([7; 32]);
    let scim = ScimService::new(store.clone(), clock.clone(), key, QuotaPolicy::per_minute(1200));
    // The token is used (this instance notes its bookkeeping is done), then revoked.
    scim.authenticate(&old).await.unwrap();
    let new = tokens.rotate_token(&tenant.id).await.unwrap().token;
    assert!(scim.authenticate(&old).await.is_err(), "the old token is revoked");
    let (mut refused, mut dropped) = (0, 0);
    for round in 0..40 {
        // The tenant's own client, with the new token.
        match scim.authenticate(&new).await {
            Ok(_) => {}
            Err(butterfly_core::Error::RateLimited { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
        // The revoked token's creates, each dropped while its write is in flight.
        for k in 0..60 {
            let body = serde_json::json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("u{round}.{k}@acme.test"), "active": true});
            let mut create = Box::pin(scim.create_user_as(&old, Ok::<_, butterfly_core::Error>(body)));
            if poll(&mut create).is_pending() {
                dropped += 1;
            }
        }
    }
    // What the minute's counter holds: take the rest and see how much there was.
    let start = Timestamp(now.millis() - now.millis().rem_euclid(60_000));
    let rest = store.take_quota(&format!("scim:{}", tenant.id), start, 60, 1200, 1200).await.unwrap();
    (refused, dropped, 1200 - rest)
}

/// A shared counter that grants every take at once, except the first take of `key`, which
/// waits until the test releases it.
struct HoldsOneTake {
    key: String,
    held: std::sync::atomic::AtomicBool,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Take for HoldsOneTake {
    async fn take(&self, key: &str, _minute: i64, want: u32, _limit: u32) -> butterfly_core::Result<u32> {
        if key == self.key && !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.release.notified().await;
        }
        Ok(want)
    }
}

/// An instance keeps at most 10,000 tenants' leases and drops those of past minutes when a new
/// tenant arrives past that. A lease whose take is still in flight is kept: dropped, it would
/// take its waiting requests' wakers with it, and nothing would ever wake them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_being_taken_is_not_dropped_with_past_minutes() {
    use butterfly_core::clock::Timestamp;
    use butterfly_core::ids::TenantId;
    let tenant = TenantId::generate();
    let counter = std::sync::Arc::new(HoldsOneTake {
        key: format!("scim:{tenant}"),
        held: Default::default(),
        release: Default::default(),
    });
    let quota = std::sync::Arc::new(butterfly_core::limit::TenantQuota::new(
        std::sync::Arc::new(Counter(counter.clone())),
        QuotaPolicy::per_minute(1200),
    ));
    let now = Timestamp(29_000_000 * 60_000 + 30_000);
    let admit = |q: &std::sync::Arc<butterfly_core::limit::TenantQuota>| {
        let (q, t) = (q.clone(), tenant.clone());
        tokio::spawn(async move { q.admit(&t, now).await })
    };
    let taker = admit(&quota);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let waiter = admit(&quota);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The next minute: 10,000 other tenants, and the instance sheds the past minutes' leases.
    let later = Timestamp(now.0 + 60_000);
    for _ in 0..10_000 {
        quota.admit(&TenantId::generate(), later).await.unwrap();
    }
    counter.release.notify_one();
    let answered = |t| tokio::time::timeout(std::time::Duration::from_secs(5), t);
    assert!(answered(taker).await.expect("the taker is stranded").unwrap().is_ok());
    let waited = answered(waiter).await.expect("the waiting request is stranded").unwrap();
    assert!(waited.is_ok(), "{waited:?}");
}

/// A request that has waited for eight other takes asks the counter for itself; refused there
/// (the take in flight had just used up the counter), it waits once more for that take, which
/// brings a lease it may spend from, rather than answering 429 under the limit.
#[test]
fn a_request_refused_alone_after_eight_waits_still_waits_for_the_lease_on_its_way() {
    use std::task::Poll;
    let counter = std::sync::Arc::new(Gated::default());
    let (quota, tenant, now) = quota_over(&counter, 1200);
    let mut taker = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut taker).is_pending(), "take 0: a lease");
    let mut victim = Box::pin(quota.admit(&tenant, now));
    assert!(poll(&mut victim).is_pending(), "it waits for take 0");
    for take in 0..8 {
        // The take brings a lease of 50; the taker and 49 other requests spend it all, and the
        // next request asks for a lease before the waiting one looks again.
        counter.answer(take, Some(50));
        assert!(matches!(poll(&mut taker), Poll::Ready(Ok(()))));
        for _ in 0..49 {
            assert!(matches!(poll(&mut Box::pin(quota.admit(&tenant, now))), Poll::Ready(Ok(()))));
        }
        taker = Box::pin(quota.admit(&tenant, now));
        assert!(poll(&mut taker).is_pending(), "take {}: a lease", take + 1);
        assert!(poll(&mut victim).is_pending(), "take {take} ended: it waits again, or asks alone");
    }
    // Eight takes waited for (0 to 7): its last poll asked the counter alone (take 9); refuse it.
    assert_eq!(counter.takes.load(std::sync::atomic::Ordering::SeqCst), 10);
    counter.answer(9, Some(0));
    assert!(poll(&mut victim).is_pending(), "refused alone, it waits for take 8");
    counter.answer(8, Some(50));
    assert!(matches!(poll(&mut taker), Poll::Ready(Ok(()))));
    assert!(matches!(poll(&mut victim), Poll::Ready(Ok(()))), "admitted from take 8's lease");
}
