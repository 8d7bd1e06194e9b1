//! Single sign-on end to end against a certified OpenID Provider (oidc-provider 8.8.1 on
//! loopback, standing in for each tenant's Okta): SP- and IdP-initiated login, just-in-time
//! users, linking to SCIM-provisioned users, sessions, logout, key rotation, and every
//! rejection the callback must make — each leaving no session behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::ids::TenantId;
use butterfly_core::sso::SsoError;
use butterfly_core::sso::SsoPolicy;
use butterfly_core::sso_settings::SsoSettingsInput;
use butterfly_tests::op::{client_spec, location, set_cookies, Browser, TestOp};
use butterfly_tests::{okta_user, sso_settings as settings, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

struct Rig {
    app: TestApp,
    op: TestOp,
    /// The second tenant (issuer /t2, domain globex.test).
    other: TenantId,
}

async fn rig_with(policy: Option<SsoPolicy>) -> Rig {
    let app = match policy {
        Some(p) => TestApp::spawn_with(p).await,
        None => TestApp::spawn().await,
    };
    let op = TestOp::start(
        0,
        json!([
            {"prefix": "/t1", "kid": "t1-key-1", "clients": [client_spec("butterfly-acme", "acme-secret", &app.origin)]},
            {"prefix": "/t2", "kid": "t2-key-1", "clients": [client_spec("butterfly-globex", "globex-secret", &app.origin)]},
        ]),
    )
    .await;
    app.sso
        .configure(&app.tenant, settings(op.issuer("/t1"), "butterfly-acme", "acme-secret", "acme.test"))
        .await
        .unwrap();
    let (other, _) = app.other_tenant().await;
    app.sso
        .configure(&other, settings(op.issuer("/t2"), "butterfly-globex", "globex-secret", "globex.test"))
        .await
        .unwrap();
    app.store.take();
    Rig { app, op, other }
}

async fn rig() -> Rig {
    rig_with(None).await
}

fn session_cookie(r: &Response) -> Option<String> {
    set_cookies(r.headers())
        .into_iter()
        .find_map(|c| c.strip_prefix("bfy_session=").map(|v| v.split(';').next().unwrap_or("").to_string()))
        .filter(|v| !v.is_empty())
}

async fn me(b: &Browser, rig: &Rig) -> (StatusCode, Value) {
    let r = b.get(&format!("{}/me", rig.app.origin)).await;
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asserts a refused sign-in: an error page with `status`, no session cookie, no session
/// created in the store, and `/me` still 401 for this browser.
async fn assert_refused(rig: &Rig, b: &Browser, r: Response, status: StatusCode, needle: &str) {
    assert_eq!(r.status(), status);
    assert!(session_cookie(&r).is_none(), "a refused sign-in set a session cookie");
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let page = r.text().await.unwrap();
    assert!(page.to_lowercase().contains(&needle.to_lowercase()), "expected {needle:?} in {page}");
    let (_, ops) = rig.app.store.take();
    assert!(!ops.contains(&"create_session"), "a refused sign-in created a session: {ops:?}");
    assert_eq!(me(b, rig).await.0, StatusCode::UNAUTHORIZED);
}

/// Starts a login for `email` and signs in at the provider; returns the callback URL
/// without visiting it.
async fn reach_callback(rig: &Rig, b: &Browser, email: &str) -> String {
    let start = b.post_form(&format!("{}/login", rig.app.origin), &[("email", email)]).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start).unwrap();
    b.sign_in_at_provider(&authorize, email, &rig.app.origin).await
}

fn replace_param(url: &str, name: &str, value: Option<&str>) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let mut pairs: Vec<(String, String)> = url_pairs(query).into_iter().filter(|(k, _)| k != name).collect();
    if let Some(v) = value {
        pairs.push((name.to_string(), v.to_string()));
    }
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
    format!("{base}?{}", q.join("&"))
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), urldecode(v))).collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    url_pairs(url.split_once('?')?.1).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn urldecode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- sign-in that works ---------------------------------------------------------------------

#[tokio::test]
async fn sp_initiated_login_creates_a_read_only_user_just_in_time() {
    let rig = rig().await;
    let b = Browser::new();
    let start = b.post_form(&format!("{}/login", rig.app.origin), &[("email", "Alice.Smith@ACME.test")]).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start).unwrap();
    // The authorization request: code flow, PKCE S256, nonce, state, login_hint, OIN scopes.
    assert!(authorize.starts_with(&format!("{}/auth?", rig.op.issuer("/t1"))), "{authorize}");
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&authorize, "client_id").as_deref(), Some("butterfly-acme"));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("openid email profile"));
    assert_eq!(param(&authorize, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(&authorize, "login_hint").as_deref(), Some("Alice.Smith@ACME.test"));
    assert_eq!(param(&authorize, "redirect_uri"), Some(format!("{}/sso/callback", rig.app.origin)));
    for p in ["state", "nonce", "code_challenge"] {
        assert_eq!(param(&authorize, p).map(|v| v.len()), Some(43), "{p}");
    }
    let tx_cookie = set_cookies(start.headers()).into_iter().find(|c| c.starts_with("bfy_tx_")).unwrap();
    assert!(tx_cookie.contains("HttpOnly") && tx_cookie.contains("SameSite=Lax") && tx_cookie.contains("Max-Age=600"));

    let back = b.sign_in_at_provider(&authorize, "alice.smith@acme.test", &rig.app.origin).await;
    assert_eq!(param(&back, "iss"), Some(rig.op.issuer("/t1")), "RFC 9207 iss in the response");
    let r = b.get(&back).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r).as_deref(), Some("/"));
    let cookies = set_cookies(r.headers());
    let session = cookies.iter().find(|c| c.starts_with("bfy_session=")).unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    assert!(cookies.iter().any(|c| c.starts_with("bfy_tx_") && c.contains("Max-Age=0")), "tx cookie cleared");

    let (status, v) = me(&b, &rig).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["userName"], "alice.smith@acme.test");
    assert_eq!(v["role"], "read_only");
    assert_eq!(v["roleSource"], "jit");
    assert_eq!(v["tenant"]["id"], rig.app.tenant.as_str());
    assert_eq!(v["permissions"], json!(["view_connections", "view_backups"]));

    // The signed-in page says who and which role.
    let page = b.get(&format!("{}/", rig.app.origin)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("alice.smith@acme.test") && html.contains("read_only") && html.contains("Acme"), "{html}");

    // The JIT user is a team member Okta's SCIM client can find.
    let found = rig.app.find("alice.smith@acme.test").await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], v["user"]["id"]);

    // Signing in again maps to the same user by (iss, sub) and rotates the session id.
    let first = session.split(';').next().unwrap().to_string();
    let again = b.sign_in(&rig.app.origin, "alice.smith@acme.test").await;
    let second = session_cookie(&again).unwrap();
    assert_ne!(format!("bfy_session={second}"), first);
    assert_eq!(rig.app.find("alice.smith@acme.test").await["totalResults"], 1);
    let stale =
        reqwest::Client::new().get(format!("{}/me", rig.app.origin)).header("cookie", first).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED, "the previous session id was ended at sign-in");
}

#[tokio::test]
async fn idp_initiated_login_from_the_dashboard() {
    let rig = rig().await;
    let b = Browser::new();
    // Okta's "initiate login URI": iss (with a trailing slash here), optional target.
    let r = b
        .get(&format!(
            "{}/sso/initiate?iss={}/&target_link_uri={}",
            rig.app.origin,
            urlencode(&rig.op.issuer("/t1")),
            urlencode(&format!("{}/backups?tab=recent", rig.app.origin))
        ))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r).unwrap();
    assert!(authorize.starts_with(&rig.op.issuer("/t1")), "{authorize}");
    assert_eq!(param(&authorize, "login_hint"), None);
    let back = b.sign_in_at_provider(&authorize, "bob@acme.test", &rig.app.origin).await;
    let done = b.get(&back).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done).as_deref(), Some("/backups?tab=recent"));
    assert!(session_cookie(&done).is_some());
    let (status, v) = me(&b, &rig).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["user"]["userName"], "bob@acme.test");

    // POST form variant with login_hint, as OIDC Core §4 allows.
    let r = b
        .post_form(
            &format!("{}/sso/initiate", rig.app.origin),
            &[("iss", &rig.op.issuer("/t2")), ("login_hint", "carol@globex.test")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r).unwrap();
    assert!(authorize.starts_with(&rig.op.issuer("/t2")));
    assert_eq!(param(&authorize, "login_hint").as_deref(), Some("carol@globex.test"));
}

#[tokio::test]
async fn a_scim_provisioned_user_is_linked_by_email_and_keeps_its_role() {
    let rig = rig().await;
    let mut body = okta_user("dana@acme.test", "Dana", "Admin");
    body["roles"] = json!([{"value": "admin", "primary": true}]);
    let created = rig.app.create_user(&body).await;
    let b = Browser::new();
    let r = b.sign_in(&rig.app.origin, "dana@acme.test").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, v) = me(&b, &rig).await;
    assert_eq!(v["user"]["id"], created["id"], "linked, not duplicated");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["roleSource"], "scim");
    assert_eq!(rig.app.find("dana@acme.test").await["totalResults"], 1);
}

#[tokio::test]
async fn a_deactivated_user_is_refused_and_gets_no_session() {
    let rig = rig().await;
    let mut body = okta_user("erin@acme.test", "Erin", "Gone");
    body["active"] = json!(false);
    rig.app.create_user(&body).await;
    let b = Browser::new();
    let back = reach_callback(&rig, &b, "erin@acme.test").await;
    let r = b.get(&back).await;
    assert_refused(&rig, &b, r, StatusCode::FORBIDDEN, "deactivated").await;
}

#[tokio::test]
async fn a_signing_key_rotation_at_the_provider_is_followed() {
    let Rig { app, op, other } = rig().await;
    let b = Browser::new();
    assert_eq!(b.sign_in(&app.origin, "frank@acme.test").await.status(), StatusCode::SEE_OTHER);
    // New key, new kid; our cached key set no longer has it: one refetch, then success.
    let op = op.rotate_keys("-rotated").await;
    let rig = Rig { app, op, other };
    let b2 = Browser::new();
    let r = b2.sign_in(&rig.app.origin, "frank@acme.test").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
    assert_eq!(me(&b2, &rig).await.1["user"]["userName"], "frank@acme.test");
}

#[tokio::test]
async fn logout_ends_the_session_and_can_end_the_provider_session() {
    let rig = rig().await;
    let b = Browser::new();
    let r = b.sign_in(&rig.app.origin, "gina@acme.test").await;
    let cookie = session_cookie(&r).unwrap();
    let out = b.sign_out(&rig.app.origin, false).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out).as_deref(), Some("/login?signed_out=1"));
    assert!(set_cookies(out.headers()).iter().any(|c| c.starts_with("bfy_session=;") && c.contains("Max-Age=0")));
    assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED);
    // The old cookie value is dead server side too.
    let replay = reqwest::Client::new()
        .get(format!("{}/me", rig.app.origin))
        .header("cookie", format!("bfy_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    // With provider=1 the browser continues to the provider's end-session endpoint.
    b.sign_in(&rig.app.origin, "gina@acme.test").await;
    let out = b.sign_out(&rig.app.origin, true).await;
    let loc = location(&out).unwrap();
    assert!(loc.starts_with(&format!("{}/session/end?", rig.op.issuer("/t1"))), "{loc}");
    assert!(param(&loc, "id_token_hint").is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(param(&loc, "post_logout_redirect_uri"), Some(format!("{}/login?signed_out=1", rig.app.origin)));
    assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn domain_lookup_answers_without_naming_the_tenant() {
    let rig = rig().await;
    let c = reqwest::Client::new();
    let r =
        c.post(format!("{}/sso/lookup", rig.app.origin)).json(&json!({"email": "hal@acme.test"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    assert!(set_cookies(r.headers()).iter().any(|c| c.starts_with("bfy_tx_")));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sso"], true);
    assert!(v["redirect_url"].as_str().unwrap().starts_with(&rig.op.issuer("/t1")));
    let text = v.to_string();
    assert!(!text.contains(rig.app.tenant.as_str()) && !text.contains("Acme"), "{text}");

    let r = c
        .post(format!("{}/sso/lookup", rig.app.origin))
        .json(&json!({"email": "ivy@unknown.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sso"], false);
    assert!(v["message"].as_str().unwrap().contains("not set up"));

    for bad in [json!({"email": "not-an-email"}), json!({"mail": "x@acme.test"}), json!([1])] {
        let r = c.post(format!("{}/sso/lookup", rig.app.origin)).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request");
    }

    // The no-JavaScript form says the same in HTML.
    let b = Browser::new();
    let page = b.get(&format!("{}/login", rig.app.origin)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form method=\"post\" action=\"/login\">"));
    let r = b.post_form(&format!("{}/login", rig.app.origin), &[("email", "ivy@unknown.test")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("not set up for this email domain"));
    let r = b.post_form(&format!("{}/login", rig.app.origin), &[("email", "nobody")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

// ---- rejections: each leaves no session ---------------------------------------------------------

#[tokio::test]
async fn callbacks_without_a_valid_transaction_are_refused() {
    let rig = rig().await;
    let b = Browser::new();
    let cb = format!("{}/sso/callback", rig.app.origin);

    // Missing state.
    let r = b.get(&format!("{cb}?code=abc")).await;
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "no state").await;

    // A state we never issued (mismatched).
    let back = reach_callback(&rig, &b, "jack@acme.test").await;
    let forged = replace_param(&back, "state", Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let r = b.get(&forged).await;
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "unknown").await;

    // The genuine callback still works once...
    let r = b.get(&back).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let ok_cookie = session_cookie(&r).unwrap();
    rig.app.store.take();
    // ...and its replay (even with the binding cookie put back) is refused.
    let b2 = Browser::new();
    let state = param(&back, "state").unwrap();
    let key = butterfly_core::sign_in::transaction_cookie_key(&state);
    let r = b2
        .client
        .get(&back)
        .header("cookie", format!("bfy_tx_{key}=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"))
        .send()
        .await
        .unwrap();
    assert_refused(&rig, &b2, r, StatusCode::BAD_REQUEST, "already completed").await;
    assert!(!ok_cookie.is_empty());
}

#[tokio::test]
async fn a_callback_in_another_browser_is_refused() {
    let rig = rig().await;
    let victim = Browser::new();
    let back = reach_callback(&rig, &victim, "kim@acme.test").await;
    // The attacker's browser has no transaction cookie for this state.
    let attacker = Browser::new();
    let r = attacker.get(&back).await;
    assert_refused(&rig, &attacker, r, StatusCode::BAD_REQUEST, "did not start this sign-in").await;
    // The transaction was consumed by the refused attempt: the victim's callback fails too.
    let r = victim.get(&back).await;
    assert_refused(&rig, &victim, r, StatusCode::BAD_REQUEST, "already completed").await;
}

#[tokio::test]
async fn an_expired_transaction_is_refused() {
    let rig =
        rig_with(Some(SsoPolicy { transaction_ttl_secs: 1, allow_loopback_http: true, ..SsoPolicy::default() })).await;
    let b = Browser::new();
    let back = reach_callback(&rig, &b, "lee@acme.test").await;
    // The browser would drop the cookie with the transaction; replay it to reach the server's check.
    use reqwest::cookie::CookieStore;
    let cookies = b.jar.cookies(&rig.app.origin.parse().unwrap()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let r = reqwest::Client::new().get(&back).header("cookie", cookies).send().await.unwrap();
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "took too long").await;
}

#[tokio::test]
async fn the_rfc_9207_iss_parameter_must_name_the_issuer_the_login_started_at() {
    let rig = rig().await;
    for (iss, needle) in [(Some("http://127.0.0.1:1/evil"), "another identity provider"), (None, "promises an iss")] {
        let b = Browser::new();
        let back = reach_callback(&rig, &b, "max@acme.test").await;
        let r = b.get(&replace_param(&back, "iss", iss)).await;
        assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, needle).await;
    }
}

#[tokio::test]
async fn forged_or_altered_id_tokens_are_refused() {
    let rig = rig().await;
    let refused = StatusCode::BAD_REQUEST;
    for (mutation, expected, needle) in [
        ("nonce", refused, "nonce"),
        ("aud", refused, "audience"),
        ("iss", refused, "issuer"),
        ("expired", refused, "expired"),
        ("alg_none", refused, "signature"),
        ("bad_signature", refused, "signature"),
        // A key still unknown after fetching the key set again is refused.
        ("unknown_key", refused, "unknown key"),
        // Within 30 s of that refetch the key set is not fetched again: the token may be from
        // a key rotated in since, so the user is asked to try again rather than refused.
        ("other_issuer_key", StatusCode::BAD_GATEWAY, "try again"),
    ] {
        let b = Browser::new();
        let back = reach_callback(&rig, &b, "nina@acme.test").await;
        rig.op.mutate_next_id_token("/t1", mutation).await;
        let r = b.get(&back).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, expected, "{mutation}: {text}");
        assert!(text.to_lowercase().contains(needle), "{mutation}: expected {needle:?} in {text}");
        let (_, ops) = rig.app.store.take();
        assert!(!ops.contains(&"create_session") && !ops.contains(&"create_user"), "{mutation}: {ops:?}");
        assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED, "{mutation}");
    }
    // After all that, an honest token still works.
    let b = Browser::new();
    assert_eq!(b.sign_in(&rig.app.origin, "nina@acme.test").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_code_from_another_tenants_issuer_is_refused() {
    let rig = rig().await;
    // The browser starts at Acme (issuer /t1)...
    let b = Browser::new();
    let acme_back = reach_callback(&rig, &b, "oscar@acme.test").await;
    // ...and an attacker swaps in a code (and iss) obtained at Globex's issuer (/t2).
    let other = Browser::new();
    let globex_back = reach_callback(&rig, &other, "oscar@globex.test").await;
    let swapped = replace_param(&acme_back, "code", param(&globex_back, "code").as_deref());
    let swapped_with_iss = replace_param(&swapped, "iss", param(&globex_back, "iss").as_deref());
    let r = b.get(&swapped_with_iss).await;
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "another identity provider").await;
    // With Acme's iss kept, the code goes to Acme's token endpoint only, which refuses it.
    let b = Browser::new();
    let acme_back = reach_callback(&rig, &b, "oscar@acme.test").await;
    let globex_back = reach_callback(&rig, &other, "oscar@globex.test").await;
    let swapped = replace_param(&acme_back, "code", param(&globex_back, "code").as_deref());
    let r = b.get(&swapped).await;
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "refused the sign-in").await;
    let _ = rig.other;
}

#[tokio::test]
async fn return_paths_never_leave_the_site() {
    let rig = rig().await;
    let b = Browser::new();
    for bad in
        ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "javascript:alert(1)"]
    {
        let r =
            b.post_form(&format!("{}/login", rig.app.origin), &[("email", "pat@acme.test"), ("return_to", bad)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(location(&r).is_none());
        let r = b
            .get(&format!(
                "{}/sso/initiate?iss={}&target_link_uri={}",
                rig.app.origin,
                urlencode(&rig.op.issuer("/t1")),
                urlencode(bad)
            ))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(location(&r).is_none());
    }
    // A good relative return path survives the whole flow.
    let start = b
        .post_form(&format!("{}/login", rig.app.origin), &[("email", "pat@acme.test"), ("return_to", "/reports?x=1")])
        .await;
    let back = b.sign_in_at_provider(&location(&start).unwrap(), "pat@acme.test", &rig.app.origin).await;
    assert_eq!(location(&b.get(&back).await).as_deref(), Some("/reports?x=1"));
}

#[tokio::test]
async fn an_unknown_issuer_on_initiate_is_refused_without_fetching_it() {
    let rig = rig().await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}/oauth2/default", trap.local_addr().unwrap());
    let b = Browser::new();
    let r = b.get(&format!("{}/sso/initiate?iss={}", rig.app.origin, urlencode(&trap_url))).await;
    assert_refused(&rig, &b, r, StatusCode::BAD_REQUEST, "not connected").await;
    let contacted = tokio::time::timeout(std::time::Duration::from_millis(300), trap.accept()).await;
    assert!(contacted.is_err(), "an unknown issuer was contacted");
    let r = b.get(&format!("{}/sso/initiate", rig.app.origin)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

// ---- settings ------------------------------------------------------------------------------------

#[tokio::test]
async fn sso_settings_are_validated_and_the_secret_is_write_only() {
    let rig = rig().await;
    let t = rig.app.tenant.clone();
    let view = rig.app.sso.settings(&t).await.unwrap();
    assert_eq!(view.issuer.as_ref().map(|i| i.as_str().to_string()), Some(rig.op.issuer("/t1")));
    assert!(view.client_secret_set);
    assert!(view.enabled);
    assert!(!format!("{view:?}").contains("acme-secret"));

    let err = |e: SsoError| e.to_string();
    // Discovery must answer for exactly this issuer.
    let dead = format!("http://127.0.0.1:{}/nothing", rig.op.port);
    let e = rig.app.sso.configure(&t, settings(dead, "c", "s", "acme.test")).await.unwrap_err();
    assert!(err(e).contains("failed discovery"));
    // Private and link-local targets are refused before any request.
    for target in ["https://169.254.169.254", "https://10.1.2.3/oauth2/default", "http://acme.okta.com"] {
        let e = rig.app.sso.configure(&t, settings(target.into(), "c", "s", "acme.test")).await.unwrap_err();
        assert!(matches!(e, SsoError::Settings(_)), "{target}: {e}");
    }
    // Consumer domains, domains of another tenant, and the other tenant's issuer are refused.
    let e = rig.app.sso.configure(&t, settings(rig.op.issuer("/t1"), "c", "s", "acme.test, gmail.com")).await;
    assert!(err(e.unwrap_err()).contains("public mailbox provider"));
    let e = rig.app.sso.configure(&t, settings(rig.op.issuer("/t1"), "c", "s", "globex.test")).await;
    assert!(err(e.unwrap_err()).contains("another Butterfly organisation"));
    let e = rig.app.sso.configure(&t, settings(rig.op.issuer("/t2"), "c", "s", "acme.test")).await;
    assert!(err(e.unwrap_err()).contains("another Butterfly organisation"));
    // Nothing changed by the refusals.
    assert_eq!(rig.app.sso.settings(&t).await.unwrap(), view);

    // Domains move atomically; the secret can be kept by omitting it.
    let moved = rig
        .app
        .sso
        .configure(
            &t,
            SsoSettingsInput {
                issuer: rig.op.issuer("/t1"),
                client_id: "butterfly-acme".into(),
                client_secret: None,
                domains: Some(" ACME.test, acme-eu.test ".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ["acme.test", "acme-eu.test"]);
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/sso/lookup", rig.app.origin))
        .json(&json!({"email": "q@acme-eu.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sso"], true);

    // Turned off: the login page no longer routes the domain.
    let mut off = settings(rig.op.issuer("/t1"), "butterfly-acme", "acme-secret", "acme.test");
    off.enabled = false;
    rig.app.sso.configure(&t, off).await.unwrap();
    let r =
        c.post(format!("{}/sso/lookup", rig.app.origin)).json(&json!({"email": "q@acme.test"})).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sso"], false);
}

#[tokio::test]
async fn auth_responses_are_never_cached_and_pages_are_locked_down() {
    let rig = rig().await;
    let b = Browser::new();
    for path in ["/login", "/me", "/", "/sso/callback"] {
        let r = b.get(&format!("{}{path}", rig.app.origin)).await;
        assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path}");
    }
    let r = b.get(&format!("{}/login", rig.app.origin)).await;
    let h = r.headers();
    assert!(h.get("content-security-policy").unwrap().to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
    // Unauthenticated home goes to the login page.
    let r = b.get(&format!("{}/", rig.app.origin)).await;
    assert_eq!(location(&r).as_deref(), Some("/login"));
    // Markup in inputs is escaped.
    let r = b.post_form(&format!("{}/login", rig.app.origin), &[("email", "<script>x</script>@acme.test")]).await;
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>x"), "{page}");
}

#[tokio::test]
async fn discovery_follows_no_redirect_and_must_name_the_issuer() {
    use axum::routing::get;
    let rig = rig().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let real = rig.op.issuer("/t1");
    let real_for_redirect = real.clone();
    let impostor = origin.clone();
    let stub = axum::Router::new()
        // A redirect to a genuine provider's discovery must not be followed.
        .route(
            "/redirect/.well-known/openid-configuration",
            get(move || {
                let to = format!("{real_for_redirect}/.well-known/openid-configuration");
                async move { (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, to)]) }
            }),
        )
        // A discovery document that names another issuer is refused.
        .route(
            "/impostor/.well-known/openid-configuration",
            get(move || {
                let real = real.clone();
                async move {
                    let body = reqwest::get(format!("{real}/.well-known/openid-configuration"))
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, stub).await;
    });
    for (path, needle) in [("/redirect", "failed discovery"), ("/impostor", "failed discovery")] {
        let e = rig
            .app
            .sso
            .configure(&rig.app.tenant, settings(format!("{impostor}{path}"), "c", "s", "acme.test"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(needle), "{path}: {e}");
    }
    // The settings in force are unchanged.
    let view = rig.app.sso.settings(&rig.app.tenant).await.unwrap();
    assert_eq!(view.issuer.map(|i| i.as_str().to_string()), Some(rig.op.issuer("/t1")));
}

/// The owner a setup link signed in (a manual super_admin, no provider identity yet) signs in
/// later through the tenant's provider with the same email: the same user, linked now, keeping
/// its role — not a new just-in-time `read_only` user.
#[tokio::test]
async fn the_setup_link_owner_signs_in_through_the_provider_to_the_same_super_admin() {
    use butterfly_core::ports::UserStore;
    let rig = rig().await;
    let service = butterfly_core::setup_link::SetupLinkService::new(
        rig.app.store.clone(),
        std::sync::Arc::new(butterfly_core::clock::SystemClock),
        3600,
    );
    let owner = butterfly_core::email::UserName::parse("olive@acme.test").unwrap();
    let issued = service.issue(&rig.app.tenant, Some(&owner)).await.unwrap();
    let b = Browser::new();
    let r = b.post_form(&format!("{}/console/setup", rig.app.origin), &[("link", issued.link.secret().expose())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, first) = me(&b, &rig).await;
    assert_eq!(
        (first["role"].as_str(), first["session"]["issuer"].as_str()),
        (Some("super_admin"), Some("butterfly:setup-link"))
    );
    let before = rig.app.store.find_user_by_user_name(&rig.app.tenant, "olive@acme.test").await.unwrap().unwrap();
    assert!(before.subject.is_none(), "no provider identity yet");

    let r = b.sign_in(&rig.app.origin, "olive@acme.test").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, v) = me(&b, &rig).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], first["user"]["id"], "linked, not a new user");
    assert_eq!((v["role"].as_str(), v["roleSource"].as_str()), (Some("super_admin"), Some("manual")));
    assert_eq!(v["session"]["issuer"].as_str(), Some(rig.op.issuer("/t1").as_str()));
    assert_eq!(rig.app.find("olive@acme.test").await["totalResults"], 1);
    let after = rig.app.store.find_user_by_user_name(&rig.app.tenant, "olive@acme.test").await.unwrap().unwrap();
    assert_eq!(after.subject.as_ref().map(|s| s.issuer.as_str()), Some(rig.op.issuer("/t1").as_str()));
    // And the next sign-in finds it by that link.
    let b2 = Browser::new();
    assert_eq!(b2.sign_in(&rig.app.origin, "olive@acme.test").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b2, &rig).await.1["user"]["id"], first["user"]["id"]);
}
