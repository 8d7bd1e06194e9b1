//! The local stack: every router on one port over the embedded store.

use butterfly_core::clock::SystemClock;
use butterfly_core::scim::cursor::CursorKey;
use butterfly_core::service::AdminService;
use butterfly_core::sso_service::SsoPolicy;
use butterfly_embedded::EmbeddedStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

pub struct ServeOptions {
    pub data_dir: PathBuf,
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

pub async fn serve(o: ServeOptions) -> Result<(), String> {
    init_logging();
    let store = EmbeddedStore::open(&o.data_dir).map_err(|e| e.to_string())?;
    let key = store.server_secret("cursor-key").await.map_err(|e| e.to_string())?;
    let cursor_key = CursorKey::from_slice(&key).ok_or("the stored cursor key is corrupt")?;
    let public_url = o.public_url.clone().unwrap_or_else(|| format!("http://{}", o.addr));
    let scim_base = format!("{}/scim/v2", public_url.trim_end_matches('/'));

    if o.demo && store.is_empty().await.map_err(|e| e.to_string())? {
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

    let listener =
        tokio::net::TcpListener::bind(o.addr).await.map_err(|e| format!("cannot listen on {}: {e}", o.addr))?;
    println!("Sign-in page: {public_url}/login (once 'butterfly sso set' has configured a tenant)");
    println!("Butterfly local stack listening on {public_url} (SCIM at {scim_base}, data in {})", o.data_dir.display());
    tracing::info!(addr = %o.addr, data_dir = %o.data_dir.display(), "listening");
    let idp = butterfly_api::oidc::OidcProvider::new(true)?;
    let parts = butterfly_api::AppParts {
        store: Arc::new(store.clone()),
        secrets: Arc::new(store),
        idp: Arc::new(idp),
        clock: Arc::new(SystemClock),
        cursor_key,
        base_url: butterfly_api::scim::BaseUrl::Fixed(public_url.clone().into()),
        // Browsers keep Secure and __Host- cookies only over https.
        cookies: butterfly_api::sso::CookiePolicy { secure: public_url.starts_with("https://") },
        // The local stack may talk to a provider on loopback over http (a test provider).
        sso_policy: SsoPolicy { allow_loopback_http: true, ..SsoPolicy::default() },
    };
    axum::serve(listener, butterfly_api::app(&parts))
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
