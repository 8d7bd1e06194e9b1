//! The sign-in trust boundary under attack (the security review's findings, each as the attack
//! that worked before): account takeover through email linking, login CSRF through
//! IdP-initiated sign-in and cross-site posts, domains and issuers claimed without proof, an
//! issuer change, and ID tokens with another client's `azp` or an `iat` in the future. Real
//! peers only: oidc-provider 8.8.1 as each tenant's IdP, a DNS server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::actor::Actor;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::sso_settings::{verification_name, verification_value};
use butterfly_tests::op::{client_spec, client_spec_with_logout, location, set_cookies, Browser, TestOp};
use butterfly_tests::{okta_user, sso_settings as settings, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

struct Rig {
    app: TestApp,
    op: TestOp,
    /// The attacker's tenant (issuer /t2, domain globex.test).
    other: TenantId,
}

async fn rig() -> Rig {
    let app = TestApp::spawn().await;
    let op = TestOp::start(
        0,
        json!([
            {"prefix": "/t1", "kid": "t1", "clients": [
                client_spec_with_logout("acme", "acme-secret", &app.origin),
                client_spec("acme-second", "acme-second-secret", &app.origin),
            ]},
            {"prefix": "/t2", "kid": "t2", "clients": [client_spec("globex", "globex-secret", &app.origin)]},
            {"prefix": "/t3", "kid": "t3", "clients": [
                client_spec("acme-new", "acme-new-secret", &app.origin),
                client_spec("globex-steal", "steal-secret", &app.origin),
            ]},
        ]),
    )
    .await;
    app.sso.configure(&app.tenant, settings(op.issuer("/t1"), "acme", "acme-secret", "acme.test")).await.unwrap();
    let (other, _) = app.other_tenant().await;
    app.sso.configure(&other, settings(op.issuer("/t2"), "globex", "globex-secret", "globex.test")).await.unwrap();
    app.store.take();
    Rig { app, op, other }
}

fn session_cookie(r: &Response) -> Option<String> {
    set_cookies(r.headers())
        .into_iter()
        .find_map(|c| c.strip_prefix("bfy_session=").map(|v| v.split(';').next().unwrap_or("").to_string()))
        .filter(|v| !v.is_empty())
}

async fn me(b: &Browser, rig: &Rig) -> (StatusCode, Value) {
    let r = b.get(&format!("{}/me", rig.app.origin)).await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A session started through the tenant's previous provider (/t1) while a new one is pending:
/// made directly in the store, as sign-ins through /t1 cannot start any more.
async fn sign_in_before_switch(rig: &Rig, b: &Browser) -> StatusCode {
    use butterfly_core::ports::{SessionStore, UserStore};
    let user = rig.app.store.find_user_by_user_name(&rig.app.tenant, "ops@acme.test").await.unwrap().unwrap();
    let (secret, session) =
        butterfly_tests::hour_session(&rig.app.tenant, user.id, &rig.op.issuer("/t1"), "ops@acme.test");
    rig.app.store.create_session(&session).await.unwrap();
    // The back-channel logout names the user by (iss, sub): link them as a sign-in would have.
    let mut linked = user.clone();
    linked.subject = Some(butterfly_core::sso::Subject { issuer: rig.op.issuer("/t1"), sub: "ops@acme.test".into() });
    linked.version += 1;
    rig.app.store.replace_user(&user, &linked).await.unwrap();
    let url = url::Url::parse(&rig.app.origin).unwrap();
    b.jar.add_cookie_str(&format!("bfy_session={}; Path=/", secret.expose()), &url);
    me(b, rig).await.0
}

async fn scim_user(rig: &Rig, email: &str, role: &str, external_id: Option<&str>) -> Value {
    let mut u = okta_user(email, "Test", "User");
    u["roles"] = json!([{ "value": role }]);
    if let Some(x) = external_id {
        u["externalId"] = json!(x);
    } else if let Some(o) = u.as_object_mut() {
        o.remove("externalId");
    }
    rig.app.create_user(&u).await
}

/// Signs in at the provider as `login` through the login page with `email` typed.
async fn sign_in_as(rig: &Rig, b: &Browser, typed_email: &str, login: &str) -> Response {
    let start = b.post_form(&format!("{}/login", rig.app.origin), &[("email", typed_email)]).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "{}", start.text().await.unwrap_or_default());
    let authorize = location(&start).unwrap();
    let back = b.sign_in_at_provider(&authorize, login, &rig.app.origin).await;
    b.get(&back).await
}

async fn assert_not_signed_in(rig: &Rig, b: &Browser, r: Response, status: StatusCode, needle: &str) {
    assert_eq!(r.status(), status);
    assert!(session_cookie(&r).is_none(), "a session cookie was set");
    let page = r.text().await.unwrap();
    assert!(page.contains(needle), "expected {needle:?} in {page}");
    assert_eq!(me(b, rig).await.0, StatusCode::UNAUTHORIZED);
}

async fn audit_reasons(rig: &Rig) -> Vec<String> {
    let events = rig.app.store.audit_page(&rig.app.tenant, None, 100).await.unwrap();
    events
        .iter()
        .filter(|e| e.action.as_str() == "signin.refused")
        .filter_map(|e| e.details["reason"].as_str().map(String::from))
        .collect()
}

use butterfly_core::ports::AuditStore;

// ---- 2. account takeover through email linking ------------------------------------------------

#[tokio::test]
async fn a_kelvin_sign_look_alike_email_does_not_take_over_a_super_admin() {
    let rig = rig().await;
    scim_user(&rig, "kate@acme.test", "super_admin", None).await;
    rig.op.set_account("/t1", "impostor", json!({"email": "\u{212a}ate@acme.test", "email_verified": true})).await;
    let b = Browser::new();
    let r = sign_in_as(&rig, &b, "impostor@acme.test", "impostor").await;
    assert_not_signed_in(&rig, &b, r, StatusCode::FORBIDDEN, "not linked").await;
    let kate = rig.app.find("kate@acme.test").await;
    assert_eq!(kate["totalResults"], 1);
    assert!(audit_reasons(&rig).await.contains(&"account_link_refused".to_string()));
}

#[tokio::test]
async fn an_unverified_or_missing_email_verification_links_nothing() {
    let rig = rig().await;
    scim_user(&rig, "kate@acme.test", "super_admin", None).await;
    // email_verified false, and email_verified absent (then userinfo is asked, and says nothing either).
    for (login, claims) in [
        ("mallory1", json!({"email": "kate@acme.test", "email_verified": false})),
        ("mallory2", json!({"email": "kate@acme.test", "email_verified": null})),
    ] {
        rig.op.set_account("/t1", login, claims).await;
        let b = Browser::new();
        let r = sign_in_as(&rig, &b, "kate@acme.test", login).await;
        assert_not_signed_in(&rig, &b, r, StatusCode::FORBIDDEN, "verified").await;
    }
    let u = rig.app.find("kate@acme.test").await;
    assert!(u["Resources"][0].get("subject").is_none());
}

#[tokio::test]
async fn preferred_username_is_never_used_to_find_an_account() {
    let rig = rig().await;
    scim_user(&rig, "boss@acme.test", "super_admin", None).await;
    rig.op.set_account("/t1", "mallory", json!({"email": null, "preferred_username": "boss@acme.test"})).await;
    let b = Browser::new();
    let r = sign_in_as(&rig, &b, "boss@acme.test", "mallory").await;
    assert_not_signed_in(&rig, &b, r, StatusCode::BAD_REQUEST, "no email").await;
}

#[tokio::test]
async fn case_folding_never_merges_two_addresses() {
    let rig = rig().await;
    scim_user(&rig, "straße@acme.test", "admin", None).await;
    rig.op.set_account("/t1", "strasse", json!({"email": "strasse@acme.test", "email_verified": true})).await;
    let b = Browser::new();
    let r = sign_in_as(&rig, &b, "strasse@acme.test", "strasse").await;
    assert_not_signed_in(&rig, &b, r, StatusCode::FORBIDDEN, "resembles").await;
}

#[tokio::test]
async fn the_scim_external_id_equal_to_sub_links_the_account() {
    let rig = rig().await;
    let created = scim_user(&rig, "ops@acme.test", "admin", Some("00u-ops-1")).await;
    // Okta's user id is both the SCIM externalId and the ID token's sub; the email differs.
    rig.op.set_account("/t1", "00u-ops-1", json!({"email": "ops.renamed@acme.test", "email_verified": true})).await;
    let b = Browser::new();
    let r = sign_in_as(&rig, &b, "ops@acme.test", "00u-ops-1").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
    let (_, v) = me(&b, &rig).await;
    assert_eq!(v["user"]["id"], created["id"]);
    assert_eq!(v["role"], "admin");
}

#[tokio::test]
async fn just_in_time_users_need_a_verified_email_in_a_verified_domain() {
    let rig = rig().await;
    rig.op.set_account("/t1", "stranger", json!({"email": "stranger@elsewhere.test", "email_verified": true})).await;
    rig.op.set_account("/t1", "unverified", json!({"email": "unverified@acme.test", "email_verified": false})).await;
    for (login, needle) in [("stranger", "verified domains"), ("unverified", "verified")] {
        let b = Browser::new();
        let r = sign_in_as(&rig, &b, "someone@acme.test", login).await;
        assert_not_signed_in(&rig, &b, r, StatusCode::FORBIDDEN, needle).await;
    }
    assert_eq!(rig.app.store.count_users(&rig.app.tenant).await.unwrap(), 0, "nobody was created");
    let b = Browser::new();
    let r = sign_in_as(&rig, &b, "newbie@acme.test", "newbie@acme.test").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b, &rig).await.1["role"], "read_only");
}

use butterfly_core::ports::UserStore;

// ---- 4. login CSRF ------------------------------------------------------------------------------

#[tokio::test]
async fn a_provider_initiated_sign_in_never_silently_replaces_a_session() {
    let rig = rig().await;
    let b = Browser::new();
    assert_eq!(sign_in_as(&rig, &b, "alice@acme.test", "alice@acme.test").await.status(), StatusCode::SEE_OTHER);
    // The attacker's page sends Alice's browser to /sso/initiate with the attacker's issuer;
    // the attacker's IdP signs her in as the attacker.
    let r = b.get(&format!("{}/sso/initiate?iss={}", rig.app.origin, rig.op.issuer("/t2"))).await;
    let authorize = location(&r).unwrap();
    let back = b.sign_in_at_provider(&authorize, "mallory@globex.test", &rig.app.origin).await;
    let r = b.get(&back).await;
    assert_eq!(r.status(), StatusCode::OK, "an interstitial, not a redirect");
    assert!(session_cookie(&r).is_none(), "the session was replaced");
    let pending = set_cookies(r.headers())
        .into_iter()
        .find_map(|c| c.strip_prefix("bfy_pending=").map(|v| v.split(';').next().unwrap_or("").to_string()))
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("alice@acme.test") && page.contains("mallory@globex.test"), "{page}");
    assert_eq!(me(&b, &rig).await.1["user"]["userName"], "alice@acme.test", "still Alice");
    // The pending sign-in is not a session, even presented as one.
    let forged = reqwest::Client::new()
        .get(format!("{}/me", rig.app.origin))
        .header("cookie", format!("bfy_session={pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // A cross-site confirmation is refused; Alice chooses to stay.
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let cross = b
        .client
        .post(format!("{}/sso/confirm", rig.app.origin))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("accept", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let stay = b.post_form(&format!("{}/sso/confirm", rig.app.origin), &[("csrf", &csrf), ("accept", "no")]).await;
    assert_eq!(stay.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b, &rig).await.1["user"]["userName"], "alice@acme.test");

    // Chosen knowingly, the switch happens.
    let r = b.get(&format!("{}/sso/initiate?iss={}", rig.app.origin, rig.op.issuer("/t2"))).await;
    let back = b.sign_in_at_provider(&location(&r).unwrap(), "mallory@globex.test", &rig.app.origin).await;
    let page = b.get(&back).await.text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let go = b.post_form(&format!("{}/sso/confirm", rig.app.origin), &[("csrf", &csrf), ("accept", "yes")]).await;
    assert_eq!(go.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&go).is_some());
    assert_eq!(me(&b, &rig).await.1["user"]["userName"], "mallory@globex.test");
}

#[tokio::test]
async fn cross_site_posts_to_login_and_logout_are_refused() {
    let rig = rig().await;
    let b = Browser::new();
    for headers in [vec![("sec-fetch-site", "cross-site")], vec![("origin", "https://evil.example")]] {
        let mut req = b.client.post(format!("{}/login", rig.app.origin)).form(&[("email", "victim@acme.test")]);
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(set_cookies(r.headers()).is_empty());
    }
    let (_, ops) = rig.app.store.take();
    assert!(!ops.contains(&"put_login"), "a cross-site login start wrote a transaction: {ops:?}");
    // Same-site posts (and clients that send neither header) work.
    let r = b
        .client
        .post(format!("{}/login", rig.app.origin))
        .header("sec-fetch-site", "same-origin")
        .form(&[("email", "x@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    assert_eq!(sign_in_as(&rig, &b, "alice@acme.test", "alice@acme.test").await.status(), StatusCode::SEE_OTHER);
    // A forced logout from another site, or without the CSRF token, ends nothing.
    let cross = b
        .client
        .post(format!("{}/logout", rig.app.origin))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let no_token = b.post_form(&format!("{}/logout", rig.app.origin), &[]).await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let (status, v) = me(&b, &rig).await;
    assert_eq!(status, StatusCode::OK);
    // The CSRF token is keyed: the old unkeyed SHA-256 of the cookie is not it.
    let token = v["csrfToken"].as_str().unwrap().to_string();
    let ok = b.post_form(&format!("{}/logout", rig.app.origin), &[("csrf", &token)]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED);
}

// ---- 5. domains and issuers claimed without proof -------------------------------------------------

#[tokio::test]
async fn a_domain_routes_only_once_dns_proves_it_and_stops_when_the_proof_goes() {
    let rig = rig().await;
    let mallory = UserId::generate();
    // The attacker's tenant adds bigbank.test: it is pending, routes nothing and claims nothing.
    let v = rig
        .app
        .sso
        .configure_as(
            &rig.other,
            settings(rig.op.issuer("/t2"), "globex", "globex-secret", "globex.test, bigbank.test"),
            &Actor::User(mallory),
        )
        .await
        .unwrap();
    assert!(v.domain_records.iter().any(|r| r.domain.as_str() == "bigbank.test" && !r.is_verified()));
    let lookup = |email: &'static str| {
        let origin = rig.app.origin.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{origin}/sso/lookup"))
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["sso"].as_bool().unwrap()
        }
    };
    assert!(!lookup("ceo@bigbank.test").await, "an unverified domain routed a sign-in");
    // The real owner (Acme here) adds it too, publishes its token, verifies: Acme gets it.
    rig.app
        .sso
        .configure_as(
            &rig.app.tenant,
            settings(rig.op.issuer("/t1"), "acme", "acme-secret", "acme.test, bigbank.test"),
            &Actor::Operator,
        )
        .await
        .unwrap();
    let acme = rig.app.sso.settings(&rig.app.tenant).await.unwrap();
    assert!(acme.domains.iter().any(|d| d.as_str() == "bigbank.test"), "operator-added domains are verified");
    // Mallory publishes her own token under the domain she does not control... she cannot:
    // verification finds Acme's record only, so hers fails with a message naming no tenant.
    let other = rig.app.sso.settings(&rig.other).await.unwrap();
    let theirs = other.verification_token.clone().unwrap();
    rig.app.dns.add_txt(&verification_name(&"bigbank.test".parse_domain()), &verification_value(&theirs)).await;
    let e = rig.app.domains.verify(&rig.other, "bigbank.test", &Actor::User(mallory)).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("another Butterfly organisation")
            && !msg.contains(rig.app.tenant.as_str())
            && !msg.contains("Acme"),
        "{msg}"
    );
}

trait ParseDomain {
    fn parse_domain(&self) -> butterfly_core::email::EmailDomain;
}
impl ParseDomain for &str {
    fn parse_domain(&self) -> butterfly_core::email::EmailDomain {
        butterfly_core::email::EmailDomain::parse(self).unwrap()
    }
}

#[tokio::test]
async fn dns_verification_grants_and_withdraws_a_domain() {
    let rig = rig().await;
    let admin = UserId::generate();
    rig.app
        .sso
        .configure_as(
            &rig.app.tenant,
            settings(rig.op.issuer("/t1"), "acme", "acme-secret", "acme.test, acme-labs.test"),
            &Actor::User(admin),
        )
        .await
        .unwrap();
    let token = rig.app.sso.settings(&rig.app.tenant).await.unwrap().verification_token.unwrap();
    let name = verification_name(&"acme-labs.test".parse_domain());
    // Without the record: not verified, and the reason names the record to add.
    let r = rig.app.domains.verify(&rig.app.tenant, "acme-labs.test", &Actor::User(admin)).await.unwrap().record;
    assert!(!r.is_verified());
    assert!(r.last_error.as_deref().unwrap_or("").contains(&name));
    rig.app.dns.add_txt(&name, "some-other-vendor=123").await;
    rig.app.dns.add_txt(&name, &verification_value(&token)).await;
    let r = rig.app.domains.verify(&rig.app.tenant, "acme-labs.test", &Actor::User(admin)).await.unwrap().record;
    assert!(r.is_verified(), "{r:?}");
    let routed = reqwest::Client::new()
        .post(format!("{}/sso/lookup", rig.app.origin))
        .json(&json!({"email": "x@acme-labs.test"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(routed["sso"], true);
    // The record is removed: one missed check keeps it (a DNS edit being fixed), two withdraw it.
    rig.app.dns.remove(&name, hickory_server::proto::rr::RecordType::TXT).await;
    let recheck = || async {
        let check = rig.app.domains.verify(&rig.app.tenant, "acme-labs.test", &Actor::System).await.unwrap();
        check.record.is_verified()
    };
    assert!(recheck().await);
    assert!(!recheck().await);
    let t = rig.app.sso.settings(&rig.app.tenant).await.unwrap();
    assert!(!t.domains.iter().any(|d| d.as_str() == "acme-labs.test"));
    let events = rig.app.store.audit_page(&rig.app.tenant, None, 50).await.unwrap();
    assert!(events.iter().any(|e| e.action.as_str() == "domain.verify"));
    assert!(events.iter().any(|e| e.action.as_str() == "domain.withdraw"));
}

/// Acme's super_admin signed in through the current provider: browser, CSRF token, user id.
async fn signed_in_root(rig: &Rig) -> (Browser, String, UserId) {
    scim_user(rig, "root@acme.test", "super_admin", None).await;
    let b = Browser::new();
    assert_eq!(sign_in_as(rig, &b, "root@acme.test", "root@acme.test").await.status(), StatusCode::SEE_OTHER);
    let me_v = me(&b, rig).await.1;
    let csrf = me_v["csrfToken"].as_str().unwrap().to_string();
    (b, csrf, UserId::parse(me_v["user"]["id"].as_str().unwrap()).unwrap())
}

/// Acme's super_admin `root` saves the provider at `prefix` with `client` (secret
/// `{client}-secret`): saved but pending, and no sign-in starts through it until its test.
async fn switch_provider_as(rig: &Rig, root: UserId, prefix: &str, client: &str) {
    let secret = format!("{client}-secret");
    let v = rig
        .app
        .sso
        .configure_as(
            &rig.app.tenant,
            settings(rig.op.issuer(prefix), client, &secret, "acme.test"),
            &Actor::User(root),
        )
        .await
        .unwrap();
    assert!(v.issuer_bound_at.is_none(), "{prefix} with {client} was trusted without a test sign-in");
    let r = Browser::new().get(&format!("{}/sso/initiate?iss={}", rig.app.origin, rig.op.issuer(prefix))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a pending provider started a sign-in");
}

/// While a new provider is pending, the one it replaces (/t1, client "acme") is still trusted
/// for logout: its back-channel logout ends a session it started (another user's).
async fn assert_old_provider_logout_still_ends_sessions(rig: &Rig) {
    let other = Browser::new();
    scim_user(rig, "ops@acme.test", "admin", None).await;
    assert_eq!(sign_in_before_switch(rig, &other).await, StatusCode::OK);
    rig.op.backchannel_logout("/t1", "acme", "ops@acme.test", None).await;
    assert_eq!(me(&other, rig).await.0, StatusCode::UNAUTHORIZED, "the old provider's logout was refused");
}

/// The test sign-in, from the admin API, in the admin's browser `b`: the authorization URL it
/// was sent to, and the report page's response.
async fn run_test_sign_in(rig: &Rig, b: &Browser, csrf: &str) -> (String, Response) {
    let start =
        b.client.post(format!("{}/admin/sso/test", rig.app.origin)).header("x-csrf-token", csrf).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::OK);
    let url = start.json::<Value>().await.unwrap()["redirect_url"].as_str().unwrap().to_string();
    let back = b.sign_in_at_provider(&url, "root@acme.test", &rig.app.origin).await;
    (url, b.get(&back).await)
}

#[tokio::test]
async fn an_issuer_is_bound_only_by_a_successful_test_sign_in() {
    let rig = rig().await;
    let (b, csrf, root) = signed_in_root(&rig).await;
    // The attacker's tenant names Acme's new provider first: that claims nothing.
    rig.app
        .sso
        .configure_as(
            &rig.other,
            settings(rig.op.issuer("/t3"), "globex-steal", "steal-secret", "globex.test"),
            &Actor::User(UserId::generate()),
        )
        .await
        .unwrap();
    // Acme's admin switches to the new provider: saved, not bound, routes nothing yet.
    switch_provider_as(&rig, root, "/t3", "acme-new").await;
    // Until the new issuer is bound, the old provider's logout messages are still trusted.
    assert_old_provider_logout_still_ends_sessions(&rig).await;
    let (_, report) = run_test_sign_in(&rig, &b, &csrf).await;
    assert_eq!(report.status(), StatusCode::OK);
    assert!(session_cookie(&report).is_none(), "a test signs nobody in");
    let page = report.text().await.unwrap();
    assert!(page.contains("The test sign-in passed") && page.contains("now bound"), "{page}");
    assert!(rig.app.sso.settings(&rig.app.tenant).await.unwrap().issuer_bound_at.is_some());
    // Binding the new issuer ended the sessions from the old one (the admin's included).
    assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED);
    // The users re-link through the new provider by the rules (verified email here).
    let b2 = Browser::new();
    assert_eq!(sign_in_as(&rig, &b2, "root@acme.test", "root@acme.test").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b2, &rig).await.1["role"], "super_admin");
    // The attacker can no longer bind it (the operator path binds at once: refused by the
    // store's claim), and learns no tenant from trying.
    let e = rig
        .app
        .sso
        .configure(&rig.other, settings(rig.op.issuer("/t3"), "globex-steal", "steal-secret", "globex.test"))
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("another Butterfly organisation") && !m.contains(rig.app.tenant.as_str()), "{m}");
}

/// Saving the bound issuer with another client ID kept the binding: the new app was trusted at
/// once, untested, and the old app's logout tokens (its client ID is their audience) were
/// refused from then on, so sessions it started outlived their revocation in Okta. Another
/// client ID is now a new provider: pending until its test sign-in, the old app's logouts
/// trusted meanwhile, and the old app's sessions ended when the new one binds.
#[tokio::test]
async fn another_client_id_at_the_bound_issuer_waits_for_its_test_and_keeps_the_old_logouts() {
    let rig = rig().await;
    let (b, csrf, root) = signed_in_root(&rig).await;
    switch_provider_as(&rig, root, "/t1", "acme-second").await;
    // The old app's back-channel logout (audience "acme") still ends the sessions it started.
    assert_old_provider_logout_still_ends_sessions(&rig).await;
    // The test sign-in through the new app binds it and ends the old app's sessions.
    let (url, report) = run_test_sign_in(&rig, &b, &csrf).await;
    assert!(url.contains("client_id=acme-second"), "{url}");
    let page = report.text().await.unwrap();
    assert!(page.contains("The test sign-in passed") && page.contains("now bound"), "{page}");
    let bound = rig.app.sso.settings(&rig.app.tenant).await.unwrap();
    assert!(bound.issuer_bound_at.is_some());
    assert_eq!(bound.client_id.as_deref(), Some("acme-second"));
    assert_eq!(me(&b, &rig).await.0, StatusCode::UNAUTHORIZED, "the old app's session outlived the switch");
    let b2 = Browser::new();
    assert_eq!(sign_in_as(&rig, &b2, "root@acme.test", "root@acme.test").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(&b2, &rig).await.1["role"], "super_admin");
}

// ---- 6. smaller ones ------------------------------------------------------------------------------

#[tokio::test]
async fn id_tokens_for_another_client_or_issued_in_the_future_are_refused() {
    let rig = rig().await;
    for (mutation, needle) in [("azp", "another client"), ("iat_future", "future")] {
        rig.op.mutate_next_id_token("/t1", mutation).await;
        let b = Browser::new();
        let r = sign_in_as(&rig, &b, "zed@acme.test", "zed@acme.test").await;
        assert_not_signed_in(&rig, &b, r, StatusCode::BAD_REQUEST, needle).await;
    }
}

#[tokio::test]
async fn logout_tokens_issued_in_the_future_are_refused() {
    let rig = rig().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let jwt = rig
        .op
        .sign(
            "/t1",
            json!({"alg": "RS256", "typ": "logout+jwt"}),
            json!({
                "iss": rig.op.issuer("/t1"), "aud": "acme", "iat": now + 86_400, "exp": now + 90_000,
                "jti": "future-1", "sub": "alice@acme.test",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}}
            }),
            false,
        )
        .await;
    let r = reqwest::Client::new()
        .post(format!("{}/sso/backchannel-logout", rig.app.origin))
        .form(&[("logout_token", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("future"));
}
