//! `attributes` / `excludedAttributes` on reads and writes; ETags and `If-Match`.

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn projections_apply_to_every_read_and_write() {
    let app = TestApp::spawn().await;
    let mut body = okta_user("proj@atko.com", "Pro", "Jection");
    body["roles"] = json!(["admin"]);
    let r = app
        .req(Method::POST, "/Users?attributes=userName,name.givenName")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let v = expect_json(r, StatusCode::CREATED).await;
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["id", "name", "schemas", "userName"], "{v}");
    assert_eq!(v["name"], json!({"givenName": "Pro"}));
    let id = v["id"].as_str().unwrap().to_string();

    let v = expect_json(app.get(&format!("/Users/{id}?excludedAttributes=name,emails,meta,id")).await, StatusCode::OK)
        .await;
    assert!(v.get("name").is_none() && v.get("emails").is_none() && v.get("meta").is_none());
    assert_eq!(v["id"], id.as_str(), "id is always returned");
    assert_eq!(v["userName"], "proj@atko.com");

    let v = expect_json(
        app.get("/Users?attributes=emails.value,urn:ietf:params:scim:schemas:extension:butterfly:2.0:User:role").await,
        StatusCode::OK,
    )
    .await;
    let u = &v["Resources"][0];
    assert_eq!(u["emails"], json!([{"value": "proj@atko.com"}]));
    assert_eq!(u["urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"], json!({"role": "admin"}));
    assert!(u.get("userName").is_none());

    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    let v = expect_json(
        app.send_json(Method::PATCH, &format!("/Users/{id}?attributes=active"), &patch).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        v,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"], "id": id, "active": false})
    );

    let mut put = body.clone();
    put["displayName"] = json!("Put");
    let v = expect_json(
        app.send_json(
            Method::PUT,
            &format!("/Users/{id}?excludedAttributes=roles,urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"),
            &put,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        v.get("roles").is_none() && v.get("urn:ietf:params:scim:schemas:extension:butterfly:2.0:User").is_none(),
        "{v}"
    );
    assert_eq!(v["displayName"], "Put");
}

#[tokio::test]
async fn etags_and_preconditions() {
    let app = TestApp::spawn().await;
    let r = app.send_json(Method::POST, "/Users", &okta_user("etag@atko.com", "E", "Tag")).await;
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let v = expect_json(r, StatusCode::CREATED).await;
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["meta"]["version"], "W/\"1\"");

    // If-None-Match with the current version: 304.
    let r = app.req(Method::GET, &format!("/Users/{id}")).header("If-None-Match", "W/\"1\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let patch = |name: &str| json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":name}]});
    // Matching If-Match: applied, version 2.
    let r = app
        .req(Method::PATCH, &format!("/Users/{id}"))
        .header("If-Match", "W/\"1\"")
        .header("Content-Type", "application/json")
        .body(patch("Two").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    expect_json(r, StatusCode::OK).await;
    // Stale If-Match: 412, nothing changes.
    let r = app
        .req(Method::PATCH, &format!("/Users/{id}"))
        .header("If-Match", "W/\"1\"")
        .header("Content-Type", "application/json")
        .body(patch("Stale").to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
    let mut put = okta_user("etag@atko.com", "E", "Tag");
    put["displayName"] = json!("Stale put");
    let r = app
        .req(Method::PUT, &format!("/Users/{id}"))
        .header("If-Match", "W/\"1\"")
        .header("Content-Type", "application/json")
        .body(put.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
    let r = app.req(Method::DELETE, &format!("/Users/{id}")).header("If-Match", "W/\"7\"").send().await.unwrap();
    expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
    let v = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    assert_eq!((v["displayName"].as_str(), v["meta"]["version"].as_str()), (Some("Two"), Some("W/\"2\"")));
    // `*`, a list containing the current tag, and its strong spelling all match.
    for (tag, expect_after) in [("*".to_string(), 3), ("W/\"9\", W/\"3\"".to_string(), 4), ("\"4\"".to_string(), 5)] {
        let r = app
            .req(Method::PATCH, &format!("/Users/{id}"))
            .header("If-Match", tag.as_str())
            .header("Content-Type", "application/json")
            .body(patch(&tag).to_string())
            .send()
            .await
            .unwrap();
        let v = expect_json(r, StatusCode::OK).await;
        assert_eq!(v["meta"]["version"], format!("W/\"{expect_after}\""), "If-Match {tag}");
    }
    // A no-op PATCH does not bump the version.
    let before = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    let same = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value": before["displayName"]}]});
    let after = expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &same).await, StatusCode::OK).await;
    assert_eq!(after["meta"]["version"], before["meta"]["version"]);
    // Matching If-Match on DELETE.
    let v = before["meta"]["version"].as_str().unwrap();
    let r = app.req(Method::DELETE, &format!("/Users/{id}")).header("If-Match", v).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}
