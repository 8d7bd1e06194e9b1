//! The one HTTP client for every fetch made on a tenant's behalf (identity-provider discovery,
//! key sets, token and userinfo requests). Tenants name the URLs, so the client is built to be
//! pointed at hostile ones:
//!
//! - the address policy ([`butterfly_core::egress::ip_allowed`]) is applied in the connector,
//!   to every socket address right before connecting — IP-literal hosts included — and a name
//!   with any refused address is refused whole (no DNS-rebinding choice between answers);
//! - the URL policy ([`butterfly_core::egress::check_url`]) before each request: https, http
//!   only on loopback where allowed, no credentials;
//! - no redirects are followed and no proxy is read from the environment (hyper does neither);
//! - connect and total timeouts, and a response size cap: a body over the cap is an error, read
//!   no further.

use butterfly_core::egress::{check_url, ip_allowed};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

use crate::dns::{AddressResolver, DnsServers};

/// Limits of one fetch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// From the start of the request to the last byte of the body.
    pub total_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(6),
            max_body_bytes: 512 * 1024,
        }
    }
}

/// Why a fetch failed. The text is for logs (it names our policy, never a response body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL or an address it resolves to is not one we fetch from.
    #[error("refused by the outbound policy: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("HTTP error: {0}")]
    Http(String),
}

/// A response, read whole (within the size cap).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Resolves, judges and connects: the only place a socket to a tenant-named host is opened.
#[derive(Clone)]
pub struct GuardedConnector {
    resolver: Arc<AddressResolver>,
    allow_loopback: bool,
    connect_timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl GuardedConnector {
    async fn connect(self, uri: http::Uri) -> Result<TokioIo<TcpStream>, BoxError> {
        let name = uri.host().ok_or("the URL has no host")?;
        // The name may come from a provider's document: what is shown or logged is bounded.
        let host = &butterfly_core::text::clean(name, 253);
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        // What DNS answered stays in our log: error texts reach tenant admins, and our view of
        // internal names is none of their business. A name that does not resolve and a name
        // that resolves to an internal address get the same words, so an admin cannot map
        // which internal names exist.
        let refused = || -> BoxError {
            Box::new(Refusal(format!("{host} does not resolve to a public address Butterfly connects to")))
        };
        let ips: Vec<IpAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self.resolver.addresses(name).await.map_err(|e| {
                tracing::info!(host, error = %e, "refused: name not resolved");
                refused()
            })?,
        };
        if ips.is_empty() {
            tracing::info!(host, "refused: no address");
            return Err(refused());
        }
        if let Some(bad) = ips.iter().find(|ip| !ip_allowed(**ip, self.allow_loopback)) {
            tracing::info!(host, address = %bad, "refused: a private, reserved or loopback address");
            return Err(refused());
        }
        let mut last = None;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            // Judged again on the exact address being connected to.
            if !ip_allowed(addr.ip(), self.allow_loopback) {
                return Err(refused());
            }
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(e)) => {
                    tracing::info!(host, error = %e, "connect failed");
                    last = Some(format!("cannot connect to {host}"));
                }
                Err(_) => last = Some(format!("connecting to {host} timed out")),
            }
        }
        Err(last.unwrap_or_else(|| "no address to connect to".into()).into())
    }
}

/// A refused connection, told apart from other connect errors.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// The guarded client. Build one per process and share it (it pools connections).
#[derive(Clone)]
pub struct GuardedHttp {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    allow_loopback: bool,
    limits: Limits,
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // ALPN is set by the connector builder (HTTP/1.1 only).
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl GuardedHttp {
    /// `allow_loopback`: http and loopback addresses are allowed (the local stack and its test
    /// provider); never on Lambda.
    pub fn new(dns: &DnsServers, allow_loopback: bool, limits: Limits) -> Result<Self, String> {
        let connector = GuardedConnector {
            resolver: Arc::new(AddressResolver::new(dns)?),
            allow_loopback,
            connect_timeout: limits.connect_timeout,
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(GuardedHttp { client, allow_loopback, limits })
    }

    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// `GET url` with `Accept: application/json`.
    pub async fn get_json(&self, url: &url::Url) -> Result<Fetched, FetchError> {
        let req = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        self.send(req).await
    }

    /// Sends a request (any method) under the policy and limits; 3xx answers are returned as
    /// they are, never followed.
    pub async fn send(&self, req: http::Request<Vec<u8>>) -> Result<Fetched, FetchError> {
        let url = url::Url::parse(&req.uri().to_string()).map_err(|e| FetchError::Refused(format!("bad URL: {e}")))?;
        check_url(&url, self.allow_loopback).map_err(FetchError::Refused)?;
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("butterfly-identity/", env!("CARGO_PKG_VERSION"))),
        );
        let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let max = self.limits.max_body_bytes;
        let work = async {
            let resp = self.client.request(req).await.map_err(classify)?;
            let (parts, body) = resp.into_parts();
            if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH) {
                if len.to_str().ok().and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > max) {
                    return Err(FetchError::TooLarge(max));
                }
            }
            let bytes = Limited::new(body, max).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    FetchError::TooLarge(max)
                } else {
                    FetchError::Http(e.to_string())
                }
            })?;
            Ok(Fetched { status: parts.status.as_u16(), headers: parts.headers, body: bytes.to_bytes() })
        };
        tokio::time::timeout(self.limits.total_timeout, work).await.map_err(|_| FetchError::Timeout)?
    }
}

/// Tells a policy refusal (from the connector) from other failures.
fn classify(e: hyper_util::client::legacy::Error) -> FetchError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return FetchError::Refused(r.0.clone());
        }
        cur = err.source();
    }
    if e.is_connect() {
        FetchError::Connect(error_chain(&e))
    } else {
        FetchError::Http(error_chain(&e))
    }
}

/// An error and its sources on one line, cleaned and bounded (for logs and our error values).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    butterfly_core::text::clean(&s, 300)
}
