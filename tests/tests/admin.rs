//! The admin API and SCIM token rotation, as a signed-in super_admin uses them: the permission
//! matrix on every endpoint, CSRF defences on cookie-authenticated writes, role-change rules,
//! token rotation in immediate and overlap modes, and the audit trail with cursor paging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::sso_settings::SsoSettingsInput;
use butterfly_core::token::Secret;
use butterfly_tests::op::{client_spec, Browser, TestOp};
use butterfly_tests::{okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Rig {
    app: TestApp,
    _op: TestOp,
}

async fn rig() -> Rig {
    rig_with(TestApp::spawn().await).await
}

async fn rig_with(app: TestApp) -> Rig {
    let op = TestOp::start(
        0,
        json!([{"prefix": "/t1", "kid": "k1", "clients": [client_spec("acme-app", "acme-secret", &app.origin)]}]),
    )
    .await;
    app.sso
        .configure(
            &app.tenant,
            SsoSettingsInput {
                issuer: op.issuer("/t1"),
                client_id: "acme-app".into(),
                client_secret: Some(Secret::new("acme-secret")),
                domains: Some("acme.test".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    Rig { app, _op: op }
}

/// A signed-in member: SCIM-provisioned with `role` (or JIT when `None`), then signed in.
struct Member {
    b: Browser,
    csrf: String,
    id: String,
}

async fn member(rig: &Rig, email: &str, role: Option<&str>) -> Member {
    if let Some(r) = role {
        let mut u = okta_user(email, "Test", "Member");
        u["roles"] = json!([{"value": r}]);
        rig.app.create_user(&u).await;
    }
    let b = Browser::new();
    assert_eq!(b.sign_in(&rig.app.origin, email).await.status(), StatusCode::SEE_OTHER);
    let me: Value = b.get(&format!("{}/me", rig.app.origin)).await.json().await.unwrap();
    Member { csrf: me["csrfToken"].as_str().unwrap().to_string(), id: me["user"]["id"].as_str().unwrap().into(), b }
}

impl Member {
    async fn call(&self, rig: &Rig, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(rig, method, path, body, Some(&self.csrf), None).await
    }

    async fn call_with(
        &self,
        rig: &Rig,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
        origin: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.b.client.request(method, format!("{}{path}", rig.app.origin));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path}");
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn every_endpoint_enforces_the_permission_matrix() {
    let rig = rig().await;
    let reader = member(&rig, "reader@acme.test", None).await; // JIT: read_only
    let auditor = member(&rig, "auditor@acme.test", Some("auditor")).await;
    let admin = member(&rig, "admin@acme.test", Some("admin")).await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let endpoints: [(Method, &str, Option<Value>); 7] = [
        (Method::GET, "/admin/sso", None),
        (Method::PUT, "/admin/sso", Some(json!({"issuer": "x", "client_id": "y"}))),
        (Method::GET, "/admin/users", None),
        (Method::PUT, "/admin/users/00000000-0000-7000-8000-000000000000/role", Some(json!({"role": "admin"}))),
        (Method::GET, "/admin/audit", None),
        (Method::GET, "/admin/scim-token", None),
        (Method::POST, "/admin/scim-token", Some(json!({"mode": "overlap"}))),
    ];
    let anonymous = Browser::new();
    for (m, path, body) in &endpoints {
        let mut req = anonymous.client.request(m.clone(), format!("{}{path}", rig.app.origin));
        if let Some(b) = body {
            req = req.json(b);
        }
        assert_eq!(req.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "anonymous {m} {path}");
        for (who, name) in [(&reader, "read_only"), (&admin, "admin")] {
            let (status, v) = who.call(&rig, m.clone(), path, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name} {m} {path}: {v}");
        }
        let (status, _) = auditor.call(&rig, m.clone(), path, body.clone()).await;
        let expected = if *path == "/admin/audit" { StatusCode::OK } else { StatusCode::FORBIDDEN };
        assert_eq!(status, expected, "auditor {m} {path}");
        let (status, v) = boss.call(&rig, m.clone(), path, body.clone()).await;
        assert_ne!(status, StatusCode::FORBIDDEN, "super_admin {m} {path}: {v}");
        assert_ne!(status, StatusCode::UNAUTHORIZED, "super_admin {m} {path}: {v}");
    }
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token_and_same_origin() {
    let rig = rig().await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let other = member(&rig, "other@acme.test", None).await;
    let path = format!("/admin/users/{}/role", other.id);
    let body = json!({"role": "auditor"});
    let (s, v) = boss.call_with(&rig, Method::PUT, &path, Some(body.clone()), None, None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    let (s, _) = boss.call_with(&rig, Method::PUT, &path, Some(body.clone()), Some("wrong"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = boss.call_with(&rig, Method::PUT, &path, Some(body.clone()), Some(&other.csrf), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another session's token");
    let (s, _) = boss
        .call_with(&rig, Method::PUT, &path, Some(body.clone()), Some(&boss.csrf), Some("https://evil.example"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "cross-origin");
    let (s, v) =
        boss.call_with(&rig, Method::PUT, &path, Some(body.clone()), Some(&boss.csrf), Some(&rig.app.origin)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "auditor");
}

#[tokio::test]
async fn role_changes_keep_a_super_admin_and_say_when_okta_manages_the_role() {
    let rig = rig().await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let jit = member(&rig, "jit@acme.test", None).await;
    let scim = member(&rig, "scim@acme.test", Some("backup_operator")).await;

    let (s, v) = boss.call(&rig, Method::GET, "/admin/users", None).await;
    assert_eq!(s, StatusCode::OK);
    let by_name =
        |v: &Value, n: &str| v["members"].as_array().unwrap().iter().find(|m| m["userName"] == n).cloned().unwrap();
    assert_eq!(by_name(&v, "boss@acme.test")["roleSource"], "scim");
    assert_eq!(by_name(&v, "jit@acme.test")["role"], "read_only");
    assert_eq!(by_name(&v, "jit@acme.test")["roleSource"], "jit");

    // The last super_admin cannot be demoted (not even by themselves).
    let (s, v) =
        boss.call(&rig, Method::PUT, &format!("/admin/users/{}/role", boss.id), Some(json!({"role": "admin"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("last super_admin"));
    // Promote another, then stepping down works.
    let (s, v) = boss
        .call(&rig, Method::PUT, &format!("/admin/users/{}/role", jit.id), Some(json!({"role": "super_admin"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["roleSource"], "manual");
    assert!(v["warning"].is_null());
    let (s, _) =
        boss.call(&rig, Method::PUT, &format!("/admin/users/{}/role", boss.id), Some(json!({"role": "admin"}))).await;
    assert_eq!(s, StatusCode::OK);
    // A role Okta pushes over SCIM: changed, with a warning.
    let (s, v) =
        jit.call(&rig, Method::PUT, &format!("/admin/users/{}/role", scim.id), Some(json!({"role": "auditor"}))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["warning"].as_str().unwrap().contains("overwrite"), "{v}");
    // Bad input.
    let (s, _) =
        jit.call(&rig, Method::PUT, &format!("/admin/users/{}/role", scim.id), Some(json!({"role": "root"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = jit.call(&rig, Method::PUT, "/admin/users/nope/role", Some(json!({"role": "admin"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The signed-in role follows at once.
    let me: Value = scim.b.get(&format!("{}/me", rig.app.origin)).await.json().await.unwrap();
    assert_eq!(me["role"], "auditor");

    // Member paging.
    let (_, p1) = jit.call(&rig, Method::GET, "/admin/users?limit=2", None).await;
    assert_eq!(p1["members"].as_array().unwrap().len(), 2);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = jit.call(&rig, Method::GET, &format!("/admin/users?limit=2&after={next}"), None).await;
    assert_eq!(p2["members"].as_array().unwrap().len(), 1);
    assert!(p2["next"].is_null());
}

#[tokio::test]
async fn scim_token_rotation_immediate_and_overlap() {
    let rig = rig().await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let scim_get = |token: String| {
        let url = format!("{}/Users?count=1", rig.app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let original = rig.app.token.clone();
    assert_eq!(scim_get(original.clone()).await, StatusCode::OK);

    // Overlap: the old token keeps working until the new one is first used.
    let (s, v) =
        boss.call(&rig, Method::POST, "/admin/scim-token", Some(json!({"mode": "overlap", "overlap_hours": 2}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let second = v["token"].as_str().unwrap().to_string();
    assert!(second.starts_with(v["display_prefix"].as_str().unwrap()));
    let (_, meta) = boss.call(&rig, Method::GET, "/admin/scim-token", None).await;
    assert!(meta.get("token").is_none_or(|t| t.is_null()), "never the token itself: {meta}");
    assert!(meta["last_used"].is_null());
    assert!(meta["previous"]["expires"].is_string(), "{meta}");
    assert_eq!(scim_get(original.clone()).await, StatusCode::OK, "old token still works");
    assert_eq!(scim_get(second.clone()).await, StatusCode::OK, "new token works");
    assert_eq!(
        scim_get(original.clone()).await,
        StatusCode::UNAUTHORIZED,
        "old token ended by the new one's first use"
    );
    let (_, meta) = boss.call(&rig, Method::GET, "/admin/scim-token", None).await;
    assert!(meta["last_used"].is_string(), "last use reported: {meta}");
    assert!(meta["previous"].is_null());

    // Immediate: the old token is dead at once (the lost-token case).
    let (s, v) = boss.call(&rig, Method::POST, "/admin/scim-token", Some(json!({"mode": "immediate"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let third = v["token"].as_str().unwrap().to_string();
    assert_eq!(scim_get(second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(scim_get(third).await, StatusCode::OK);
    for bad in [
        json!({"mode": "sometimes"}),
        json!({"mode": "overlap", "overlap_hours": 0}),
        json!({"mode": "overlap", "overlap_hours": 1000}),
    ] {
        let (s, _) = boss.call(&rig, Method::POST, "/admin/scim-token", Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn the_audit_trail_tells_what_happened_newest_first() {
    let rig = rig().await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let jit = member(&rig, "jit@acme.test", None).await;
    // A deactivated user (created while the original SCIM token still works).
    let mut u = okta_user("gone@acme.test", "Gone", "User");
    u["active"] = json!(false);
    rig.app.create_user(&u).await;
    boss.call(&rig, Method::PUT, &format!("/admin/users/{}/role", jit.id), Some(json!({"role": "auditor"}))).await;
    boss.call(&rig, Method::POST, "/admin/scim-token", Some(json!({"mode": "immediate"}))).await;
    let (s, v) = boss
        .call(
            &rig,
            Method::PUT,
            "/admin/sso",
            Some(
                json!({"issuer": rig._op.issuer("/t1"), "client_id": "acme-app", "domains": "acme.test, acme.example"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["client_secret_set"], true);
    assert!(!v.to_string().contains("acme-secret"));
    // A refused sign-in is recorded with its reason.
    let b = Browser::new();
    assert_eq!(b.sign_in(&rig.app.origin, "gone@acme.test").await.status(), StatusCode::FORBIDDEN);
    jit.b.sign_out(&rig.app.origin, false).await;

    // A repeated parameter keeps its last value (not a plain-text 400 from the query parser).
    let (s, page) = boss.call(&rig, Method::GET, "/admin/audit?limit=50&limit=2", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "{page}");
    let mut all: Vec<Value> = Vec::new();
    let mut url = "/admin/audit?limit=3".to_string();
    for _ in 0..20 {
        let (s, page) = boss.call(&rig, Method::GET, &url, None).await;
        assert_eq!(s, StatusCode::OK);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 3);
        all.extend(events.iter().cloned());
        match page["next"].as_str() {
            Some(n) => url = format!("/admin/audit?limit=3&before={n}"),
            None => break,
        }
    }
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "signin",
        "signin.refused",
        "signout",
        "scim.user.create",
        "role.change",
        "scim_token.rotate",
        "sso.settings.update",
    ] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    assert!(all.iter().all(|e| e["at"].as_i64().is_some() && e["tenant"] == rig.app.tenant.as_str()));
    let ids: Vec<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first, no duplicates across pages");
    let refused = all.iter().find(|e| e["action"] == "signin.refused").unwrap();
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["details"]["reason"], "user_deactivated");
    let change = all.iter().find(|e| e["action"] == "role.change").unwrap();
    assert_eq!(change["details"]["to"], "auditor");
    assert_eq!(change["actor"], format!("user:{}", boss.id));
    // Token prefixes (bfy_scim_ + 4 characters) identify tokens; no token itself is ever there.
    let text = serde_json::to_string(&all).unwrap();
    for (i, _) in text.match_indices("bfy_scim_") {
        let rest: String =
            text[i + 9..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        assert!(rest.len() <= 4, "a token in the audit trail: bfy_scim_{rest}");
    }
    assert!(text.contains("previous_prefix"));
}

/// Limits with the settings budget at `per_minute` (and no per-address limit in the way).
fn settings_limited_to(per_minute: u32) -> butterfly_api::Limits {
    butterfly_api::Limits::new(
        butterfly_api::limits::AnonymousLimits { per_address_per_minute: 1_000_000, settings_per_minute: per_minute },
        butterfly_core::limit::QuotaPolicy::default(),
    )
}

/// Each settings save fetches the named provider afresh: a super_admin saving issuer after
/// issuer used to make one outbound fetch per request without limit. Now a tenant's members get
/// a minute's allowance at once, then 429 with an integer Retry-After (nothing saved, nothing
/// fetched); the operator's CLI is not limited.
#[tokio::test]
async fn settings_saves_are_limited_per_tenant() {
    let rig = rig_with(TestApp::spawn_with_limits(settings_limited_to(4)).await).await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let issuer = rig._op.issuer("/t1");
    let save = |n: usize| json!({"issuer": issuer, "client_id": format!("acme-app-{n}"), "domains": "acme.test"});
    for n in 0..4 {
        let (s, v) = boss.call(&rig, Method::PUT, "/admin/sso", Some(save(n))).await;
        assert_eq!(s, StatusCode::OK, "save {n} of the allowance: {v}");
    }
    let r = boss
        .b
        .client
        .put(format!("{}/admin/sso", rig.app.origin))
        .header("x-csrf-token", &boss.csrf)
        .json(&save(99))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "slow_down");
    let (_, current) = boss.call(&rig, Method::GET, "/admin/sso", None).await;
    assert_eq!(current["client_id"], "acme-app-3", "a refused save was stored: {current}");
    // The operator is not limited.
    rig.app
        .sso
        .configure(
            &rig.app.tenant,
            SsoSettingsInput {
                issuer: rig._op.issuer("/t1"),
                client_id: "acme-app".into(),
                client_secret: None,
                domains: Some("acme.test".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
}

/// Each "Verify" click asks DNS and rewrites the tenant: a member's loop of clicks was unlimited.
/// Now they spend the tenant's settings budget and get 429 with an integer Retry-After past it.
#[tokio::test]
async fn domain_checks_are_limited_per_tenant() {
    let rig = rig_with(TestApp::spawn_with_limits(settings_limited_to(3)).await).await;
    let boss = member(&rig, "boss@acme.test", Some("super_admin")).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (s, v) = boss.call(&rig, Method::POST, "/admin/domains/acme.test/verify", None).await;
        assert_ne!(s, StatusCode::TOO_MANY_REQUESTS, "within the allowance: {v}");
        statuses.push(s);
    }
    let r = boss
        .b
        .client
        .post(format!("{}/admin/domains/acme.test/verify", rig.app.origin))
        .header("x-csrf-token", &boss.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "after {statuses:?}");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "slow_down");
}
