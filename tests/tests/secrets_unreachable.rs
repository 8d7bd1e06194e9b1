//! Secrets Manager unreachable at the sign-in callback (`docs/reliability.md`, "Lambda failure
//! modes"): the callback router of the `authorize-callback` function, with tenants' client
//! secrets in Secrets Manager (moto) behind a proxy that drops every connection, answers a
//! clear page in our words, starts no session, creates no user and never reaches the token
//! endpoint; once Secrets Manager answers again the next sign-in goes through to the provider.
//! (The Lambda binary itself cannot be driven here: its outbound client talks https to public
//! addresses only, so no loopback provider can complete a sign-in through it.)

use butterfly_aws::SecretsManagerStore;
use butterfly_core::clock::SystemClock;
use butterfly_core::ports::UserStore;
use butterfly_core::sso::SsoPolicy;
use butterfly_core::sso_settings::SsoSettingsService;
use butterfly_tests::aws::{local_config, secretsmanager_endpoint};
use butterfly_tests::fault_proxy::{FaultProxy, Mode};
use butterfly_tests::hostile::FakeIdp;
use butterfly_tests::op::{location, set_cookies, Browser};
use butterfly_tests::TestApp;
use reqwest::StatusCode;
use std::sync::Arc;

fn secrets_over(client: aws_sdk_secretsmanager::Client, prefix: &str) -> SecretsManagerStore {
    SecretsManagerStore::new(client, prefix.to_string())
}

/// Starts a sign-in at the login page and returns the callback URL with its state.
async fn start_sign_in(app: &TestApp, b: &Browser) -> String {
    let start = b.post_form(&format!("{}/login", app.origin), &[("email", "ada@acme.test")]).await;
    let authorize = location(&start).unwrap_or_else(|| panic!("no redirect: {}", start.status()));
    let state = url::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
    format!("{}/sso/callback?code=abc&state={state}", app.origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_unreachable_at_the_callback_is_a_clear_page_and_no_session() {
    let proxy = FaultProxy::start(&secretsmanager_endpoint(), 13, 0.0).await;
    let prefix = format!(
        "butterfly/test/callback-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    // The app reads client secrets through the proxy, as a cold instance would (nothing cached).
    let proxied = aws_sdk_secretsmanager::Client::new(&local_config(&proxy.url()).await);
    let app = TestApp::spawn_with_secrets(Arc::new(secrets_over(proxied, &prefix))).await;
    // An admin saved the SSO settings (and the secret) earlier, from another instance.
    let idp = FakeIdp::start().await;
    idp.serve_good("/t");
    let direct = aws_sdk_secretsmanager::Client::new(&local_config(&secretsmanager_endpoint()).await);
    let http = butterfly_outbound::GuardedHttp::new(
        &butterfly_outbound::DnsServers::At(app.dns.addr),
        true,
        butterfly_outbound::Limits::default(),
    )
    .unwrap();
    let admin_side = SsoSettingsService::new(
        app.store.clone(),
        Arc::new(secrets_over(direct, &prefix)),
        Arc::new(butterfly_outbound::OidcProvider::new(http)),
        Arc::new(SystemClock),
        SsoPolicy { allow_loopback_http: true, ..SsoPolicy::default() },
    );
    admin_side
        .configure(
            &app.tenant,
            butterfly_tests::sso_settings(idp.issuer("/t"), "butterfly", "the client secret", "acme.test"),
        )
        .await
        .unwrap();

    // Secrets Manager goes away; a user comes back from the provider.
    proxy.set_mode(Mode::Down);
    let b = Browser::new();
    let callback = start_sign_in(&app, &b).await;
    let r = b.get(&callback).await;
    let status = r.status();
    let cookies = set_cookies(r.headers());
    let page = r.text().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(page.contains("Sign-in failed") && page.contains("Please try again"), "{page}");
    for leak in ["Secrets Manager", "GetSecretValue", "dispatch", "127.0.0.1", &prefix] {
        assert!(!page.contains(leak), "the page leaks {leak:?}: {page}");
    }
    assert!(
        cookies.iter().all(|c| !c.starts_with("bfy_session=") || c.contains("Max-Age=0")),
        "no session cookie: {cookies:?}"
    );
    assert!(proxy.report().dropped_while_down > 0, "the callback did ask Secrets Manager");
    assert_eq!(idp.hits("/t/token"), 0, "the code was not redeemed without the secret");
    assert_eq!(app.store.count_users(&app.tenant).await.unwrap(), 0, "no user was created");
    let me = b.get(&format!("{}/me", app.origin)).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "no session");

    // Back: the next sign-in reaches the provider's token endpoint (which this fake provider
    // does not serve: the page then says so, as for any provider failure).
    proxy.set_mode(Mode::Faults);
    let b = Browser::new();
    let callback = start_sign_in(&app, &b).await;
    let r = b.get(&callback).await;
    assert_ne!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(idp.hits("/t/token"), 1, "the code was redeemed once Secrets Manager answered");
}
