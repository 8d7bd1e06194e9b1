//! AWS emulators for the tests: DynamoDB Local and moto, started by `tests/run` on loopback
//! and found through `BUTTERFLY_DYNAMODB_ENDPOINT` / `BUTTERFLY_SECRETSMANAGER_ENDPOINT`.

use crate::contract::Fixture;
use aws_sdk_dynamodb::config::{Credentials, Region};
use butterfly_aws::{DynamoStore, RequestCounter};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn endpoint(var: &str, what: &str) -> String {
    let e = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: {what} runs from `bash tests/run`, which starts it on loopback"));
    assert!(e.starts_with("http://127.0.0.1:") || e.starts_with("http://localhost:"), "loopback only: {e}");
    e
}

/// SDK configuration for a local emulator: fixed region, dummy static credentials.
pub async fn local_config(endpoint_url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "butterfly-tests"))
        .endpoint_url(endpoint_url)
        .load()
        .await
}

pub fn dynamodb_endpoint() -> String {
    endpoint("BUTTERFLY_DYNAMODB_ENDPOINT", "DynamoDB Local")
}

pub fn secretsmanager_endpoint() -> String {
    endpoint("BUTTERFLY_SECRETSMANAGER_ENDPOINT", "the moto server")
}

/// A fresh table name for this process.
pub fn table_name(label: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("butterfly-{label}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A DynamoDB store on a new table of DynamoDB Local, with a request counter.
pub async fn dynamo_store(label: &str) -> (DynamoStore, RequestCounter) {
    let cfg = local_config(&dynamodb_endpoint()).await;
    let counter = RequestCounter::default();
    let client = butterfly_aws::dynamodb_client(&cfg, Some(counter.clone()));
    let store = DynamoStore::new(client, table_name(label));
    store.create_table().await.expect("create table on DynamoDB Local");
    counter.take();
    (store, counter)
}

pub async fn dynamo_fixture() -> Fixture {
    let (store, counter) = dynamo_store("contract").await;
    Fixture { store: Arc::new(store), guard: Box::new(counter) }
}

pub async fn embedded_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = butterfly_embedded::EmbeddedStore::open(dir.path()).expect("open");
    Fixture { store: Arc::new(store), guard: Box::new(dir) }
}

/// A fresh server secret in Secrets Manager (moto) for a function under test; returns its id.
pub async fn server_secret(label: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&local_config(&secretsmanager_endpoint()).await);
    let id = format!("butterfly/test/server-key-{label}-{}", uuid_like());
    sm.create_secret().name(&id).secret_string(format!("server secret for {id}")).send().await.expect("create secret");
    id
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{n}", std::process::id())
}
