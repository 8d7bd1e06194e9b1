//! OIDC client secrets: the embedded store and Secrets Manager (on a moto server) behave alike.

use butterfly_aws::SecretsManagerStore;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::SecretStore;
use butterfly_core::token::Secret;
use butterfly_tests::aws::{local_config, secretsmanager_endpoint};

async fn contract(store: &dyn SecretStore, fresh_reader: &dyn SecretStore) {
    let t = TenantId::generate();
    assert_eq!(store.client_secret(&t).await.unwrap(), None);
    store.put_client_secret(&t, &Secret::new("first-secret")).await.unwrap();
    assert_eq!(store.client_secret(&t).await.unwrap().map(|s| s.expose().to_string()), Some("first-secret".into()));
    // A new version replaces the old one, for this instance and for a fresh one.
    store.put_client_secret(&t, &Secret::new("second-secret")).await.unwrap();
    assert_eq!(store.client_secret(&t).await.unwrap().map(|s| s.expose().to_string()), Some("second-secret".into()));
    assert_eq!(
        fresh_reader.client_secret(&t).await.unwrap().map(|s| s.expose().to_string()),
        Some("second-secret".into())
    );
    // Tenants do not see each other's secrets.
    assert_eq!(store.client_secret(&TenantId::generate()).await.unwrap(), None);
}

#[tokio::test]
async fn embedded_secret_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = butterfly_embedded::EmbeddedStore::open(dir.path()).unwrap();
    contract(&store, &store.clone()).await;
}

#[tokio::test]
async fn secrets_manager_on_moto() {
    let cfg = local_config(&secretsmanager_endpoint()).await;
    let prefix = format!("butterfly/test-{}", std::process::id());
    let store = SecretsManagerStore::new(butterfly_aws::secretsmanager_client(&cfg), prefix.clone());
    let fresh = SecretsManagerStore::new(butterfly_aws::secretsmanager_client(&cfg), prefix.clone());
    contract(&store, &fresh).await;
    // Stored under the documented name, with versions (AWSPREVIOUS keeps the old value).
    let t = TenantId::generate();
    store.put_client_secret(&t, &Secret::new("v1")).await.unwrap();
    store.put_client_secret(&t, &Secret::new("v2")).await.unwrap();
    let sm = butterfly_aws::secretsmanager_client(&cfg);
    let name = format!("{prefix}/tenants/{t}/oidc-client-secret");
    let prev = sm.get_secret_value().secret_id(&name).version_stage("AWSPREVIOUS").send().await.unwrap();
    assert_eq!(prev.secret_string(), Some("v1"));
    // The adapter never prints a secret.
    let dbg = format!("{store:?} {:?}", store.client_secret(&t).await.unwrap());
    assert!(!dbg.contains("v2"), "{dbg}");
}
