//! Store round trips per Okta request shape, the token check included: with a token that names
//! its tenant, lookup, get and create one, PUT and PATCH two; a deactivation adds the revocation
//! of the user's sessions (one query) and its receipt. A token issued before tokens named their
//! tenant pays two for a lookup and a create.

use butterfly_core::ports::TokenStore;
use butterfly_core::token::{ScimToken, TokenRecord};
use butterfly_tests::{expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn each_okta_request_shape_costs_one_store_operation_except_put_and_patch() {
    // The warm-up's quota lease covers every request below (a create after a new minute's
    // lease would read its token first).
    butterfly_tests::early_in_a_minute(10).await;
    let app = TestApp::spawn().await;
    // Warm up: the first use of a token records its last-used time (once per 5 minutes).
    expect_json(app.get("/Users?count=1").await, StatusCode::OK).await;
    let (_, log) = app.store.take();
    assert!(log.contains(&"record_token_use"), "first use records last-used: {log:?}");

    let email = "counted.user@atko.com";
    let mut shapes = Vec::new();

    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", format!("userName eq \"{email}\"")), ("startIndex", "1".into()), ("count", "100".into())])
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    shapes.push(("lookup (miss)", app.store.take()));

    let created = app.create_user(&okta_user(email, "Counted", "User")).await;
    shapes.push(("create", app.store.take()));
    let id = created["id"].as_str().unwrap().to_string();

    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", format!("userName eq \"{}\"", email.to_uppercase()))])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 1);
    shapes.push(("lookup (hit)", app.store.take()));

    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", format!("externalId eq \"{}\"", created["externalId"].as_str().unwrap()))])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 1);
    shapes.push(("externalId lookup", app.store.take()));

    let current = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    shapes.push(("get", app.store.take()));

    let mut put = current.clone();
    put["name"]["givenName"] = json!("Changed");
    expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &put).await, StatusCode::OK).await;
    shapes.push(("PUT", app.store.take()));

    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &patch).await, StatusCode::OK).await;
    shapes.push(("PATCH", app.store.take()));

    // The shared per-tenant rate counter costs one round trip per lease (of 50 requests here), at
    // most once among these requests; it is not part of any request shape's cost.
    let leases: usize = shapes.iter().map(|(_, (_, l))| l.iter().filter(|o| **o == "take_quota").count()).sum();
    assert!(leases <= 1, "{leases} quota leases for {} requests", shapes.len());
    let shapes: Vec<(&str, (u64, Vec<&str>))> = shapes
        .into_iter()
        .map(|(s, (_, l))| {
            let kept: Vec<&str> = l.into_iter().filter(|o| *o != "take_quota").collect();
            (s, (kept.len() as u64, kept))
        })
        .collect();
    let expected: [(&str, &[&str]); 7] = [
        ("lookup (miss)", &["resolve_token_and_find_user"]),
        ("create", &["create_user_checked"]),
        ("lookup (hit)", &["resolve_token_and_find_user"]),
        ("externalId lookup", &["resolve_token_and_find_user"]),
        ("get", &["resolve_token_and_get_user"]),
        ("PUT", &["resolve_token_and_get_user", "replace_user"]),
        // Deactivation: the write (with its audit event and the session cut-off), then the
        // revocation of the user's sessions (one query) and its receipt.
        ("PATCH", &["resolve_token_and_get_user", "replace_user", "delete_user_sessions", "record_audit"]),
    ];
    for ((shape, (_, log)), (want_shape, want)) in shapes.iter().zip(expected) {
        assert_eq!(*shape, want_shape);
        assert_eq!(log.as_slice(), want, "{shape}");
    }
    let names: Vec<String> = shapes.iter().map(|(s, (n, l))| format!("{s}={n} {l:?}")).collect();
    println!("store operations per request shape: {}", names.join("; "));
}

#[tokio::test]
async fn lookups_do_not_scan_even_in_a_large_tenant() {
    let app = TestApp::spawn().await;
    for i in 0..300 {
        app.create_user(&okta_user(&format!("bulk{i}@atko.com"), "B", "U")).await;
    }
    app.store.take();
    let r =
        app.req(Method::GET, "/Users").query(&[("filter", "userName eq \"BULK299@atko.com\"")]).send().await.unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 1);
    let (n, mut log) = app.store.take();
    // The per-tenant rate counter is leased a batch at a time; this request may take the next one.
    log.retain(|o| *o != "take_quota");
    assert_eq!(log, vec!["resolve_token_and_find_user"], "{n}");
}

/// Replaces the token of a new tenant of `app`'s store by one in the format issued before tokens
/// named their tenant (no routing part), as a tenant upgraded from then still holds.
async fn tenant_with_legacy_token(app: &TestApp) -> String {
    let (tenant, _) = app.other_tenant().await;
    let slots = app.store.token_slots(&tenant).await.unwrap().unwrap();
    let legacy = ScimToken::generate_legacy().unwrap();
    let record = TokenRecord {
        hash: legacy.hash(),
        tenant,
        display_prefix: legacy.display_prefix(),
        created: butterfly_core::clock::Timestamp(0),
        last_used: None,
        expires: None,
        replaces: None,
    };
    app.store.install_token(&record, Some(&slots)).await.unwrap();
    legacy.secret().expose().to_string()
}

#[tokio::test]
async fn a_token_without_a_routing_part_keeps_working_on_the_two_operation_path() {
    let app = TestApp::spawn().await;
    let token = tenant_with_legacy_token(&app).await;
    expect_json(app.req_as(Method::GET, "/Users?count=1", &token).send().await.unwrap(), StatusCode::OK).await;
    app.store.take();
    let lookup = |name: &str| {
        app.req_as(Method::GET, "/Users", &token).query(&[("filter", format!("userName eq \"{name}\""))]).send()
    };
    let r = lookup("legacy@atko.com").await.unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 0);
    let (_, mut log) = app.store.take();
    log.retain(|o| *o != "take_quota");
    assert_eq!(log, vec!["resolve_token", "find_user_by_user_name"]);

    let r = app
        .req_as(Method::POST, "/Users", &token)
        .header("Content-Type", "application/scim+json")
        .body(okta_user("legacy@atko.com", "Legacy", "Token").to_string())
        .send()
        .await
        .unwrap();
    let created = expect_json(r, StatusCode::CREATED).await;
    let (_, mut log) = app.store.take();
    log.retain(|o| *o != "take_quota");
    assert_eq!(log, vec!["resolve_token", "create_user"]);

    let r = lookup("LEGACY@atko.com").await.unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["Resources"][0]["id"], created["id"]);
    let id = created["id"].as_str().unwrap();
    let r = app.req_as(Method::GET, &format!("/Users/{id}"), &token).send().await.unwrap();
    expect_json(r, StatusCode::OK).await;
    let (_, mut log) = app.store.take();
    log.retain(|o| *o != "take_quota");
    assert_eq!(log, vec!["resolve_token", "find_user_by_user_name", "resolve_token_and_get_user"]);
}

#[tokio::test]
async fn a_create_reads_the_token_first_when_its_bookkeeping_is_due() {
    // The token's first use is a create: the token is read (its first use is recorded, and an
    // overlapped token would be retired), then the user written. The next create is one write
    // (within the first create's quota lease, so within its minute).
    butterfly_tests::early_in_a_minute(10).await;
    let app = TestApp::spawn().await;
    let created = app.create_user(&okta_user("first.use@atko.com", "First", "Use")).await;
    assert!(created["id"].is_string());
    let (_, mut log) = app.store.take();
    log.retain(|o| *o != "take_quota");
    assert_eq!(log, vec!["resolve_token", "record_token_use", "create_user"]);
    app.create_user(&okta_user("second.use@atko.com", "Second", "Use")).await;
    let (_, log) = app.store.take();
    assert_eq!(log, vec!["create_user_checked"]);
}
