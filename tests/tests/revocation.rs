//! Immediate revocation end to end: a real OIDC Back-Channel Logout POST from oidc-provider,
//! Okta Universal Logout requests signed with the provider's key, SCIM deactivation and
//! deletion — each ends the user's sessions at once and leaves a receipt — and a catalogue of
//! forged or malformed logout tokens and GTR JWTs, each refused with no side effect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::sso::hash_secret;
use butterfly_tests::op::{client_spec_with_logout, set_cookies, Browser, TestOp};
use butterfly_tests::{okta_user, sso_settings as settings, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

struct Rig {
    app: TestApp,
    op: TestOp,
}

async fn rig() -> Rig {
    rig_with(TestApp::spawn().await).await
}

async fn rig_with(app: TestApp) -> Rig {
    let op = TestOp::start(
        0,
        json!([
            {"prefix": "/t1", "kid": "t1-key", "clients": [client_spec_with_logout("acme-app", "acme-secret", &app.origin)]},
            {"prefix": "/t2", "kid": "t2-key", "clients": [client_spec_with_logout("globex-app", "globex-secret", &app.origin)]},
        ]),
    )
    .await;
    app.sso.configure(&app.tenant, settings(op.issuer("/t1"), "acme-app", "acme-secret", "acme.test")).await.unwrap();
    let (other, _) = app.other_tenant().await;
    app.sso.configure(&other, settings(op.issuer("/t2"), "globex-app", "globex-secret", "globex.test")).await.unwrap();
    Rig { app, op }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn cookie_of(r: &reqwest::Response) -> String {
    set_cookies(r.headers())
        .into_iter()
        .find_map(|c| c.strip_prefix("bfy_session=").map(|v| v.split(';').next().unwrap_or("").to_string()))
        .filter(|v| !v.is_empty())
        .expect("session cookie")
}

/// Signs in `email` in a fresh browser; returns the browser and its session cookie value.
async fn signed_in(rig: &Rig, email: &str) -> (Browser, String) {
    let b = Browser::new();
    let r = b.sign_in(&rig.app.origin, email).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let c = cookie_of(&r);
    (b, c)
}

async fn me_status(rig: &Rig, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/me", rig.app.origin))
        .header("cookie", format!("bfy_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn sid_of(rig: &Rig, cookie: &str) -> Option<String> {
    use butterfly_core::ports::SessionStore;
    rig.app.store.session_with_user(&hash_secret(cookie)).await.unwrap().and_then(|(s, _)| s.sid)
}

async fn audit(rig: &Rig) -> Vec<Value> {
    use butterfly_core::ports::AuditStore;
    let page = rig.app.store.audit_page(&rig.app.tenant, None, 100).await.unwrap();
    page.into_iter().map(|e| serde_json::to_value(e).unwrap()).collect()
}

async fn post_logout_token(rig: &Rig, token: &str) -> (StatusCode, Value, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}/sso/backchannel-logout", rig.app.origin))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cache = r.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(String::from);
    (status, r.json().await.unwrap_or(Value::Null), cache)
}

fn gtr_endpoint(rig: &Rig) -> String {
    format!("{}/sso/universal-logout/{}", rig.app.origin, rig.app.tenant)
}

fn gtr_header() -> Value {
    json!({"alg": "RS256", "typ": "global-token-revocation+jwt"})
}

fn gtr_claims(rig: &Rig) -> Value {
    let n = now();
    json!({"jti": format!("gtr-{}", uuid_like()), "iss": rig.op.issuer("/t1"), "sub": "acme-app",
           "aud": gtr_endpoint(rig), "iat": n, "nbf": n - 300, "exp": n + 300})
}

/// A fresh `jti`.
fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}-{n}")
}

async fn post_gtr(url: &str, bearer: Option<&str>, body: &Value) -> StatusCode {
    let mut req = reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        assert!(r.headers().get("www-authenticate").is_some());
    }
    status
}

// ---- each trigger ends the sessions ---------------------------------------------------------

#[tokio::test]
async fn a_real_back_channel_logout_from_the_provider_ends_the_session() {
    let rig = rig().await;
    let (_, alice1) = signed_in(&rig, "alice@acme.test").await;
    let (_, alice2) = signed_in(&rig, "alice@acme.test").await;
    let sid = sid_of(&rig, &alice1).await.expect("the provider sends sid");
    // By sid: only that provider session's Butterfly session ends.
    rig.op.backchannel_logout("/t1", "acme-app", "alice@acme.test", Some(&sid)).await;
    assert_eq!(me_status(&rig, &alice1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&rig, &alice2).await, StatusCode::OK);
    // By sub only: every session of that identity.
    rig.op.backchannel_logout("/t1", "acme-app", "alice@acme.test", None).await;
    assert_eq!(me_status(&rig, &alice2).await, StatusCode::UNAUTHORIZED);
    let events = audit(&rig).await;
    let receipts: Vec<&Value> = events.iter().filter(|e| e["action"] == "revocation").collect();
    assert!(receipts.len() >= 2, "{events:?}");
    assert_eq!(receipts[0]["details"]["trigger"], "back_channel_logout");
    assert!(receipts.iter().all(|r| r["details"]["latency_ms"].as_i64().unwrap() >= 0));
    assert!(receipts.iter().any(|r| r["details"]["sessions_ended"] == 1));
}

#[tokio::test]
async fn universal_logout_signed_by_the_provider_ends_all_sessions_of_the_user() {
    let rig = rig().await;
    let (_, a) = signed_in(&rig, "bob@acme.test").await;
    let (_, b) = signed_in(&rig, "bob@acme.test").await;
    let (_, other) = signed_in(&rig, "carl@acme.test").await;
    let jwt = rig.op.sign("/t1", gtr_header(), gtr_claims(&rig), false).await;
    let body = json!({"sub_id": {"format": "email", "email": "BOB@acme.test"}});
    assert_eq!(post_gtr(&gtr_endpoint(&rig), Some(&jwt), &body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&rig, &b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&rig, &other).await, StatusCode::OK, "other users keep their sessions");
    let events = audit(&rig).await;
    let r = events.iter().find(|e| e["action"] == "revocation").unwrap();
    assert_eq!(r["details"]["trigger"], "universal_logout");
    assert_eq!(r["details"]["sessions_ended"], 2);

    // The older body key `subject` and the iss_sub format work too.
    let jwt = rig.op.sign("/t1", gtr_header(), gtr_claims(&rig), false).await;
    let body = json!({"subject": {"format": "iss_sub", "iss": rig.op.issuer("/t1"), "sub": "carl@acme.test"}});
    assert_eq!(post_gtr(&gtr_endpoint(&rig), Some(&jwt), &body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &other).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scim_deactivation_ends_sessions_and_reactivation_does_not_revive_them() {
    let rig = rig().await;
    let created = rig.app.create_user(&okta_user("dora@acme.test", "Dora", "Scim")).await;
    let id = created["id"].as_str().unwrap();
    let (_, s1) = signed_in(&rig, "dora@acme.test").await;
    assert_eq!(me_status(&rig, &s1).await, StatusCode::OK);
    let off = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    assert_eq!(rig.app.send_json(Method::PATCH, &format!("/Users/{id}"), &off).await.status(), StatusCode::OK);
    assert_eq!(me_status(&rig, &s1).await, StatusCode::UNAUTHORIZED, "dead in the same request");
    let on = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]});
    assert_eq!(rig.app.send_json(Method::PATCH, &format!("/Users/{id}"), &on).await.status(), StatusCode::OK);
    assert_eq!(me_status(&rig, &s1).await, StatusCode::UNAUTHORIZED, "reactivation revives nothing");
    let (_, s2) = signed_in(&rig, "dora@acme.test").await;
    assert_eq!(me_status(&rig, &s2).await, StatusCode::OK, "a new sign-in works");
    let events = audit(&rig).await;
    assert!(events.iter().any(|e| e["action"] == "revocation" && e["details"]["trigger"] == "scim_deactivation"));
    assert!(events.iter().any(|e| e["action"] == "scim.user.update" && e["details"]["active"] == false));

    // DELETE ends them too.
    let r = rig.app.req(Method::DELETE, &format!("/Users/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &s2).await, StatusCode::UNAUTHORIZED);
    let events = audit(&rig).await;
    assert!(events.iter().any(|e| e["action"] == "revocation" && e["details"]["trigger"] == "scim_delete"));
}

// ---- forged and malformed messages: refused, nothing ended -------------------------------------

#[tokio::test]
async fn forged_or_malformed_logout_tokens_are_refused_without_side_effects() {
    let rig = rig().await;
    let (_, victim) = signed_in(&rig, "eve@acme.test").await;
    let sid = sid_of(&rig, &victim).await.unwrap();
    let n = now();
    let good = |jti: &str| {
        json!({"iss": rig.op.issuer("/t1"), "aud": "acme-app", "iat": n, "exp": n + 120, "jti": jti,
               "sub": "eve@acme.test", "sid": sid, "events": {EVENT: {}}})
    };
    let header = json!({"alg": "RS256", "typ": "logout+jwt"});
    let mut cases: Vec<(&str, String)> = Vec::new();
    let sign = |h: Value, p: Value, stranger: bool| {
        let op = &rig.op;
        async move { op.sign("/t1", h, p, stranger).await }
    };
    cases.push(("bad signature", sign(header.clone(), good("j1"), true).await));
    cases.push(("alg none", sign(json!({"alg": "none", "typ": "logout+jwt"}), good("j2"), false).await));
    let mut p = good("j3");
    p["iss"] = json!("http://127.0.0.1:1/unknown");
    cases.push(("unknown iss", sign(header.clone(), p, false).await));
    let mut p = good("j4");
    p["aud"] = json!("someone-else");
    cases.push(("wrong aud", sign(header.clone(), p, false).await));
    cases.push(("wrong typ", sign(json!({"alg": "RS256", "typ": "at+jwt"}), good("j5"), false).await));
    let mut p = good("j6");
    p["iat"] = json!(n - 7200);
    p["exp"] = json!(n - 3600);
    cases.push(("expired", sign(header.clone(), p, false).await));
    let mut p = good("j7");
    p["nonce"] = json!("n");
    cases.push(("nonce present", sign(header.clone(), p, false).await));
    let mut p = good("j8");
    p.as_object_mut().unwrap().remove("events");
    cases.push(("missing events", sign(header.clone(), p, false).await));
    let mut p = good("j9");
    p["events"] = json!({"http://schemas.openid.net/event/other": {}});
    cases.push(("wrong event", sign(header.clone(), p, false).await));
    let mut p = good("j10");
    p.as_object_mut().unwrap().remove("sub");
    p.as_object_mut().unwrap().remove("sid");
    cases.push(("neither sub nor sid", sign(header.clone(), p, false).await));
    let mut p = good("j11");
    p.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", sign(header.clone(), p, false).await));
    // Another tenant's key, claiming this tenant's issuer.
    cases.push(("other tenant's key", rig.op.sign("/t2", header.clone(), good("j12"), false).await));
    cases.push(("garbage", "not.a.jwt".to_string()));

    for (name, token) in &cases {
        let (status, body, cache) = post_logout_token(&rig, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], "invalid_request", "{name}");
        assert_eq!(cache.as_deref(), Some("no-store"), "{name}");
        assert_eq!(me_status(&rig, &victim).await, StatusCode::OK, "{name} ended the session");
    }
    // Wrong content type and missing parameter.
    let r = reqwest::Client::new()
        .post(format!("{}/sso/backchannel-logout", rig.app.origin))
        .json(&json!({"logout_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _, _) = post_logout_token(&rig, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A genuine token works once; its replay is refused (and ends nothing more).
    let token = sign(header.clone(), good("j-once"), false).await;
    let (status, _, cache) = post_logout_token(&rig, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(me_status(&rig, &victim).await, StatusCode::UNAUTHORIZED);
    let (_, again) = signed_in(&rig, "eve@acme.test").await;
    let (status, body, _) = post_logout_token(&rig, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already used"));
    assert_eq!(me_status(&rig, &again).await, StatusCode::OK);
    // `typ: JWT` and no typ (older providers) are accepted.
    for (i, h) in [json!({"alg": "RS256", "typ": "JWT"}), json!({"alg": "RS256"})].into_iter().enumerate() {
        let mut p = good(&format!("j-typ-{i}"));
        p["sub"] = json!("nobody@acme.test");
        p.as_object_mut().unwrap().remove("sid");
        let (status, body, _) = post_logout_token(&rig, &sign(h, p, false).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn forged_or_malformed_universal_logout_requests_are_refused_without_side_effects() {
    let rig = rig().await;
    let (_, victim) = signed_in(&rig, "fay@acme.test").await;
    let body = json!({"sub_id": {"format": "email", "email": "fay@acme.test"}});
    let url = gtr_endpoint(&rig);
    let sign = |h: Value, p: Value, stranger: bool| {
        let op = &rig.op;
        async move { op.sign("/t1", h, p, stranger).await }
    };
    let mut unauthorized: Vec<(&str, Option<String>)> = vec![("no token", None)];
    unauthorized.push(("bad signature", Some(sign(gtr_header(), gtr_claims(&rig), true).await)));
    unauthorized.push((
        "alg none",
        Some(sign(json!({"alg": "none", "typ": "global-token-revocation+jwt"}), gtr_claims(&rig), false).await),
    ));
    unauthorized.push(("wrong typ", Some(sign(json!({"alg": "RS256", "typ": "JWT"}), gtr_claims(&rig), false).await)));
    unauthorized.push(("no typ", Some(sign(json!({"alg": "RS256"}), gtr_claims(&rig), false).await)));
    for (name, field, value) in [
        ("wrong iss", "iss", json!(rig.op.issuer("/t2"))),
        ("wrong aud", "aud", json!(format!("{}/sso/universal-logout/other", rig.app.origin))),
        ("wrong sub", "sub", json!("another-client")),
        ("expired", "exp", json!(now() - 3600)),
        ("not yet valid", "nbf", json!(now() + 3600)),
    ] {
        let mut c = gtr_claims(&rig);
        c[field] = value;
        unauthorized.push((name, Some(sign(gtr_header(), c, false).await)));
    }
    let mut c = gtr_claims(&rig);
    c.as_object_mut().unwrap().remove("nbf");
    unauthorized.push(("no nbf", Some(sign(gtr_header(), c, false).await)));
    unauthorized.push(("other tenant's key", Some(rig.op.sign("/t2", gtr_header(), gtr_claims(&rig), false).await)));
    for (name, token) in &unauthorized {
        assert_eq!(post_gtr(&url, token.as_deref(), &body).await, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(me_status(&rig, &victim).await, StatusCode::OK, "{name} ended the session");
    }
    // Bad bodies: 400; unknown user or tenant: 404.
    for bad in [
        json!({}),
        json!({"sub_id": {"format": "phone_number", "phone_number": "+1"}}),
        json!({"sub_id": {"format": "email"}}),
        json!({"sub_id": {"format": "iss_sub", "iss": "x"}}),
        json!("just a string"),
    ] {
        let jwt = sign(gtr_header(), gtr_claims(&rig), false).await;
        assert_eq!(post_gtr(&url, Some(&jwt), &bad).await, StatusCode::BAD_REQUEST, "{bad}");
    }
    let jwt = sign(gtr_header(), gtr_claims(&rig), false).await;
    let unknown = json!({"sub_id": {"format": "email", "email": "nobody@acme.test"}});
    assert_eq!(post_gtr(&url, Some(&jwt), &unknown).await, StatusCode::NOT_FOUND);
    let jwt = sign(gtr_header(), gtr_claims(&rig), false).await;
    let nowhere = format!("{}/sso/universal-logout/00000000-0000-4000-8000-000000000000", rig.app.origin);
    assert_eq!(post_gtr(&nowhere, Some(&jwt), &body).await, StatusCode::NOT_FOUND);
    assert_eq!(me_status(&rig, &victim).await, StatusCode::OK);
    // Replay: the same JWT twice.
    let jwt = sign(gtr_header(), gtr_claims(&rig), false).await;
    assert_eq!(post_gtr(&url, Some(&jwt), &body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &victim).await, StatusCode::UNAUTHORIZED);
    let (_, again) = signed_in(&rig, "fay@acme.test").await;
    assert_eq!(post_gtr(&url, Some(&jwt), &body).await, StatusCode::UNAUTHORIZED, "replayed jti");
    assert_eq!(me_status(&rig, &again).await, StatusCode::OK);
}

/// The one Universal Logout endpoint per deployment (`POST /sso/universal-logout`, the URL the
/// OIN Wizard holds for every customer): the tenant is found from the JWT's `iss`, then the JWT
/// is verified with that tenant's provider keys, audience = this URL. Each tenant's provider
/// ends only its own users' sessions.
#[tokio::test]
async fn one_universal_logout_endpoint_finds_the_tenant_by_issuer() {
    let rig = rig().await;
    let url = format!("{}/sso/universal-logout", rig.app.origin);
    let claims = |prefix: &str| {
        let mut c = gtr_claims(&rig);
        c["iss"] = json!(rig.op.issuer(prefix));
        c["sub"] = json!(if prefix == "/t1" { "acme-app" } else { "globex-app" });
        c["aud"] = json!(url);
        c
    };
    let (_, bob) = signed_in(&rig, "bob@acme.test").await;
    let (_, gina) = signed_in(&rig, "gina@globex.test").await;
    let bob_body = json!({"sub_id": {"format": "email", "email": "bob@acme.test"}});
    let gina_body = json!({"sub_id": {"format": "email", "email": "gina@globex.test"}});

    // Refused, nothing ended: an issuer no tenant uses; the per-tenant audience at the shared
    // URL; one tenant's issuer signed with the other tenant's key; not a JWT at all.
    let mut unknown = claims("/t1");
    unknown["iss"] = json!("https://idp.unknown.example");
    let mut per_tenant_aud = claims("/t1");
    per_tenant_aud["aud"] = json!(gtr_endpoint(&rig));
    let refused = [
        ("unknown issuer", rig.op.sign("/t1", gtr_header(), unknown, false).await),
        ("per-tenant audience", rig.op.sign("/t1", gtr_header(), per_tenant_aud, false).await),
        ("another tenant's key", rig.op.sign("/t2", gtr_header(), claims("/t1"), false).await),
        ("not a JWT", "x".to_string()),
    ];
    for (name, jwt) in &refused {
        assert_eq!(post_gtr(&url, Some(jwt), &bob_body).await, StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(me_status(&rig, &bob).await, StatusCode::OK);
    // Globex's provider cannot end an Acme user's sessions: in Globex that user does not exist.
    let jwt = rig.op.sign("/t2", gtr_header(), claims("/t2"), false).await;
    assert_eq!(post_gtr(&url, Some(&jwt), &bob_body).await, StatusCode::NOT_FOUND);
    assert_eq!(me_status(&rig, &bob).await, StatusCode::OK);

    // Each provider ends its own user's sessions, and only those.
    let jwt = rig.op.sign("/t1", gtr_header(), claims("/t1"), false).await;
    assert_eq!(post_gtr(&url, Some(&jwt), &bob_body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &bob).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&rig, &gina).await, StatusCode::OK);
    let jwt = rig.op.sign("/t2", gtr_header(), claims("/t2"), false).await;
    assert_eq!(post_gtr(&url, Some(&jwt), &gina_body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &gina).await, StatusCode::UNAUTHORIZED);
    let receipt = audit(&rig).await.into_iter().find(|e| e["action"] == "revocation").unwrap();
    assert_eq!(receipt["details"]["trigger"], "universal_logout");
}

// ---- no one else can stop a provider's logouts ---------------------------------------------------

/// A budget per issuer on the logout endpoints was spendable by anyone: junk tokens naming a
/// tenant's issuer, from enough addresses, made the provider's real logouts answer 429, and
/// sessions outlived their revocation in Okta. Logouts are limited per client address only.
#[tokio::test]
async fn junk_logout_tokens_naming_an_issuer_do_not_block_its_real_logouts() {
    use butterfly_api::limits::AnonymousLimits;
    let limits = butterfly_api::Limits::new(
        AnonymousLimits { per_address_per_minute: 60, settings_per_minute: 10 },
        butterfly_core::limit::QuotaPolicy::default(),
    );
    let rig = rig_with(TestApp::spawn_with_limits(limits).await).await;
    let (_, alice) = signed_in(&rig, "alice@acme.test").await;
    let (_, bob) = signed_in(&rig, "bob@acme.test").await;
    // Tokens naming Acme's issuer, signed by a key the provider does not have.
    let n = now();
    let junk = rig
        .op
        .sign(
            "/t1",
            json!({"alg": "RS256", "typ": "logout+jwt"}),
            json!({"iss": rig.op.issuer("/t1"), "aud": "acme-app", "iat": n, "exp": n + 120, "jti": uuid_like(),
                   "sub": "alice@acme.test", "events": {EVENT: {}}}),
            true,
        )
        .await;
    let mut refused = 0;
    for a in 1..=20u8 {
        let c = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 40 + a])).build().unwrap();
        for _ in 0..10 {
            let r = c
                .post(format!("{}/sso/backchannel-logout", rig.app.origin))
                .form(&[("logout_token", junk.as_str())])
                .send()
                .await
                .unwrap();
            assert!([StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS].contains(&r.status()), "{}", r.status());
            refused += 1;
        }
    }
    assert_eq!(refused, 200);
    assert_eq!(me_status(&rig, &alice).await, StatusCode::OK, "a junk token ended a session");
    // The provider's own back-channel logout and a Universal Logout still work.
    rig.op.backchannel_logout("/t1", "acme-app", "alice@acme.test", None).await;
    assert_eq!(me_status(&rig, &alice).await, StatusCode::UNAUTHORIZED, "the real logout was blocked");
    let jwt = rig.op.sign("/t1", gtr_header(), gtr_claims(&rig), false).await;
    let body = json!({"sub_id": {"format": "email", "email": "bob@acme.test"}});
    assert_eq!(post_gtr(&gtr_endpoint(&rig), Some(&jwt), &body).await, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&rig, &bob).await, StatusCode::UNAUTHORIZED);
}

/// A provider whose key set is unreadable: the logout answers 503 (the provider retries) and
/// none of the provider's text reaches the caller (it quoted the key set before).
#[tokio::test]
async fn an_unusable_provider_makes_logouts_retryable_without_echoing_it() {
    use base64::Engine;
    use butterfly_tests::hostile::{Answer, FakeIdp};
    let app = TestApp::spawn().await;
    let idp = FakeIdp::start().await;
    idp.serve_good("/p");
    let issuer = idp.issuer("/p");
    app.sso.configure(&app.tenant, settings(issuer.clone(), "acme-app", "s", "acme.test")).await.unwrap();
    let lure = "LURE-call-+1-555-0100-\u{202e}";
    idp.answer("/p/keys", Answer::json(&json!({"keys": lure})));
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let n = now();
    let token = format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": "rotated", "typ": "logout+jwt"})),
        b64(json!({"iss": issuer, "aud": "acme-app", "iat": n, "exp": n + 120, "jti": uuid_like(),
                   "sub": "alice@acme.test", "events": {EVENT: {}}})),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256]),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/sso/backchannel-logout", app.origin))
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u32>().ok()).is_some());
    let text = r.text().await.unwrap();
    assert!(!text.contains("LURE") && !text.contains("555"), "{text}");
    assert!(idp.hits("/p/keys") >= 2, "the key set was fetched again for the unknown key");
}

/// A token naming a random key makes us fetch the provider's key set again, at most once per
/// 30 s. Anyone could spend that refetch just before a key rotation: the provider's first
/// logouts signed with its new key were then refused as "unknown key" (400/401: final, not
/// retried) and sessions outlived their revocation. Now they answer 503 with Retry-After.
#[tokio::test]
async fn a_spent_key_refetch_makes_logouts_with_a_new_key_retryable() {
    use base64::Engine;
    let rig = rig().await;
    let (_, bob) = signed_in(&rig, "bob@acme.test").await;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let n = now();
    let junk = format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": format!("random-{}", uuid_like()), "typ": "logout+jwt"})),
        b64(json!({"iss": rig.op.issuer("/t1"), "aud": "acme-app", "iat": n, "exp": n + 120, "jti": uuid_like(),
                   "sub": "bob@acme.test", "events": {EVENT: {}}})),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256]),
    );
    let (status, _, _) = post_logout_token(&rig, &junk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a key unknown after a fresh refetch is refused");
    // The provider rotates its key now, within the refetch interval.
    let Rig { app, op } = rig;
    let rig = Rig { op: op.rotate_keys("-rotated").await, app };
    let jwt = rig.op.sign("/t1", gtr_header(), gtr_claims(&rig), false).await;
    let body = json!({"sub_id": {"format": "email", "email": "bob@acme.test"}});
    let r = reqwest::Client::new()
        .post(gtr_endpoint(&rig))
        .header("authorization", format!("Bearer {jwt}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "the provider is told to retry, not that it is wrong");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(me_status(&rig, &bob).await, StatusCode::OK, "nothing ended yet: the retry will");
}

/// A logout token signed by the provider whose claims do not decode: the refusal is in our
/// words, never the decoder's (which quotes the offending value back to the caller).
#[tokio::test]
async fn undecodable_claims_are_refused_without_quoting_them() {
    let rig = rig().await;
    let n = now();
    for (name, claims) in [
        (
            "exp",
            json!({"iss": rig.op.issuer("/t1"), "aud": "acme-app", "iat": n, "exp": "LURE-exp", "jti": uuid_like(),
                       "sub": "bob@acme.test", "events": {EVENT: {}}}),
        ),
        (
            "aud",
            json!({"iss": rig.op.issuer("/t1"), "aud": {"LURE-aud": 1}, "iat": n, "exp": n + 120, "jti": uuid_like(),
                       "sub": "bob@acme.test", "events": {EVENT: {}}}),
        ),
        (
            "iss",
            json!({"iss": ["LURE-iss"], "aud": "acme-app", "iat": n, "exp": n + 120, "jti": uuid_like(),
                       "sub": "bob@acme.test", "events": {EVENT: {}}}),
        ),
    ] {
        let token = rig.op.sign("/t1", json!({"alg": "RS256", "typ": "logout+jwt"}), claims, false).await;
        let (status, body, _) = post_logout_token(&rig, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert!(!body.to_string().contains("LURE"), "{name}: the refusal quotes the token: {body}");
    }
}
