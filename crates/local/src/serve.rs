//! The local stack: every router on one port, over the embedded store (the default) or over a
//! DynamoDB table with Secrets Manager (DynamoDB Local and moto in benchmarks and development;
//! the same adapters the Lambdas use).

use butterfly_aws::{DynamoStore, SecretsManagerStore};
use butterfly_core::clock::SystemClock;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::email::UserName;
use butterfly_core::ports::{SecretStore, Store};
use butterfly_core::scim::cursor::CursorKey;
use butterfly_core::scim_tokens::ScimTokenService;
use butterfly_core::setup_link::SetupLinkService;
use butterfly_core::sso::SsoPolicy;
use butterfly_core::tenants::TenantService;
use butterfly_embedded::EmbeddedStore;
use butterfly_outbound::{DnsServers, GuardedHttp, Limits, OidcProvider, TxtLookup};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the served data lives.
pub enum Backend {
    Embedded(PathBuf),
    Dynamodb {
        table: String,
        /// `{prefix}/tenants/{id}/oidc-client-secret` in Secrets Manager.
        secrets_prefix: String,
        /// The secret whose value signs paging cursors (the stack's `CursorKeySecret`).
        cursor_key_secret_id: String,
        /// Accept `http://` issuers on loopback.
        allow_loopback_issuer: bool,
    },
}

pub struct ServeOptions {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub public_url: Option<String>,
    pub demo: bool,
    /// Where host names and domain-verification TXT records are looked up.
    pub dns: DnsServers,
    /// The abuse limits (per tenant on SCIM, per address on the anonymous endpoints).
    pub limits: butterfly_api::Limits,
}

/// What `serve` needs from a backend.
struct Opened {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    cursor_key: CursorKey,
    csrf: CsrfKey,
    /// The embedded store, when the demo tenant may be created in it.
    embedded: Option<EmbeddedStore>,
    allow_loopback_http: bool,
    describe: String,
}

async fn open(backend: &Backend) -> Result<Opened, String> {
    match backend {
        Backend::Embedded(dir) => {
            let store = EmbeddedStore::open(dir).map_err(|e| e.to_string())?;
            let key = store.server_secret("cursor-key").await.map_err(|e| e.to_string())?;
            let cursor_key = CursorKey::from_slice(&key).ok_or("the stored cursor key is corrupt")?;
            let csrf = CsrfKey::derive(&key);
            Ok(Opened {
                store: Arc::new(store.clone()),
                secrets: Arc::new(store.clone()),
                cursor_key,
                csrf,
                embedded: Some(store),
                // The local stack may talk to a provider on loopback over http (a test provider).
                allow_loopback_http: true,
                describe: format!("data in {}", dir.display()),
            })
        }
        Backend::Dynamodb { table, secrets_prefix, cursor_key_secret_id, allow_loopback_issuer } => {
            let cfg = butterfly_aws::sdk_config().await;
            let store = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), table.clone());
            let secrets = butterfly_aws::secretsmanager_client(&cfg);
            let (warm, key) = tokio::join!(
                store.warm_up(),
                butterfly_aws::secrets::read_server_secret(&secrets, cursor_key_secret_id)
            );
            let () = warm;
            let secret = key.map_err(|e| format!("cannot read the server secret {cursor_key_secret_id}: {e}"))?;
            Ok(Opened {
                store: Arc::new(store),
                secrets: Arc::new(SecretsManagerStore::new(secrets, secrets_prefix.clone())),
                cursor_key: CursorKey::derive(&secret),
                csrf: CsrfKey::derive(secret.as_bytes()),
                embedded: None,
                allow_loopback_http: *allow_loopback_issuer,
                describe: format!("DynamoDB table {table}"),
            })
        }
    }
}

pub async fn serve(o: ServeOptions) -> Result<(), String> {
    let _log = crate::log::init();
    let opened = open(&o.backend).await?;
    let public_url = o.public_url.clone().unwrap_or_else(|| format!("http://{}", o.addr));
    let scim_base = format!("{}/scim/v2", public_url.trim_end_matches('/'));

    if let Some(store) = opened.embedded.as_ref().filter(|_| o.demo) {
        if store.is_empty().await.map_err(|e| e.to_string())? {
            let demo = Arc::new(store.clone());
            let t = TenantService::new(demo.clone(), Arc::new(SystemClock))
                .create_tenant("demo", &[])
                .await
                .map_err(|e| e.to_string())?;
            let issued = ScimTokenService::new(demo.clone(), Arc::new(SystemClock))
                .issue_token(&t.id)
                .await
                .map_err(|e| e.to_string())?;
            let owner = UserName::parse(DEMO_OWNER).map_err(|e| e.to_string())?;
            let setup = SetupLinkService::new(demo, Arc::new(SystemClock), SsoPolicy::default().absolute_secs)
                .issue(&t.id, Some(&owner))
                .await
                .map_err(|e| e.to_string())?;
            println!("Created the demo tenant {} with a SCIM token (shown once, it is stored only hashed):", t.id);
            println!();
            println!("  SCIM base URL: {scim_base}");
            println!("  SCIM token:    {}", issued.token.secret().expose());
            println!(
                "  Console:       {}",
                butterfly_api::setup::setup_link_url(public_url.trim_end_matches('/'), &setup.link)
            );
            println!(
                "                 (a one-time setup link: opens the console as {DEMO_OWNER}, super_admin; {} h)",
                butterfly_core::setup_link::SETUP_LINK_TTL_SECS / 3600
            );
            println!();
            println!("  curl -H 'Authorization: Bearer {}' {scim_base}/Users", issued.token.secret().expose());
            println!();
        }
    }

    let listener =
        tokio::net::TcpListener::bind(o.addr).await.map_err(|e| format!("cannot listen on {}: {e}", o.addr))?;
    println!("Sign-in page: {public_url}/login (once 'butterfly sso set' has configured a tenant)");
    println!("Butterfly local stack listening on {public_url} (SCIM at {scim_base}, {})", opened.describe);
    tracing::info!(addr = %o.addr, backend = %opened.describe, "listening");
    let http = GuardedHttp::new(&o.dns, opened.allow_loopback_http, Limits::default())?;
    let dns = Arc::new(TxtLookup::new(&o.dns)?);
    let parts = butterfly_api::AppParts {
        store: opened.store,
        secrets: opened.secrets,
        idp: Arc::new(OidcProvider::new(http)),
        clock: Arc::new(SystemClock),
        base_url: butterfly_api::scim::BaseUrl::Fixed(public_url.clone().into()),
        // Browsers keep Secure and __Host- cookies only over https.
        cookies: butterfly_api::sso::CookiePolicy { secure: public_url.starts_with("https://") },
        sso_policy: SsoPolicy { allow_loopback_http: opened.allow_loopback_http, ..SsoPolicy::default() },
        csrf: opened.csrf,
        dns,
        limits: o.limits.clone(),
    };
    // The scheduled domain re-check (on AWS a scheduled function does it): hourly here.
    let domains = parts.domain_service();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            match domains.recheck_all().await {
                Ok(sum) => tracing::info!(checked = sum.checked, withdrawn = sum.withdrawn, "domain re-check"),
                Err(e) => tracing::warn!(error = %e, "domain re-check failed"),
            }
        }
    });
    if let Some(store) = opened.embedded.clone() {
        // Expired sign-in transactions, replay-cache keys and sessions leave the file.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                match store.sweep_expired(butterfly_core::clock::Clock::now(&SystemClock)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "expired items swept"),
                    Err(e) => tracing::warn!(error = %e, "sweep failed"),
                }
            }
        });
    }
    let app = butterfly_api::app(&parts, opened.cursor_key).layer(
        tower::ServiceBuilder::new()
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
    );
    serve_connections(listener, app, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// The owner of the demo tenant, whom its setup link signs in.
pub const DEMO_OWNER: &str = "owner@demo.example";

/// How often expired items are swept from the embedded store.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// A client must send a request's whole header within this, and an idle keep-alive connection
/// is closed after it (hyper's header-read timer also runs while waiting for the next request).
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A request body must arrive within this.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// The largest request body accepted (SCIM bodies are a few KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Serves `app` on `listener` with HTTP/1.1 and the timeouts above (axum's own `serve` sets
/// none: a client sending a byte a second held a connection forever). Each request carries
/// the peer's address (`ConnectInfo`), for the per-address limits. Stops accepting at
/// `shutdown` and lets the open connections finish their current request.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let svc = hyper::service::service_fn({
            let app = app.clone();
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let app = app.clone();
                async move { tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await }
            }
        });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
