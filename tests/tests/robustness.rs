//! Bad input over HTTP: never a 5xx, always a SCIM error body, never a partial write.

use butterfly_tests::{expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn check(app: &TestApp, method: Method, path: &str, headers: &[(&str, &[u8])], body: Vec<u8>) {
    let mut req = app.req(method.clone(), path);
    for (k, v) in headers {
        req = req.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.as_u16() < 500, "{method} {path} → {status}: {text}");
    if status.is_client_error() {
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path} → {status}, not JSON: {text}"));
        assert_eq!(v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{v}");
        assert_eq!(v["status"], status.as_u16().to_string());
    }
}

#[tokio::test]
async fn hostile_requests_get_4xx_scim_errors() {
    let app = TestApp::spawn().await;
    let u = app.create_user(&okta_user("target@atko.com", "T", "U")).await;
    let id = u["id"].as_str().unwrap().to_string();
    let by_id = format!("/Users/{id}");
    let json_ct: &[(&str, &[u8])] = &[("content-type", b"application/scim+json")];
    type Case<'a> = (Method, String, Vec<(&'a str, &'a [u8])>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (Method::POST, "/Users".into(), json_ct.to_vec(), vec![0xff, 0xfe, b'{']),
        (Method::POST, "/Users".into(), json_ct.to_vec(), b"{\"userName\":\"\\ud800@x.io\"}".to_vec()),
        (
            Method::POST,
            "/Users".into(),
            json_ct.to_vec(),
            b"{\"userName\":\"a@b.io\",\"emails\":{\"value\":7}}".to_vec(),
        ),
        (Method::POST, "/Users".into(), json_ct.to_vec(), b"{\"userName\":\"a@b.io\",\"name\":[1]}".to_vec()),
        (
            Method::POST,
            "/Users".into(),
            json_ct.to_vec(),
            b"{\"userName\":\"a@b.io\",\"roles\":{\"value\":{}}}".to_vec(),
        ),
        (Method::POST, "/Users".into(), json_ct.to_vec(), b"null".to_vec()),
        (Method::POST, "/Users".into(), vec![("content-type", b"application/scim+json; charset=\xff")], b"{}".to_vec()),
        (Method::GET, "/Users?filter=%ff%fe".into(), vec![], vec![]),
        (Method::GET, "/Users?filter=userName%20eq%20%22%ff%22".into(), vec![], vec![]),
        (Method::GET, "/Users?count=99999999999999999999999".into(), vec![], vec![]),
        (Method::GET, "/Users?startIndex=9223372036854775807&count=5".into(), vec![], vec![]),
        (Method::GET, "/Users?cursor=%00%00".into(), vec![], vec![]),
        (Method::GET, "/Users?attributes=%ff,,,urn:&excludedAttributes=[".into(), vec![], vec![]),
        (Method::GET, "/Users/%ff%fe".into(), vec![], vec![]),
        (Method::GET, "/Users/..%2f..%2fetc".into(), vec![], vec![]),
        (Method::GET, by_id.clone(), vec![("if-none-match", b"\xff garbage")], vec![]),
        (
            Method::PATCH,
            by_id.clone(),
            vec![("content-type", b"application/json"), ("if-match", b"W/\"")],
            b"{\"Operations\":[{\"op\":\"replace\",\"value\":{\"active\":false}}]}".to_vec(),
        ),
        (
            Method::PATCH,
            by_id.clone(),
            json_ct.to_vec(),
            b"{\"Operations\":[{\"op\":\"add\",\"path\":\"emails[type eq \\\"work\\\"\",\"value\":\"x@y.io\"}]}"
                .to_vec(),
        ),
        (
            Method::PATCH,
            by_id.clone(),
            json_ct.to_vec(),
            b"{\"Operations\":[{\"op\":\"replace\",\"path\":\"urn:\\u00e9\",\"value\":1}]}".to_vec(),
        ),
        (Method::PATCH, by_id.clone(), json_ct.to_vec(), b"{\"Operations\":\"replace\"}".to_vec()),
        (Method::PUT, by_id.clone(), json_ct.to_vec(), b"{\"userName\":null}".to_vec()),
        (Method::PUT, by_id.clone(), json_ct.to_vec(), b"{\"userName\":\"x@y.io\",\"active\":[true]}".to_vec()),
        (Method::DELETE, format!("{by_id}?x=%ff"), vec![("if-match", b"*, \xff")], vec![]),
    ];
    for (m, p, h, b) in cases {
        check(&app, m, &p, &h, b).await;
    }
    // A bounded random sweep of PATCH operations over HTTP.
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let paths = [
        "emails",
        "emails[type eq \"work\"].value",
        "name",
        "name.givenName",
        "roles",
        "active",
        "userName",
        "x",
        "",
        "[",
        "emails[",
        "meta",
    ];
    let values =
        ["null", "true", "\"False\"", "1", "[]", "{}", "\"a@b.io\"", "[{\"value\":\"admin\"}]", "{\"givenName\":7}"];
    let ops = ["add", "remove", "replace", "Replace", "move"];
    for _ in 0..300 {
        let op = ops[(next() % ops.len() as u64) as usize];
        let path = paths[(next() % paths.len() as u64) as usize];
        let value = values[(next() % values.len() as u64) as usize];
        let body = format!("{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{{\"op\":\"{op}\",\"path\":{},\"value\":{value}}}]}}", serde_json::to_string(path).unwrap());
        check(&app, Method::PATCH, &by_id, json_ct, body.into_bytes()).await;
    }
    // The user is still readable and valid, and nothing else was created.
    let after = expect_json(app.get(&by_id).await, StatusCode::OK).await;
    assert!(after["userName"].as_str().unwrap().contains('@'));
    assert_eq!(expect_json(app.get("/Users?count=0").await, StatusCode::OK).await["totalResults"], 1);
}

#[tokio::test]
async fn an_unreadable_if_match_fails_closed() {
    let app = TestApp::spawn().await;
    let u = app.create_user(&okta_user("guarded@atko.com", "G", "U")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = app
        .req(Method::DELETE, &path)
        .header("if-match", reqwest::header::HeaderValue::from_bytes(b"*, \xff").unwrap())
        .send()
        .await
        .unwrap();
    butterfly_tests::expect_error(r, StatusCode::PRECONDITION_FAILED, None).await;
    expect_json(app.get(&path).await, StatusCode::OK).await;
}
