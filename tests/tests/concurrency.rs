//! Races: uniqueness and versioned writes hold under concurrency.

use butterfly_tests::{expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_creates_of_one_user_name_give_one_201() {
    let app = Arc::new(TestApp::spawn().await);
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            // Vary the case: uniqueness is case-insensitive.
            let name = if i % 2 == 0 { "Race.User@atko.com" } else { "race.user@ATKO.com" };
            let mut body = okta_user(name, "Race", "User");
            body["externalId"] = json!(format!("00urace{i}"));
            barrier.wait().await;
            let r = app.send_json(Method::POST, "/Users", &body).await;
            let status = r.status();
            let v: serde_json::Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        let (status, v) = tokio::time::timeout(std::time::Duration::from_secs(60), t).await.unwrap().unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(v["scimType"], "uniqueness", "{v}");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((created, conflicts), (1, 63));
    let list = expect_json(app.get("/Users").await, StatusCode::OK).await;
    assert_eq!(list["totalResults"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_if_match_lose_no_update() {
    let app = Arc::new(TestApp::spawn().await);
    let u = app.create_user(&okta_user("many.patches@atko.com", "P", "U")).await;
    let id = u["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, id) = (app.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations":[{"op":"add","path":"emails","value":[{"value": format!("extra{i}@atko.com"), "type": "other"}]}]});
            app.send_json(Method::PATCH, &format!("/Users/{id}"), &body).await.status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let s = t.await.unwrap();
        // With no If-Match the server retries on a version race; under heavy contention it may
        // still give up with a 412 rather than lose an update.
        assert!(s == StatusCode::OK || s == StatusCode::PRECONDITION_FAILED, "{s}");
        ok += usize::from(s == StatusCode::OK);
    }
    let after = expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await;
    let emails = after["emails"].as_array().unwrap().len();
    assert_eq!(emails, 1 + ok, "every successful PATCH is in the result: {after}");
    assert_eq!(after["meta"]["version"], format!("W/\"{}\"", 1 + ok));
}
