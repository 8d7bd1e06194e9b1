//! `OnceStore`: single-use keys, one conditional put each.

use super::items::{number_attr, ttl_attr};
use super::keys::once_key;
use super::DynamoStore;
use crate::errors::unless_condition_failed;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::ports::OnceStore;
use butterfly_core::Result;

#[async_trait]
impl OnceStore for DynamoStore {
    async fn claim_once(&self, scope: &str, key: &str, expires_at: Timestamp) -> Result<bool> {
        let mut it = once_key(scope, key);
        // TTL works in seconds; reads compare milliseconds.
        it.insert("expires_at".into(), ttl_attr(expires_at));
        it.insert("expires_ms".into(), number_attr(expires_at.millis()));
        let r = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(it))
            // Absent, or present but expired (DynamoDB deletes expired items only eventually).
            .condition_expression("attribute_not_exists(pk) OR expires_ms <= :now")
            .expression_attribute_values(":now", number_attr(Self::now().millis()))
            .send()
            .await;
        Ok(unless_condition_failed("PutItem", r)?.is_some())
    }
}
