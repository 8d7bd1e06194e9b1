//! Harness for the end-to-end suites: the whole app spawned per test on 127.0.0.1 over a
//! fresh embedded store, wrapped in a store that counts operations.

pub mod aws;
pub mod contract;
pub mod dns;
pub mod fault_proxy;
pub mod faults;
pub mod hostile;
pub mod intercept;
pub mod lambda_runtime;
pub mod okta_load;
pub mod op;

use butterfly_core::clock::SystemClock;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::Store;
use butterfly_core::scim::cursor::CursorKey;
use butterfly_core::scim_tokens::ScimTokenService;
use butterfly_core::sso::SsoPolicy;
use butterfly_core::sso_settings::SsoSettingsService;
use butterfly_core::tenant::Tenant;
use butterfly_core::tenants::TenantService;
use butterfly_embedded::EmbeddedStore;
use intercept::{Hook, Intercepted, Verdict};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Limits no functional test reaches (the limit tests set their own).
pub fn generous_limits() -> butterfly_api::Limits {
    butterfly_api::Limits::new(
        butterfly_api::limits::AnonymousLimits { per_address_per_minute: 1_000_000, settings_per_minute: 1_000_000 },
        butterfly_core::limit::QuotaPolicy::per_minute(1_000_000),
    )
}

/// Waits, if fewer than `secs` seconds are left of the current wall-clock minute, until the next
/// one starts. The SCIM quota is leased per minute (50 requests at a time): a test that counts a
/// request's exact store operations keeps a new minute, and its lease, out of the requests it
/// counts by starting them early in a minute.
pub async fn early_in_a_minute(secs: u64) {
    let into =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() % 60_000;
    let left = 60_000 - into as u64;
    if left < secs.min(59) * 1000 {
        tokio::time::sleep(std::time::Duration::from_millis(left + 50)).await;
    }
}

/// A new tenant named `name` (no domains) and its first SCIM token, as the operator creates them.
pub async fn tenant_with_token(store: Arc<dyn Store>, name: &str) -> (Tenant, String) {
    let t = TenantService::new(store.clone(), Arc::new(SystemClock)).create_tenant(name, &[]).await.expect("tenant");
    let issued = ScimTokenService::new(store, Arc::new(SystemClock)).issue_token(&t.id).await.expect("token");
    (t, issued.token.secret().expose().to_string())
}

/// A confirmed session of `user` from `issuer`, an hour long from now, and its cookie value.
pub fn hour_session(
    tenant: &TenantId,
    user: butterfly_core::ids::UserId,
    issuer: &str,
    subject: &str,
) -> (butterfly_core::token::Secret, butterfly_core::sso::Session) {
    use butterfly_core::clock::Clock;
    let cookie = butterfly_core::sso::random_secret().expect("randomness");
    let now = SystemClock.now();
    let session = butterfly_core::sso::Session {
        hash: butterfly_core::sso::hash_secret(cookie.expose()),
        tenant: tenant.clone(),
        user,
        issuer: issuer.into(),
        subject: subject.into(),
        sid: None,
        id_token: None,
        created: now,
        last_seen: now,
        expires: now.plus_secs(3600),
        confirmed: true,
        idle_secs: None,
    };
    (cookie, session)
}

/// Counts every port call (one call = one store round trip), and logs their names in order.
#[derive(Default)]
pub struct OpCounter {
    ops: AtomicU64,
    log: Mutex<Vec<&'static str>>,
}

impl Hook for OpCounter {
    fn on_call(&self, op: &'static str) -> Verdict {
        self.ops.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut l) = self.log.lock() {
            l.push(op);
        }
        Verdict::Pass
    }
}

/// The embedded store, counting every port call.
pub type CountingStore = Intercepted<EmbeddedStore, OpCounter>;

impl CountingStore {
    pub fn new(inner: EmbeddedStore) -> Self {
        Intercepted::with_hook(inner, OpCounter::default())
    }

    /// Resets the counter and returns the operations made since the last reset.
    pub fn take(&self) -> (u64, Vec<&'static str>) {
        let n = self.hook().ops.swap(0, Ordering::SeqCst);
        let log = self.hook().log.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        (n, log)
    }
}

/// The app running on a loopback port.
pub struct TestApp {
    pub origin: String,
    /// `{origin}/scim/v2`
    pub base: String,
    pub tenant: TenantId,
    pub token: String,
    pub client: reqwest::Client,
    pub store: Arc<CountingStore>,
    /// The SSO use cases over the same store (to save settings as an admin would).
    pub sso: SsoSettingsService,
    /// Domain verification over the same store and DNS server.
    pub domains: butterfly_core::domain::DomainService,
    /// The DNS server the app resolves with (authoritative for `test.` and `example.`).
    pub dns: Arc<dns::TestDns>,
    /// The key CSRF tokens are computed under.
    pub csrf: butterfly_core::csrf::CsrfKey,
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl TestApp {
    /// A fresh store in a temporary directory, one tenant and its token.
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut app = Self::start(&path, None).await;
        app.dir = Some(dir);
        app
    }

    /// Starts the app over an existing data directory. With `tenant`, reuses that tenant and
    /// token instead of creating new ones.
    pub async fn start(data_dir: &Path, tenant: Option<(TenantId, String)>) -> TestApp {
        Self::start_with(data_dir, tenant, SsoPolicy { allow_loopback_http: true, ..SsoPolicy::default() }).await
    }

    /// A fresh store with SSO timeouts of the test's choosing.
    pub async fn spawn_with(policy: SsoPolicy) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut app = Self::start_with(&path, None, policy).await;
        app.dir = Some(dir);
        app
    }

    pub async fn start_with(data_dir: &Path, tenant: Option<(TenantId, String)>, policy: SsoPolicy) -> TestApp {
        Self::start_full(data_dir, tenant, policy, None).await
    }

    /// A fresh store with the abuse limits of the test's choosing (others run with limits no
    /// test reaches).
    pub async fn spawn_with_limits(limits: butterfly_api::Limits) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let policy = SsoPolicy { allow_loopback_http: true, ..SsoPolicy::default() };
        let mut app = Self::start_full(&path, None, policy, Some(limits)).await;
        app.dir = Some(dir);
        app
    }

    pub async fn start_full(
        data_dir: &Path,
        tenant: Option<(TenantId, String)>,
        policy: SsoPolicy,
        limits: Option<butterfly_api::Limits>,
    ) -> TestApp {
        Self::start_inner(data_dir, tenant, policy, limits, None).await
    }

    /// A fresh store, with tenants' client secrets kept in `secrets` (Secrets Manager, say)
    /// instead of the embedded store.
    pub async fn spawn_with_secrets(secrets: Arc<dyn butterfly_core::ports::SecretStore>) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let policy = SsoPolicy { allow_loopback_http: true, ..SsoPolicy::default() };
        let mut app = Self::start_inner(&path, None, policy, None, Some(secrets)).await;
        app.dir = Some(dir);
        app
    }

    async fn start_inner(
        data_dir: &Path,
        tenant: Option<(TenantId, String)>,
        policy: SsoPolicy,
        limits: Option<butterfly_api::Limits>,
        secrets: Option<Arc<dyn butterfly_core::ports::SecretStore>>,
    ) -> TestApp {
        let embedded = EmbeddedStore::open(data_dir).expect("open store");
        let key = embedded.server_secret("cursor-key").await.expect("cursor key");
        let store = Arc::new(CountingStore::new(embedded));
        let (tenant, token) = match tenant {
            Some(t) => t,
            None => {
                let (t, token) = tenant_with_token(store.clone(), "Acme").await;
                (t.id, token)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let dns = Arc::new(dns::TestDns::start(&["test", "example"]).await);
        let servers = butterfly_outbound::DnsServers::At(dns.addr);
        let http = butterfly_outbound::GuardedHttp::new(&servers, true, butterfly_outbound::Limits::default())
            .expect("http client");
        let csrf = butterfly_core::csrf::CsrfKey::derive(&key);
        let parts = butterfly_api::AppParts {
            store: store.clone(),
            secrets: secrets.unwrap_or_else(|| store.clone()),
            idp: Arc::new(butterfly_outbound::OidcProvider::new(http)),
            clock: Arc::new(SystemClock),
            base_url: butterfly_api::scim::BaseUrl::Fixed(origin.clone().into()),
            cookies: butterfly_api::sso::CookiePolicy { secure: false },
            sso_policy: policy,
            csrf: csrf.clone(),
            dns: Arc::new(butterfly_outbound::TxtLookup::new(&servers).expect("dns")),
            limits: limits.unwrap_or_else(generous_limits),
        };
        let sso = parts.sso_settings_service();
        let domains = parts.domain_service();
        let app = butterfly_api::app(&parts, CursorKey::from_slice(&key).expect("key"));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        store.take();
        TestApp {
            base: format!("{origin}/scim/v2"),
            origin,
            tenant,
            token,
            client: reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client"),
            store,
            sso,
            domains,
            dns,
            csrf,
            dir: None,
            data_dir: data_dir.to_path_buf(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server and closes the store; returns the temp dir (if any) to keep it alive.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s).await;
        }
        self.dir.take()
    }

    /// Another tenant in the same store, with its own token.
    pub async fn other_tenant(&self) -> (TenantId, String) {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!("Other Corp {}", N.fetch_add(1, Ordering::SeqCst));
        let (t, token) = tenant_with_token(self.store.clone(), &name).await;
        (t.id, token)
    }

    /// A request to `{base}{path}` with this tenant's token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req_as(method, path, &self.token)
    }

    pub fn req_as(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).header("Authorization", format!("Bearer {token}"))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.expect("request")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.req(method, path)
            .header("Content-Type", "application/scim+json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// POSTs a user and returns the created resource (asserting 201).
    pub async fn create_user(&self, body: &Value) -> Value {
        let r = self.send_json(Method::POST, "/Users", body).await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::CREATED, "create failed: {v}");
        v
    }

    /// Filters users by userName and returns the ListResponse.
    pub async fn find(&self, user_name: &str) -> Value {
        let r = self
            .req(Method::GET, "/Users")
            .query(&[("filter", format!("userName eq \"{user_name}\""))])
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }
}

/// SSO settings for `issuer` with our client ID and secret there and the email domains, enabled.
pub fn sso_settings(
    issuer: String,
    client_id: &str,
    secret: &str,
    domains: &str,
) -> butterfly_core::sso_settings::SsoSettingsInput {
    butterfly_core::sso_settings::SsoSettingsInput {
        issuer,
        client_id: client_id.into(),
        client_secret: Some(butterfly_core::token::Secret::new(secret)),
        domains: Some(domains.into()),
        enabled: true,
    }
}

/// An Okta-style user id (`00u…`) derived from the email, stable and distinct per email.
pub fn okta_id(email: &str) -> String {
    let h = email.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    format!("00u{h:016x}")
}

/// A minimal Okta-style user body.
pub fn okta_user(email: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": okta_id(email),
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// Reads a response as JSON, asserting the status and the SCIM media type.
pub async fn expect_json(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    assert!(ct.starts_with("application/scim+json"), "content-type {ct:?} for {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a SCIM error body: the Error schema, `status` as a string, a non-empty detail,
/// and the given `scimType` (or none).
pub async fn expect_error(r: Response, status: StatusCode, scim_type: Option<&str>) -> Value {
    let v = expect_json(r, status).await;
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{v}");
    assert_eq!(v["status"], json!(status.as_u16().to_string()), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    assert_eq!(v.get("scimType").and_then(Value::as_str), scim_type, "{v}");
    v
}
