//! Roles: every accepted form, the documented precedence, and `/Roles` for Okta Identity Governance.

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User";

async fn role_after_create(app: &TestApp, n: usize, extra: Value) -> Value {
    let mut body = okta_user(&format!("role{n}@atko.com"), "R", "U");
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let v = app.create_user(&body).await;
    assert!(v["roles"].as_array().map(|a| a.len()).unwrap_or(0) <= 1, "one role at most: {v}");
    v
}

#[tokio::test]
async fn role_forms_and_precedence() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({}), None),
        (json!({"roles": ["Admin"]}), Some("admin")),
        (json!({"roles": [{"value": "AUDITOR"}]}), Some("auditor")),
        (
            json!({"roles": [{"value": "auditor"}, {"value": "backup_operator", "primary": true}]}),
            Some("backup_operator"),
        ),
        (json!({"roles": [{"value": "auditor"}, {"value": "admin"}]}), Some("auditor")),
        (json!({"entitlements": [{"value": "super_admin", "type": "Role"}]}), Some("super_admin")),
        (json!({"entitlements": [{"value": "Gold", "type": "License"}]}), None),
        (json!({EXT: {"role": "backup_operator"}}), Some("backup_operator")),
        // The extension wins over roles, roles over entitlements.
        (
            json!({EXT: {"role": "auditor"}, "roles": ["admin"], "entitlements": [{"value": "super_admin"}]}),
            Some("auditor"),
        ),
        (json!({"roles": ["admin"], "entitlements": [{"value": "super_admin"}]}), Some("admin")),
        // The extension attribute written with its URN as a top-level key.
        (json!({format!("{EXT}:role"): "super_admin"}), Some("super_admin")),
    ];
    for (i, (extra, want)) in cases.iter().enumerate() {
        let v = role_after_create(&app, i, extra.clone()).await;
        match want {
            Some(r) => {
                assert_eq!(v["roles"], json!([{"value": r}]), "case {i}: {v}");
                assert_eq!(v[EXT], json!({"role": r}), "case {i}");
                assert!(v["schemas"].as_array().unwrap().contains(&json!(EXT)), "case {i}");
            }
            None => {
                assert!(
                    v.get("roles").is_none() && v.get(EXT).is_none(),
                    "case {i}: no role assigned means read_only: {v}"
                );
            }
        }
    }
}

#[tokio::test]
async fn unknown_roles_are_refused_and_absent_roles_leave_the_role() {
    let app = TestApp::spawn().await;
    for (i, bad) in [
        json!({"roles": ["owner"]}),
        json!({EXT: {"role": "root"}}),
        json!({"roles": [{"value": "admin"}, {"value": "god"}]}),
    ]
    .iter()
    .enumerate()
    {
        let mut body = okta_user(&format!("bad{i}@atko.com"), "B", "R");
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let v = expect_error(
            app.send_json(Method::POST, "/Users", &body).await,
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
        )
        .await;
        assert!(
            v["detail"].as_str().unwrap().contains("super_admin, admin, backup_operator, auditor, read_only"),
            "{v}"
        );
    }
    assert_eq!(expect_json(app.get("/Users").await, StatusCode::OK).await["totalResults"], 0, "no partial write");

    let mut body = okta_user("keeps.role@atko.com", "K", "R");
    body[EXT] = json!({"role": "admin"});
    let created = app.create_user(&body).await;
    let id = created["id"].as_str().unwrap();
    // Okta's PUT with the attributes it maps and no role: the role stays.
    let put = okta_user("keeps.role@atko.com", "Kept", "R");
    let v = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &put).await, StatusCode::OK).await;
    assert_eq!(v[EXT], json!({"role": "admin"}));
    // Changing it by PUT, then clearing it explicitly.
    let mut put2 = put.clone();
    put2["roles"] = json!([{"primary": true, "value": "backup_operator"}]);
    let v = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &put2).await, StatusCode::OK).await;
    assert_eq!(v["roles"], json!([{"value": "backup_operator"}]));
    let mut put3 = put.clone();
    put3[EXT] = json!({"role": null});
    let v = expect_json(app.send_json(Method::PUT, &format!("/Users/{id}"), &put3).await, StatusCode::OK).await;
    assert!(v.get("roles").is_none(), "{v}");
}

#[tokio::test]
async fn roles_endpoint_for_okta_identity_governance() {
    let app = TestApp::spawn().await;
    // Okta's entitlements test: count=1 must be honoured.
    let v = expect_json(app.get("/Roles?count=1&startIndex=1").await, StatusCode::OK).await;
    assert_eq!(
        (v["itemsPerPage"].as_u64(), v["totalResults"].as_u64(), v["startIndex"].as_u64()),
        (Some(1), Some(5), Some(1))
    );
    assert_eq!(v["Resources"][0]["schemas"], json!(["urn:okta:scim:schemas:core:1.0:Role"]));
    assert_eq!(v["Resources"][0]["id"], "super_admin");
    assert_eq!(v["Resources"][0]["displayName"], "Super Admin");
    let all = expect_json(app.get("/Roles").await, StatusCode::OK).await;
    let ids: Vec<&str> = all["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["super_admin", "admin", "backup_operator", "auditor", "read_only"]);
    let v = expect_json(app.get("/Roles?startIndex=5").await, StatusCode::OK).await;
    assert_eq!(v["Resources"][0]["id"], "read_only");
    expect_json(app.get("/Roles/auditor").await, StatusCode::OK).await;
    expect_error(app.get("/Roles/owner").await, StatusCode::NOT_FOUND, None).await;
    expect_error(
        app.get("/Roles?filter=displayName+eq+%22Admin%22").await,
        StatusCode::BAD_REQUEST,
        Some("invalidFilter"),
    )
    .await;
    // Okta assigns a role by PUT with roles:[{value}] equal to the Role id.
    let u = app.create_user(&okta_user("oig@atko.com", "O", "G")).await;
    let mut put = u.clone();
    put["roles"] = json!([{"value": "auditor", "display": "Auditor"}]);
    let v = expect_json(
        app.send_json(Method::PUT, &format!("/Users/{}", u["id"].as_str().unwrap()), &put).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v[EXT]["role"], "auditor");
}
