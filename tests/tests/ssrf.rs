//! Attacks on the outbound side (issue: SSRF through the IdP's discovery document; one tenant's
//! IdP stalling every tenant). Each test is the attack as the security review ran it, against
//! the one guarded client and the OIDC adapter over it, with real peers on loopback: a
//! programmable hostile provider, a connection-counting listener, a DNS server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::sso::Issuer;
use butterfly_core::sso_settings::SsoSettingsInput;
use butterfly_core::token::Secret;
use butterfly_outbound::{DnsServers, FetchError, GuardedHttp, Limits, OidcProvider};
use butterfly_tests::dns::TestDns;
use butterfly_tests::hostile::{Answer, CountingListener, FakeIdp};
use butterfly_tests::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn client(dns: &TestDns, allow_loopback: bool, limits: Limits) -> GuardedHttp {
    GuardedHttp::new(&DnsServers::At(dns.addr), allow_loopback, limits).unwrap()
}

async fn get(c: &GuardedHttp, url: &str) -> Result<u16, FetchError> {
    c.get_json(&url::Url::parse(url).unwrap()).await.map(|r| r.status)
}

/// Internal addresses reached by name or by any spelling of an IP literal: refused before a
/// socket is opened (the listener counts no connection).
#[tokio::test]
async fn internal_addresses_are_refused_at_connect_time_by_name_and_by_literal() {
    let dns = TestDns::start(&["test"]).await;
    let target = CountingListener::start().await;
    let port = target.addr.port();
    dns.add_ip("loop.test", "127.0.0.1".parse().unwrap()).await;
    dns.add_ip("mapped.test", "::ffff:127.0.0.1".parse().unwrap()).await;
    dns.add_ip("metadata.test", "169.254.169.254".parse().unwrap()).await;
    dns.add_ip("private.test", "10.0.0.1".parse().unwrap()).await;
    dns.add_ip("nat64.test", "64:ff9b::a9fe:a9fe".parse().unwrap()).await;
    // A name with one public and one internal address is refused whole (no rebinding choice).
    dns.add_ip("mixed.test", "93.184.216.34".parse().unwrap()).await;
    dns.add_ip("mixed.test", "127.0.0.1".parse::<IpAddr>().unwrap()).await;
    let c = client(&dns, false, Limits::default());
    for url in [
        format!("https://loop.test:{port}/"),
        format!("https://mapped.test:{port}/"),
        format!("https://metadata.test:{port}/latest/meta-data"),
        format!("https://private.test:{port}/"),
        format!("https://nat64.test:{port}/"),
        format!("https://mixed.test:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
        format!("https://2130706433:{port}/"),
        format!("https://0x7f.1:{port}/"),
        format!("https://[::127.0.0.1]:{port}/"),
        format!("https://localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next".to_string(),
    ] {
        match get(&c, &url).await {
            Err(FetchError::Refused(_)) => {}
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(target.connections(), 0, "a refused fetch opened a connection");

    // The same loopback target is reachable only where loopback is allowed (the local stack).
    let local = client(&dns, true, Limits::default());
    let r = get(&local, &format!("https://loop.test:{port}/")).await;
    assert!(!matches!(r, Err(FetchError::Refused(_))), "{r:?}");
    assert_eq!(target.connections(), 1);
}

/// A response over the cap is an error, read no further; a peer that never answers times out.
#[tokio::test]
async fn bodies_are_capped_and_slow_peers_time_out() {
    let dns = TestDns::start(&["test"]).await;
    let idp = FakeIdp::start().await;
    idp.answer(
        "/big",
        Answer {
            status: 200,
            body: vec![b' '; 8 * 1024 * 1024],
            delay: Duration::ZERO,
            content_type: "application/json",
        },
    );
    idp.answer("/slow", Answer::json(&json!({})).delayed(Duration::from_secs(30)));
    let c = client(&dns, true, Limits { total_timeout: Duration::from_secs(1), ..Limits::default() });
    match get(&c, &format!("{}/big", idp.origin())).await {
        Err(FetchError::TooLarge(n)) => assert_eq!(n, 512 * 1024),
        other => panic!("{other:?}"),
    }
    let started = Instant::now();
    assert_eq!(get(&c, &format!("{}/slow", idp.origin())).await, Err(FetchError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
}

fn settings(issuer: &str) -> SsoSettingsInput {
    SsoSettingsInput {
        issuer: issuer.into(),
        client_id: "butterfly".into(),
        client_secret: Some(Secret::new("s3cret")),
        domains: Some("evil.test".into()),
        enabled: true,
    }
}

/// Every endpoint a discovery document names is checked before anything is fetched from it:
/// a hostile document pointing the key set (or the token endpoint) at an internal address, at
/// another port of loopback or at another host is refused, and nothing connects there.
#[tokio::test]
async fn discovery_endpoints_are_checked_before_anything_is_fetched() {
    let app = TestApp::spawn().await;
    let idp = FakeIdp::start().await;
    let runtime_api = CountingListener::start().await;
    let internal = format!("http://{}", runtime_api.addr);
    for (i, overrides) in [
        json!({ "jwks_uri": format!("{internal}/keys") }),
        json!({ "jwks_uri": "http://169.254.169.254/latest/meta-data/iam" }),
        json!({ "jwks_uri": "http://10.0.0.7/keys" }),
        json!({ "jwks_uri": format!("http://[::ffff:127.0.0.1]:{}/keys", idp.addr.port()) }),
        json!({ "jwks_uri": "https://elsewhere.test/keys" }),
        json!({ "token_endpoint": format!("{internal}/token") }),
        json!({ "userinfo_endpoint": "http://169.254.169.254/" }),
        json!({ "end_session_endpoint": "javascript:alert(1)" }),
        json!({ "revocation_endpoint": format!("{internal}/revoke") }),
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = format!("/evil{i}");
        idp.answer(
            &format!("{prefix}/.well-known/openid-configuration"),
            Answer::json(&idp.discovery(&prefix, overrides.clone())),
        );
        idp.answer(&format!("{prefix}/keys"), Answer::json(&json!({"keys": []})));
        let e = app.sso.configure(&app.tenant, settings(&idp.issuer(&prefix))).await.unwrap_err();
        assert!(e.to_string().contains("discovery"), "{overrides}: {e}");
        assert_eq!(idp.hits(&format!("{prefix}/keys")), 0, "{overrides}: the key set was fetched");
    }
    assert_eq!(runtime_api.connections(), 0, "an internal endpoint was fetched");
    // The same provider with its own endpoints is accepted.
    idp.serve_good("/good");
    app.sso.configure(&app.tenant, settings(&idp.issuer("/good"))).await.unwrap();
}

/// A failed discovery is remembered per issuer: anonymous requests naming that issuer after a
/// cold start do not make us fetch again and again.
#[tokio::test]
async fn failed_discovery_is_cached_per_issuer() {
    let idp = FakeIdp::start().await;
    idp.serve_good("/t");
    let app = TestApp::spawn().await;
    app.sso.configure(&app.tenant, settings(&idp.issuer("/t"))).await.unwrap();
    let tenant = app.tenant.clone();
    let token = app.token.clone();
    let dir = app.stop().await.unwrap();
    // The provider starts failing; a new instance starts with a cold cache.
    idp.answer("/t/.well-known/openid-configuration", Answer::status(500, "SECRET-INTERNAL-TEXT"));
    let before = idp.hits("/t/.well-known/openid-configuration");
    let app = TestApp::start(dir.path(), Some((tenant, token))).await;
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let iss = idp.issuer("/t");
    for _ in 0..40 {
        let r = c.get(format!("{}/sso/initiate", app.origin)).query(&[("iss", iss.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        let body = r.text().await.unwrap();
        assert!(!body.contains("SECRET-INTERNAL-TEXT"), "upstream text echoed: {body}");
    }
    let fetched = idp.hits("/t/.well-known/openid-configuration") - before;
    assert_eq!(fetched, 1, "40 anonymous requests made {fetched} discovery fetches");
    drop(dir);
}

/// A hostile provider's discovery document reaches no anonymous caller: a cold instance's
/// email lookup whose discovery fails (the document names another issuer, or carries a lure as
/// a key) answers our words and a retryable 503, never the document's text.
#[tokio::test]
async fn a_lookup_never_shows_what_discovery_said() {
    let idp = FakeIdp::start().await;
    idp.serve_good("/t");
    let app = TestApp::spawn().await;
    app.sso.configure(&app.tenant, settings(&idp.issuer("/t"))).await.unwrap();
    let (tenant, token) = (app.tenant.clone(), app.token.clone());
    let dir = app.stop().await.unwrap();
    let lure = "SECRET account suspended, call +1-555-0100";
    for hostile in
        [json!({ "issuer": format!("https://evil.example/{lure}") }), json!({ format!("{lure}_endpoint"): 1 })]
    {
        // A new instance starts with a cold provider cache, so the lookup runs discovery.
        idp.answer("/t/.well-known/openid-configuration", Answer::json(&idp.discovery("/t", hostile.clone())));
        let app = TestApp::start(dir.path(), Some((tenant.clone(), token.clone()))).await;
        let r = reqwest::Client::new()
            .post(format!("{}/sso/lookup", app.origin))
            .json(&json!({"email": "a@evil.test"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let retry_after = r.headers().contains_key("retry-after");
        let body = r.text().await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{hostile}: {body}");
        assert!(retry_after, "{hostile}: a 503 says when to retry");
        for leak in ["SECRET", "555", "evil.example", "discovery"] {
            assert!(!body.contains(leak), "{leak:?} echoed for {hostile}: {body}");
        }
        app.stop().await;
    }
    drop(dir);
}

/// Nothing the provider sent comes back to an anonymous caller: a Universal Logout whose key
/// set fetch fails answers our words only.
#[tokio::test]
async fn upstream_text_is_never_echoed() {
    let idp = FakeIdp::start().await;
    idp.serve_good("/t");
    let app = TestApp::spawn().await;
    app.sso.configure(&app.tenant, settings(&idp.issuer("/t"))).await.unwrap();
    idp.answer("/t/keys", Answer::status(502, "internal-host-10.1.2.3 stack trace SECRET"));
    // A token naming an unknown key makes us refetch the key set, which fails.
    let header = base64_url(&json!({"alg":"RS256","typ":"global-token-revocation+jwt","kid":"nope"}).to_string());
    let payload = base64_url(&json!({"iss": idp.issuer("/t"), "sub":"butterfly"}).to_string());
    let jwt = format!("{header}.{payload}.c2ln");
    for path in ["/sso/universal-logout".to_string(), format!("/sso/universal-logout/{}", app.tenant)] {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", app.origin))
            .bearer_auth(&jwt)
            .json(&json!({"sub_id": {"format": "email", "email": "a@evil.test"}}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::UNAUTHORIZED,
            "{path}: {status} {body}"
        );
        assert!(!body.contains("SECRET") && !body.contains("10.1.2.3") && !body.contains("502"), "{path}: {body}");
    }
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// One tenant's slow key set delays no other tenant: logout tokens with unknown key ids for
/// tenant A (whose key set takes 5 s) while tenant B's users look up their sign-in.
#[tokio::test]
async fn a_slow_provider_stalls_no_other_tenant() {
    let idp = FakeIdp::start().await;
    idp.serve_good("/a");
    idp.serve_good("/b");
    let app = TestApp::spawn().await;
    app.sso.configure(&app.tenant, settings(&idp.issuer("/a"))).await.unwrap();
    let (other, _) = app.other_tenant().await;
    let mut b = settings(&idp.issuer("/b"));
    b.domains = Some("globex.test".into());
    app.sso.configure(&other, b).await.unwrap();
    // Tenant B's discovery is cached by a first lookup.
    let c = reqwest::Client::new();
    let lookup = || c.post(format!("{}/sso/lookup", app.origin)).json(&json!({"email": "b@globex.test"})).send();
    assert_eq!(lookup().await.unwrap().status(), StatusCode::OK);
    idp.answer("/a/keys", Answer::json(&json!({"keys": []})).delayed(Duration::from_secs(5)));
    let header = base64_url(&json!({"alg":"RS256","typ":"global-token-revocation+jwt","kid":"rotated"}).to_string());
    let payload = base64_url(&json!({"iss": idp.issuer("/a"), "sub":"butterfly"}).to_string());
    let jwt = format!("{header}.{payload}.c2ln");
    let origin = app.origin.clone();
    let attackers: Vec<_> = (0..16)
        .map(|_| {
            let (origin, jwt) = (origin.clone(), jwt.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{origin}/sso/universal-logout"))
                    .bearer_auth(jwt)
                    .json(&json!({"sub_id": {"format": "email", "email": "x@evil.test"}}))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(lookup().await.unwrap().status(), StatusCode::OK);
        worst = worst.max(started.elapsed());
    }
    assert!(worst < Duration::from_millis(1000), "tenant B waited {worst:?} on tenant A's provider");
    for a in attackers {
        let _ = a.await;
    }
    // One key-set refetch for all sixteen tokens (a failed or slow one is rate-limited too).
    assert_eq!(idp.hits("/a/keys"), 2, "the initial fetch and one refetch");
}

/// The adapter also refuses a document naming another issuer, and works offline from a
/// document installed after the same checks (what the benchmarks use).
#[tokio::test]
async fn installed_documents_pass_the_same_checks() {
    let dns = TestDns::start(&["test"]).await;
    let p = OidcProvider::new(client(&dns, false, Limits::default()));
    let iss = Issuer::parse("https://acme.okta.test", false).unwrap();
    let doc = |jwks: &str| {
        json!({
            "issuer": "https://acme.okta.test",
            "authorization_endpoint": "https://acme.okta.test/oauth2/v1/authorize",
            "token_endpoint": "https://acme.okta.test/oauth2/v1/token",
            "jwks_uri": jwks,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string()
    };
    assert!(p.insert_discovery(&iss, &doc("https://acme.okta.test/oauth2/v1/keys"), r#"{"keys":[]}"#).is_ok());
    assert!(p.insert_discovery(&iss, &doc("http://169.254.169.254/keys"), r#"{"keys":[]}"#).is_err());
    assert!(p.insert_discovery(&iss, &doc("https://evil.test/keys"), r#"{"keys":[]}"#).is_err());
    // A member name is the provider's text too: the refusal that names it is cleaned and bounded.
    let mut lure: serde_json::Value = serde_json::from_str(&doc("https://acme.okta.test/oauth2/v1/keys")).unwrap();
    let name = format!("call\n+1-555 {}_endpoint", "x".repeat(10_000));
    lure[name.as_str()] = json!(1);
    let refused = p.insert_discovery(&iss, &lure.to_string(), r#"{"keys":[]}"#).unwrap_err().to_string();
    assert!(refused.len() < 300 && !refused.contains('\n'), "{} bytes: {refused:.200}", refused.len());
}

/// A tenant admin naming issuer after issuer (each with a huge key set) took the process to
/// 432 MB: key sets are capped, and the cache forgets the least recently used issuers.
#[tokio::test]
async fn the_provider_cache_is_bounded() {
    let dns = TestDns::start(&["test"]).await;
    let idp = FakeIdp::start().await;
    let p = OidcProvider::new(client(&dns, true, Limits::default()));
    // A key set with more keys than any provider has is refused.
    let key = |i: usize| json!({"kty": "RSA", "kid": format!("k{i}"), "use": "sig", "alg": "RS256", "n": "sXch", "e": "AQAB"});
    idp.answer("/big/.well-known/openid-configuration", Answer::json(&idp.discovery("/big", json!({}))));
    idp.answer("/big/keys", Answer::json(&json!({"keys": (0..51).map(key).collect::<Vec<_>>()})));
    let big = Issuer::parse(&idp.issuer("/big"), true).unwrap();
    let e = butterfly_core::sso::IdentityProvider::discover(&p, &big, true).await.unwrap_err();
    assert!(e.to_string().contains("more than 50 keys"), "{e}");
    // 700 issuers named one after the other: at most MAX_ISSUERS stay.
    for i in 0..700 {
        let prefix = format!("/i{i}");
        idp.serve_good(&prefix);
        let iss = Issuer::parse(&idp.issuer(&prefix), true).unwrap();
        butterfly_core::sso::IdentityProvider::discover(&p, &iss, true).await.unwrap();
    }
    let n = p.cached_issuers();
    assert!(n <= butterfly_outbound::oidc::MAX_ISSUERS, "{n} issuers cached");
}

/// Our view of internal names is not shown to a tenant admin: a refusal names no address.
#[tokio::test]
async fn refusals_do_not_reveal_what_dns_answered() {
    let app = TestApp::spawn().await;
    app.dns.add_ip("internal.test", "10.20.30.40".parse().unwrap()).await;
    app.dns.add_ip("db.internal.test", "fd00::5".parse().unwrap()).await;
    let mut seen = Vec::new();
    for host in ["internal.test", "db.internal.test", "missing.internal.test"] {
        let e = app.sso.configure(&app.tenant, settings(&format!("https://{host}"))).await.unwrap_err().to_string();
        for leak in ["10.20.30.40", "fd00", "no record", "NXDOMAIN", "NoRecordsFound"] {
            assert!(!e.contains(leak), "{host}: {e}");
        }
        seen.push(e.replace(host, "HOST"));
    }
    // A name that resolves to an internal address and one that does not resolve at all read
    // the same: an admin cannot map which internal names exist.
    assert!(seen.iter().all(|e| *e == seen[0]), "{seen:#?}");
}

/// A provider's words reached the error page (a fake "account suspended, call this number"
/// notice, 200 KB of text, a bidi override, the JSON parser's complaint about its claims): the
/// page now says ours only, with an error code only if it looks like one.
#[tokio::test]
async fn provider_text_never_reaches_the_page() {
    use butterfly_tests::op::{location, Browser};
    let app = TestApp::spawn().await;
    let idp = FakeIdp::start().await;
    idp.serve_good("/t");
    app.sso.configure(&app.tenant, settings(&idp.issuer("/t"))).await.unwrap();
    let lure = format!(
        "Your Butterfly account was suspended. Call +1-555-0100 or pay at https://evil.example/pay \u{202e} {}",
        "x".repeat(200_000)
    );
    let unreadable = json!({"access_token": "a", "token_type": "Bearer",
        "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJlbWFpbF92ZXJpZmllZCI6InRydWUifQ.c2ln"});
    for answer in [
        Answer {
            status: 400,
            body: json!({"error": lure, "error_description": lure}).to_string().into_bytes(),
            delay: Duration::ZERO,
            content_type: "application/json",
        },
        Answer::json(&unreadable),
    ] {
        idp.answer("/t/token", answer);
        let b = Browser::new();
        let start = b.post_form(&format!("{}/login", app.origin), &[("email", "a@evil.test")]).await;
        let authorize = location(&start).unwrap();
        let state =
            url::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
        let r = b.get(&format!("{}/sso/callback?code=abc&state={state}", app.origin)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let page = r.text().await.unwrap();
        assert!(page.len() < 4000, "{} bytes", page.len());
        for leak in ["evil.example", "555", "\u{202e}", "invalid type", "suspended"] {
            assert!(!page.contains(leak), "{leak:?} on the page: {page}");
        }
        assert!(page.contains("identity provider"), "{page}");
    }
}
