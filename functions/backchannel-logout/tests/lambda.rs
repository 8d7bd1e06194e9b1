//! The `backchannel-logout` binary run as on AWS Lambda: a local Runtime API emulator feeds it API Gateway
//! v2 events, DynamoDB Local and moto stand behind it. Checks that it starts, answers its routes
//! with the right statuses, headers and cookies, and logs JSON with the Lambda request id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{LambdaProcess, SUSTAINED_REQUESTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_serves_through_the_lambda_runtime() {
    // BACKCHANNEL_LOGOUT_BIN runs another build of the function (the release bootstrap from its zip).
    let bin = std::env::var("BACKCHANNEL_LOGOUT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_backchannel-logout").to_string());
    let f = LambdaProcess::start(&bin, "backchannel-logout").await;
    let (status, h, v, _) = f
        .call(
            "POST",
            "/sso/backchannel-logout",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some("logout_token=not.a.jwt"),
        )
        .await;
    let first_response = f.started.elapsed();
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    assert_eq!(h["cache-control"], "no-store");
    let (status, _, _, _) = f
        .call(
            "POST",
            "/sso/universal-logout/00000000-0000-4000-8000-000000000000",
            &[("authorization", "Bearer x")],
            Some("{}"),
        )
        .await;
    assert_eq!(status, 404);
    // The one endpoint per deployment (the OIN Wizard's URL): no tenant in the path, the JWT's
    // issuer names it; one that is not a JWT is refused with a Bearer challenge.
    let (status, h, v, _) = f
        .call(
            "POST",
            "/sso/universal-logout",
            &[("authorization", "Bearer x"), ("content-type", "application/json")],
            Some(r#"{"sub_id":{"format":"email","email":"a@b.test"}}"#),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_token")), "{v}");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h.get("www-authenticate").is_some_and(|w| w.starts_with("Bearer")), "{h:?}");
    f.assert_logs_carry_request_id();
    // Memory over many requests: the route that reads the table without a signed-in user.
    let mean_ms = f
        .sustain(
            SUSTAINED_REQUESTS,
            ("POST", "/sso/universal-logout/00000000-0000-4000-8000-000000000000"),
            &[("authorization", "Bearer x")],
            Some("{}"),
            404,
        )
        .await;
    f.print_figures("backchannel-logout", &bin, first_response, mean_ms);
}
