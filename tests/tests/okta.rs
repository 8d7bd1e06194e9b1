//! Okta's SCIM 2.0 SPEC test (Runscope) and CRUD test, replayed step by step
//! (okta-scim-client.md §2.1, §2.2).

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn assert_full_user(u: &Value) {
    for field in ["id", "userName"] {
        assert!(u[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {u}");
    }
    assert!(u["name"]["familyName"].as_str().is_some_and(|s| !s.is_empty()), "{u}");
    assert!(u["name"]["givenName"].as_str().is_some_and(|s| !s.is_empty()), "{u}");
    assert!(u["active"].is_boolean(), "{u}");
    assert!(u["emails"][0]["value"].as_str().is_some_and(|s| !s.is_empty()), "{u}");
}

#[tokio::test]
async fn okta_spec_test_steps_1_to_12() {
    let app = TestApp::spawn().await;
    // Precondition: "Create at least one user in your SCIM server before running".
    app.create_user(&okta_user("existing.user@atko.com", "Existing", "User")).await;

    // 1. GET /Users?count=1&startIndex=1
    let list = expect_json(app.get("/Users?count=1&startIndex=1").await, StatusCode::OK).await;
    assert_eq!(list["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    for k in ["itemsPerPage", "startIndex", "totalResults"] {
        assert!(list[k].is_u64(), "{k} must be a JSON number: {list}");
    }
    assert_eq!(list["itemsPerPage"], 1);
    let first = &list["Resources"][0];
    assert_full_user(first);
    let isv_user_id = first["id"].as_str().unwrap().to_string();

    // 2. GET /Users/{ISVUserid}
    let u = expect_json(app.get(&format!("/Users/{isv_user_id}")).await, StatusCode::OK).await;
    assert_full_user(&u);
    assert_eq!(u["id"], isv_user_id.as_str());

    // 3. filter for a user that does not exist: 200 with totalResults 0
    let v = expect_json(app.get("/Users?filter=userName%20eq%20%22abcdefgh%40atko.com%22").await, StatusCode::OK).await;
    assert_eq!(v["totalResults"], 0);
    assert_eq!(v["Resources"], json!([]));
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));

    // 4. a non-UUID id that does not exist: 404 SCIM error
    expect_error(app.get("/Users/010101001010101011001010101011").await, StatusCode::NOT_FOUND, None).await;

    // 5. the random user is not there yet
    let email = "Runscope123Abcdefghi123@atko.com";
    assert_eq!(app.find(email).await["totalResults"], 0);

    // 6. POST with Content-Type application/json, no externalId, no password
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": "Runscope123", "familyName": "Abcdefghi123"},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": "Runscope123 Abcdefghi123",
        "active": true
    });
    let r = app
        .req(Method::POST, "/Users")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    let created = expect_json(r, StatusCode::CREATED).await;
    assert_eq!(created["active"], true);
    assert_eq!(created["userName"], email, "userName keeps its original case");
    assert_eq!(created["name"]["familyName"], "Abcdefghi123");
    assert_eq!(created["name"]["givenName"], "Runscope123");
    assert!(created["schemas"].as_array().unwrap().contains(&json!("urn:ietf:params:scim:schemas:core:2.0:User")));
    assert_eq!(created["meta"]["resourceType"], "User");
    let id_user_one = created["id"].as_str().unwrap().to_string();
    assert_eq!(location.as_deref(), created["meta"]["location"].as_str(), "Location equals meta.location");
    assert!(location.unwrap().ends_with(&format!("/scim/v2/Users/{id_user_one}")));

    // 7. GET it back
    let u = expect_json(app.get(&format!("/Users/{id_user_one}")).await, StatusCode::OK).await;
    assert_eq!(u["userName"], email);
    assert_eq!(u["name"]["familyName"], "Abcdefghi123");
    assert_eq!(u["name"]["givenName"], "Runscope123");

    // 8. the same userName again: 409
    let r = app
        .req(Method::POST, "/Users")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, Some("uniqueness")).await;

    // 9. the upper-cased userName finds the user
    let v = app.find(&email.to_uppercase()).await;
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["id"], id_user_one.as_str());

    // 10. GET /Groups: 200, empty
    let v = expect_json(app.get("/Groups").await, StatusCode::OK).await;
    assert_eq!(v["totalResults"], 0);

    // 11. a bad Authorization header: 401 SCIM error with status "401"
    let r = app
        .client
        .get(format!("{}/Users?filter=userName%20eq%20%22{email}%22", app.base))
        .header("Authorization", "non-token")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;

    // 12. another non-existent, non-UUID id: 404
    expect_error(app.get("/Users/00919288221112222").await, StatusCode::NOT_FOUND, None).await;
}

#[tokio::test]
async fn okta_crud_test_create_update_deactivate_reactivate_unassign() {
    let app = TestApp::spawn().await;
    let email = "Runscope123Xyzabcdef123@atko.com";

    // Assignment: lookup finds nothing, then POST (Okta's create body, with password and groups).
    assert_eq!(app.find(email).await["totalResults"], 0);
    let created = app.create_user(&okta_user(email, "Runscope123", "Xyzabcdef123")).await;
    assert!(created.get("password").is_none(), "password is never echoed: {created}");
    assert!(created.get("groups").is_none(), "groups are ignored: {created}");
    let id = created["id"].as_str().unwrap().to_string();

    // 4. verify on SCIM
    let v = app.find(email).await;
    let r0 = &v["Resources"][0];
    assert_eq!(r0["userName"], email);
    assert_eq!(r0["emails"][0]["value"], email);
    assert_eq!(r0["emails"][0]["primary"], true);
    assert_eq!(r0["name"]["givenName"], "Runscope123");

    // 5. profile update: Okta GETs, then PUTs the whole object back with id, meta and groups.
    let mut current = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    current["name"]["givenName"] = json!("Runscope123update");
    current["name"]["middleName"] = json!("Excited");
    current["groups"] = json!([]);
    current["meta"] = json!({"resourceType": "User"});
    let put = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &current).await, StatusCode::OK).await;
    assert_eq!(put["name"]["givenName"], "Runscope123update");
    assert_eq!(put["id"], id.as_str());
    let u = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    assert_eq!(u["name"]["givenName"], "Runscope123update");
    assert_eq!(u["name"]["middleName"], "Excited");
    assert_eq!(u["externalId"], created["externalId"], "externalId survives a PUT");

    // 6. deactivate: Okta's path-less PATCH
    let deactivate = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
    let p = expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &deactivate).await, StatusCode::OK).await;
    assert_eq!(p["active"], false);
    assert_eq!(expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await["active"], false);

    // A deactivated user stays findable, so re-assignment links instead of creating a duplicate.
    let v = app.find(email).await;
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["id"], id.as_str());
    assert_eq!(v["Resources"][0]["active"], false);

    // 7. reactivate: same id
    let reactivate = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]});
    expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &reactivate).await, StatusCode::OK).await;
    let u = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    assert_eq!(u["active"], true);
    assert_eq!(u["id"], id.as_str());
    assert_eq!(u["name"]["givenName"], "Runscope123update", "reactivation keeps the attributes");

    // 8. unassign = deactivate again
    expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &deactivate).await, StatusCode::OK).await;
    assert_eq!(expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await["active"], false);
}

#[tokio::test]
async fn app_integration_wizard_apps_deactivate_with_put() {
    let app = TestApp::spawn().await;
    let created = app.create_user(&okta_user("aiw@atko.com", "Aiw", "User")).await;
    let id = created["id"].as_str().unwrap();
    let mut body = created.clone();
    body["active"] = json!(false);
    let put = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &body).await, StatusCode::OK).await;
    assert_eq!(put["active"], false);
    body["active"] = json!(true);
    let put = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &body).await, StatusCode::OK).await;
    assert_eq!(put["active"], true);
}

#[tokio::test]
async fn put_replaces_but_keeps_role_active_and_unsent_name_parts() {
    let app = TestApp::spawn().await;
    let mut body = okta_user("put.rules@atko.com", "Put", "Rules");
    body["name"]["middleName"] = json!("Middle");
    body["urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"] = json!({"role": "auditor"});
    let created = app.create_user(&body).await;
    let id = created["id"].as_str().unwrap();
    // A PUT without role, active, externalId, displayName, locale and name.middleName.
    let put_body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "ignored-id", "meta": {"version": "W/\"999\""},
        "userName": "Put.Rules@atko.com",
        "name": {"givenName": "Putt", "familyName": "Rules"},
        "emails": [{"primary": true, "value": "put.rules@atko.com", "type": "work"}]
    });
    let u = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &put_body).await, StatusCode::OK).await;
    assert_eq!(u["id"], id, "id in the body is ignored");
    assert_eq!(u["userName"], "Put.Rules@atko.com", "the case change is applied");
    assert_eq!(u["roles"], json!([{"value": "auditor"}]), "absent role: unchanged");
    assert_eq!(u["active"], true, "absent active: unchanged");
    assert_eq!(u["externalId"], created["externalId"], "absent externalId: unchanged");
    assert!(u.get("displayName").is_none(), "absent displayName: cleared ({u})");
    assert!(u.get("locale").is_none(), "absent locale: cleared");
    assert_eq!(u["name"], json!({"familyName": "Rules", "givenName": "Putt", "middleName": "Middle"}));
    assert_eq!(u["meta"]["version"], "W/\"2\"");
}
