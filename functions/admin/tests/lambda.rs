//! The `admin` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_serves_through_the_lambda_runtime() {
    // ADMIN_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("ADMIN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_admin").to_string());
    let f = LambdaProcess::start(&bin, "admin").await;
    let (status, h, v, _) = f.call("GET", "/admin/users", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!((status, v["error"].as_str()), (401, Some("unauthenticated")));
    assert_eq!(h["cache-control"], "no-store");
    for (m, p) in [("GET", "/admin/sso"), ("PUT", "/admin/sso"), ("GET", "/admin/audit")] {
        assert_eq!(f.call(m, p, &[], Some("{}")).await.0, 401, "{m} {p}");
    }
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("GET", "/admin/users"),
            &[("cookie", "__Host-bfy_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            None,
            401,
        )
        .await;
    f.print_figures("admin", &bin, first_response, mean_ms);
}
