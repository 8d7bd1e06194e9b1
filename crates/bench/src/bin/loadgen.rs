//! `loadgen`: a bounded, loopback-only load generator for SCIM 2.0 servers, so ours and a peer
//! are measured by the same client in the same run.
//!
//! ```text
//! loadgen --base URL --token T seed   --users N --prefix P
//! loadgen --base URL --token T run    --shape lookup|get|create|patch --users N --prefix P --seconds S --connections C
//! ```
//! `run` prints one JSON line: shape, requests, errors, rps, p50_ms, p99_ms.

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
    /// Create users PREFIX-1@example.com … PREFIX-N@example.com.
    Seed {
        #[arg(long)]
        users: u32,
        #[arg(long)]
        prefix: String,
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

async fn seed(c: Arc<Client>, users: u32, prefix: String) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for _ in 0..8 {
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
) -> Result<Value, String> {
    let users = users.max(1);
    // get/patch need ids: resolve a bounded sample once, before timing.
    let ids: Arc<Vec<String>> = Arc::new(match shape {
        Shape::Get | Shape::Patch => {
            let mut v = Vec::new();
            for i in 1..=users.min(200) {
                v.push(c.id_of(&format!("{prefix}-{i}@example.com")).await?);
            }
            v
        }
        _ => vec![],
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let run_tag = started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let mut tasks = Vec::new();
    for t in 0..conns {
        let (c, ids, prefix, counter) = (c.clone(), ids.clone(), prefix.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9e3779b97f4a7c15u64 ^ (t as u64 + 1).wrapping_mul(0x2545f4914f6cdd1d);
            let (mut lat, mut errors) = (Vec::with_capacity(4096), 0u64);
            while Instant::now() < deadline && lat.len() < 5_000_000 {
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
        Cmd::Seed { users, prefix } => seed(c, users, prefix).await.map(|()| json!({"seeded": users})),
        Cmd::Run { shape, users, prefix, seconds, connections } => {
            run(c, shape, users, prefix, seconds.clamp(1, 120), connections.clamp(1, 64)).await
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
