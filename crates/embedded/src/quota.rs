//! `QuotaStore`: shared request counters per key and window.

use crate::keys::{quota_key, QUOTAS};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ports::QuotaStore;
use butterfly_core::Result;
use redb::ReadableTable;

#[async_trait]
impl QuotaStore for EmbeddedStore {
    async fn take_quota(
        &self,
        key: &str,
        window_start: Timestamp,
        _window_secs: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32> {
        let k = quota_key(key, window_start.millis());
        // A rate counter: a crash may lose its last second (the tenant's minute starts again),
        // so the request does not wait for an fsync.
        self.write_volatile(move |tx| {
            let mut t = tx.open_table(QUOTAS).or_store_error()?;
            let used = t.get(k.as_str()).or_store_error()?.map(|v| v.value()).unwrap_or(0);
            let granted = u64::from(want).min(u64::from(limit).saturating_sub(used));
            if granted > 0 {
                t.insert(k.as_str(), used + granted).or_store_error()?;
            }
            Ok(granted as u32)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rate counter does not wait for an fsync (a crash may lose its last second), and it
    /// still counts exactly.
    #[tokio::test]
    async fn quota_takes_are_volatile_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let (durable, volatile) = store.commit_counts();
        let start = Timestamp(60_000);
        assert_eq!(store.take_quota("scim:t", start, 60, 50, 120).await.unwrap(), 50);
        assert_eq!(store.take_quota("scim:t", start, 60, 50, 120).await.unwrap(), 50);
        assert_eq!(store.take_quota("scim:t", start, 60, 50, 120).await.unwrap(), 20);
        assert_eq!(store.commit_counts(), (durable, volatile + 3));
    }
}
