//! The `scim-users` binary run as on AWS Lambda: polled by a local Runtime API emulator, fed API
//! Gateway v2 events, backed by DynamoDB Local and moto. Okta's create → lookup → PUT →
//! deactivate → reactivate sequence passes through the real entry point, each request costing
//! the DynamoDB requests its shape allows (read from the function's own JSON logs): lookup, get
//! and create one, PUT and PATCH two, a deactivation two plus the session revocation; with a
//! token issued before tokens named their tenant, a lookup and a create two.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::aws::{dynamo_store, local_config, secretsmanager_endpoint};
use butterfly_tests::lambda_runtime::{apigw_v2, http_answer, RuntimeApi, SUSTAINED_REQUESTS};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_sequence_through_the_lambda_entry_point() {
    // Data: a table with a tenant and its token; the cursor-signing secret in Secrets Manager.
    let (store, _) = dynamo_store("lambda").await;
    let (_, token) = butterfly_tests::tenant_with_token(Arc::new(store.clone()), "Lambda Co").await;
    let sm = aws_sdk_secretsmanager::Client::new(&local_config(&secretsmanager_endpoint()).await);
    let secret_id = format!("butterfly/test/cursor-key-{}", std::process::id());
    sm.create_secret()
        .name(&secret_id)
        .secret_string("a random cursor signing key for this test")
        .send()
        .await
        .unwrap();

    // The warm-up's quota lease (50 requests) covers the exact counts below unless a new minute
    // starts among them (then one of them takes the new minute's lease): start them early in
    // a minute (the wait is before the function starts: its cold start is timed).
    butterfly_tests::early_in_a_minute(10).await;
    let runtime = RuntimeApi::start().await;
    let logs = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    // SCIM_USERS_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("SCIM_USERS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_scim-users").to_string());
    let child = function_command(&bin, &runtime, store.table())
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("CURSOR_KEY_SECRET_ID", &secret_id)
        // Over a thousand requests within a minute: the tenant's rate limit is not under test.
        .env("SCIM_RATE_LIMIT_PER_MINUTE", "100000")
        .stdout(Stdio::from(logs.reopen().unwrap()))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let child = KillOnDrop(child);

    let call_as = |token: &str, method: &'static str, path: String, body: Option<Value>| {
        let auth = format!("Bearer {token}");
        let runtime = &runtime;
        async move {
            let body = body.map(|b| b.to_string());
            let ev = apigw_v2(
                method,
                &path,
                &[("authorization", &auth), ("content-type", "application/scim+json")],
                body.as_deref(),
            );
            http_answer(&runtime.invoke(ev).await.unwrap_or_else(|e| panic!("{method} {path}: {e}")))
        }
    };
    let call = |method: &'static str, path: String, body: Option<Value>| call_as(&token, method, path, body);

    // Warm-up request (records the token's first use), also the cold-start figure.
    let (status, headers, _) = call("GET", "/scim/v2/Users?count=1".into(), None).await;
    let first_response = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/scim+json"));
    let mark = log_lines(logs.path()).len();

    let email = "Lambda.User@atko.com";
    let lookup =
        format!("/scim/v2/Users?filter=userName%20eq%20%22{}%22&startIndex=1&count=100", email.replace('@', "%40"));
    let (status, _, v) = call("GET", lookup.clone(), None).await;
    assert_eq!((status, v["totalResults"].as_u64()), (200, Some(0)));

    let create = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":email,
        "name":{"givenName":"Lambda","familyName":"User"},"emails":[{"primary":true,"value":email,"type":"work"}],
        "displayName":"Lambda User","locale":"en-US","externalId":"00ulambda","groups":[],"password":"x1y2z3","active":true,
        "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User":{"role":"backup_operator"}});
    let (status, headers, created) = call("POST", "/scim/v2/Users".into(), Some(create)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let location = headers.get("location").cloned().unwrap_or_default();
    assert_eq!(location, format!("https://abc123.execute-api.us-east-1.amazonaws.com/scim/v2/Users/{id}"));
    assert_eq!(created["meta"]["location"], location.as_str());
    assert!(created.get("password").is_none());

    let (status, _, found) = call(
        "GET",
        lookup
            .to_uppercase()
            .replace("/SCIM/V2/USERS", "/scim/v2/Users")
            .replace("FILTER", "filter")
            .replace("%20EQ%20", "%20eq%20")
            .replace("STARTINDEX", "startIndex")
            .replace("COUNT", "count"),
        None,
    )
    .await;
    assert_eq!((status, found["totalResults"].as_u64()), (200, Some(1)), "{found}");

    let (status, _, mut current) = call("GET", format!("/scim/v2/Users/{id}"), None).await;
    assert_eq!(status, 200);
    current["name"]["givenName"] = json!("Lambda2");
    current["groups"] = json!([]);
    let (status, _, put) = call("PUT", format!("/scim/v2/Users/{id}"), Some(current)).await;
    assert_eq!((status, put["name"]["givenName"].as_str()), (200, Some("Lambda2")), "{put}");
    assert_eq!(put["urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"]["role"], "backup_operator");

    for active in [false, true] {
        let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":active}}]});
        let (status, _, p) = call("PATCH", format!("/scim/v2/Users/{id}"), Some(patch)).await;
        assert_eq!((status, p["active"].as_bool()), (200, Some(active)), "{p}");
        let (_, _, g) = call("GET", format!("/scim/v2/Users/{id}"), None).await;
        assert_eq!((g["active"].as_bool(), g["id"].as_str()), (Some(active), Some(id.as_str())));
    }

    // Errors keep the SCIM shape through API Gateway too.
    let (status, _, e) = call("GET", "/scim/v2/Users/010101001010101011001010101011".into(), None).await;
    assert_eq!((status, e["status"].as_str()), (404, Some("404")));
    let ev = apigw_v2("GET", "/scim/v2/Users", &[("authorization", "Bearer nope")], None);
    let (status, _, e) = http_answer(&runtime.invoke(ev).await.unwrap());
    assert_eq!((status, e["status"].as_str()), (401, Some("401")));

    // DynamoDB requests per request, from the function's own logs.
    let lines = log_lines(logs.path());
    let costs: Vec<(u64, String)> = lines[mark..]
        .iter()
        .filter(|l| l["fields"]["message"] == "request cost")
        .map(|l| {
            (
                l["fields"]["dynamodb_requests"].as_u64().unwrap(),
                l["fields"]["operations"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(costs.len(), 11, "one cost line per request: {costs:?}");
    let expected = [
        "BatchGetItem",                                  // lookup (miss): token + userName claim
        "TransactWriteItems",                            // create: the token checked in the write
        "BatchGetItem",                                  // lookup (hit)
        "BatchGetItem",                                  // get: token + user
        "BatchGetItem,TransactWriteItems",               // PUT: read, then the versioned write
        "BatchGetItem,TransactWriteItems,Query,PutItem", // deactivation: + session index, receipt
        "BatchGetItem",                                  // get
        "BatchGetItem,TransactWriteItems",               // reactivation
        "BatchGetItem",                                  // get
        "GetItem",                                       // get of an id that is not one of ours
        "",                                              // a malformed token: nothing
    ];
    let ops: Vec<&str> = costs.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(ops, expected);
    assert_eq!(costs[10].0, 0, "a malformed token is refused before any DynamoDB request");
    // Every log line of a request carries the Lambda request id.
    let with_id =
        lines.iter().filter(|l| l["span"]["request_id"].as_str().is_some_and(|r| r.starts_with("req-"))).count();
    assert!(with_id >= costs.len(), "request ids in logs: {with_id}");
    assert!(lines.iter().all(|l| !l.to_string().contains(&token)), "the token never reaches the logs");

    // Memory over many requests: Okta's four shapes in turn (lookup, get, PATCH, create), each
    // timed, and its cost line read back, for the per-shape figures.
    let mut timed: Vec<(&'static str, f64)> = Vec::new();
    let mark = log_lines(logs.path()).len();
    let t0 = Instant::now();
    for i in 0..SUSTAINED_REQUESTS {
        let (method, path, body, want) = match i % 4 {
            0 => ("GET", lookup.replace("Lambda.User", "lambda.user"), None, 200),
            1 => ("GET", format!("/scim/v2/Users/{id}"), None, 200),
            2 => (
                "PATCH",
                format!("/scim/v2/Users/{id}"),
                Some(json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations":[{"op":"replace","value":{"displayName":format!("Lambda {i}")}}]})),
                200,
            ),
            _ => (
                "POST",
                "/scim/v2/Users".to_string(),
                Some(json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName":format!("load.{i}@atko.com"),"active":true})),
                201,
            ),
        };
        let t = Instant::now();
        let (status, _, v) = call(method, path, body).await;
        timed.push((["lookup", "get", "patch", "create"][i % 4], t.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(status, want, "{method} request {i}: {v}");
    }
    let mean_ms = t0.elapsed().as_secs_f64() * 1000.0 / SUSTAINED_REQUESTS as f64;
    let rss_kb = peak_rss_kb(pid);

    // The shapes the loop leaves out: PUT, deactivation (and reactivation), and a tenant still on
    // a token issued before tokens named their tenant (its lookup and create).
    let (_, legacy) = legacy_token(&store).await;
    call_as(&legacy, "GET", "/scim/v2/Users?count=1".into(), None).await; // its first use
    let rounds = 20;
    let (_, _, mut current) = call("GET", format!("/scim/v2/Users/{id}"), None).await;
    for i in 0..rounds {
        current["displayName"] = json!(format!("Put {i}"));
        let t = Instant::now();
        let (status, _, put) = call("PUT", format!("/scim/v2/Users/{id}"), Some(current.clone())).await;
        timed.push(("put", t.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(status, 200, "{put}");
        for (shape, active) in [("deactivate", false), ("reactivate", true)] {
            let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":active}}]});
            let t = Instant::now();
            let (status, _, p) = call("PATCH", format!("/scim/v2/Users/{id}"), Some(patch)).await;
            timed.push((shape, t.elapsed().as_secs_f64() * 1000.0));
            assert_eq!(status, 200, "{p}");
        }
        let t = Instant::now();
        let (status, _, _) = call_as(&legacy, "GET", lookup.replace("Lambda.User", &format!("old.{i}")), None).await;
        timed.push(("lookup, old token", t.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(status, 200);
        let body = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName":format!("old.{i}@atko.com"),"active":true});
        let t = Instant::now();
        let (status, _, v) = call_as(&legacy, "POST", "/scim/v2/Users".into(), Some(body)).await;
        timed.push(("create, old token", t.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(status, 201, "{v}");
    }
    let cost_lines: Vec<Value> =
        log_lines(logs.path())[mark..].iter().filter(|l| l["fields"]["message"] == "request cost").cloned().collect();
    // One cost line per request: the loop, the old token's first use and the read before the PUTs
    // (skipped), then the rest.
    let n = SUSTAINED_REQUESTS;
    let lines: Vec<&Value> = cost_lines[..n].iter().chain(&cost_lines[n + 2..]).collect();
    assert_eq!(lines.len(), timed.len(), "one cost line per timed request");
    let shape_line = shape_figures(&timed, &lines);
    for (shape, want) in [
        ("lookup", 1),
        ("get", 1),
        ("create", 1),
        ("patch", 2),
        ("put", 2),
        ("deactivate", 4),
        ("reactivate", 2),
        ("lookup, old token", 2),
        ("create, old token", 2),
    ] {
        let f = shape_line.iter().find(|f| f.name == shape).unwrap();
        let costlier: Vec<&str> = timed
            .iter()
            .zip(&lines)
            .filter(|((s, _), l)| *s == shape && l["fields"]["dynamodb_requests"].as_u64() > Some(want))
            .map(|(_, l)| l["fields"]["operations"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(f.most, want, "{shape}: {f:?}; costlier requests: {costlier:?}");
        // Which request takes a lease depends on where the minute turns: any shape may. A
        // create with a token of the new kind then reads its token first.
        let lease = if shape == "create" { 2 } else { 1 };
        assert!(f.most_with_lease.is_none_or(|m| m == want + lease), "{shape}: {f:?}; costlier requests: {costlier:?}");
    }
    for f in &shape_line {
        println!(
            "LAMBDA_SHAPE function=scim-users shape={} requests={} mean_ms={:.3} read_units={:.3} write_units={:.3} samples={}",
            f.name.replace(", ", "/").replace(' ', "_"),
            f.most,
            f.mean_ms,
            f.read_units,
            f.write_units,
            f.samples
        );
    }

    drop(child);
    println!(
        "LAMBDA_FIGURES function=scim-users bin={bin} first_response_ms={} peak_rss_kb={rss_kb} sustained={SUSTAINED_REQUESTS} mean_ms={mean_ms:.2} dynamodb_requests={}",
        first_response.as_millis(),
        costs.iter().map(|c| c.0.to_string()).collect::<Vec<_>>().join(",")
    );
}

/// A new tenant of `store` whose token is one issued before tokens named their tenant (no routing
/// part), as a tenant from then still holds.
async fn legacy_token(store: &butterfly_aws::DynamoStore) -> (butterfly_core::ids::TenantId, String) {
    use butterfly_core::ports::TokenStore;
    let (tenant, _) = butterfly_tests::tenant_with_token(Arc::new(store.clone()), "Legacy Co").await;
    let slots = store.token_slots(&tenant.id).await.unwrap().unwrap();
    let old = butterfly_core::token::ScimToken::generate_legacy().unwrap();
    let record = butterfly_core::token::TokenRecord {
        hash: old.hash(),
        tenant: tenant.id.clone(),
        display_prefix: old.display_prefix(),
        created: butterfly_core::clock::Timestamp(0),
        last_used: None,
        expires: None,
        replaces: None,
    };
    store.install_token(&record, Some(&slots)).await.unwrap();
    (tenant.id, old.secret().expose().to_string())
}

/// One Okta shape's figures over its samples.
#[derive(Debug)]
struct Shape {
    name: &'static str,
    /// The most DynamoDB requests one request of it made that took no quota lease.
    most: u64,
    /// The most one request of it made that took a lease (the shared counter's `UpdateItem`,
    /// once per 50 requests and minute; a create then also reads its token first, as the
    /// counter is asked only once a token is proven).
    most_with_lease: Option<u64>,
    mean_ms: f64,
    /// Mean read and write units DynamoDB reported.
    read_units: f64,
    write_units: f64,
    samples: usize,
}

fn shape_figures(timed: &[(&'static str, f64)], lines: &[&Value]) -> Vec<Shape> {
    let mut out: Vec<Shape> = Vec::new();
    for ((name, ms), line) in timed.iter().zip(lines) {
        let f = &line["fields"];
        let leased = f["operations"].as_str().unwrap_or("").split(',').any(|o| o == "UpdateItem");
        let requests = f["dynamodb_requests"].as_u64().unwrap();
        let (r, w) = (f["read_units"].as_f64().unwrap_or(0.0), f["write_units"].as_f64().unwrap_or(0.0));
        let i = match out.iter().position(|o| o.name == *name) {
            Some(i) => i,
            None => {
                out.push(Shape {
                    name,
                    most: 0,
                    most_with_lease: None,
                    mean_ms: 0.0,
                    read_units: 0.0,
                    write_units: 0.0,
                    samples: 0,
                });
                out.len() - 1
            }
        };
        let o = &mut out[i];
        if leased {
            o.most_with_lease = Some(o.most_with_lease.unwrap_or(0).max(requests));
        } else {
            o.most = o.most.max(requests);
        }
        (o.mean_ms, o.read_units, o.write_units, o.samples) =
            (o.mean_ms + ms, o.read_units + r, o.write_units + w, o.samples + 1);
    }
    for o in &mut out {
        let n = o.samples as f64;
        (o.mean_ms, o.read_units, o.write_units) = (o.mean_ms / n, o.read_units / n, o.write_units / n);
    }
    out
}

/// The function binary with a clean environment: the Runtime API, the emulators, the table.
fn function_command(bin: &str, runtime: &RuntimeApi, table: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "scim-users")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL_DYNAMODB", butterfly_tests::aws::dynamodb_endpoint())
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", secretsmanager_endpoint())
        .env("TABLE_NAME", table)
        .env("SECRETS_PREFIX", "butterfly/test");
    c
}

fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Stops the function process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Only this function is given the cursor key (template.yaml); without it, it refuses to start
/// and says which variable is missing, instead of paging with an unsigned or random key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_without_the_cursor_key() {
    let (store, _) = dynamo_store("lambda-nokey").await;
    let runtime = RuntimeApi::start().await;
    let bin = std::env::var("SCIM_USERS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_scim-users").to_string());
    let mut child =
        function_command(&bin, &runtime, store.table()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the function kept running without a cursor key");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!status.success());
    assert!(text.contains("CURSOR_KEY_SECRET_ID"), "{text}");
}
