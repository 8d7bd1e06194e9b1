//! Error bodies and statuses: always the SCIM error schema, never a 500 or a panic.

use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn unauthorized_requests_get_scim_401s() {
    let app = TestApp::spawn().await;
    let url = format!("{}/Users", app.base);
    // No header, a bad scheme, a made-up token, a well-formed but unknown token.
    let r = app.client.get(&url).send().await.unwrap();
    assert!(r.headers().get("www-authenticate").is_some());
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    let r = app.client.get(&url).header("Authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    let r = app.client.get(&url).header("Authorization", "Bearer non-token").send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    let fresh = butterfly_core::token::ScimToken::generate_for(&app.tenant).unwrap();
    let r = app
        .client
        .get(&url)
        .header("Authorization", format!("Bearer {}", fresh.secret().expose()))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    // Okta "Header" auth: the bare token is accepted.
    let r = app.client.get(&url).header("Authorization", app.token.clone()).send().await.unwrap();
    expect_json(r, StatusCode::OK).await;
    // Every route checks the token, including discovery and by-id routes.
    for path in
        ["/Users/00919288221112222", "/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Roles", "/Groups"]
    {
        let r = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    }
    let r = app
        .client
        .post(&url)
        .header("Content-Type", "application/json")
        .body(okta_user("x@y.io", "X", "Y").to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    // Nothing was written.
    assert_eq!(expect_json(app.get("/Users").await, StatusCode::OK).await["totalResults"], 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = TestApp::spawn().await;
    let created = app.create_user(&okta_user("known@atko.com", "K", "U")).await;
    let id = created["id"].as_str().unwrap();
    for bad in [
        "010101001010101011001010101011".to_string(),
        "00919288221112222".to_string(),
        id.to_uppercase(),
        format!("{id}x"),
        "0190f0f0-0000-7000-8000-000000000000".to_string(),
        "%20".to_string(),
    ] {
        expect_error(app.get(&format!("/Users/{bad}")).await, StatusCode::NOT_FOUND, None).await;
        let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]});
        expect_error(app.send_json(Method::PATCH, &format!("/Users/{bad}"), &patch).await, StatusCode::NOT_FOUND, None)
            .await;
        let r = app.req(Method::DELETE, &format!("/Users/{bad}")).send().await.unwrap();
        expect_error(r, StatusCode::NOT_FOUND, None).await;
    }
}

#[tokio::test]
async fn conflicts_are_409_uniqueness() {
    let app = TestApp::spawn().await;
    app.create_user(&okta_user("Dup.User@atko.com", "D", "U")).await;
    let v = expect_error(
        app.send_json(Method::POST, "/Users", &okta_user("dup.user@ATKO.com", "D", "U")).await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("dup.user@ATKO.com"), "{v}");
    // Unicode case folding: ß folds to ss.
    app.create_user(&okta_user("strasse@example.de", "S", "U")).await;
    expect_error(
        app.send_json(Method::POST, "/Users", &okta_user("STRAßE@example.de", "S", "U")).await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;
    // externalId is unique per tenant too.
    let mut a = okta_user("ext.a@atko.com", "A", "A");
    a["externalId"] = json!("00uSAME");
    app.create_user(&a).await;
    let mut b = okta_user("ext.b@atko.com", "B", "B");
    b["externalId"] = json!("00uSAME");
    expect_error(app.send_json(Method::POST, "/Users", &b).await, StatusCode::CONFLICT, Some("uniqueness")).await;
    // Renaming onto a taken userName by PUT or PATCH is also a 409, and changes nothing.
    let c = app.create_user(&okta_user("rename.me@atko.com", "R", "M")).await;
    let id = c["id"].as_str().unwrap();
    let patch = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"DUP.USER@atko.com"}]});
    expect_error(
        app.send_json(Method::PATCH, &format!("/Users/{id}"), &patch).await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;
    let mut put = c.clone();
    put["userName"] = json!("dup.user@atko.com");
    expect_error(
        app.send_json(Method::PUT, &format!("/Users/{id}"), &put).await,
        StatusCode::CONFLICT,
        Some("uniqueness"),
    )
    .await;
    assert_eq!(
        expect_json(app.get(&format!("/Users/{id}")).await, StatusCode::OK).await["userName"],
        "rename.me@atko.com"
    );
}

#[tokio::test]
async fn bad_bodies_are_clear_400s_413s_and_415s() {
    let app = TestApp::spawn().await;
    let post = |body: &'static str, ct: &'static str| {
        app.req(Method::POST, "/Users").header("Content-Type", ct).body(body).send()
    };
    expect_error(post("{not json", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, Some("invalidSyntax"))
        .await;
    expect_error(post("", "application/scim+json").await.unwrap(), StatusCode::BAD_REQUEST, Some("invalidSyntax"))
        .await;
    expect_error(post("[1,2]", "application/scim+json").await.unwrap(), StatusCode::BAD_REQUEST, Some("invalidSyntax"))
        .await;
    expect_error(
        post("{\"not\":\"a scim resource\"}", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    )
    .await;
    let v = expect_error(
        post("{\"userName\":\"not-an-email\"}", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("email"), "{v}");
    expect_error(
        post("{\"userName\":42}", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    )
    .await;
    expect_error(
        post("{\"userName\":\"a@b.io\",\"active\":\"perhaps\"}", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    )
    .await;
    expect_error(
        post("{\"userName\":\"a@b.io\",\"emails\":[{\"value\":\"nope\"}]}", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    )
    .await;
    expect_error(
        post(
            "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"userName\":\"a@b.io\"}",
            "application/json",
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    )
    .await;
    expect_error(
        post("{\"userName\":\"a@b.io\"}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    )
    .await;
    expect_error(
        post("userName=a@b.io", "application/x-www-form-urlencoded").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    )
    .await;
    // Deeply nested JSON is refused by the parser, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = app.req(Method::POST, "/Users").header("Content-Type", "application/json").body(deep).send().await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, Some("invalidSyntax")).await;
    // Oversized, with and without a Content-Length.
    let big = format!("{{\"userName\":\"a@b.io\",\"displayName\":\"{}\"}}", "x".repeat(300 * 1024));
    let r = app
        .req(Method::POST, "/Users")
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, None).await;
    let (status, body) = chunked_post(&app, "/scim/v2/Users", big.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"status\":\"413\""), "{body}");
    // Over-long values.
    let long = json!({"userName": "a@b.io", "displayName": "y".repeat(5000)});
    expect_error(app.send_json(Method::POST, "/Users", &long).await, StatusCode::BAD_REQUEST, Some("invalidValue"))
        .await;
    // Nothing was created by any of these.
    assert_eq!(expect_json(app.get("/Users").await, StatusCode::OK).await["totalResults"], 0);
}

#[tokio::test]
async fn content_types_with_and_without_charset_are_accepted() {
    let app = TestApp::spawn().await;
    for (i, ct) in [
        "application/json",
        "application/scim+json",
        "application/scim+json; charset=utf-8",
        "application/json;charset=UTF-8",
    ]
    .iter()
    .enumerate()
    {
        let body = okta_user(&format!("ct{i}@atko.com"), "C", "T").to_string();
        let r = app
            .req(Method::POST, "/Users")
            .header("Content-Type", *ct)
            .header("Accept", "application/scim+json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_json(r, StatusCode::CREATED).await;
    }
    // GETs with a Content-Type and odd Accept headers still answer in SCIM JSON.
    let r = app
        .req(Method::GET, "/Users")
        .header("Content-Type", "application/scim+json; charset=utf-8")
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
}

#[tokio::test]
async fn unsupported_features_answer_with_scim_errors() {
    let app = TestApp::spawn().await;
    let empty = json!({});
    expect_error(app.send_json(Method::POST, "/.search", &empty).await, StatusCode::NOT_IMPLEMENTED, None).await;
    expect_error(app.send_json(Method::POST, "/Users/.search", &empty).await, StatusCode::NOT_IMPLEMENTED, None).await;
    expect_error(app.send_json(Method::POST, "/Bulk", &empty).await, StatusCode::NOT_IMPLEMENTED, None).await;
    expect_error(app.get("/Me").await, StatusCode::NOT_IMPLEMENTED, None).await;
    let v = expect_error(
        app.send_json(Method::POST, "/Groups", &json!({"displayName": "Admins"})).await,
        StatusCode::NOT_IMPLEMENTED,
        None,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("Group push is not supported"), "{v}");
    expect_error(app.send_json(Method::PATCH, "/Groups/abc", &empty).await, StatusCode::NOT_IMPLEMENTED, None).await;
    expect_error(app.get("/Groups/abc").await, StatusCode::NOT_FOUND, None).await;
    expect_error(app.get("/NoSuchThing").await, StatusCode::NOT_FOUND, None).await;
    expect_error(app.get("/Users/a/b").await, StatusCode::NOT_FOUND, None).await;
    for m in [Method::PUT, Method::PATCH, Method::DELETE] {
        expect_error(app.req(m.clone(), "/Users").send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED, None).await;
        expect_error(app.req(m, "/ServiceProviderConfig").send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED, None)
            .await;
    }
    expect_error(app.req(Method::POST, "/Users/abc").send().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED, None).await;
}

#[tokio::test]
async fn bad_list_parameters_are_400s_never_unfiltered_lists() {
    let app = TestApp::spawn().await;
    app.create_user(&okta_user("listed@atko.com", "L", "U")).await;
    for f in [
        "userName eq",
        "userName equals \"x\"",
        "nickName eq \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\" junk",
        "name eq \"x\"",
    ] {
        let r = app.req(Method::GET, "/Users").query(&[("filter", f)]).send().await.unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, Some("invalidFilter")).await;
    }
    expect_error(app.get("/Users?count=ten").await, StatusCode::BAD_REQUEST, Some("invalidValue")).await;
    expect_error(app.get("/Users?startIndex=x").await, StatusCode::BAD_REQUEST, Some("invalidValue")).await;
    expect_error(app.get("/Users?cursor=&startIndex=1").await, StatusCode::BAD_REQUEST, Some("invalidValue")).await;
    expect_error(app.get("/Users?cursor=bm90LWEtY3Vyc29y").await, StatusCode::BAD_REQUEST, Some("invalidCursor")).await;
    // Unknown parameters are ignored.
    expect_json(app.get("/Users?sortBy=userName&foo=bar").await, StatusCode::OK).await;
}

/// POSTs a body with `Transfer-Encoding: chunked` (no Content-Length) over a raw connection.
async fn chunked_post(app: &TestApp, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.origin.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(16 * 1024) {
        // The server may answer 413 and close before the whole body is sent.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}
