//! The `domain-lookup` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_lookup_serves_through_the_lambda_runtime() {
    // DOMAIN_LOOKUP_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("DOMAIN_LOOKUP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_domain-lookup").to_string());
    let f = LambdaProcess::start(&bin, "domain-lookup").await;
    // The hosted login page, as HTML, never cached.
    let (status, h, body, _) = f.call("GET", "/login", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!(status, 200);
    assert!(h["content-type"].starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(body.as_str().unwrap().contains("action=\"/login\""));
    // An unknown domain: a clear answer, no tenant named.
    let (status, _, v, cookies) = f
        .call("POST", "/sso/lookup", &[("content-type", "application/json")], Some(r#"{"email":"ann@unknown.test"}"#))
        .await;
    assert_eq!((status, v["sso"].as_bool()), (200, Some(false)), "{v}");
    assert!(cookies.is_empty());
    let (status, _, v, _) = f.call("POST", "/sso/lookup", &[], Some("not json")).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")));
    // IdP-initiated with an unknown issuer: refused.
    let (status, _, _, _) = f.call("GET", "/sso/initiate?iss=https%3A%2F%2Funknown.okta.com", &[], None).await;
    assert_eq!(status, 400);
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("POST", "/sso/lookup"),
            &[("content-type", "application/json")],
            Some(r#"{"email":"someone@unknown.example"}"#),
            200,
        )
        .await;
    f.print_figures("domain-lookup", &bin, first_response, mean_ms);
}

/// On Lambda the per-address limit keys on API Gateway's source IP: one address over its
/// limit gets 429 with an integer Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_its_limit_gets_429() {
    let bin = std::env::var("DOMAIN_LOOKUP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_domain-lookup").to_string());
    let f = LambdaProcess::start_with(&bin, "domain-lookup", &[("ANONYMOUS_LIMIT_PER_MINUTE", "60")]).await;
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..30 {
        let (status, h, _, _) = f
            .call("POST", "/sso/lookup", &[("content-type", "application/json")], Some(r#"{"email":"a@unknown.test"}"#))
            .await;
        statuses.push(status);
        if status == 429 {
            retry = h.get("retry-after").cloned();
        }
    }
    assert!(statuses.iter().filter(|s| **s == 200).count() <= 8, "{statuses:?}");
    assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok_and(|n| n >= 1)), "integer Retry-After");
}
