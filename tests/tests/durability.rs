//! Data survives a restart: write, stop, start, read.

use butterfly_tests::{expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn users_tokens_and_cursor_keys_survive_a_restart() {
    let app = TestApp::spawn().await;
    let tenant = (app.tenant.clone(), app.token.clone());
    let created = app.create_user(&okta_user("durable@atko.com", "Dura", "Ble")).await;
    let id = created["id"].as_str().unwrap().to_string();
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &patch).await, StatusCode::OK).await;
    for i in 0..3 {
        app.create_user(&okta_user(&format!("more{i}@atko.com"), "M", "U")).await;
    }
    let page = expect_json(app.get("/Users?cursor=&count=2").await, StatusCode::OK).await;
    let cursor = page["nextCursor"].as_str().unwrap().to_string();
    let dir = app.stop().await.expect("temp dir");

    // A new process over the same directory: same token, same data, same cursor key.
    let app = TestApp::start(dir.path(), Some(tenant)).await;
    let u = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    assert_eq!(u["userName"], "durable@atko.com");
    assert_eq!(u["active"], false);
    assert_eq!(u["meta"]["version"], "W/\"2\"");
    assert_eq!(app.find("DURABLE@atko.com").await["totalResults"], 1, "the userName index survived");
    let r = app.req(Method::GET, "/Users").query(&[("cursor", cursor.as_str()), ("count", "2")]).send().await.unwrap();
    let next = expect_json(r, StatusCode::OK).await;
    assert_eq!(next["Resources"].as_array().unwrap().len(), 2, "a cursor issued before the restart still works");
    assert_eq!(expect_json(app.get("/Users?count=0").await, StatusCode::OK).await["totalResults"], 4);
    // The uniqueness claim survived too.
    let r = app.send_json(Method::POST, "/Users", &okta_user("Durable@atko.com", "D", "B")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    app.stop().await;
    drop(dir);
}
