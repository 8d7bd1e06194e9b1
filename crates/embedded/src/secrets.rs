//! `SecretStore` of the local stack: OIDC client secrets in the (0600) data file.

use crate::keys::SECRETS;
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::SecretStore;
use butterfly_core::token::Secret;
use butterfly_core::Result;

#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn put_client_secret(&self, tenant: &TenantId, secret: &Secret) -> Result<()> {
        let (tenant, secret) = (tenant.clone(), secret.clone());
        self.write(move |tx| {
            tx.open_table(SECRETS).or_store_error()?.insert(tenant.as_str(), secret.expose()).or_store_error()?;
            Ok(())
        })
        .await
    }

    async fn client_secret(&self, tenant: &TenantId) -> Result<Option<Secret>> {
        let tenant = tenant.clone();
        self.read(move |tx| {
            let t = tx.open_table(SECRETS).or_store_error()?;
            Ok(t.get(tenant.as_str()).or_store_error()?.map(|v| Secret::new(v.value())))
        })
        .await
    }
}
