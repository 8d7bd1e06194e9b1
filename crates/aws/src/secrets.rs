//! Secrets Manager adapter for per-tenant OIDC client secrets, with a short in-process cache.

use crate::errors::classify;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::SecretStore;
use butterfly_core::scim::cursor::CursorKey;
use butterfly_core::token::Secret;
use butterfly_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read secret is reused before Secrets Manager is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    /// Secret names are `{prefix}/tenants/{tenant}/oidc-client-secret`.
    prefix: Arc<str>,
    cache: Arc<Mutex<HashMap<String, (Instant, Secret)>>>,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Reads the paging-cursor key from the secret `id` (the stack's `CursorKeySecret`).
pub async fn read_cursor_key(client: &Client, id: &str) -> std::result::Result<CursorKey, String> {
    Ok(CursorKey::derive(&read_server_secret(client, id).await?))
}

/// The deployment's server secret (its string value), from which the cursor and CSRF keys are
/// derived.
pub async fn read_server_secret(client: &Client, id: &str) -> std::result::Result<String, String> {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    let out = client.get_secret_value().secret_id(id).send().await.map_err(|e| match &e {
        // One line an operator can act on: the service's code and message, or why it was not reached.
        aws_sdk_secretsmanager::error::SdkError::ServiceError(se) => {
            format!("{}: {}", se.err().code().unwrap_or("error"), se.err().message().unwrap_or(""))
        }
        aws_sdk_secretsmanager::error::SdkError::TimeoutError(_) => "Secrets Manager did not answer in time".into(),
        aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_) => "Secrets Manager could not be reached".into(),
        _ => "Secrets Manager sent an unreadable answer".into(),
    })?;
    out.secret_string.ok_or_else(|| "the secret has no string value".to_string())
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: impl Into<Arc<str>>) -> Self {
        SecretsManagerStore { client, prefix: prefix.into(), cache: Arc::default() }
    }

    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}/tenants/{tenant}/oidc-client-secret", self.prefix.trim_end_matches('/'))
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let cache = self.cache.lock().ok()?;
        cache.get(name).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, s)| s.clone())
    }

    fn remember(&self, name: String, s: Secret) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name, (Instant::now(), s));
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put_client_secret(&self, tenant: &TenantId, secret: &Secret) -> Result<()> {
        let name = self.secret_name(tenant);
        let put = self.client.put_secret_value().secret_id(&name).secret_string(secret.expose()).send().await;
        match put {
            Ok(_) => {}
            Err(e) => {
                let not_found = e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception());
                if !not_found {
                    return Err(classify("PutSecretValue", e));
                }
                self.client
                    .create_secret()
                    .name(&name)
                    .description(format!("Butterfly: OIDC client secret of tenant {tenant}"))
                    .secret_string(secret.expose())
                    .send()
                    .await
                    .map_err(|e| classify("CreateSecret", e))?;
            }
        }
        self.remember(name, secret.clone());
        Ok(())
    }

    async fn client_secret(&self, tenant: &TenantId) -> Result<Option<Secret>> {
        let name = self.secret_name(tenant);
        if let Some(s) = self.cached(&name) {
            return Ok(Some(s));
        }
        match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => {
                let s = out
                    .secret_string
                    .map(Secret::new)
                    .ok_or_else(|| Error::store(format!("{name} has no string value")))?;
                self.remember(name, s.clone());
                Ok(Some(s))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(classify("GetSecretValue", e)),
        }
    }
}
