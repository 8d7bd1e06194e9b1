//! `SetupLinkStore`: one owner setup link per tenant, used once inside one write transaction.

use crate::codec::{from_json, to_json};
use crate::keys::SETUP_LINKS;
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::SetupLinkStore;
use butterfly_core::setup_link::SetupLinkRecord;
use butterfly_core::token::TokenHash;
use butterfly_core::Result;
use redb::ReadableTable;

#[async_trait]
impl SetupLinkStore for EmbeddedStore {
    async fn put_setup_link(&self, link: &SetupLinkRecord) -> Result<Option<SetupLinkRecord>> {
        let link = link.clone();
        self.write(move |tx| {
            let mut t = tx.open_table(SETUP_LINKS).or_store_error()?;
            let old = t
                .insert(link.tenant.as_str(), to_json(&link)?.as_slice())
                .or_store_error()?
                .map(|v| v.value().to_vec());
            old.map(|b| from_json::<SetupLinkRecord>(&b)).transpose()
        })
        .await
    }

    async fn get_setup_link(&self, tenant: &TenantId) -> Result<Option<SetupLinkRecord>> {
        let tenant = tenant.clone();
        self.read(move |tx| {
            let t = tx.open_table(SETUP_LINKS).or_store_error()?;
            let found = t.get(tenant.as_str()).or_store_error()?.map(|v| v.value().to_vec());
            found.map(|b| from_json::<SetupLinkRecord>(&b)).transpose()
        })
        .await
    }

    async fn use_setup_link(
        &self,
        tenant: &TenantId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<Option<SetupLinkRecord>> {
        let (tenant, hash) = (tenant.clone(), *hash);
        self.write(move |tx| {
            let mut t = tx.open_table(SETUP_LINKS).or_store_error()?;
            let found = t.get(tenant.as_str()).or_store_error()?.map(|v| v.value().to_vec());
            let Some(record) = found.map(|b| from_json::<SetupLinkRecord>(&b)).transpose()? else { return Ok(None) };
            if !(record.hash.ct_eq(&hash) && record.is_usable(at)) {
                return Ok(None);
            }
            let used = SetupLinkRecord { used: Some(at), ..record.clone() };
            t.insert(tenant.as_str(), to_json(&used)?.as_slice()).or_store_error()?;
            Ok(Some(record))
        })
        .await
    }
}
