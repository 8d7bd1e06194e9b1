//! The local stack: every router on one port, over the embedded store (the default) or over a
//! DynamoDB table with Secrets Manager (DynamoDB Local and moto in benchmarks and development;
//! the same adapters the Lambdas use).

use butterfly_aws::{DynamoStore, SecretsManagerStore};
use butterfly_core::clock::SystemClock;
use butterfly_core::ports::{SecretStore, Store};
use butterfly_core::scim::cursor::CursorKey;
use butterfly_core::service::AdminService;
use butterfly_core::sso_service::SsoPolicy;
use butterfly_embedded::EmbeddedStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

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
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("BUTTERFLY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("BUTTERFLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// What `serve` needs from a backend.
struct Opened {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    cursor_key: CursorKey,
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
            Ok(Opened {
                store: Arc::new(store.clone()),
                secrets: Arc::new(store.clone()),
                cursor_key,
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
            let (warm, key) =
                tokio::join!(store.warm_up(), butterfly_aws::secrets::read_cursor_key(&secrets, cursor_key_secret_id));
            let () = warm;
            let cursor_key = key.map_err(|e| format!("cannot read the cursor key {cursor_key_secret_id}: {e}"))?;
            Ok(Opened {
                store: Arc::new(store),
                secrets: Arc::new(SecretsManagerStore::new(secrets, secrets_prefix.clone())),
                cursor_key,
                embedded: None,
                allow_loopback_http: *allow_loopback_issuer,
                describe: format!("DynamoDB table {table}"),
            })
        }
    }
}

pub async fn serve(o: ServeOptions) -> Result<(), String> {
    init_logging();
    let opened = open(&o.backend).await?;
    let public_url = o.public_url.clone().unwrap_or_else(|| format!("http://{}", o.addr));
    let scim_base = format!("{}/scim/v2", public_url.trim_end_matches('/'));

    if let Some(store) = opened.embedded.as_ref().filter(|_| o.demo) {
        if store.is_empty().await.map_err(|e| e.to_string())? {
            let admin = AdminService::new(Arc::new(store.clone()), Arc::new(SystemClock));
            let t = admin.create_tenant("demo", "").await.map_err(|e| e.to_string())?;
            let issued = admin.issue_token(&t.id).await.map_err(|e| e.to_string())?;
            println!("Created the demo tenant {} with a SCIM token (shown once, it is stored only hashed):", t.id);
            println!();
            println!("  SCIM base URL: {scim_base}");
            println!("  SCIM token:    {}", issued.token.secret().expose());
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
    let idp = butterfly_api::oidc::OidcProvider::new(opened.allow_loopback_http)?;
    let parts = butterfly_api::AppParts {
        store: opened.store,
        secrets: opened.secrets,
        idp: Arc::new(idp),
        clock: Arc::new(SystemClock),
        base_url: butterfly_api::scim::BaseUrl::Fixed(public_url.clone().into()),
        // Browsers keep Secure and __Host- cookies only over https.
        cookies: butterfly_api::sso::CookiePolicy { secure: public_url.starts_with("https://") },
        sso_policy: SsoPolicy { allow_loopback_http: opened.allow_loopback_http, ..SsoPolicy::default() },
    };
    axum::serve(listener, butterfly_api::app(&parts, opened.cursor_key))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
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
