//! The `authorize-callback` binary under the Runtime API emulator with Secrets Manager out of
//! reach at init: it reads the deployment's server secret there, so it refuses to start, with
//! one clear log line (`docs/reliability.md`, "Lambda failure modes"). The callback itself with
//! Secrets Manager unreachable (a clear page, no session) is `tests/tests/secrets_unreachable.rs`:
//! this binary's outbound client only talks https to public addresses, so no loopback provider
//! can complete a sign-in through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_tests::lambda_runtime::{assert_refused, start_expecting_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_unreachable_at_init_stops_the_function_with_one_line() {
    let bin = std::env::var("AUTHORIZE_CALLBACK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authorize-callback").to_string());
    let secret = butterfly_tests::aws::server_secret("authorize-callback-init").await;
    // A loopback port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let seen = start_expecting_exit(
        &bin,
        "authorize-callback",
        &[("CURSOR_KEY_SECRET_ID", secret.as_str()), ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.as_str())],
    )
    .await;
    assert_refused(
        "authorize-callback: Secrets Manager unreachable at init",
        seen,
        &format!("cannot read the secret {secret}: Secrets Manager could not be reached"),
    );
}
