//! `loadgen`: a bounded, loopback-only load generator for SCIM 2.0 servers, so ours and a peer
//! are measured by the same client in the same run.
//!
//! ```text
//! loadgen --base URL --token T seed   --users N --prefix P [--from K] [--connections C]
//! loadgen --base URL --token T run    --shape lookup|get|create|patch --users N --prefix P --seconds S --connections C
//! loadgen --base URL --token T page   [--expect N] [--page-size 100] [--max-seconds 600]
//! ```
//! Every command prints one JSON line. `run`: shape, requests, errors, rps, p50_ms, p99_ms.
//! `page`: cursor paging through the whole tenant, one page at a time, with the time per page
//! over the run (first and last tenth of the pages, and their ratio).

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// SCIM base URL on loopback, e.g. http://127.0.0.1:3000/scim/v2
    #[arg(long)]
    base: String,
    #[arg(long, env = "SCIM_TOKEN")]
    token: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create users PREFIX-FROM@example.com … PREFIX-N@example.com.
    Seed {
        #[arg(long)]
        users: u32,
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 1)]
        from: u32,
        #[arg(long, default_value_t = 8)]
        connections: usize,
    },
    /// Page through every user with cursors (`GET /Users?count=…&cursor=…`).
    Page {
        /// How many users the tenant holds (default: its `totalResults`); the run fails if
        /// paging sees a different number.
        #[arg(long)]
        expect: Option<u64>,
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
    /// Load one request shape for a bounded time.
    Run {
        #[arg(long, value_enum)]
        shape: Shape,
        #[arg(long)]
        users: u32,
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Stop after this many requests in all (or at the time limit, whichever comes first).
        #[arg(long)]
        max_requests: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Shape {
    /// GET /Users?filter=userName eq "…" (Okta's lookup)
    Lookup,
    /// GET /Users/{id}
    Get,
    /// POST /Users with a new userName
    Create,
    /// PATCH /Users/{id}, path-less replace
    Patch,
}

fn user_body(email: &str) -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":email,
        "name":{"givenName":"Load","familyName":"Test"},"emails":[{"value":email,"type":"work","primary":true}],"active":true})
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

struct Client {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Client {
    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/scim+json")
    }

    async fn id_of(&self, email: &str) -> Result<String, String> {
        let r = self
            .req(reqwest::Method::GET, "/Users")
            .query(&[("filter", format!("userName eq \"{email}\""))])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        v["Resources"][0]["id"].as_str().map(str::to_string).ok_or_else(|| format!("{email} not found: {v}"))
    }
}

async fn seed(c: Arc<Client>, users: u32, prefix: String, from: u32, conns: usize) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(u64::from(from.max(1))));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (c, next, prefix) = (c.clone(), next.clone(), prefix.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i > u64::from(users) {
                    return Ok::<(), String>(());
                }
                let email = format!("{prefix}-{i}@example.com");
                let r = c.req(reqwest::Method::POST, "/Users").body(user_body(&email).to_string()).send().await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 || r.status().as_u16() == 409 => {}
                    Ok(r) => return Err(format!("seeding {email}: HTTP {}", r.status())),
                    Err(e) => return Err(format!("seeding {email}: {e}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn run(
    c: Arc<Client>,
    shape: Shape,
    users: u32,
    prefix: String,
    seconds: u64,
    conns: usize,
    max_requests: u64,
) -> Result<Value, String> {
    let users = users.max(1);
    // get/patch need ids: resolve a bounded sample spread over the whole tenant, before timing.
    let ids: Arc<Vec<String>> = Arc::new(match shape {
        Shape::Get | Shape::Patch => {
            let sample = users.min(200);
            let mut v = Vec::new();
            for k in 0..sample {
                let i = 1 + u64::from(k) * u64::from(users) / u64::from(sample);
                v.push(c.id_of(&format!("{prefix}-{i}@example.com")).await?);
            }
            v
        }
        _ => vec![],
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let run_tag = started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let mut tasks = Vec::new();
    for t in 0..conns {
        let (c, ids, prefix, counter, issued) =
            (c.clone(), ids.clone(), prefix.clone(), counter.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9e3779b97f4a7c15u64 ^ (t as u64 + 1).wrapping_mul(0x2545f4914f6cdd1d);
            let (mut lat, mut errors) = (Vec::with_capacity(4096), 0u64);
            while Instant::now() < deadline
                && lat.len() < 5_000_000
                && issued.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let pick = rng(&mut seed);
                let req = match shape {
                    Shape::Lookup => {
                        let email = format!("{prefix}-{}@example.com", pick % u64::from(users) + 1);
                        c.req(reqwest::Method::GET, "/Users").query(&[("filter", format!("userName eq \"{email}\""))])
                    }
                    Shape::Get => {
                        c.req(reqwest::Method::GET, &format!("/Users/{}", ids[(pick % ids.len() as u64) as usize]))
                    }
                    Shape::Create => {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let email = format!("new-{run_tag:x}-{t}-{n}@example.com");
                        c.req(reqwest::Method::POST, "/Users").body(user_body(&email).to_string())
                    }
                    Shape::Patch => {
                        let id = &ids[(pick % ids.len() as u64) as usize];
                        let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations":[{"op":"replace","value":{"displayName": format!("Load {pick}")}}]});
                        c.req(reqwest::Method::PATCH, &format!("/Users/{id}")).body(body.to_string())
                    }
                };
                let t0 = Instant::now();
                let ok = match req.send().await {
                    Ok(r) => {
                        let good = r.status().is_success();
                        let _ = r.bytes().await;
                        good
                    }
                    Err(_) => false,
                };
                lat.push(t0.elapsed().as_micros() as u32);
                errors += u64::from(!ok);
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.map_err(|e| e.to_string())?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|u| f64::from(*u) / 1000.0)
            .unwrap_or(0.0)
    };
    Ok(json!({
        "shape": format!("{shape:?}").to_lowercase(),
        "requests": all.len(),
        "errors": errors,
        "rps": (all.len() as f64 / elapsed * 10.0).round() / 10.0,
        "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
        "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
    }))
}

/// Cursor paging through the tenant: one request at a time, as an importing client would.
async fn page(c: Arc<Client>, expect: Option<u64>, page_size: u32, max_seconds: u64) -> Result<Value, String> {
    let expect = match expect {
        Some(n) => n,
        None => {
            let r = c.req(reqwest::Method::GET, "/Users").query(&[("count", "0")]).send().await;
            let v: Value = r.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
            v["totalResults"].as_u64().ok_or_else(|| format!("no totalResults: {v}"))?
        }
    };
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let started = Instant::now();
    let (mut cursor, mut seen, mut times) = (String::new(), 0u64, Vec::<u32>::new());
    // Bounded: at most twice the pages the expected users need, and the deadline.
    let max_pages = expect / u64::from(page_size.max(1)) * 2 + 10;
    loop {
        if Instant::now() > deadline || times.len() as u64 > max_pages {
            return Err(format!("paging did not finish: {seen} users in {} pages", times.len()));
        }
        let t0 = Instant::now();
        let r = c
            .req(reqwest::Method::GET, "/Users")
            .query(&[("count", page_size.to_string()), ("cursor", cursor.clone())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        times.push(t0.elapsed().as_micros() as u32);
        if !status.is_success() {
            return Err(format!("page {}: HTTP {status}: {v}", times.len()));
        }
        seen += v["Resources"].as_array().map_or(0, |a| a.len() as u64);
        match v["nextCursor"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    if seen != expect {
        return Err(format!("paging saw {seen} users, expected {expect}"));
    }
    let tenth = (times.len() / 10).max(1);
    let mean = |s: &[u32]| s.iter().map(|t| f64::from(*t)).sum::<f64>() / s.len().max(1) as f64 / 1000.0;
    let (first, last) = (mean(&times[..tenth]), mean(&times[times.len() - tenth..]));
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let p50 = f64::from(sorted[sorted.len() / 2]) / 1000.0;
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "shape": "page",
        "users": seen,
        "pages": times.len(),
        "page_size": page_size,
        "seconds": r2(started.elapsed().as_secs_f64()),
        "p50_ms": r2(p50),
        "first_tenth_ms": r2(first),
        "last_tenth_ms": r2(last),
        "last_over_first": r2(if first > 0.0 { last / first } else { 0.0 }),
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loopback = ["http://127.", "http://localhost:", "http://[::1]:"].iter().any(|p| cli.base.starts_with(p));
    if !loopback {
        eprintln!("loadgen: loopback targets only ({})", cli.base);
        return ExitCode::from(2);
    }
    let http = match reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let c = Arc::new(Client {
        http,
        base: cli.base.trim_end_matches('/').to_string(),
        auth: format!("Bearer {}", cli.token),
    });
    let result = match cli.cmd {
        Cmd::Seed { users, prefix, from, connections } => {
            seed(c, users, prefix, from, connections.clamp(1, 64)).await.map(|()| json!({"seeded": users}))
        }
        Cmd::Page { expect, page_size, max_seconds } => {
            page(c, expect, page_size.clamp(1, 1000), max_seconds.clamp(1, 3600)).await
        }
        Cmd::Run { shape, users, prefix, seconds, connections, max_requests } => {
            let max = max_requests.unwrap_or(u64::MAX);
            run(c, shape, users, prefix, seconds.clamp(1, 120), connections.clamp(1, 64), max).await
        }
    };
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
