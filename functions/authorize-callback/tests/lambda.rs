//! The `authorize-callback` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_callback_serves_through_the_lambda_runtime() {
    // AUTHORIZE_CALLBACK_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("AUTHORIZE_CALLBACK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authorize-callback").to_string());
    let f = LambdaProcess::start(&bin, "authorize-callback").await;
    let (status, h, body, cookies) = f.call("GET", "/sso/callback?code=abc", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!(status, 400);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(body.as_str().unwrap().contains("no state"));
    assert!(cookies.iter().all(|c| !c.contains("bfy_session=") || c.contains("Max-Age=0")), "{cookies:?}");
    // A state never issued: the transaction lookup misses; the (empty) binding cookie is cleared
    // with the __Host- prefix Lambda always uses.
    let (status, _, _, cookies) =
        f.call("GET", "/sso/callback?code=abc&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &[], None).await;
    assert_eq!(status, 400);
    assert!(
        cookies.iter().any(|c| c.starts_with("__Host-bfy_tx_") && c.contains("Secure") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("GET", "/sso/callback?code=abc&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &[],
            None,
            400,
        )
        .await;
    f.print_figures("authorize-callback", &bin, first_response, mean_ms);
}
