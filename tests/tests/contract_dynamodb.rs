//! The store contract on DynamoDB Local (AWS's own implementation), one table per check.
butterfly_tests::store_contract!(butterfly_tests::aws::dynamo_fixture);

/// Every item that expires carries DynamoDB's TTL attribute (`expires_at`, epoch seconds), so
/// DynamoDB deletes it eventually: sign-in transactions, sessions and all their index items,
/// single-use keys, overlapped tokens, rate counters, audit events. A scan after a workload
/// that writes each kind checks them all.
#[tokio::test]
async fn every_expiring_item_carries_the_ttl_attribute() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use butterfly_core::audit::{AuditAction, AuditEvent};
    use butterfly_core::clock::{Clock, SystemClock};
    use butterfly_core::ids::{TenantId, UserId};
    use butterfly_core::ports::*;
    use butterfly_core::sso::{hash_secret, random_secret, Issuer, LoginTransaction, ReturnPath, Session};
    use butterfly_core::token::{ScimToken, Secret, TokenRecord};

    let (store, _) = butterfly_tests::aws::dynamo_store("ttl").await;
    let now = SystemClock.now();
    let t = TenantId::generate();
    let u = UserId::generate();
    let token = |_: u8| {
        let s = ScimToken::generate_for(&t).unwrap();
        TokenRecord {
            hash: s.hash(),
            tenant: t.clone(),
            display_prefix: s.display_prefix(),
            created: now,
            last_used: None,
            expires: None,
            replaces: None,
        }
    };
    let (t1, t2) = (token(1), token(2));
    store.install_token(&t1, None).await.unwrap();
    let mut t2r = t2.clone();
    t2r.replaces = Some(t1.hash);
    store
        .install_token_with_overlap(&t2r, &TokenSlots { current: t1.hash, previous: None }, now.plus_secs(3600))
        .await
        .unwrap();
    store
        .put_login(&LoginTransaction {
            purpose: Default::default(),
            tester: None,
            state_hash: hash_secret("s"),
            binding_hash: hash_secret("b"),
            tenant: t.clone(),
            issuer: Issuer::parse("https://a.okta.example", false).unwrap(),
            client_id: "app".into(),
            redirect_uri: "https://x/sso/callback".into(),
            pkce_verifier: Secret::new("v"),
            nonce: Secret::new("n"),
            return_to: ReturnPath::default(),
            created: now,
            expires: now.plus_secs(600),
        })
        .await
        .unwrap();
    store
        .create_session(&Session {
            hash: hash_secret(random_secret().unwrap().expose()),
            tenant: t.clone(),
            user: u,
            issuer: "https://a.okta.example".into(),
            subject: "00u".into(),
            sid: Some("sid-1".into()),
            id_token: None,
            created: now,
            last_seen: now,
            expires: now.plus_secs(3600),
            confirmed: true,
            idle_secs: None,
        })
        .await
        .unwrap();
    store.claim_once("bcl:https://a.okta.example", "jti-1", now.plus_secs(600)).await.unwrap();
    store.take_quota("scim:t", now, 60, 5, 100).await.unwrap();
    store.record_audit(&AuditEvent::new(&t, now, AuditAction::SignIn, "user:x")).await.unwrap();

    let cfg = butterfly_tests::aws::local_config(&butterfly_tests::aws::dynamodb_endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&cfg);
    let items = client.scan().table_name(store.table()).send().await.unwrap().items.unwrap_or_default();
    let s = |it: &std::collections::HashMap<String, AttributeValue>, k: &str| {
        it.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
    };
    let mut kinds = std::collections::BTreeSet::new();
    for it in &items {
        let (pk, sk) = (s(it, "pk"), s(it, "sk"));
        let expiring = pk.starts_with("LOGIN#")
            || pk.starts_with("SESSION#")
            || pk.starts_with("SID#")
            || pk.starts_with("ONCE#")
            || pk.starts_with("QUOTA#")
            || pk.ends_with("#SESSIONS")
            || pk.contains("#AUDIT")
            || (sk == "SCIMTOKEN" && pk == format!("SCIMTOKEN#{}", t1.hash.to_hex()));
        if expiring {
            let ttl = it.get("expires_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
            assert!(ttl.is_some_and(|t| t > now.millis() / 1000), "{pk} / {sk} has no TTL: {it:?}");
            kinds.insert(pk.split('#').next().unwrap_or("").to_string());
        }
    }
    for k in ["LOGIN", "SESSION", "SID", "ONCE", "QUOTA", "SCIMTOKEN", "TENANT"] {
        assert!(kinds.contains(k), "no {k} item seen: {kinds:?}");
    }
}

/// Using a setup link is four DynamoDB requests: the conditional use, the owner's claim read,
/// the owner's write (with its audit event), the session.
#[tokio::test]
async fn using_a_setup_link_is_four_dynamodb_requests() {
    use butterfly_core::clock::SystemClock;
    use butterfly_core::setup_link::SetupLinkService;
    use std::sync::Arc;
    let (store, counter) = butterfly_tests::aws::dynamo_store("setup").await;
    let t = butterfly_tests::contract::tenant("Setup Ops", &[]);
    butterfly_core::ports::TenantStore::create_tenant(&store, &t).await.unwrap();
    let service = SetupLinkService::new(Arc::new(store), Arc::new(SystemClock), 3600);
    let owner = butterfly_core::email::UserName::parse("owner@ops.example").unwrap();
    let issued = service.issue(&t.id, Some(&owner)).await.unwrap();
    counter.take();
    service.use_link(issued.link.secret().expose()).await.unwrap();
    assert_eq!(counter.take(), ["UpdateItem", "GetItem", "TransactWriteItems", "TransactWriteItems"]);
    assert!(service.use_link(issued.link.secret().expose()).await.is_err());
    assert_eq!(counter.take(), ["UpdateItem"], "a refused use is one request");
}
