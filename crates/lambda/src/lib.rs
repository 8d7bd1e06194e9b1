//! The composition root shared by every Butterfly Lambda. Everything here runs once, in the
//! Lambda init phase: typed config from the environment, JSON logs, SDK clients (with a warm
//! TLS connection), the DynamoDB store. Handlers then serve requests with no setup cost.
//!
//! Nothing here calls out beyond AWS: the functions that talk to identity providers or DNS build
//! their parts with `butterfly-lambda-outbound`, so `scim-users` links no OIDC client.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use butterfly_api::scim::{BaseUrl, ScimState};
use butterfly_aws::{DynamoStore, RequestCounter};
use butterfly_core::clock::SystemClock;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::scim::cursor::CursorKey;
use lambda_http::RequestExt;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Why a function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("cannot read the secret {id}: {message}")]
    Secret { id: String, message: String },
    #[error("{0}")]
    Http(String),
    #[error("environment variable {0} must be a whole number from 1 to 1000000")]
    NotANumber(&'static str),
    #[error("environment variable {0}: {1}")]
    Invalid(&'static str, String),
}

/// The value, or — when the function cannot start — one log line saying why, in words (JSON on
/// stdout like every other line, level ERROR), and exit status 1: Lambda reports the init as
/// failed and the line is in the function's log group. (Returning the error from `main`
/// printed its `Debug` form, `Error: Missing("TABLE_NAME")`, outside the JSON logs.)
pub fn or_refuse_to_start<T>(r: Result<T, InitError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "the function cannot start: {e}");
            std::process::exit(1)
        }
    }
}

/// The configuration every function reads from its environment, once.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table: String,
    /// `PUBLIC_BASE_URL`: the custom domain's origin, if any; otherwise each request's own.
    pub public_base_url: Option<String>,
    /// `CURSOR_KEY_SECRET_ID`: the deployment's server secret (Secrets Manager). Keys derived
    /// from it sign SCIM paging cursors and the CSRF tokens of signed-in browsers, so only the
    /// functions that page or serve browser sessions are given it (and read it at init).
    pub cursor_key_secret_id: Option<String>,
    /// `SECRETS_PREFIX`: tenants' OIDC client secrets are `{prefix}/tenants/{id}/oidc-client-secret`.
    pub secrets_prefix: String,
    /// `SCIM_RATE_LIMIT_PER_MINUTE`: SCIM requests a minute per tenant, across instances.
    pub scim_per_minute: u32,
    /// `ANONYMOUS_LIMIT_PER_MINUTE`: requests a minute per client address to the anonymous
    /// sign-in and logout endpoints (per instance).
    pub anonymous_per_minute: u32,
    /// `DNS_SERVER`: the name server for provider addresses and domain-verification TXT
    /// records, `IP:PORT`; unset (or `system`) is the system's resolver, as on Lambda. Parsed
    /// by the functions that look names up (`butterfly-lambda-outbound`), which refuse to start
    /// on a malformed one; the others do not use it.
    pub dns_server: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, InitError> {
        let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Ok(Config {
            table: var("TABLE_NAME").ok_or(InitError::Missing("TABLE_NAME"))?,
            public_base_url: var("PUBLIC_BASE_URL"),
            cursor_key_secret_id: var("CURSOR_KEY_SECRET_ID"),
            secrets_prefix: var("SECRETS_PREFIX").ok_or(InitError::Missing("SECRETS_PREFIX"))?,
            scim_per_minute: number(var("SCIM_RATE_LIMIT_PER_MINUTE"), "SCIM_RATE_LIMIT_PER_MINUTE", 1200)?,
            anonymous_per_minute: number(var("ANONYMOUS_LIMIT_PER_MINUTE"), "ANONYMOUS_LIMIT_PER_MINUTE", 120)?,
            dns_server: var("DNS_SERVER"),
        })
    }

    pub fn base_url(&self) -> BaseUrl {
        match &self.public_base_url {
            Some(u) => BaseUrl::Fixed(u.trim_end_matches('/').to_string().into()),
            None => BaseUrl::FromRequest,
        }
    }
}

fn number(v: Option<String>, name: &'static str, default: u32) -> Result<u32, InitError> {
    match v {
        None => Ok(default),
        Some(s) => {
            s.trim().parse::<u32>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or(InitError::NotANumber(name))
        }
    }
}

/// The abuse limits this function applies.
pub fn limits(cfg: &Config) -> butterfly_api::Limits {
    butterfly_api::Limits::new(
        butterfly_api::limits::AnonymousLimits {
            per_address_per_minute: cfg.anonymous_per_minute,
            settings_per_minute: 10,
        },
        butterfly_core::limit::QuotaPolicy::per_minute(cfg.scim_per_minute),
    )
}

/// JSON logs on stdout (CloudWatch), filtered by `BUTTERFLY_LOG` (default `info`). Each line
/// carries the current span, whose `request_id` is the Lambda request id.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("BUTTERFLY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

/// The keys derived from the deployment's server secret.
#[derive(Clone)]
pub struct ServerKeys {
    pub cursor: CursorKey,
    pub csrf: CsrfKey,
}

/// What the functions need from AWS, built once.
pub struct Aws {
    pub store: DynamoStore,
    pub counter: RequestCounter,
    /// The server keys, when the function was given `CURSOR_KEY_SECRET_ID`.
    pub keys: Option<ServerKeys>,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Builds the SDK clients, opens the DynamoDB connection and, alongside, reads the cursor key
/// (if this function has one).
pub async fn connect(cfg: &Config) -> Result<Aws, InitError> {
    let sdk = butterfly_aws::sdk_config().await;
    let counter = RequestCounter::default();
    let store = DynamoStore::new(butterfly_aws::dynamodb_client(&sdk, Some(counter.clone())), cfg.table.clone());
    let secrets = butterfly_aws::secretsmanager_client(&sdk);
    let read_key = async {
        match &cfg.cursor_key_secret_id {
            Some(id) => butterfly_aws::secrets::read_server_secret(&secrets, id)
                .await
                .map(|v| Some(ServerKeys { cursor: CursorKey::derive(&v), csrf: CsrfKey::derive(v.as_bytes()) }))
                .map_err(|message| InitError::Secret { id: id.clone(), message }),
            None => Ok(None),
        }
    };
    let ((), keys) = tokio::join!(store.warm_up(), read_key);
    let keys = keys?;
    counter.take();
    Ok(Aws { store, counter, keys, secrets })
}

/// The whole `main` of an HTTP function: logging, typed config, AWS clients (warm), then
/// `parts`, what its router is built from (the function refuses to start without them), then
/// `router` as this Lambda.
pub async fn serve<P>(
    parts: impl FnOnce(&Config, &Aws) -> Result<P, InitError>,
    router: impl FnOnce(P) -> Router,
) -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = or_refuse_to_start(Config::from_env());
    let aws = or_refuse_to_start(connect(&cfg).await);
    let parts = or_refuse_to_start(parts(&cfg, &aws));
    run(router(parts), aws).await
}

/// The `scim-users` function's parts: the SCIM use cases over the table, paging cursors signed
/// with the server secret's key (`CURSOR_KEY_SECRET_ID` is required), the per-tenant SCIM rate.
pub fn scim_state(cfg: &Config, aws: &Aws) -> Result<ScimState, InitError> {
    let keys = aws.keys.as_ref().ok_or(InitError::Missing("CURSOR_KEY_SECRET_ID"))?;
    Ok(butterfly_api::scim_state(
        Arc::new(aws.store.clone()),
        Arc::new(SystemClock),
        keys.cursor.clone(),
        cfg.base_url(),
        limits(cfg).scim,
    ))
}

/// Runs one router as this Lambda: common layers, Lambda request ids and cost logging.
async fn run(router: Router, aws: Aws) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_layers(butterfly_api::with_common_layers(router), aws.counter)).await
}

/// Makes the Lambda request id the request's `x-request-id` (so every log line of the request
/// carries it), and logs how many DynamoDB requests the request cost and the capacity units
/// DynamoDB reported for them (what on-demand billing charges).
fn lambda_layers(router: Router, counter: RequestCounter) -> Router {
    router.layer(axum::middleware::from_fn(move |mut req: Request, next: Next| {
        let counter = counter.clone();
        async move {
            if let Some(id) = req.lambda_context_ref().map(|c| c.request_id.clone()) {
                if let Ok(v) = HeaderValue::from_str(&id) {
                    req.headers_mut().insert(butterfly_api::REQUEST_ID, v);
                }
            }
            // The caller's address as API Gateway saw it, for the per-address limits.
            let source = match req.request_context_ref() {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
                _ => None,
            };
            if let Some(ip) = source.and_then(|s| s.parse::<std::net::IpAddr>().ok()) {
                req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(ip, 0)));
            }
            counter.take();
            let resp: Response = next.run(req).await;
            let (ops, capacity) = counter.take_with_capacity();
            tracing::info!(
                dynamodb_requests = ops.len(),
                operations = %ops.join(","),
                read_units = capacity.read,
                write_units = capacity.write,
                "request cost"
            );
            resp
        }
    }))
}
