//! Hostile peers for the attack suites: an "identity provider" on loopback that serves whatever
//! discovery document, key set, status, delay or body size a test tells it to (the self-made
//! provider of the security review), and a plain TCP listener that counts the connections made
//! to it (to prove a refused fetch never connected).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one path of the fake provider answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
    pub content_type: &'static str,
}

impl Answer {
    pub fn json(v: &Value) -> Answer {
        Answer {
            status: 200,
            body: v.to_string().into_bytes(),
            delay: Duration::ZERO,
            content_type: "application/json",
        }
    }
    pub fn status(status: u16, text: &str) -> Answer {
        Answer { status, body: text.as_bytes().to_vec(), delay: Duration::ZERO, content_type: "text/plain" }
    }
    pub fn delayed(mut self, d: Duration) -> Answer {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct Shared {
    answers: Mutex<HashMap<String, Answer>>,
    hits: Mutex<HashMap<String, u64>>,
}

/// A programmable provider at `http://127.0.0.1:PORT`.
pub struct FakeIdp {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Ok(mut h) = shared.hits.lock() {
        *h.entry(path.clone()).or_default() += 1;
    }
    let answer = shared.answers.lock().ok().and_then(|a| a.get(&path).cloned());
    let Some(a) = answer else { return StatusCode::NOT_FOUND.into_response() };
    if !a.delay.is_zero() {
        tokio::time::sleep(a.delay).await;
    }
    Response::builder()
        .status(a.status)
        .header("content-type", a.content_type)
        .body(Body::from(a.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

impl FakeIdp {
    pub async fn start() -> FakeIdp {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIdp { addr, shared, task }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer at `prefix` (e.g. `/evil`).
    pub fn issuer(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.origin())
    }

    pub fn answer(&self, path: &str, a: Answer) {
        if let Ok(mut m) = self.shared.answers.lock() {
            m.insert(path.to_string(), a);
        }
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.shared.hits.lock().map(|h| h.get(path).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// A well-formed discovery document for the issuer at `prefix`, every endpoint on this
    /// server; `overrides` replace members.
    pub fn discovery(&self, prefix: &str, overrides: Value) -> Value {
        let iss = self.issuer(prefix);
        let mut doc = json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/auth"),
            "token_endpoint": format!("{iss}/token"),
            "jwks_uri": format!("{iss}/keys"),
            "end_session_endpoint": format!("{iss}/logout"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if let (Some(d), Some(o)) = (doc.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                d.insert(k.clone(), v.clone());
            }
        }
        doc
    }

    /// Serves a good provider at `prefix` (discovery and an empty key set).
    pub fn serve_good(&self, prefix: &str) {
        self.answer(
            &format!("{prefix}/.well-known/openid-configuration"),
            Answer::json(&self.discovery(prefix, json!({}))),
        );
        self.answer(&format!("{prefix}/keys"), Answer::json(&json!({"keys": []})));
    }
}

/// A TCP listener that accepts and counts connections, then drops them.
pub struct CountingListener {
    pub addr: SocketAddr,
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingListener {
    pub async fn start() -> CountingListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        CountingListener { addr, count, task }
    }

    pub fn connections(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}
