//! A local Lambda Runtime API (the interface a Lambda binary polls for events), so function
//! binaries run as they do on AWS: the test pushes API Gateway v2 events, the binary answers.
//! Loopback only; every wait is bounded.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>>;

#[derive(Clone)]
struct Emu {
    polls: Arc<AtomicU64>,
    events: Arc<Mutex<mpsc::Receiver<(String, Value)>>>,
    pending: Pending,
    init_error: Arc<Mutex<Option<String>>>,
}

/// The emulator; `addr` goes into `AWS_LAMBDA_RUNTIME_API`.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    tx: mpsc::Sender<(String, Value)>,
    pending: Pending,
    init_error: Arc<Mutex<Option<String>>>,
    seq: AtomicU64,
    polls: Arc<AtomicU64>,
}

async fn next(State(e): State<Emu>) -> Response {
    e.polls.fetch_add(1, Ordering::SeqCst);
    let Some((id, event)) = e.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let mut h = HeaderMap::new();
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
        + Duration::from_secs(30);
    for (k, v) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:test".to_string()),
        ("lambda-runtime-trace-id", format!("Root=1-00000000-{id}")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    (h, event.to_string()).into_response()
}

async fn respond(State(e): State<Emu>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let v = serde_json::from_slice(&body).map_err(|err| format!("response is not JSON: {err}"));
    if let Some(tx) = e.pending.lock().await.remove(&id) {
        let _ = tx.send(v);
    }
    StatusCode::ACCEPTED
}

async fn error(State(e): State<Emu>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    if let Some(tx) = e.pending.lock().await.remove(&id) {
        let _ = tx.send(Err(String::from_utf8_lossy(&body).to_string()));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(e): State<Emu>, body: Bytes) -> StatusCode {
    *e.init_error.lock().await = Some(String::from_utf8_lossy(&body).to_string());
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (tx, rx) = mpsc::channel(16);
        let pending: Pending = Arc::default();
        let init = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicU64::new(0));
        let emu = Emu {
            polls: polls.clone(),
            events: Arc::new(Mutex::new(rx)),
            pending: pending.clone(),
            init_error: init.clone(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emu);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi { addr, tx, pending, init_error: init, seq: AtomicU64::new(0), polls }
    }

    /// Whether the function has asked for an event (its init finished).
    pub fn polled(&self) -> bool {
        self.polls.load(Ordering::SeqCst) > 0
    }

    /// Delivers one event and waits (at most 30 s) for the function's answer.
    pub async fn invoke(&self, event: Value) -> Result<Value, String> {
        let id = format!("req-{:08}", self.seq.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), tx);
        self.tx.send((id, event)).await.map_err(|_| "the emulator stopped".to_string())?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("no answer".into()),
            Err(_) => Err(format!("no answer within 30 s; init error: {:?}", self.init_error.lock().await)),
        }
    }
}

/// An API Gateway HTTP API (payload format 2.0) event.
pub fn apigw_v2(method: &str, path_and_query: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut h = serde_json::Map::new();
    h.insert("host".into(), json!("abc123.execute-api.us-east-1.amazonaws.com"));
    h.insert("x-forwarded-proto".into(), json!("https"));
    h.insert("user-agent".into(), json!("Okta SCIM Client 1.0.0"));
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "Okta SCIM Client 1.0.0"},
            "requestId": "apigw-request-id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:21:00:00 +0000",
            "timeEpoch": 1_795_900_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// A function's answer to an API Gateway v2 event: status, headers, and the body as JSON
/// (`Value::Null` when empty).
pub fn http_answer(v: &Value) -> (u16, HashMap<String, String>, Value) {
    let status = v["statusCode"].as_u64().unwrap_or(0) as u16;
    let headers = v["headers"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let body = v["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).unwrap_or(Value::String(b.to_string())));
    (status, headers, body.unwrap_or(Value::Null))
}

/// How many requests the memory figure spans (the "peak RSS over 1,000 requests").
pub const SUSTAINED_REQUESTS: usize = 1000;

/// The functions that set or check session cookies and CSRF tokens (they need the server key).
pub const SERVES_SESSIONS: [&str; 5] = ["session", "admin", "token-rotation", "authorize-callback", "console"];

/// The function `bin` as Lambda starts it: a clean environment with the Runtime API, the
/// function's identity, test credentials, the emulators' endpoints, its table and prefix.
fn function_command(bin: &str, name: &str, runtime: &RuntimeApi, table: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL_DYNAMODB", crate::aws::dynamodb_endpoint())
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", crate::aws::secretsmanager_endpoint())
        .env("TABLE_NAME", table)
        .env("SECRETS_PREFIX", "butterfly/test");
    cmd
}

/// A function binary running as on Lambda: polled by a local [`RuntimeApi`], with DynamoDB
/// Local and moto behind it (a fresh table; the server secret in Secrets Manager for the
/// functions the template gives it to: those serving browser sessions). Killed when dropped.
pub struct LambdaProcess {
    pub runtime: RuntimeApi,
    pub table: String,
    pub started: std::time::Instant,
    pub pid: u32,
    logs: tempfile::NamedTempFile,
    child: std::process::Child,
}

impl LambdaProcess {
    /// Starts `bin` (the function `name`) over a fresh table; returns once the process runs
    /// (its init finishes before it polls for the first event).
    pub async fn start(bin: &str, name: &str) -> LambdaProcess {
        // The sustained-load figures send a thousand requests from one address: the deployment's
        // per-address limit is a parameter, raised here (the limit itself has its own test).
        Self::start_with(bin, name, &[("ANONYMOUS_LIMIT_PER_MINUTE", "1000000")]).await
    }

    /// [`Self::start`] with extra environment variables (the template's parameters).
    pub async fn start_with(bin: &str, name: &str, env: &[(&str, &str)]) -> LambdaProcess {
        let (store, _) = crate::aws::dynamo_store(name).await;
        // As in template.yaml: the functions that serve browser sessions read the server secret.
        let server_secret =
            if SERVES_SESSIONS.contains(&name) { Some(crate::aws::server_secret(name).await) } else { None };
        let runtime = RuntimeApi::start().await;
        let logs = tempfile::NamedTempFile::new().expect("log file");
        let started = std::time::Instant::now();
        let child = function_command(bin, name, &runtime, store.table())
            .envs(server_secret.iter().map(|id| ("CURSOR_KEY_SECRET_ID", id.as_str())))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::from(logs.reopen().expect("log file")))
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the function");
        LambdaProcess { runtime, table: store.table().to_string(), started, pid: child.id(), logs, child }
    }

    /// One API Gateway v2 event through the function: status, headers, body (JSON, or the
    /// text as a JSON string), and the `cookies` array API Gateway would turn into Set-Cookie.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, HashMap<String, String>, Value, Vec<String>) {
        let answer = self
            .runtime
            .invoke(apigw_v2(method, path, headers, body))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (status, h, b) = http_answer(&answer);
        let cookies = answer["cookies"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
            .unwrap_or_default();
        (status, h, b, cookies)
    }

    /// Sends the same event `n` times, checking every answer's status; returns the mean time per
    /// request in ms. `peak_rss_kb` afterwards is the peak over all of them.
    pub async fn sustain(
        &self,
        n: usize,
        (method, path): (&str, &str),
        headers: &[(&str, &str)],
        body: Option<&str>,
        status: u16,
    ) -> f64 {
        let t0 = std::time::Instant::now();
        for i in 0..n {
            let (s, _, v, _) = self.call(method, path, headers, body).await;
            assert_eq!(s, status, "{method} {path}, request {i}: {v}");
        }
        t0.elapsed().as_secs_f64() * 1000.0 / n.max(1) as f64
    }

    /// Asserts the function logs JSON lines that carry the Lambda request id.
    pub fn assert_logs_carry_request_id(&self) {
        assert!(
            self.log_lines().iter().any(|l| l["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty())),
            "JSON logs with the request id"
        );
    }

    /// Prints the `LAMBDA_FIGURES` line that `tests/run` and `bench/lambda-figures.sh` read.
    pub fn print_figures(&self, name: &str, bin: &str, first_response: std::time::Duration, mean_ms: f64) {
        println!(
            "LAMBDA_FIGURES function={name} bin={bin} first_response_ms={} peak_rss_kb={} sustained={SUSTAINED_REQUESTS} mean_ms={mean_ms:.2}",
            first_response.as_millis(),
            self.peak_rss_kb()
        );
    }

    /// The function's JSON log lines so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.logs.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Peak resident memory of the process (`VmHWM`), in KiB.
    pub fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` as Lambda would, with the environment of [`LambdaProcess::start_with`] changed
/// by `env` (a value of `""` removes the variable), and waits (30 s at most) for it to exit on
/// its own: for the init failures. Returns the exit status (`None`: still running at the
/// deadline, then killed), every non-empty line it wrote (stdout then stderr), and whether it
/// ever asked the Runtime API for an event.
pub async fn start_expecting_exit(
    bin: &str,
    name: &str,
    env: &[(&str, &str)],
) -> (Option<std::process::ExitStatus>, Vec<String>, bool) {
    let (store, _) = crate::aws::dynamo_store(name).await;
    let runtime = RuntimeApi::start().await;
    let out = tempfile::NamedTempFile::new().expect("log file");
    let err = tempfile::NamedTempFile::new().expect("log file");
    let mut cmd = function_command(bin, name, &runtime, store.table());
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdout(std::process::Stdio::from(out.reopen().expect("log file")))
        .stderr(std::process::Stdio::from(err.reopen().expect("log file")))
        .spawn()
        .expect("start the function");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines = [out.path(), err.path()]
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect();
    // A function that finished its init polls `next`: its event channel would have a receiver waiting.
    let polled = runtime.polled();
    (status, lines, polled)
}

/// What [`start_expecting_exit`] saw is a refused init: the process exited non-zero without
/// asking for an event, after writing exactly one line — JSON, level ERROR, its message
/// `the function cannot start: …` containing `needle`. Prints a `LAMBDA_FAILURE_FIGURES` line.
pub fn assert_refused(
    case: &str,
    (status, lines, polled): (Option<std::process::ExitStatus>, Vec<String>, bool),
    needle: &str,
) {
    let status = status.unwrap_or_else(|| panic!("{case}: still running after 30 s: {lines:?}"));
    assert!(!status.success(), "{case}: exit {status}");
    assert!(!polled, "{case}: the function finished its init");
    assert_eq!(lines.len(), 1, "{case}: one log line: {lines:#?}");
    let v: Value = serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", lines[0]));
    assert_eq!(v["level"], "ERROR", "{case}: {v}");
    let msg = v["fields"]["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("the function cannot start: ") && msg.contains(needle), "{case}: {v}");
    println!("LAMBDA_FAILURE_FIGURES case={case:?} exit={status} line={msg:?}");
}
