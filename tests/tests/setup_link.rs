//! The owner's one-time setup link over HTTP: the page behind the link changes nothing, its
//! button signs the owner in as a super_admin with a working session, and every attack on it
//! — replay, guessing, another tenant's id, a cross-site post, an expired link — gets the same
//! refusal and no session.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_api::setup::CONSOLE_HOME;
use butterfly_core::clock::{Clock, SystemClock, Timestamp};
use butterfly_core::email::UserName;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{AuditStore, SetupLinkStore, UserStore};
use butterfly_core::role::Role;
use butterfly_core::setup_link::{IssuedSetupLink, SetupLinkService, SETUP_LINK_PREFIX};
use butterfly_core::user::RoleSource;
use butterfly_tests::op::{location, set_cookies};
use butterfly_tests::TestApp;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;

const OWNER: &str = "Owner@Acme.test";

/// A clock `offset_secs` away from now.
struct Shifted(i64);
impl Clock for Shifted {
    fn now(&self) -> Timestamp {
        SystemClock.now().plus_secs(self.0)
    }
}

fn service(app: &TestApp, clock: Arc<dyn Clock>) -> SetupLinkService {
    SetupLinkService::new(app.store.clone(), clock, 3600)
}

async fn issue(app: &TestApp, tenant: &TenantId) -> IssuedSetupLink {
    let owner = UserName::parse(OWNER).unwrap();
    let issued = service(app, Arc::new(SystemClock)).issue(tenant, Some(&owner)).await.unwrap();
    app.store.take();
    issued
}

fn text(issued: &IssuedSetupLink) -> String {
    issued.link.secret().expose().to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn open(app: &TestApp, link: &str) -> Response {
    client().get(format!("{}/console/setup/{link}", app.origin)).send().await.unwrap()
}

/// The button of the page: a same-origin form post of the link.
async fn press(app: &TestApp, link: &str) -> Response {
    client()
        .post(format!("{}/console/setup", app.origin))
        .header("sec-fetch-site", "same-origin")
        .form(&[("link", link)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(r: &Response) -> Option<String> {
    set_cookies(r.headers())
        .into_iter()
        .find_map(|c| c.strip_prefix("bfy_session=").map(|v| v.split(';').next().unwrap_or("").to_string()))
        .filter(|v| !v.is_empty())
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn assert_locked_down(r: &Response) {
    assert_eq!(header(r, "cache-control"), Some("no-store"), "{:?}", r.headers());
    assert_eq!(header(r, "referrer-policy"), Some("no-referrer"), "{:?}", r.headers());
}

/// The one refusal of a link that does not work: status, page, no cookie; returns the page.
async fn assert_invalid(r: Response) -> String {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_locked_down(&r);
    assert!(session_cookie(&r).is_none(), "a refused link set a session cookie");
    assert!(header(&r, "content-type").is_some_and(|c| c.starts_with("text/html")));
    let page = r.text().await.unwrap();
    assert!(page.contains("Setup link not valid") && page.contains("expired, was already used"), "{page}");
    page
}

async fn me(app: &TestApp, cookie: &str) -> (StatusCode, Value) {
    let r = client().get(format!("{}/me", app.origin)).header("cookie", format!("bfy_session={cookie}")).send().await;
    let r = r.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_page_behind_a_link_changes_nothing_and_its_button_signs_the_owner_in() {
    let app = TestApp::spawn().await;
    let issued = issue(&app, &app.tenant).await;
    let link = text(&issued);

    // A link scanner or prefetcher opens the link, any number of times: no store call at all.
    for _ in 0..3 {
        let r = open(&app, &link).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_locked_down(&r);
        assert!(session_cookie(&r).is_none());
        let csp = header(&r, "content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let page = r.text().await.unwrap();
        assert!(page.contains("action=\"/console/setup\"") && page.contains(&link), "{page}");
        assert!(!page.contains("<script"), "works without JavaScript");
    }
    let head = client().head(format!("{}/console/setup/{link}", app.origin)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let (ops, log) = app.store.take();
    assert_eq!(ops, 0, "opening the link touched the store: {log:?}");

    // The button: signed in as the owner, a manual super_admin, sent to the console.
    let r = press(&app, &link).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_locked_down(&r);
    assert_eq!(location(&r).as_deref(), Some(CONSOLE_HOME));
    let set = set_cookies(r.headers()).into_iter().find(|c| c.starts_with("bfy_session=")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    let cookie = session_cookie(&r).unwrap();
    let (status, v) = me(&app, &cookie).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["userName"], OWNER);
    assert_eq!(v["role"], "super_admin");
    assert_eq!(v["roleSource"], "manual");
    assert_eq!(v["tenant"]["id"], app.tenant.as_str());

    // The admin API answers for that session (a super_admin's read and write).
    let members = client()
        .get(format!("{}/admin/users", app.origin))
        .header("cookie", format!("bfy_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), StatusCode::OK);
    let members: Value = members.json().await.unwrap();
    assert!(members.to_string().contains(OWNER), "{members}");
    let rotate = client()
        .post(format!("{}/admin/scim-token", app.origin))
        .header("cookie", format!("bfy_session={cookie}"))
        .header("x-csrf-token", v["csrfToken"].as_str().unwrap())
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json")
        .body(r#"{"immediate":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), StatusCode::CREATED, "{}", rotate.text().await.unwrap());

    // The use is in the audit trail, by the owner, and the owner is the user SCIM would find.
    let owner = app.store.find_user_by_user_name(&app.tenant, "owner@acme.test").await.unwrap().unwrap();
    assert_eq!((owner.role, owner.role_source), (Some(Role::SuperAdmin), Some(RoleSource::Manual)));
    let trail = app.store.audit_page(&app.tenant, None, 50).await.unwrap();
    let used = trail.iter().find(|e| e.action.as_str() == "setup_link.use").unwrap();
    assert_eq!(used.actor, format!("user:{}", owner.id));
    assert_eq!(used.details["created"], true);
    assert!(trail.iter().any(|e| e.action.as_str() == "setup_link.issue" && e.actor == "operator"));
    assert!(!serde_json::to_string(&trail).unwrap().contains(&link[SETUP_LINK_PREFIX.len() + 37..]));

    // Replay: the same link again is refused, and gives no session.
    let again = assert_invalid(press(&app, &link).await).await;
    // Opening it again still shows the button (the page never says whether a link works).
    assert_eq!(open(&app, &link).await.status(), StatusCode::OK);
    // Guessing: a well-shaped link nobody issued gets exactly the same page as a used one.
    let forged = format!("{SETUP_LINK_PREFIX}{}_{}", app.tenant, "A".repeat(43));
    assert_eq!(assert_invalid(press(&app, &forged).await).await, again);
    for junk in ["", "x", "bfy_setup_", &format!("{link}A"), "<script>alert(1)</script>"] {
        assert_eq!(assert_invalid(press(&app, junk).await).await, again, "{junk:?}");
    }
    let r = client().get(format!("{}/console/setup/%3Cb%3E", app.origin)).send().await.unwrap();
    let page = assert_invalid(r).await;
    assert!(!page.contains("<b>"), "nothing the caller sent is echoed");
}

#[tokio::test]
async fn an_existing_member_becomes_a_manual_super_admin_and_the_store_cost_is_four() {
    let app = TestApp::spawn().await;
    let mut body = butterfly_tests::okta_user("owner@acme.test", "Olive", "Owner");
    body["roles"] = serde_json::json!([{"value": "auditor", "primary": true}]);
    let created = app.create_user(&body).await;
    let issued = issue(&app, &app.tenant).await;
    let r = press(&app, &text(&issued)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (n, log) = app.store.take();
    assert_eq!(log, ["use_setup_link", "find_user_by_user_name", "replace_user", "create_session"]);
    assert_eq!(n, 4);
    let (_, v) = me(&app, &session_cookie(&r).unwrap()).await;
    assert_eq!(v["user"]["id"], created["id"], "found, not duplicated");
    assert_eq!((v["role"].as_str(), v["roleSource"].as_str()), (Some("super_admin"), Some("manual")));
    let trail = app.store.audit_page(&app.tenant, None, 50).await.unwrap();
    let used = trail.iter().find(|e| e.action.as_str() == "setup_link.use").unwrap();
    assert_eq!((used.details["created"].as_bool(), used.details["from_role"].as_str()), (Some(false), Some("auditor")));

    // A deactivated owner is refused, with no session.
    let mut off = butterfly_tests::okta_user("gone@acme.test", "Gone", "Owner");
    off["active"] = serde_json::json!(false);
    app.create_user(&off).await;
    let gone = service(&app, Arc::new(SystemClock))
        .issue(&app.tenant, Some(&UserName::parse("gone@acme.test").unwrap()))
        .await
        .unwrap();
    let r = press(&app, &text(&gone)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
    assert!(r.text().await.unwrap().contains("deactivated"));
}

#[tokio::test]
async fn a_new_owner_costs_four_store_operations() {
    let app = TestApp::spawn().await;
    let issued = issue(&app, &app.tenant).await;
    let r = press(&app, &text(&issued)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (n, log) = app.store.take();
    assert_eq!(log, ["use_setup_link", "find_user_by_user_name", "create_user", "create_session"]);
    assert_eq!(n, 4);
    // A refused link costs one (the conditional use), whatever the reason.
    assert_eq!(press(&app, &text(&issued)).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.store.take().1, ["use_setup_link"]);
    // A link not of our shape costs nothing.
    assert_eq!(press(&app, "nonsense").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.store.take().0, 0);
}

#[tokio::test]
async fn an_expired_or_replaced_link_is_refused() {
    let app = TestApp::spawn().await;
    let owner = UserName::parse(OWNER).unwrap();
    // Issued 72 hours and a minute ago.
    let old = service(&app, Arc::new(Shifted(-(72 * 3600 + 60)))).issue(&app.tenant, Some(&owner)).await.unwrap();
    assert_invalid(press(&app, &text(&old)).await).await;
    // Issued 71 hours ago: still works... unless re-issued, which retires it.
    let recent = service(&app, Arc::new(Shifted(-71 * 3600))).issue(&app.tenant, Some(&owner)).await.unwrap();
    let fresh = service(&app, Arc::new(SystemClock)).issue(&app.tenant, None).await.unwrap();
    assert!(fresh.replaced_unused);
    assert_eq!(fresh.record.owner.as_str(), OWNER, "re-issued for the same owner");
    assert_invalid(press(&app, &text(&recent)).await).await;
    let trail = app.store.audit_page(&app.tenant, None, 50).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.action.as_str() == "setup_link.reissue" && e.details["unused_link_retired"] == true));
    assert_eq!(press(&app, &text(&fresh)).await.status(), StatusCode::SEE_OTHER);
    assert!(app.store.get_setup_link(&app.tenant).await.unwrap().unwrap().used.is_some());
}

#[tokio::test]
async fn a_link_of_one_tenant_gives_no_session_in_another() {
    let app = TestApp::spawn().await;
    let (other, _) = app.other_tenant().await;
    let issued = issue(&app, &app.tenant).await;
    let link = text(&issued);
    // The secret of tenant A's link under tenant B's id: a link nobody issued.
    let moved = link.replacen(app.tenant.as_str(), other.as_str(), 1);
    assert_ne!(moved, link);
    assert_invalid(press(&app, &moved).await).await;
    assert!(app.store.find_user_by_user_name(&other, "owner@acme.test").await.unwrap().is_none());
    // B's own link, once issued, signs in to B only; A's link (unburnt by the attempt) to A only.
    let b = issue(&app, &other).await;
    let rb = press(&app, &text(&b)).await;
    let (_, vb) = me(&app, &session_cookie(&rb).unwrap()).await;
    assert_eq!(vb["tenant"]["id"], other.as_str());
    let ra = press(&app, &link).await;
    let (_, va) = me(&app, &session_cookie(&ra).unwrap()).await;
    assert_eq!(va["tenant"]["id"], app.tenant.as_str());
    assert_ne!(va["user"]["id"], vb["user"]["id"]);
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_does_not_use_the_link() {
    let app = TestApp::spawn().await;
    let issued = issue(&app, &app.tenant).await;
    let link = text(&issued);
    for (name, value) in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")] {
        let r = client()
            .post(format!("{}/console/setup", app.origin))
            .header(name, value)
            .form(&[("link", link.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        assert_locked_down(&r);
        assert!(session_cookie(&r).is_none());
    }
    assert_eq!(app.store.take().0, 0, "refused before any store call");
    assert_eq!(press(&app, &link).await.status(), StatusCode::SEE_OTHER, "the link still works");
}

#[tokio::test]
async fn the_setup_routes_are_limited_per_address() {
    let limits = butterfly_api::Limits::new(
        butterfly_api::limits::AnonymousLimits { per_address_per_minute: 3, settings_per_minute: 10 },
        butterfly_core::limit::QuotaPolicy::per_minute(1_000),
    );
    let app = TestApp::spawn_with_limits(limits).await;
    let forged = format!("{SETUP_LINK_PREFIX}{}_{}", app.tenant, "B".repeat(43));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(press(&app, &forged).await.status());
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let limited = press(&app, &forged).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&limited, "retry-after").is_some());
    assert!(header(&limited, "content-type").is_some_and(|c| c.starts_with("text/html")), "a browser form gets a page");
    assert_eq!(open(&app, &forged).await.status(), StatusCode::TOO_MANY_REQUESTS, "the page too");
}

/// The store keeps only the hash: nothing in the record is the link.
#[tokio::test]
async fn only_the_hash_of_a_link_is_stored() {
    let app = TestApp::spawn().await;
    let issued = issue(&app, &app.tenant).await;
    let stored = app.store.get_setup_link(&app.tenant).await.unwrap().unwrap();
    assert_eq!(stored.hash, butterfly_core::sso::hash_secret(&text(&issued)));
    let dump = format!("{stored:?} {}", serde_json::to_string(&stored).unwrap());
    assert!(!dump.contains(&text(&issued)[SETUP_LINK_PREFIX.len() + 37..]), "{dump}");
}
