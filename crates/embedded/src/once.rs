//! `OnceStore`: single-use keys with their expiry.

use crate::keys::{once_key, ONCE};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::clock::{Clock, SystemClock, Timestamp};
use butterfly_core::error::StoreResultExt;
use butterfly_core::ports::OnceStore;
use butterfly_core::Result;
use redb::ReadableTable;

#[async_trait]
impl OnceStore for EmbeddedStore {
    async fn claim_once(&self, scope: &str, key: &str, expires_at: Timestamp) -> Result<bool> {
        let k = once_key(scope, key);
        let now = SystemClock.now();
        self.write(move |tx| {
            let mut t = tx.open_table(ONCE).or_store_error()?;
            let live = t.get(k.as_str()).or_store_error()?.is_some_and(|v| v.value() > now.millis());
            if !live {
                t.insert(k.as_str(), expires_at.millis()).or_store_error()?;
            }
            Ok(!live)
        })
        .await
    }
}
