//! The `token-rotation` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_serves_through_the_lambda_runtime() {
    // TOKEN_ROTATION_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("TOKEN_ROTATION_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_token-rotation").to_string());
    let f = LambdaProcess::start(&bin, "token-rotation").await;
    let (status, h, v, _) = f.call("GET", "/admin/scim-token", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!((status, v["error"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(h["cache-control"], "no-store");
    let (status, _, _, _) =
        f.call("POST", "/admin/scim-token", &[("content-type", "application/json")], Some("{}")).await;
    assert_eq!(status, 401);
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("GET", "/admin/scim-token"),
            &[("cookie", "__Host-bfy_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            None,
            401,
        )
        .await;
    f.print_figures("token-rotation", &bin, first_response, mean_ms);
}
