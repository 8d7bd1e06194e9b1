//! Tenant isolation: a token sees and touches only its own tenant.

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn another_tenants_token_sees_nothing_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_tenant().await;
    let mine = app.create_user(&okta_user("shared.name@atko.com", "Mine", "User")).await;
    let id = mine["id"].as_str().unwrap();

    // The same userName is allowed in the other tenant, with a different id.
    let r = app
        .req_as(Method::POST, "/Users", &other)
        .header("Content-Type", "application/scim+json")
        .body(okta_user("SHARED.NAME@atko.com", "Theirs", "User").to_string())
        .send()
        .await
        .unwrap();
    let theirs = expect_json(r, StatusCode::CREATED).await;
    assert_ne!(theirs["id"], mine["id"]);

    // Reads: by id, list, filter, externalId.
    let r = app.req_as(Method::GET, &format!("/Users/{id}"), &other).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, None).await;
    let r = app.req_as(Method::GET, "/Users", &other).send().await.unwrap();
    let list = expect_json(r, StatusCode::OK).await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], theirs["id"]);
    // The case-insensitive userName lookup finds their user only.
    let r = app
        .req_as(Method::GET, "/Users", &other)
        .query(&[("filter", "userName eq \"shared.name@atko.com\"")])
        .send()
        .await
        .unwrap();
    let v = expect_json(r, StatusCode::OK).await;
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["id"], theirs["id"]);
    let r = app
        .req_as(Method::GET, "/Users", &other)
        .query(&[("filter", format!("id eq \"{id}\" or externalId eq \"{}\"", mine["externalId"].as_str().unwrap()))])
        .send()
        .await
        .unwrap();
    let v = expect_json(r, StatusCode::OK).await;
    assert!(v["Resources"].as_array().unwrap().iter().all(|u| u["id"] != mine["id"]), "{v}");

    // Writes: PUT, PATCH, DELETE on my user with their token are 404 and change nothing.
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    let r = app
        .req_as(Method::PATCH, &format!("/Users/{id}"), &other)
        .header("Content-Type", "application/json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, None).await;
    let r = app
        .req_as(Method::PUT, &format!("/Users/{id}"), &other)
        .header("Content-Type", "application/json")
        .body(mine.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, None).await;
    let r = app.req_as(Method::DELETE, &format!("/Users/{id}"), &other).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, None).await;
    let after = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    assert_eq!(after, mine, "my user is untouched");

    // My list still has only mine.
    let list = expect_json(app.get("/Users").await, StatusCode::OK).await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], mine["id"]);
}
