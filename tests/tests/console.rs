//! The admin console (`/console`), over HTTP against the spawned app: the role matrix on every
//! page and every form, the CSRF defences on every form post (no token, a wrong one, another
//! site), hostile values escaped (a display name, a provider's words in the audit trail, an
//! IdP-sent claim in the test sign-in report), the SCIM token shown once, the CSP on every
//! page, the team's role rules, the audit trail's names, filters, paging and CSV export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::audit::{AuditAction, AuditEvent};
use butterfly_core::clock::{Clock, SystemClock};
use butterfly_core::email::UserName;
use butterfly_core::ids::UserId;
use butterfly_core::ports::{AuditStore, SessionStore, TenantStore, UserStore};
use butterfly_core::role::Role;
use butterfly_core::token::ScimToken;
use butterfly_core::user::{RoleSource, User};
use butterfly_tests::op::{client_spec, location, Browser, TestOp};
use butterfly_tests::{okta_user, TestApp};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// A member with a live session, signed in by cookie.
struct Member {
    id: UserId,
    cookie: String,
    csrf: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A member of the app's tenant with `role` (set by `source`) and a session.
async fn member(app: &TestApp, email: &str, name: &str, role: Option<Role>, source: RoleSource) -> Member {
    let now = SystemClock.now();
    let user = User {
        id: UserId::generate(),
        tenant: app.tenant.clone(),
        user_name: UserName::parse(email).unwrap(),
        external_id: None,
        name: None,
        display_name: Some(name.into()),
        emails: vec![],
        active: true,
        locale: None,
        role,
        role_source: Some(source),
        subject: None,
        sessions_revoked_at: None,
        created: now,
        last_modified: now,
        version: 1,
    };
    app.store.create_user(&user).await.unwrap();
    let (cookie, session) = butterfly_tests::hour_session(&app.tenant, user.id, "https://idp.test", email);
    app.store.create_session(&session).await.unwrap();
    let csrf = app.csrf.token(cookie.expose(), "session").expose().to_string();
    Member { id: user.id, cookie: cookie.expose().to_string(), csrf }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(
    app: &TestApp,
    who: Option<&Member>,
    method: Method,
    path: &str,
    form: Option<&[(&str, &str)]>,
) -> Answer {
    send_with(app, who, method, path, form, &[]).await
}

async fn send_with(
    app: &TestApp,
    who: Option<&Member>,
    method: Method,
    path: &str,
    form: Option<&[(&str, &str)]>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = client().request(method, format!("{}{path}", app.origin));
    if let Some(m) = who {
        req = req.header(COOKIE, format!("bfy_session={}", m.cookie));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(f) = form {
        req = req.form(f);
    }
    let r = req.send().await.unwrap();
    Answer { status: r.status(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

async fn get(app: &TestApp, who: &Member, path: &str) -> Answer {
    send(app, Some(who), Method::GET, path, None).await
}

async fn post(app: &TestApp, who: &Member, path: &str, fields: &[(&str, &str)]) -> Answer {
    let mut form: Vec<(&str, &str)> = vec![("csrf", who.csrf.as_str())];
    form.extend_from_slice(fields);
    send(app, Some(who), Method::POST, path, Some(&form)).await
}

/// Every HTML answer of the console: the strict CSP, no inline script or style, a `<main>`.
fn assert_console_page(a: &Answer, what: &str) {
    assert_eq!(a.headers.get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()), Some(CSP), "{what}");
    assert_eq!(a.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{what}");
    assert_eq!(a.headers.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"), "{what}");
    assert!(a.body.starts_with("<!DOCTYPE html>"), "{what}: {}", a.body);
    assert!(a.body.contains("<main id=\"main\">"), "{what}");
    assert!(!a.body.contains("<style") && !a.body.contains(" style="), "{what}: inline style");
    for (i, _) in a.body.match_indices("<script") {
        assert!(a.body[i..].starts_with("<script src=\"/console/static/console.js\""), "{what}: inline script");
    }
}

/// Form fields.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// `fields` and a field that takes the form over the 64 KiB the console reads.
fn with_padding(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
    fields.push(("padding".into(), "x".repeat(64 * 1024)));
    fields
}
/// A console route: method, path, form, the permission it needs, what an allowed member gets.
type Route<'a> = (Method, String, Fields<'a>, Option<butterfly_core::role::Permission>, StatusCode);
/// A forged post: what it is, its form, its extra headers.
type Forgery<'a> = (&'a str, Vec<(String, String)>, Fields<'a>);

const ROLES: [Role; 5] = [Role::SuperAdmin, Role::Admin, Role::BackupOperator, Role::Auditor, Role::ReadOnly];

/// Whether `role` may use a route: `None` is any role.
fn may(role: Role, needs: Option<butterfly_core::role::Permission>) -> bool {
    needs.is_none_or(|p| role.can(p))
}

#[tokio::test]
async fn every_page_and_form_follows_the_role_matrix() {
    use butterfly_core::role::Permission::*;
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let target = member(&app, "target@acme.test", "Tom Target", None, RoleSource::Jit).await;
    let mut members = vec![];
    for r in ROLES {
        members.push((
            r,
            member(&app, &format!("{}@acme.test", r.as_str()), r.display_name(), Some(r), RoleSource::Scim).await,
        ));
    }
    let role_path = format!("/console/team/{}/role", target.id);
    // (method, path, form, the permission it needs, what a member allowed gets)
    let routes: Vec<Route> = vec![
        (Method::GET, "/console".into(), vec![], None, StatusCode::OK),
        (Method::GET, "/console/sso".into(), vec![], Some(ManageSsoScim), StatusCode::OK),
        (Method::GET, "/console/scim".into(), vec![], Some(ManageSsoScim), StatusCode::OK),
        (Method::GET, "/console/team".into(), vec![], Some(ManageTeam), StatusCode::OK),
        (Method::GET, "/console/audit".into(), vec![], Some(ViewAuditTrail), StatusCode::OK),
        (Method::GET, "/console/audit.csv".into(), vec![], Some(ViewAuditTrail), StatusCode::OK),
        (Method::POST, "/console/scim/token".into(), vec![("mode", "overlap")], Some(ManageSsoScim), StatusCode::OK),
        (Method::POST, role_path.clone(), vec![("role", "auditor")], Some(ManageTeam), StatusCode::OK),
        // The settings of a provider that does not exist: refused as the admin's input (400).
        (
            Method::POST,
            "/console/sso".into(),
            vec![("issuer", "https://idp.invalid"), ("client_id", "x")],
            Some(ManageSsoScim),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/console/sso/domains/verify".into(),
            vec![("domain", "nowhere.test")],
            Some(ManageSsoScim),
            StatusCode::NOT_FOUND,
        ),
        (Method::POST, "/console/sso/test".into(), vec![], Some(ManageSsoScim), StatusCode::CONFLICT),
        (
            Method::POST,
            "/console/sso/policy".into(),
            vec![("jit", "1"), ("idle_minutes", "30"), ("absolute_minutes", "480")],
            Some(ManageSsoScim),
            StatusCode::SEE_OTHER,
        ),
    ];
    for (method, path, form, needs, allowed) in &routes {
        let form_ref = (*method == Method::POST).then_some(form.as_slice());
        let anonymous = send(&app, None, method.clone(), path, form_ref).await;
        assert_eq!(anonymous.status, StatusCode::SEE_OTHER, "anonymous {method} {path}");
        let to = anonymous.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(to.starts_with("/login?return_to=%2Fconsole"), "anonymous {method} {path}: {to}");
        for (role, m) in &members {
            let a = if *method == Method::POST { post(&app, m, path, form).await } else { get(&app, m, path).await };
            let what = format!("{} {method} {path}", role.as_str());
            if may(*role, *needs) {
                assert_eq!(a.status, *allowed, "{what}: {}", a.body);
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
                assert_console_page(&a, &what);
                // The 403 says who can grant access, by name.
                assert!(
                    a.body.contains("Ask a super_admin") && a.body.contains("Grace Boss (boss@acme.test)"),
                    "{what}"
                );
            }
            if !path.ends_with(".csv") && a.status != StatusCode::SEE_OTHER {
                assert_console_page(&a, &what);
            }
        }
    }
    // The navigation shows only the pages the role allows.
    for (role, m) in &members {
        let a = get(&app, m, "/console").await;
        for (href, needs) in [
            ("/console/sso", ManageSsoScim),
            ("/console/scim", ManageSsoScim),
            ("/console/team", ManageTeam),
            ("/console/audit", ViewAuditTrail),
        ] {
            let link = format!("<a href=\"{href}\"");
            assert_eq!(a.body.contains(&link), role.can(needs), "{} nav {href}", role.as_str());
        }
    }
    let _ = boss;
}

#[tokio::test]
async fn every_form_post_needs_the_token_and_this_site() {
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let other = member(&app, "other@acme.test", "Olga Other", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let target = member(&app, "target@acme.test", "Tom Target", None, RoleSource::Jit).await;
    let role_path = format!("/console/team/{}/role", target.id);
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/scim/token".into(), vec![("mode", "immediate")]),
        (role_path, vec![("role", "admin")]),
        ("/console/sso".into(), vec![("issuer", "https://idp.invalid"), ("client_id", "x")]),
        ("/console/sso/domains/verify".into(), vec![("domain", "acme.test")]),
        ("/console/sso/test".into(), vec![]),
        ("/console/sso/policy".into(), vec![("idle_minutes", "10"), ("absolute_minutes", "30")]),
    ];
    let before = app.store.audit_page(&app.tenant, None, 50).await.unwrap().len();
    for (path, fields) in &forms {
        let with = |token: &str| {
            let mut f: Vec<(&str, &str)> = vec![];
            if !token.is_empty() {
                f.push(("csrf", token));
            }
            f.extend_from_slice(fields);
            f.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
        };
        let attempts: Vec<Forgery> = vec![
            ("no token", with(""), vec![]),
            ("a wrong token", with("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), vec![]),
            ("another session's token", with(&other.csrf), vec![]),
            ("the token as a header only", with(""), vec![("x-csrf-token", boss.csrf.as_str())]),
            ("a cross-site post", with(&boss.csrf), vec![("sec-fetch-site", "cross-site")]),
            ("another origin", with(&boss.csrf), vec![("origin", "http://evil.example")]),
            ("a form over 64 KiB", with_padding(with(&boss.csrf)), vec![]),
        ];
        for (what, form, headers) in attempts {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let a = send_with(&app, Some(&boss), Method::POST, path, Some(&form), &headers).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{what} on {path}: {}", a.body);
            assert!(a.body.contains("Request refused"), "{what} on {path}");
            assert_console_page(&a, &format!("{what} on {path}"));
        }
    }
    // Nothing was written: the old token still works, the target's role is unchanged, no event.
    assert_eq!(app.get("/Users").await.status(), StatusCode::OK);
    let t = app.store.get_user(&app.tenant, &target.id).await.unwrap().unwrap();
    assert_eq!(t.effective_role(), Role::ReadOnly);
    assert_eq!(app.store.get_tenant(&app.tenant).await.unwrap().unwrap().sign_in_policy, None);
    assert_eq!(app.store.audit_page(&app.tenant, None, 50).await.unwrap().len(), before);
    // The same post with the token, from this site, goes through.
    let a = send_with(
        &app,
        Some(&boss),
        Method::POST,
        &format!("/console/team/{}/role", target.id),
        Some(&[("csrf", boss.csrf.as_str()), ("role", "admin")]),
        &[("sec-fetch-site", "same-origin"), ("origin", app.origin.as_str())],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn hostile_values_are_escaped() {
    let app = TestApp::spawn().await;
    let boss =
        member(&app, "boss@acme.test", "<script>alert('name')</script>", Some(Role::SuperAdmin), RoleSource::Manual)
            .await;
    let mut u = okta_user("eve@acme.test", "Eve", "Hostile");
    u["displayName"] = json!("<img src=x onerror=alert(1)>");
    u["roles"] = json!([{"value": "auditor"}]);
    app.create_user(&u).await;
    // A provider's words in the audit trail (a refused sign-in's error_description), and a
    // provider named by a hostile issuer.
    let e = AuditEvent::new(
        &app.tenant,
        SystemClock.now(),
        AuditAction::SignInRefused,
        "provider:https://idp.test/<b>x</b>",
    )
    .refused()
    .details(json!({"reason": "provider_error:access_denied", "detail": "<script>alert('idp')</script>"}));
    app.store.record_audit(&e).await.unwrap();
    let e = AuditEvent::new(&app.tenant, SystemClock.now(), AuditAction::SignIn, format!("user:{}", boss.id))
        .target(boss.id);
    app.store.record_audit(&e).await.unwrap();
    for path in ["/console", "/console/team", "/console/audit", "/console/scim", "/console/sso"] {
        let a = get(&app, &boss, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_console_page(&a, path);
        assert!(
            !a.body.contains("<script>alert") && !a.body.contains("<img src=x") && !a.body.contains("<b>x</b>"),
            "{path}: {}",
            a.body
        );
        assert!(a.body.contains("&lt;script&gt;alert('name')&lt;/script&gt;"), "{path}: the name is shown, escaped");
    }
    let team = get(&app, &boss, "/console/team").await;
    assert!(team.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", team.body);
    let audit = get(&app, &boss, "/console/audit").await;
    assert!(
        audit.body.contains("&lt;script&gt;alert('idp')&lt;/script&gt;") || audit.body.contains("\\u003cscript"),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("Identity provider https://idp.test/&lt;b&gt;x&lt;/b&gt;"), "{}", audit.body);
}

#[tokio::test]
async fn the_new_scim_token_is_shown_once() {
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let page = get(&app, &boss, "/console/scim").await;
    assert!(page.body.contains("Rotate Token") && page.body.contains("id=\"tokens\""), "{}", page.body);
    assert!(page.body.contains(&format!("{}/scim/v2", app.origin)));
    let a = post(&app, &boss, "/console/scim/token", &[("mode", "immediate")]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_console_page(&a, "new token");
    assert!(a.body.contains("shown this once"), "{}", a.body);
    let start = a.body.find("bfy_scim_").expect("the token is on the page");
    let token: String =
        a.body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    assert!(ScimToken::parse(&token).is_some(), "the whole token is on the page: {token}");
    assert!(a.body.contains("data-copy=\"new-token\""), "a copy button");
    // The new token works; the old one stopped (immediate).
    assert_eq!(app.req_as(Method::GET, "/Users", &token).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.get("/Users").await.status(), StatusCode::UNAUTHORIZED);
    // Never shown again: the page lists its prefix only.
    let page = get(&app, &boss, "/console/scim").await;
    assert!(!page.body.contains(&token), "the token is shown again");
    assert!(page.body.contains(&token[..13]), "its prefix is listed");
    // Overlap: the previous token keeps working until the new one is used.
    let a = post(&app, &boss, "/console/scim/token", &[("mode", "overlap"), ("overlap_hours", "2")]).await;
    assert!(a.body.contains("keeps working until this one is first used"), "{}", a.body);
    assert_eq!(app.req_as(Method::GET, "/Users", &token).send().await.unwrap().status(), StatusCode::OK);
    // Bad input is a readable refusal, not an error.
    for bad in [
        vec![("mode", "sometimes")],
        vec![("mode", "overlap"), ("overlap_hours", "999")],
        vec![("mode", "overlap"), ("overlap_hours", "soon")],
    ] {
        let a = post(&app, &boss, "/console/scim/token", &bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", a.body);
    }
}

#[tokio::test]
async fn the_team_page_finds_pages_and_changes_roles() {
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let mut u = okta_user("okta-admin@acme.test", "Olivia", "Okta");
    u["roles"] = json!([{"value": "admin"}]);
    let pushed = app.create_user(&u).await;
    for i in 0..30 {
        member(&app, &format!("m{i:02}@acme.test"), &format!("Member {i}"), None, RoleSource::Jit).await;
    }
    let page = get(&app, &boss, "/console/team").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("SCIM (Okta)")
            && page.body.contains("manual (console)")
            && page.body.contains("first sign-in (JIT)")
    );
    assert!(page.body.contains("Okta manages this role"));
    let next = page.body.split("id=\"next\" href=\"").nth(1).and_then(|s| s.split('"').next()).expect("a next page");
    let next = next.replace("&amp;", "&");
    let second = get(&app, &boss, &next).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(
        second.body.contains("<td>m29@acme.test</td>") && !second.body.contains("<td>boss@acme.test</td>"),
        "{}",
        second.body
    );
    // The last sign-in, from the audit trail.
    let m07 = app.store.find_user_by_user_name(&app.tenant, "m07@acme.test").await.unwrap().unwrap();
    let e =
        AuditEvent::new(&app.tenant, SystemClock.now(), AuditAction::SignIn, format!("user:{}", m07.id)).target(m07.id);
    app.store.record_audit(&e).await.unwrap();
    let m08 = get(&app, &boss, "/console/team?email=m08%40acme.test").await;
    assert!(m08.body.contains("<td>active</td><td>—</td>"), "{}", m08.body);
    // Find by email, case-insensitively.
    let found = get(&app, &boss, "/console/team?email=M07%40ACME.test").await;
    assert!(found.body.contains("m07@acme.test") && !found.body.contains("m08@acme.test"), "{}", found.body);
    assert!(found.body.contains(&format!("<td>active</td><td>{}", &e.at.to_human()[..11])), "{}", found.body);
    let none = get(&app, &boss, "/console/team?email=nobody%40acme.test").await;
    assert!(none.body.contains("No member has that email address"));
    // A role Okta pushes: changed, with the warning that Okta will overwrite it.
    let id = pushed["id"].as_str().unwrap();
    let a = post(&app, &boss, &format!("/console/team/{id}/role"), &[("role", "auditor")]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("is now Auditor") && a.body.contains("overwrite it"), "{}", a.body);
    // The last super_admin is kept.
    let a = post(&app, &boss, &format!("/console/team/{}/role", boss.id), &[("role", "read_only")]).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("last super_admin"), "{}", a.body);
    // Bad input: a readable refusal.
    let a = post(&app, &boss, &format!("/console/team/{id}/role"), &[("role", "owner")]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = post(&app, &boss, "/console/team/not-an-id/role", &[("role", "admin")]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = get(&app, &boss, "/console/team?after=garbage").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
}

#[tokio::test]
async fn the_audit_page_names_filters_pages_and_exports() {
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let auditor = member(&app, "audit@acme.test", "Ada Auditor", Some(Role::Auditor), RoleSource::Manual).await;
    let formula = member(&app, "formula@acme.test", "=HYPERLINK(\"http://evil.example\")", None, RoleSource::Jit).await;
    for _ in 0..3 {
        for role in ["admin", "read_only"] {
            let a = post(&app, &boss, &format!("/console/team/{}/role", formula.id), &[("role", role)]).await;
            assert_eq!(a.status, StatusCode::OK);
        }
    }
    for _ in 0..60 {
        let e = AuditEvent::new(&app.tenant, SystemClock.now(), AuditAction::SignIn, format!("user:{}", auditor.id))
            .target(auditor.id);
        app.store.record_audit(&e).await.unwrap();
    }
    let page = get(&app, &auditor, "/console/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("<tr><td><time").count(), 50, "a page of 50");
    assert!(!page.body.contains(">user:"), "actors are named, not ids");
    assert!(page.body.contains("Ada Auditor (audit@acme.test)"));
    assert!(page.body.contains(" UTC</time>"), "human-readable times");
    let older = page.body.split("id=\"older\" href=\"").nth(1).and_then(|s| s.split('"').next()).expect("older events");
    let older = get(&app, &auditor, &older.replace("&amp;", "&")).await;
    // 60 sign-ins, 6 role changes and the first token's issue.
    assert_eq!(older.body.matches("<tr><td><time").count(), 17, "{}", older.body);
    // By kind, and by member.
    let changes = get(&app, &auditor, "/console/audit?kind=role.change").await;
    assert_eq!(changes.body.matches("<tr><td><time").count(), 6);
    assert!(changes.body.contains("Grace Boss (boss@acme.test)") && changes.body.contains("=HYPERLINK"));
    let of = get(&app, &auditor, "/console/audit?member=formula%40acme.test").await;
    assert_eq!(of.body.matches("<tr><td><time").count(), 6);
    let of = get(&app, &auditor, "/console/audit?member=nobody%40acme.test").await;
    assert!(of.body.contains("No events."));
    assert_eq!(get(&app, &auditor, "/console/audit?kind=nonsense").await.status, StatusCode::BAD_REQUEST);
    // CSV: every cell quoted, formulas neutralised.
    let csv = get(&app, &auditor, "/console/audit.csv?kind=role.change").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 7, "{}", csv.body);
    assert!(lines[1].contains(",\"'=HYPERLINK(\"\"http://evil.example\"\") (formula@acme.test)\","), "{}", lines[1]);
    assert!(!csv.body.contains(",\"=") && !csv.body.contains(",="), "no cell starts with =");
    // An export longer than one scan: the member is looked up once and each member named once,
    // not again for every page of the export.
    for _ in 0..60 {
        let e = AuditEvent::new(&app.tenant, SystemClock.now(), AuditAction::SignIn, format!("user:{}", auditor.id))
            .target(auditor.id);
        app.store.record_audit(&e).await.unwrap();
    }
    app.store.take();
    let csv = get(&app, &auditor, "/console/audit.csv?member=audit%40acme.test").await;
    assert_eq!(csv.body.lines().count(), 121, "a header and 120 sign-ins");
    let (_, ops) = app.store.take();
    // The session; the member by email; two scans (100 events, then the rest); one name.
    assert_eq!(ops, ["session_with_user", "find_user_by_user_name", "audit_page", "audit_page", "get_user"]);
}

#[tokio::test]
async fn the_overview_shows_the_values_okta_needs() {
    let app = TestApp::spawn().await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let reader = member(&app, "reader@acme.test", "Rita Reader", None, RoleSource::Jit).await;
    let a = get(&app, &boss, "/console").await;
    let o = &app.origin;
    for (id, value) in [
        ("scim-base-url", format!("{o}/scim/v2")),
        ("redirect-uri", format!("{o}/sso/callback")),
        ("initiate-login-uri", format!("{o}/sso/initiate")),
        ("universal-logout", format!("{o}/sso/universal-logout")),
        ("universal-logout-tenant", format!("{o}/sso/universal-logout/{}", app.tenant)),
        ("backchannel-logout", format!("{o}/sso/backchannel-logout")),
    ] {
        assert!(a.body.contains(&format!("id=\"{id}\" readonly value=\"{value}\"")), "{id}: {}", a.body);
        assert!(a.body.contains(&format!("data-copy=\"{id}\"")), "{id} copy button");
    }
    assert!(a.body.contains("Not set up") && a.body.contains("Token issued"), "{}", a.body);
    // Others: what their role allows and who can grant more, none of the values.
    let a = get(&app, &reader, "/console").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains("scim-base-url") && a.body.contains("Grace Boss (boss@acme.test)"), "{}", a.body);
    // The static files: the copy script and the stylesheet.
    for (path, ct) in [("/console/static/console.js", "text/javascript"), ("/console/static/console.css", "text/css")] {
        let a = send(&app, None, Method::GET, path, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.headers["content-type"].to_str().unwrap().starts_with(ct));
        assert_eq!(a.headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn sso_settings_domains_and_a_test_sign_in() {
    let app = TestApp::spawn().await;
    let op = TestOp::start(
        0,
        json!([{"prefix": "/t1", "kid": "k1", "clients": [client_spec("acme-app", "acme-secret", &app.origin)]}]),
    )
    .await;
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    let issuer = op.issuer("/t1");
    // The first save needs the secret.
    let a = post(
        &app,
        &boss,
        "/console/sso",
        &[("issuer", &issuer), ("client_id", "acme-app"), ("domains", "acme.test"), ("enabled", "1")],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("client secret is required"), "{}", a.body);
    let a = post(
        &app,
        &boss,
        "/console/sso",
        &[
            ("issuer", &issuer),
            ("client_id", "acme-app"),
            ("client_secret", "acme-secret"),
            ("domains", "acme.test"),
            ("enabled", "1"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("Saved.") && a.body.contains("waiting for DNS"), "{}", a.body);
    assert!(!a.body.contains("acme-secret"), "the secret is write-only");
    assert!(a.body.contains("Set. Leave empty to keep it"));
    // The TXT record to add, then "verify now" against the loopback DNS server.
    let name = "_butterfly-verification.acme.test";
    assert!(a.body.contains(&format!("value=\"{name}\"")), "{}", a.body);
    let value =
        a.body.split("value=\"butterfly-domain-verification=").nth(1).and_then(|s| s.split('"').next()).unwrap();
    let a = post(&app, &boss, "/console/sso/domains/verify", &[("domain", "acme.test")]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let page = get(&app, &boss, &location_of(&a)).await;
    assert!(page.body.contains("was not found yet"), "{}", page.body);
    // A crafted link names no domain of this tenant: the page says nothing of its words.
    let crafted = get(&app, &boss, "/console/sso?checked=call%20support%20at%20evil.example").await;
    assert_eq!(crafted.status, StatusCode::OK);
    assert!(!crafted.body.contains("evil.example"), "{}", crafted.body);
    app.dns.add_txt(name, &format!("butterfly-domain-verification={value}")).await;
    let a = post(&app, &boss, "/console/sso/domains/verify", &[("domain", "acme.test")]).await;
    let page = get(&app, &boss, &location_of(&a)).await;
    assert!(page.body.contains("acme.test is verified") && page.body.contains("verified by DNS"), "{}", page.body);
    // Test sign-in: through the provider, a report of claims and checks; the session stays.
    op.set_account(
        "/t1",
        "boss@acme.test",
        json!({"email": "boss@acme.test", "email_verified": true, "name": "<script>alert('claim')</script>"}),
    )
    .await;
    let b = Browser::new();
    let url = url::Url::parse(&app.origin).unwrap();
    b.jar.add_cookie_str(&format!("bfy_session={}; Path=/", boss.cookie), &url);
    let start = b.post_form(&format!("{}/console/sso/test", app.origin), &[("csrf", &boss.csrf)]).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let back = b.sign_in_at_provider(&location(&start).unwrap(), "boss@acme.test", &app.origin).await;
    let report = b.get(&back).await;
    assert_eq!(report.status(), StatusCode::OK);
    let report = report.text().await.unwrap();
    assert!(report.contains("The test sign-in passed.") && report.contains("now bound"), "{report}");
    assert!(
        report.contains("&lt;script&gt;alert(&#39;claim&#39;)&lt;/script&gt;") && !report.contains("<script>alert"),
        "{report}"
    );
    let still = b.get(&format!("{}/console", app.origin)).await;
    assert_eq!(still.status(), StatusCode::OK, "the current session stays");
    let overview = still.text().await.unwrap();
    assert!(overview.contains("On, through"), "{overview}");
}

fn location_of(a: &Answer) -> String {
    a.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

#[tokio::test]
async fn sign_in_policies_apply_to_new_sessions() {
    use butterfly_core::sso::hash_secret;
    let app = TestApp::spawn().await;
    let op = TestOp::start(
        0,
        json!([{"prefix": "/t1", "kid": "k1", "clients": [client_spec("acme-app", "acme-secret", &app.origin)]}]),
    )
    .await;
    app.sso
        .configure(&app.tenant, butterfly_tests::sso_settings(op.issuer("/t1"), "acme-app", "acme-secret", "acme.test"))
        .await
        .unwrap();
    let boss = member(&app, "boss@acme.test", "Grace Boss", Some(Role::SuperAdmin), RoleSource::Manual).await;
    // Bounds: refused in words, nothing saved.
    for (idle, absolute) in [("1", "60"), ("10", "5"), ("90", "60"), ("ten", "60"), ("241", "1440"), ("10", "1441")] {
        let a =
            post(&app, &boss, "/console/sso/policy", &[("idle_minutes", idle), ("absolute_minutes", absolute)]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{idle}/{absolute}: {}", a.body);
        assert_console_page(&a, "policy refused");
    }
    let a = post(&app, &boss, "/console/sso/policy", &[("idle_minutes", "10"), ("absolute_minutes", "30")]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = get(&app, &boss, &location_of(&a)).await;
    assert!(page.body.contains("Sign-in policies saved."), "{}", page.body);
    assert!(page.body.contains("id=\"idle\" min=\"5\" max=\"240\" value=\"10\""), "{}", page.body);
    assert!(!page.body.contains("name=\"jit\" id=\"jit\" value=\"1\" checked"), "JIT is off");
    // JIT off: a first sign-in creates nobody.
    let b = Browser::new();
    let r = b.sign_in(&app.origin, "newbie@acme.test").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("provisioning only"));
    assert!(app.store.find_user_by_user_name(&app.tenant, "newbie@acme.test").await.unwrap().is_none());
    // A provisioned member signs in; the session lasts 30 minutes and idles out after 10.
    app.create_user(&okta_user("ops@acme.test", "Ops", "Person")).await;
    let b = Browser::new();
    let r = b.sign_in(&app.origin, "ops@acme.test").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("bfy_session="))
        .unwrap()
        .to_string();
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
    let value = cookie.trim_start_matches("bfy_session=").split(';').next().unwrap();
    let (session, _) = app.store.session_with_user(&hash_secret(value)).await.unwrap().unwrap();
    assert_eq!(session.idle_secs, Some(600));
    assert_eq!(session.expires.millis() - session.created.millis(), 1_800_000);
    // A session of this tenant's, unused for 11 minutes, is over.
    let ops = app.store.find_user_by_user_name(&app.tenant, "ops@acme.test").await.unwrap().unwrap();
    let (secret, mut idle) = butterfly_tests::hour_session(&app.tenant, ops.id, &op.issuer("/t1"), "ops@acme.test");
    idle.idle_secs = Some(600);
    idle.last_seen = SystemClock.now().plus_secs(-660);
    app.store.create_session(&idle).await.unwrap();
    let r = client()
        .get(format!("{}/console", app.origin))
        .header(COOKIE, format!("bfy_session={}", secret.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "idled out");
    // JIT on again: the first sign-in creates the member.
    let a =
        post(&app, &boss, "/console/sso/policy", &[("jit", "1"), ("idle_minutes", "10"), ("absolute_minutes", "30")])
            .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let b = Browser::new();
    assert_eq!(b.sign_in(&app.origin, "newbie@acme.test").await.status(), StatusCode::SEE_OTHER);
    assert!(app.store.find_user_by_user_name(&app.tenant, "newbie@acme.test").await.unwrap().is_some());
}
