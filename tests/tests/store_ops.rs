//! Store round trips per Okta request shape: at most two, the token lookup included; a deactivation
//! adds the revocation of the user's sessions (one query) and its receipt.

use butterfly_tests::{expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn each_okta_request_shape_costs_at_most_two_store_operations_plus_revocation() {
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
    for (shape, (n, log)) in &shapes {
        if *shape == "PATCH" {
            // Deactivation: the write (with its audit event and the session cut-off), then the
            // revocation of the user's sessions (one query) and its receipt.
            assert_eq!(
                log,
                &vec!["resolve_token_and_get_user", "replace_user", "delete_user_sessions", "record_audit"]
            );
            continue;
        }
        assert!(*n <= 2, "{shape} made {n} store operations: {log:?}");
        assert!(*n >= 1, "{shape} made no store operation at all: {log:?}");
        assert!(!log.contains(&"list_users"), "{shape} scanned the tenant: {log:?}");
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
    assert_eq!(log, vec!["resolve_token", "find_user_by_user_name"], "{n}");
}
