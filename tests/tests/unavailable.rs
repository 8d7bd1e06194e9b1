//! When DynamoDB cannot be reached (or throttles), clients get a SCIM 503 with an integer
//! `Retry-After` — which Okta honours — never a 500.

use aws_sdk_dynamodb::config::{Credentials, Region};
use butterfly_aws::DynamoStore;
use butterfly_core::clock::SystemClock;
use butterfly_core::scim::cursor::CursorKey;
use butterfly_tests::expect_error;
use reqwest::StatusCode;
use std::sync::Arc;

#[tokio::test]
async fn an_unreachable_table_is_a_503_with_retry_after() {
    // A loopback port nobody listens on: every request fails to connect.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(&endpoint)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let store = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), "unreachable");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = butterfly_api::scim_app(butterfly_api::scim_state(
        Arc::new(store),
        Arc::new(SystemClock),
        CursorKey::new([1; 32]),
        butterfly_api::scim::BaseUrl::Fixed(origin.clone().into()),
        butterfly_core::limit::QuotaPolicy::default(),
    ));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let token = butterfly_core::token::ScimToken::generate_for(&butterfly_core::ids::TenantId::generate()).unwrap();
    let r = reqwest::Client::new()
        .get(format!("{origin}/scim/v2/Users?filter=userName%20eq%20%22a%40b.io%22"))
        .header("Authorization", format!("Bearer {}", token.secret().expose()))
        .send()
        .await
        .unwrap();
    let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let v = expect_error(r, StatusCode::SERVICE_UNAVAILABLE, None).await;
    // Our words only: not the operation, the SDK's error or the endpoint (they go to the log).
    let detail = v["detail"].as_str().unwrap_or("");
    for leak in ["Item", "dispatch", "Dispatch", "127.0.0.1", &endpoint] {
        assert!(!detail.contains(leak), "the 503 detail leaks {leak:?}: {detail}");
    }
    let secs: u32 = retry_after.expect("Retry-After").parse().expect("integer seconds");
    assert!(secs >= 1);
}
