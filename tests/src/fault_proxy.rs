//! Faults at the HTTP layer: a small proxy on loopback in front of DynamoDB Local (or moto) that
//! forwards requests and, for a seeded fraction of them, answers as AWS does when it throttles
//! or fails, answers too late, or drops the connection. The SDK client under test sees these
//! exactly as it would see them from AWS, so its retries, timeouts and idempotency tokens
//! are exercised along with our error mapping.
//!
//! | fault | what the client gets |
//! |---|---|
//! | `Throttling` | 400 `ThrottlingException` (awsJson 1.0 body), nothing forwarded |
//! | `ThroughputExceeded` | 400 `ProvisionedThroughputExceededException`, nothing forwarded |
//! | `ServerError` | 500 `InternalServerError`, nothing forwarded |
//! | `Slow` | forwarded (it takes effect), answered only after `slow` (past the client's timeout) |
//! | `DropBefore` | the connection closes without an answer, nothing forwarded |
//! | `DropAfter` | forwarded (it takes effect), then the connection closes without an answer |
//!
//! [`Mode::Down`] drops every connection (the service unreachable) until switched back.
//! Which request fails is a pure function of (seed, arrival number); under concurrency the
//! arrival order, not the schedule, varies between runs.

use crate::faults::Rng;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One kind of failure the proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Throttling,
    ThroughputExceeded,
    ServerError,
    Slow,
    DropBefore,
    DropAfter,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttling,
        Fault::ThroughputExceeded,
        Fault::ServerError,
        Fault::Slow,
        Fault::DropBefore,
        Fault::DropAfter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttling => "throttling (400 ThrottlingException)",
            Fault::ThroughputExceeded => "throttling (400 ProvisionedThroughputExceededException)",
            Fault::ServerError => "500 InternalServerError",
            Fault::Slow => "answer after the client timeout (forwarded)",
            Fault::DropBefore => "connection dropped (not forwarded)",
            Fault::DropAfter => "connection dropped after forwarding (answer lost)",
        }
    }
}

/// What the proxy does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward, failing the planned fraction.
    Faults,
    /// Drop every connection: the service is unreachable.
    Down,
}

#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    /// Per operation (`X-Amz-Target`'s action): requests, and faults by kind.
    by_op: BTreeMap<String, (u64, BTreeMap<Fault, u64>)>,
    dropped_while_down: u64,
}

struct State {
    upstream: String,
    client: reqwest::Client,
    seed: u64,
    /// The failing fraction, as f64 bits.
    fraction: AtomicU64,
    mode: AtomicU8,
    slow_ms: AtomicU64,
    kinds: Mutex<Vec<Fault>>,
    arrivals: AtomicU64,
    stats: Mutex<Stats>,
}

/// The proxy, listening on `addr` until dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// A summary of what the proxy did.
#[derive(Debug, Clone, Default)]
pub struct ProxyReport {
    pub requests: u64,
    pub faults: BTreeMap<Fault, u64>,
    /// Per operation: requests and faults injected.
    pub by_op: BTreeMap<String, (u64, u64)>,
    pub dropped_while_down: u64,
}

impl ProxyReport {
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`) that fails `fraction` of requests with
    /// faults drawn evenly from `Fault::ALL`; slow answers come after 5 s.
    pub async fn start(upstream: &str, seed: u64, fraction: f64) -> FaultProxy {
        assert!(upstream.starts_with("http://127.0.0.1:") || upstream.starts_with("http://localhost:"), "loopback");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            seed,
            fraction: AtomicU64::new(fraction.to_bits()),
            mode: AtomicU8::new(0),
            slow_ms: AtomicU64::new(5_000),
            kinds: Mutex::new(Fault::ALL.to_vec()),
            arrivals: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if s.mode() == Mode::Down {
                    s.count_down();
                    drop(stream);
                    continue;
                }
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        FaultProxy { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`, for an SDK endpoint override.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_fraction(&self, fraction: f64) {
        self.state.fraction.store(fraction.to_bits(), Ordering::SeqCst);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(matches!(mode, Mode::Down) as u8, Ordering::SeqCst);
    }

    /// How long a `Slow` answer is held back.
    pub fn set_slow(&self, d: Duration) {
        self.state.slow_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Restricts the faults injected to these kinds.
    pub fn set_kinds(&self, kinds: &[Fault]) {
        if let Ok(mut k) = self.state.kinds.lock() {
            *k = kinds.to_vec();
        }
    }

    pub fn report(&self) -> ProxyReport {
        let Ok(stats) = self.state.stats.lock() else { return ProxyReport::default() };
        let mut r = ProxyReport {
            requests: stats.requests,
            dropped_while_down: stats.dropped_while_down,
            ..Default::default()
        };
        for (op, (n, faults)) in &stats.by_op {
            for (k, c) in faults {
                *r.faults.entry(*k).or_default() += c;
            }
            r.by_op.insert(op.clone(), (*n, faults.values().sum()));
        }
        r
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    fn mode(&self) -> Mode {
        if self.mode.load(Ordering::SeqCst) == 1 {
            Mode::Down
        } else {
            Mode::Faults
        }
    }

    fn count_down(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.dropped_while_down += 1;
        }
    }

    /// The fault (if any) for this request, recorded.
    fn plan(&self, op: &str) -> Option<Fault> {
        let n = self.arrivals.fetch_add(1, Ordering::SeqCst);
        let mut r = Rng::at(self.seed, "proxy", n);
        let fraction = f64::from_bits(self.fraction.load(Ordering::SeqCst));
        let kinds = self.kinds.lock().map(|k| k.clone()).unwrap_or_default();
        let fault = (r.unit() < fraction && !kinds.is_empty()).then(|| kinds[r.below(kinds.len() as u64) as usize]);
        if let Ok(mut s) = self.stats.lock() {
            s.requests += 1;
            let e = s.by_op.entry(op.to_string()).or_default();
            e.0 += 1;
            if let Some(f) = fault {
                *e.1.entry(f).or_default() += 1;
            }
        }
        fault
    }
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

fn aws_error(status: StatusCode, type_: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "__type": type_, "message": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "fault-proxy")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    if state.mode() == Mode::Down {
        state.count_down();
        return Err(Dropped);
    }
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("?")
        .to_string();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), 16 * 1024 * 1024).await.map_err(|_| Dropped)?;
    let fault = state.plan(&op);
    match fault {
        Some(Fault::Throttling) => {
            return Ok(aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ))
        }
        Some(Fault::ThroughputExceeded) => {
            return Ok(aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            ))
        }
        Some(Fault::ServerError) => {
            return Ok(aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            ))
        }
        Some(Fault::DropBefore) => return Err(Dropped),
        _ => {}
    }
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = state.client.request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "connection" | "content-length" | "transfer-encoding") {
            out = out.header(k, v);
        }
    }
    let answer = out.body(body).send().await.map_err(|_| Dropped)?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.map_err(|_| Dropped)?;
    match fault {
        Some(Fault::DropAfter) => return Err(Dropped),
        Some(Fault::Slow) => {
            tokio::time::sleep(Duration::from_millis(state.slow_ms.load(Ordering::SeqCst))).await;
        }
        _ => {}
    }
    let mut resp = Response::builder().status(status);
    for (k, v) in &headers {
        if !matches!(k.as_str(), "connection" | "content-length" | "transfer-encoding") {
            resp = resp.header(k, v);
        }
    }
    resp.body(Body::from(bytes)).map_err(|_| Dropped)
}
