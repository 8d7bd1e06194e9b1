//! The `session` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_serves_through_the_lambda_runtime() {
    // SESSION_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("SESSION_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_session").to_string());
    let f = LambdaProcess::start(&bin, "session").await;
    let (status, h, v, cookies) = f.call("GET", "/me", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!((status, v["error"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(h["cache-control"], "no-store");
    assert!(cookies.iter().any(|c| c.starts_with("__Host-bfy_session=") && c.contains("Secure")), "{cookies:?}");
    let (status, h, _, _) =
        f.call("GET", "/", &[("cookie", "__Host-bfy_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")], None).await;
    assert_eq!((status, h.get("location").map(String::as_str)), (303, Some("/login")));
    let (status, h, _, _) = f.call("POST", "/logout", &[], None).await;
    assert_eq!((status, h.get("location").map(String::as_str)), (303, Some("/login?signed_out=1")));
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("GET", "/me"),
            &[("cookie", "__Host-bfy_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            None,
            401,
        )
        .await;
    f.print_figures("session", &bin, first_response, mean_ms);
}
