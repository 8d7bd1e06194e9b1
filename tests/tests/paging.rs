//! Index paging (RFC 7644 §3.4.2.4) and cursor paging (RFC 9865).

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn seed(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut body = okta_user(&format!("page{i:03}@atko.com"), "Page", &format!("N{i:03}"));
        body["active"] = Value::Bool(i % 3 != 0);
        ids.push(app.create_user(&body).await["id"].as_str().unwrap().to_string());
    }
    ids
}

fn ids_of(v: &Value) -> Vec<String> {
    v["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn index_paging_is_stable_and_follows_the_rfc() {
    let app = TestApp::spawn().await;
    let ids = seed(&app, 25).await;

    // Okta's import walk: startIndex += count until past totalResults.
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let v = expect_json(app.get(&format!("/Users?startIndex={start}&count=10")).await, StatusCode::OK).await;
        assert_eq!(v["totalResults"], 25);
        assert_eq!(v["startIndex"], start);
        assert_eq!(v["itemsPerPage"].as_u64().unwrap() as usize, v["Resources"].as_array().unwrap().len());
        seen.extend(ids_of(&v));
        start += 10;
        if start > 25 {
            break;
        }
    }
    assert_eq!(seen, ids, "every user once, in creation order");

    // startIndex below 1 means 1; count=0 gives the total only; past the end gives none.
    let v = expect_json(app.get("/Users?startIndex=0&count=2").await, StatusCode::OK).await;
    assert_eq!((v["startIndex"].as_u64(), ids_of(&v)), (Some(1), ids[..2].to_vec()));
    let v = expect_json(app.get("/Users?startIndex=-3&count=1").await, StatusCode::OK).await;
    assert_eq!(v["startIndex"], 1);
    let v = expect_json(app.get("/Users?count=0").await, StatusCode::OK).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(25), Some(0)));
    assert_eq!(v["Resources"], serde_json::json!([]));
    let v = expect_json(app.get("/Users?startIndex=26").await, StatusCode::OK).await;
    assert_eq!((v["totalResults"].as_u64(), v["itemsPerPage"].as_u64()), (Some(25), Some(0)));
    let v = expect_json(app.get("/Users?count=-1").await, StatusCode::OK).await;
    assert_eq!(v["itemsPerPage"], 0);
    // No parameters at all: the default page holds everyone here.
    let v = expect_json(app.get("/Users").await, StatusCode::OK).await;
    assert_eq!(ids_of(&v), ids);
    // count is capped at maxPageSize.
    let v = expect_json(app.get("/Users?count=100000").await, StatusCode::OK).await;
    assert_eq!(v["itemsPerPage"], 25);

    // Filtered index paging counts matches only.
    let r = app
        .req(Method::GET, "/Users")
        .query(&[("filter", "active eq false"), ("startIndex", "2"), ("count", "3")])
        .send()
        .await
        .unwrap();
    let v = expect_json(r, StatusCode::OK).await;
    let inactive: Vec<String> = ids.iter().enumerate().filter(|(i, _)| i % 3 == 0).map(|(_, id)| id.clone()).collect();
    assert_eq!(v["totalResults"].as_u64().unwrap() as usize, inactive.len());
    assert_eq!(ids_of(&v), inactive[1..4].to_vec());
}

#[tokio::test]
async fn cursor_paging_walks_every_user_once() {
    let app = TestApp::spawn().await;
    let ids = seed(&app, 23).await;
    for filter in [None, Some("active eq true")] {
        let want: Vec<String> = match filter {
            None => ids.clone(),
            Some(_) => ids.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, id)| id.clone()).collect(),
        };
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..20 {
            let mut q = vec![("cursor", cursor.clone()), ("count", "4".to_string())];
            if let Some(f) = filter {
                q.push(("filter", f.to_string()));
            }
            let v = expect_json(app.req(Method::GET, "/Users").query(&q).send().await.unwrap(), StatusCode::OK).await;
            assert!(v.get("startIndex").is_none(), "cursor pages have no startIndex: {v}");
            if filter.is_none() {
                assert_eq!(v["totalResults"], 23);
            }
            seen.extend(ids_of(&v));
            match v.get("nextCursor").and_then(Value::as_str) {
                Some(c) => {
                    assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe: {c}");
                    assert_eq!(v["itemsPerPage"], 4);
                    cursor = c.to_string();
                }
                None => break,
            }
        }
        assert_eq!(seen, want, "filter {filter:?}");
    }
}

#[tokio::test]
async fn cursors_are_tamper_evident_and_bound_to_tenant_and_query() {
    let app = TestApp::spawn().await;
    seed(&app, 5).await;
    let v = expect_json(app.get("/Users?cursor=&count=2").await, StatusCode::OK).await;
    let c = v["nextCursor"].as_str().unwrap().to_string();
    // The cursor works for its tenant and query.
    expect_json(
        app.req(Method::GET, "/Users").query(&[("cursor", c.as_str()), ("count", "2")]).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    // Tampered.
    let mut bytes = c.clone().into_bytes();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let r = app.req(Method::GET, "/Users").query(&[("cursor", tampered.as_str())]).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidCursor")).await;
    // Another tenant.
    let (_, other) = app.other_tenant().await;
    let r = app.req_as(Method::GET, "/Users", &other).query(&[("cursor", c.as_str())]).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidCursor")).await;
    // Another filter.
    let r = app
        .req(Method::GET, "/Users")
        .query(&[("cursor", c.as_str()), ("filter", "active eq true")])
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidCursor")).await;
}

#[tokio::test]
async fn lookups_page_too() {
    let app = TestApp::spawn().await;
    let ids = seed(&app, 3).await;
    let f = "userName eq \"page000@atko.com\" or userName eq \"PAGE002@atko.com\"";
    let v = expect_json(
        app.req(Method::GET, "/Users").query(&[("filter", f), ("count", "1")]).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!((v["totalResults"].as_u64(), ids_of(&v)), (Some(2), vec![ids[0].clone()]));
    let v = expect_json(
        app.req(Method::GET, "/Users").query(&[("filter", f), ("cursor", ""), ("count", "1")]).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let next = v["nextCursor"].as_str().unwrap();
    let v = expect_json(
        app.req(Method::GET, "/Users").query(&[("filter", f), ("cursor", next), ("count", "1")]).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids_of(&v), vec![ids[2].clone()]);
    assert!(v.get("nextCursor").is_none());
}
