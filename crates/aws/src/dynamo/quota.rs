//! `QuotaStore`: shared request counters, one conditional `ADD` per lease.

use super::items::{number_attr, ttl_attr};
use super::keys::quota_key;
use super::DynamoStore;
use crate::errors::unless_condition_failed;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::ports::QuotaStore;
use butterfly_core::Result;

#[async_trait]
impl QuotaStore for DynamoStore {
    async fn take_quota(
        &self,
        key: &str,
        window_start: Timestamp,
        window_secs: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32> {
        if want == 0 || want > limit {
            return Ok(0);
        }
        // One counter item per key and window, gone (TTL) a minute after the window ends.
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(quota_key(key, window_start.millis())))
            .update_expression("ADD n :want SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(n) OR n <= :max")
            .expression_attribute_values(":want", number_attr(want))
            .expression_attribute_values(":max", number_attr(limit - want))
            .expression_attribute_values(":ttl", ttl_attr(window_start.plus_secs(window_secs + 60)))
            .send()
            .await;
        Ok(if unless_condition_failed("UpdateItem", r)?.is_some() { want } else { 0 })
    }
}
