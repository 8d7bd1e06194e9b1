//! Attacks on the routing part of SCIM tokens (the tenant a token names, which lets a lookup or a
//! create reach the tenant's items in the same store round trip as the token). The routing part
//! is a claim: a token is accepted only if its hash is stored, live, and of the tenant it names.
//! Each attack must end as the plain 401 of an unknown token, with nothing of another tenant read
//! or written.

use butterfly_core::actor::Actor;
use butterfly_core::clock::SystemClock;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{Store, TokenStore, UserStore};
use butterfly_core::scim_tokens::{RotationMode, ScimTokenService};
use butterfly_core::token::{ScimToken, TokenRecord, SCIM_TOKEN_PREFIX};
use butterfly_tests::{expect_error, expect_json, okta_user, TestApp};
use reqwest::{Method, StatusCode};
use std::sync::Arc;

/// `token` with its routing part replaced by `tenant`'s, and a checksum that matches again (so
/// the forgery passes the format check and reaches the store).
fn reroute(token: &str, tenant: &TenantId) -> String {
    let other = ScimToken::generate_for(tenant).unwrap();
    let route = &other.secret().expose()[SCIM_TOKEN_PREFIX.len() + 43..other.secret().expose().len() - 8];
    let mut s = format!("{}{route}", &token[..SCIM_TOKEN_PREFIX.len() + 43]);
    s.push_str(&format!("{:08x}", crc32fast::hash(s.as_bytes())));
    assert!(ScimToken::parse(&s).is_some(), "the forgery is well-formed");
    s
}

/// A token of `tenant` with a fresh random secret: the routing part right, the secret unknown.
fn guessed(tenant: &TenantId) -> String {
    ScimToken::generate_for(tenant).unwrap().secret().expose().to_string()
}

/// Every SCIM request shape the routing part shortens, with `token`: each must be a 401 that
/// names nothing, and neither tenant may gain a user.
async fn refused_everywhere(app: &TestApp, token: &str, victim_user: &str, victim_id: &str) {
    let r = app
        .req_as(Method::GET, "/Users", token)
        .query(&[("filter", format!("userName eq \"{victim_user}\""))])
        .send()
        .await
        .unwrap();
    let e = expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    assert!(!e.to_string().contains(victim_user), "{e}");
    let r = app.req_as(Method::GET, &format!("/Users/{victim_id}"), token).send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    let r = app
        .req_as(Method::POST, "/Users", token)
        .header("Content-Type", "application/scim+json")
        .body(okta_user("intruder@atko.com", "In", "Truder").to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
    // A bad body is no way around it either.
    let r = app
        .req_as(Method::POST, "/Users", token)
        .header("Content-Type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, None).await;
}

/// Another tenant (the victim) with one user Okta provisioned with its own token: the tenant
/// and the user's id.
async fn victim_with_a_user(app: &TestApp) -> (TenantId, String) {
    let (victim, victim_token) = app.other_tenant().await;
    let r = app
        .req_as(Method::POST, "/Users", &victim_token)
        .header("Content-Type", "application/scim+json")
        .body(okta_user("victim@victim.example", "Vic", "Tim").to_string())
        .send()
        .await
        .unwrap();
    let id = expect_json(r, StatusCode::CREATED).await["id"].as_str().unwrap().to_string();
    (victim, id)
}

async fn user_names(app: &TestApp, tenant: &TenantId) -> Vec<String> {
    app.store.list_users(tenant, None, 0, 100).await.unwrap().into_iter().map(|u| u.user_name.to_string()).collect()
}

#[tokio::test]
async fn a_forged_or_guessed_routing_part_is_a_plain_401() {
    let app = TestApp::spawn().await;
    let (victim, victim_id) = victim_with_a_user(&app).await;
    // Tenant A's own token works (and has been used, so a create would take the one-write path).
    expect_json(app.get("/Users?count=1").await, StatusCode::OK).await;

    // A's valid secret with the victim's routing part: its hash is no token's.
    refused_everywhere(&app, &reroute(&app.token, &victim), "victim@victim.example", &victim_id).await;
    // The victim's routing part with a guessed secret.
    refused_everywhere(&app, &guessed(&victim), "victim@victim.example", &victim_id).await;
    assert_eq!(user_names(&app, &victim).await, vec!["victim@victim.example"]);
    assert!(user_names(&app, &app.tenant).await.is_empty());
}

#[tokio::test]
async fn a_token_whose_routing_part_names_another_tenant_than_its_record_is_refused() {
    // The check the routing part rests on: the record a hash finds must be of the tenant the token
    // names. Here tenant A's stored token names the victim (as a bug in issuance, or a record
    // written by hand, would make it): it must authenticate nobody.
    let app = TestApp::spawn().await;
    let (victim, victim_id) = victim_with_a_user(&app).await;

    let mismatched = ScimToken::generate_for(&victim).unwrap();
    let slots = app.store.token_slots(&app.tenant).await.unwrap().unwrap();
    let record = TokenRecord {
        hash: mismatched.hash(),
        tenant: app.tenant.clone(),
        display_prefix: mismatched.display_prefix(),
        created: butterfly_core::clock::Timestamp(0),
        last_used: None,
        expires: None,
        replaces: None,
    };
    app.store.install_token(&record, Some(&slots)).await.unwrap();
    let token = mismatched.secret().expose().to_string();
    refused_everywhere(&app, &token, "victim@victim.example", &victim_id).await;
    assert_eq!(user_names(&app, &victim).await, vec!["victim@victim.example"]);
    assert!(user_names(&app, &app.tenant).await.is_empty(), "nothing written as tenant A either");
}

#[tokio::test]
async fn a_retired_or_rotated_token_cannot_create_in_one_write() {
    // The one-write path needs quota held for the tenant: keep the minute (and its lease) from
    // turning among the counted requests.
    butterfly_tests::early_in_a_minute(10).await;
    let app = TestApp::spawn().await;
    let tokens = ScimTokenService::new(app.store.clone() as Arc<dyn Store>, Arc::new(SystemClock));
    let old = app.token.clone();
    // The old token is used (this instance now knows its bookkeeping is done: a create with it
    // would be one write, checked in that write).
    expect_json(app.req_as(Method::GET, "/Users?count=1", &old).send().await.unwrap(), StatusCode::OK).await;

    // Overlap rotation; the new token's first use retires the old one.
    let issued = tokens.rotate_token_as(&app.tenant, RotationMode::Overlap { secs: 3600 }, &Actor::Operator).await;
    let new = issued.unwrap().token.secret().expose().to_string();
    expect_json(app.req_as(Method::GET, "/Users?count=1", &new).send().await.unwrap(), StatusCode::OK).await;
    app.store.take();
    let create = |token: &str, name: &str| {
        app.req_as(Method::POST, "/Users", token)
            .header("Content-Type", "application/scim+json")
            .body(okta_user(name, "A", "B").to_string())
            .send()
    };
    expect_error(create(&old, "retired@atko.com").await.unwrap(), StatusCode::UNAUTHORIZED, None).await;
    let (_, log) = app.store.take();
    assert_eq!(log, vec!["create_user_checked"], "refused by the check inside the write");
    assert!(user_names(&app, &app.tenant).await.is_empty());

    // Immediate rotation: the token that was current stops at once, one-write path included.
    expect_json(create(&new, "current@atko.com").await.unwrap(), StatusCode::CREATED).await;
    let newest = tokens.rotate_token_as(&app.tenant, RotationMode::Immediate, &Actor::Operator).await.unwrap();
    app.store.take();
    expect_error(create(&new, "rotated@atko.com").await.unwrap(), StatusCode::UNAUTHORIZED, None).await;
    let (_, log) = app.store.take();
    assert_eq!(log, vec!["create_user_checked"]);
    // A refused token leaves the tenant's quota as it was and the hint is dropped: next time
    // the token is read first.
    expect_error(create(&new, "rotated@atko.com").await.unwrap(), StatusCode::UNAUTHORIZED, None).await;
    let (_, log) = app.store.take();
    assert_eq!(log, vec!["resolve_token"]);
    let newest = newest.token.secret().expose().to_string();
    expect_json(create(&newest, "newest@atko.com").await.unwrap(), StatusCode::CREATED).await;
    assert_eq!(user_names(&app, &app.tenant).await, vec!["current@atko.com", "newest@atko.com"]);
}
