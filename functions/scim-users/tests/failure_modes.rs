//! The `scim-users` binary under the Runtime API emulator when things fail
//! (`docs/reliability.md`, "Lambda failure modes"): DynamoDB unreachable mid-run (a proxy in
//! front of DynamoDB Local dropping every connection) gives Okta a SCIM 503 with an integer
//! `Retry-After`, and the same instance serves again once DynamoDB is back; a missing or bad
//! environment variable, or an unreadable server secret, stops the init with one clear log line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_aws::DynamoStore;
use butterfly_core::ports::UserStore;
use butterfly_tests::aws::{local_config, server_secret};
use butterfly_tests::fault_proxy::{FaultProxy, Mode};
use butterfly_tests::lambda_runtime::{assert_refused, start_expecting_exit, LambdaProcess};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn bin() -> String {
    std::env::var("SCIM_USERS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_scim-users").to_string())
}

/// The function reaching DynamoDB Local through a fault proxy (no faults yet), with a tenant and
/// its SCIM token written straight to the function's table.
struct Behind {
    proxy: FaultProxy,
    f: LambdaProcess,
    store: DynamoStore,
    tenant: butterfly_core::tenant::Tenant,
    /// `Bearer {token}`.
    auth: String,
}

async fn behind_a_proxy(label: &str, seed: u64) -> Behind {
    let proxy = FaultProxy::start(&butterfly_tests::aws::dynamodb_endpoint(), seed, 0.0).await;
    let secret = server_secret(&format!("scim-users-{label}")).await;
    let url = proxy.url();
    let f = LambdaProcess::start_with(
        &bin(),
        "scim-users",
        &[("AWS_ENDPOINT_URL_DYNAMODB", url.as_str()), ("CURSOR_KEY_SECRET_ID", secret.as_str())],
    )
    .await;
    let store = DynamoStore::new(
        butterfly_aws::dynamodb_client(&local_config(&butterfly_tests::aws::dynamodb_endpoint()).await, None),
        f.table.clone(),
    );
    let (tenant, token) = butterfly_tests::tenant_with_token(Arc::new(store.clone()), &format!("{label} Co")).await;
    Behind { proxy, f, store, tenant, auth: format!("Bearer {token}") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unreachable_mid_run_is_a_503_and_the_instance_recovers() {
    let Behind { proxy, f, store, tenant, auth } = behind_a_proxy("faults", 13).await;
    let headers = [("authorization", auth.as_str()), ("content-type", "application/scim+json")];
    let body = |n: u32| {
        json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":format!("down.{n}@atko.example"),
               "name":{"givenName":"Down","familyName":"Test"},"externalId":format!("00udown{n}"),"active":true})
        .to_string()
    };

    // Up: a user.
    let (status, _, created, _) = f.call("POST", "/scim/v2/Users", &headers, Some(&body(1))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // Down: every route Okta uses answers 503 with an integer Retry-After and a SCIM error in
    // our words, within the SDK's retries (bounded).
    proxy.set_mode(Mode::Down);
    let down_at = Instant::now();
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations":[{"op":"replace","value":{"active":false}}]})
    .to_string();
    let lookup = "/scim/v2/Users?filter=userName%20eq%20%22down.1%40atko.example%22";
    for (method, path, b) in [
        ("GET", lookup.to_string(), None),
        ("GET", format!("/scim/v2/Users/{id}"), None),
        ("POST", "/scim/v2/Users".to_string(), Some(body(2))),
        ("PATCH", format!("/scim/v2/Users/{id}"), Some(patch.clone())),
        ("DELETE", format!("/scim/v2/Users/{id}"), None),
    ] {
        let t0 = Instant::now();
        let (status, h, v, _) = f.call(method, &path, &headers, b.as_deref()).await;
        assert_eq!(status, 503, "{method} {path}: {v}");
        let secs: u32 = h.get("retry-after").expect("Retry-After").parse().expect("integer seconds");
        assert!(secs >= 1);
        assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{v}");
        assert_eq!(v["status"], "503");
        let text = v.to_string();
        for leak in ["127.0.0.1", "dispatch", "Dispatch", "Item", "Query", "connection"] {
            assert!(!text.contains(leak), "{method} {path}: the answer leaks {leak:?}: {text}");
        }
        assert!(t0.elapsed().as_secs() < 25, "{method} {path}: {:?} to answer", t0.elapsed());
    }
    let outage = down_at.elapsed();
    assert!(proxy.report().dropped_while_down > 0, "the function did try DynamoDB");
    // What DynamoDB said is in the function's log (with the request id), not in the answers.
    assert!(
        f.log_lines().iter().any(|l| l["fields"]["message"] == "store unavailable"
            && l["span"]["request_id"].as_str().is_some_and(|r| !r.is_empty())),
        "a log line per unavailable request"
    );

    // Back: the same instance serves; Okta's retries converge (the create that failed is made
    // once, the deactivation applies).
    proxy.set_mode(Mode::Faults);
    let (status, _, v, _) = f.call("GET", &format!("/scim/v2/Users/{id}"), &headers, None).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v, _) = f.call("POST", "/scim/v2/Users", &headers, Some(&body(2))).await;
    assert_eq!(status, 201, "{v}");
    let (status, _, v, _) = f.call("PATCH", &format!("/scim/v2/Users/{id}"), &headers, Some(&patch)).await;
    assert_eq!((status, v["active"].as_bool()), (200, Some(false)), "{v}");
    let (status, _, v, _) = f.call("GET", lookup, &headers, None).await;
    assert_eq!((status, v["totalResults"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(store.count_users(&tenant.id).await.unwrap(), 2, "exactly the two users Okta created");
    println!(
        "LAMBDA_FAILURE_FIGURES case=dynamodb-down requests_down=5 answered_503=5 outage_seconds={:.1} dropped_connections={} recovered=true",
        outage.as_secs_f64(),
        proxy.report().dropped_while_down
    );
}

/// DynamoDB accepting connections and never answering (a hung connection, a network black
/// hole): the SDK's defaults bounded only the connect, so the request hung until the function's
/// own timeout and Okta got API Gateway's error. Now each call gives up after its operation
/// timeout and Okta gets our 503 with `Retry-After`, well within the function's 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_that_never_answers_is_a_503_before_the_function_times_out() {
    use butterfly_tests::fault_proxy::Fault;
    let Behind { proxy, f, auth, .. } = behind_a_proxy("hung", 17).await;
    let headers = [("authorization", auth.as_str())];
    let lookup = "/scim/v2/Users?filter=userName%20eq%20%22hung%40atko.example%22";
    let (status, _, v, _) = f.call("GET", lookup, &headers, None).await;
    assert_eq!(status, 200, "{v}");
    // Every call from now on is held back for a minute.
    proxy.set_kinds(&[Fault::Slow]);
    proxy.set_slow(std::time::Duration::from_secs(60));
    proxy.set_fraction(1.0);
    let t0 = Instant::now();
    let (status, h, v, _) = f.call("GET", lookup, &headers, None).await;
    let took = t0.elapsed();
    assert_eq!(status, 503, "{v}");
    assert!(h.get("retry-after").and_then(|s| s.parse::<u32>().ok()).is_some(), "{h:?}");
    assert!(
        took >= butterfly_aws::ATTEMPT_TIMEOUT && took < std::time::Duration::from_secs(9),
        "answered after {took:?}: the function's timeout is 10 s"
    );
    println!("LAMBDA_FAILURE_FIGURES case=dynamodb-hung answered_503_after_ms={}", took.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_setting_stops_the_init_with_one_clear_line() {
    let secret = server_secret("scim-users-init").await;
    let s = secret.as_str();
    let b = bin();
    let run = |env: Vec<(&'static str, String)>| {
        let b = b.clone();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            start_expecting_exit(&b, "scim-users", &env).await
        }
    };
    let with_secret = |mut v: Vec<(&'static str, String)>| {
        v.push(("CURSOR_KEY_SECRET_ID", s.to_string()));
        v
    };
    assert_refused(
        "TABLE_NAME missing",
        run(with_secret(vec![("TABLE_NAME", String::new())])).await,
        "environment variable TABLE_NAME is required",
    );
    assert_refused(
        "SECRETS_PREFIX blank",
        run(with_secret(vec![("SECRETS_PREFIX", "  ".into())])).await,
        "SECRETS_PREFIX is required",
    );
    assert_refused(
        "SCIM_RATE_LIMIT_PER_MINUTE not a number",
        run(with_secret(vec![("SCIM_RATE_LIMIT_PER_MINUTE", "lots".into())])).await,
        "SCIM_RATE_LIMIT_PER_MINUTE must be a whole number",
    );
    assert_refused(
        "CURSOR_KEY_SECRET_ID missing",
        run(vec![]).await,
        "environment variable CURSOR_KEY_SECRET_ID is required",
    );
    assert_refused(
        "CURSOR_KEY_SECRET_ID names no secret",
        run(vec![("CURSOR_KEY_SECRET_ID", "butterfly/test/no-such-secret".into())]).await,
        "cannot read the secret butterfly/test/no-such-secret: ResourceNotFoundException: ",
    );
    // And not the SDK's debug dump of the answer.
    let (status, lines, polled) =
        start_expecting_exit(&b, "scim-users", &[("CURSOR_KEY_SECRET_ID", "butterfly/test/no-such-secret")]).await;
    assert!(lines.iter().all(|l| l.len() < 400 && !l.contains("SdkBody")), "{lines:?}");
    assert!(status.is_some() && !polled);
}
