//! A real browser signs in: headless Chromium (Debian's) driven by playwright-core opens the
//! hosted login page, types an email, submits the provider's login form (oidc-provider 8.8.1)
//! and lands on the signed-in page showing the user and the role. The screenshot is kept in
//! test-artifacts/sso-signed-in.png.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::sso_settings::SsoSettingsInput;
use butterfly_core::token::Secret;
use butterfly_tests::op::{client_spec, test_op_dir, TestOp};
use butterfly_tests::TestApp;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_through_the_login_page() {
    let app = TestApp::spawn().await;
    let op = TestOp::start(
        0,
        json!([{"prefix": "/oauth2/default", "kid": "browser-key", "clients": [client_spec("bfy", "bfy-secret", &app.origin)]}]),
    )
    .await;
    app.sso
        .configure(
            &app.tenant,
            SsoSettingsInput {
                issuer: op.issuer("/oauth2/default"),
                client_id: "bfy".into(),
                client_secret: Some(Secret::new("bfy-secret")),
                domains: Some("browser.test".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("sso-signed-in.png");
    let _ = std::fs::remove_file(&shot);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(test_op_dir().join("browser.mjs"))
            .arg(&app.origin)
            .arg("Rosa.Parks@browser.test")
            .arg(&shot)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run took over 90 s")
    .expect("run node browser.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(seen["url"], format!("{}/", app.origin));
    assert_eq!(seen["email"], "Rosa.Parks@browser.test");
    assert_eq!(seen["role"], "read_only");
    assert_eq!(seen["tenant"], "Acme");
    assert_eq!(seen["who"], "Rosa Tester");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"), "screenshot missing or not a PNG");
}
