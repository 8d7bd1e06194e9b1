//! The `console` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, sends a browser
//! without a session to the sign-in page, serves its static files and pages with their security
//! headers, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_serves_through_the_lambda_runtime() {
    // CONSOLE_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("CONSOLE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_console").to_string());
    let f = LambdaProcess::start(&bin, "console").await;
    let (status, h, _, _) = f.call("GET", "/console", &[], None).await;
    let first_response = f.started.elapsed();
    assert_eq!(status, 303);
    assert_eq!(h["location"], "/login?return_to=%2Fconsole");
    assert_eq!(h["cache-control"], "no-store");
    for p in ["/console/sso", "/console/scim", "/console/team", "/console/audit", "/console/audit.csv"] {
        assert_eq!(f.call("GET", p, &[], None).await.0, 303, "{p}");
    }
    let (status, h, _, _) = f.call("POST", "/console/scim/token", &[], Some("csrf=x")).await;
    assert_eq!((status, h["location"].as_str()), (303, "/login?return_to=%2Fconsole"));
    for (p, ct) in [("/console/static/console.css", "text/css"), ("/console/static/console.js", "text/javascript")] {
        let (status, h, _, _) = f.call("GET", p, &[], None).await;
        assert_eq!(status, 200, "{p}");
        assert!(h["content-type"].starts_with(ct), "{p}: {h:?}");
    }
    f.assert_logs_carry_request_id();
    // Memory over many requests: a page that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("GET", "/console/team"),
            &[("cookie", "__Host-bfy_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            None,
            303,
        )
        .await;
    f.print_figures("console", &bin, first_response, mean_ms);
}
