//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`: what we publish is what we store.

use butterfly_tests::{expect_error, expect_json, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn attr<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{name}"))
}

#[tokio::test]
async fn discovery_documents() {
    let app = TestApp::spawn().await;
    let spc = expect_json(app.get("/ServiceProviderConfig").await, StatusCode::OK).await;
    // The documentation it points at is the customer's configuration guide: a page with the
    // Okta admin's steps only (no operator commands, no test material).
    let docs = reqwest::get(spc["documentationUri"].as_str().unwrap()).await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = docs.text().await.unwrap();
    for must in
        ["Client secret", "API token", "Rotate Token", "Universal Logout", "_butterfly-verification", "Retry-After"]
    {
        assert!(page.contains(must), "the guide lacks {must}");
    }
    for never in ["cargo", "butterfly sso set", "--store", "tests/", "oidc-provider", "DynamoDB"] {
        assert!(!page.contains(never), "the customer guide shows {never:?}");
    }
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["sort"]["supported"], false);
    assert_eq!(
        spc["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
        "defaultPageSize": 100, "maxPageSize": 1000, "cursorTimeout": 3600})
    );
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let rts = expect_json(app.get("/ResourceTypes").await, StatusCode::OK).await;
    let ids: Vec<&str> = rts["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["User", "Role"]);
    let user_rt = expect_json(app.get("/ResourceTypes/User").await, StatusCode::OK).await;
    assert_eq!(
        user_rt["schemaExtensions"],
        json!([{"schema": "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User", "required": false}])
    );
    expect_error(app.get("/ResourceTypes/Group").await, StatusCode::NOT_FOUND, None).await;

    let schemas = expect_json(app.get("/Schemas").await, StatusCode::OK).await;
    assert_eq!(schemas["totalResults"], 3);
    let user = expect_json(app.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await, StatusCode::OK).await;
    let names: Vec<&str> = user["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["userName", "name", "displayName", "emails", "active", "locale", "roles", "externalId"]);
    let un = attr(&user, "userName");
    assert_eq!(
        (un["required"].as_bool(), un["caseExact"].as_bool(), un["uniqueness"].as_str()),
        (Some(true), Some(false), Some("server"))
    );
    assert_eq!(attr(&user, "externalId")["caseExact"], true);
    let subs: Vec<&str> =
        attr(&user, "name")["subAttributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(subs, ["formatted", "familyName", "givenName", "middleName"]);
    let roles = attr(&user, "roles");
    assert_eq!(roles["multiValued"], true);
    assert_eq!(
        roles["subAttributes"][0]["canonicalValues"],
        json!(["super_admin", "admin", "backup_operator", "auditor", "read_only"])
    );
    for a in user["attributes"].as_array().unwrap() {
        assert_eq!(a["mutability"], "readWrite", "{a}");
        assert!(!["password", "groups", "nickName", "title", "phoneNumbers"].contains(&a["name"].as_str().unwrap()));
    }
    let ext = expect_json(
        app.get("/Schemas/urn:ietf:params:scim:schemas:extension:butterfly:2.0:User").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        attr(&ext, "role")["canonicalValues"],
        json!(["super_admin", "admin", "backup_operator", "auditor", "read_only"])
    );
    expect_json(app.get("/Schemas/urn:okta:scim:schemas:core:1.0:Role").await, StatusCode::OK).await;
    expect_error(app.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group").await, StatusCode::NOT_FOUND, None)
        .await;
    for path in ["/Schemas", "/ResourceTypes", "/ServiceProviderConfig", "/Roles"] {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            expect_error(app.req(m, path).send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED, None).await;
        }
    }
}
