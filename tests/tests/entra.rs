//! Microsoft Entra ID's request shapes (okta-scim-client.md §4).

use butterfly_tests::{expect_error, expect_json, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn entra_user(email: &str) -> Value {
    json!({
        "UserName": email,
        "Active": true,
        "DisplayName": "Entra Person",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": "a1b2c3d4-0000-4000-8000-000000000001",
        "name": {"formatted": "Entra Person", "familyName": "Person", "givenName": "Entra"},
        "emails": [{"Primary": "True", "type": "work", "value": email}],
        "roles": [{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Backup Operator"}]
    })
}

#[tokio::test]
async fn entra_provisioning_cycle() {
    let app = TestApp::spawn().await;
    // Connection test: a random GUID userName, spaces encoded as '+'.
    let r = app.get("/Users?filter=userName+eq+%22c6f1a8e4-7b7a-4f4b-9d0e-9d2b7a1f0c11%22").await;
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 0);

    let created = app.create_user(&entra_user("entra.person@contoso.com")).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["userName"], "entra.person@contoso.com");
    assert_eq!(created["displayName"], "Entra Person");
    assert_eq!(created["emails"][0]["primary"], true, "string boolean coerced");
    assert_eq!(created["roles"], json!([{"value": "backup_operator"}]));
    assert_eq!(created["urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"]["role"], "backup_operator");

    // Lookup by externalId, and by the work email value path.
    let r = app.get("/Users?filter=externalId+eq+%22a1b2c3d4-0000-4000-8000-000000000001%22").await;
    assert_eq!(expect_json(r, StatusCode::OK).await["Resources"][0]["id"], id.as_str());
    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", "emails[type eq \"work\"].value eq \"ENTRA.PERSON@contoso.com\"")])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 1);

    // Multi-attribute path-less replace with dotted and URN-qualified keys, capitalised op.
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
        {"op":"Replace","value":{"displayName":"Renamed","name.givenName":"Renamed",
          "urn:ietf:params:scim:schemas:core:2.0:User:locale":"nl-NL"}},
        {"op":"Replace","path":"emails[type eq \"work\"].value","value":"renamed@contoso.com"},
        {"op":"Add","path":"roles","value":[{"value":"{\"id\":\"7e3e\",\"value\":\"auditor\",\"displayName\":\"Auditor\"}"}]}
    ]});
    let u = expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &patch).await, StatusCode::OK).await;
    assert_eq!(u["displayName"], "Renamed");
    assert_eq!(u["name"]["givenName"], "Renamed");
    assert_eq!(u["name"]["familyName"], "Person");
    assert_eq!(u["locale"], "nl-NL");
    assert_eq!(u["emails"][0]["value"], "renamed@contoso.com");
    assert_eq!(u["roles"], json!([{"value": "auditor"}]));

    // Disable without the aadOptscim062020 flag: a string boolean.
    let disable = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]});
    let u = expect_json(app.send_json(Method::PATCH, &format!("/Users/{id}"), &disable).await, StatusCode::OK).await;
    assert_eq!(u["active"], false);

    // Attribute names in other cases in a filter.
    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", "name.FamilyName eq \"Person\" and Active eq false")])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, StatusCode::OK).await["totalResults"], 1);

    // Hard delete: 204 with no body, then 404.
    let r = app.req(Method::DELETE, &format!("/Users/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    expect_error(app.get(&format!("/Users/{id}")).await, StatusCode::NOT_FOUND, None).await;
    // The userName is free again.
    app.create_user(&entra_user("entra.person@contoso.com")).await;
}

#[tokio::test]
async fn patch_without_operations_is_a_clear_400() {
    let app = TestApp::spawn().await;
    let id = app.create_user(&entra_user("empty.ops@contoso.com")).await["id"].as_str().unwrap().to_string();
    let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]});
    expect_error(
        app.send_json(Method::PATCH, &format!("/Users/{id}"), &body).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    )
    .await;
}
