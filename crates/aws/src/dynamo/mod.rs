//! The DynamoDB adapter: every store port over one table, following `docs/storage.md`.
//! Each port method on a request path is exactly one DynamoDB request.
//!
//! `keys` lays out the table, `items` encodes and decodes records, `transaction` builds the
//! atomic writes; each port is implemented in its own module.

mod audit;
mod items;
mod keys;
mod logins;
mod once;
mod quota;
mod sessions;
mod setup_links;
mod tenants;
mod tokens;
mod transaction;
mod users;

use crate::errors::{classify, unless_condition_failed};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use butterfly_core::clock::{Clock, SystemClock, Timestamp};
use butterfly_core::error::StoreResultExt;
use butterfly_core::{Error, Result};
use items::{number_attr, AttributeMap};
use keys::GSI1;
use std::sync::Arc;
use std::time::Duration;

pub use butterfly_core::user::LAST_SUPER_ADMIN;

/// `BatchGetItem` / `BatchWriteItem` may leave keys unprocessed under load; they are asked for
/// again this often.
const BATCH_ATTEMPTS: u32 = 4;

/// The DynamoDB store. Cheap to clone; build it once per Lambda instance.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table as `template.yaml` declares it (for local and test setups; in AWS the
    /// stack creates it) and turns on TTL.
    pub async fn create_table(&self) -> Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let ks = |name: &str, kt: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kt).build();
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(ks("gsi1pk", KeyType::Hash).or_store_error()?)
            .key_schema(ks("gsi1sk", KeyType::Range).or_store_error()?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .or_store_error()?;
        self.client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").or_store_error()?)
            .attribute_definitions(attr("sk").or_store_error()?)
            .attribute_definitions(attr("gsi1pk").or_store_error()?)
            .attribute_definitions(attr("gsi1sk").or_store_error()?)
            .key_schema(ks("pk", KeyType::Hash).or_store_error()?)
            .key_schema(ks("sk", KeyType::Range).or_store_error()?)
            .global_secondary_indexes(gsi)
            .send()
            .await
            .map_err(|e| classify("CreateTable", e))?;
        self.client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .or_store_error()?,
            )
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", e))?;
        Ok(())
    }

    /// Opens a TLS connection to DynamoDB ahead of the first request (Lambda init).
    /// A cheap read of a key that never exists; failures are only logged.
    pub async fn warm_up(&self) {
        let r = self.client.get_item().table_name(self.table.as_ref()).set_key(Some(keys::warm_up_key())).send().await;
        if let Err(e) = r {
            tracing::warn!(error = %classify("GetItem", e), "DynamoDB warm-up request failed");
        }
    }

    /// One strongly consistent `GetItem`.
    async fn get_item(&self, key: AttributeMap) -> Result<Option<AttributeMap>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item)
    }

    /// One unconditional `PutItem`.
    async fn put_item(&self, item: AttributeMap) -> Result<()> {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    /// One `UpdateItem` that records the time `at` in `attribute` of an existing item, unless a
    /// later time is recorded there already (or the item is gone).
    async fn set_time_if_newer(&self, key: AttributeMap, attribute: &'static str, at: Timestamp) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key))
            .update_expression("SET #a = :t")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#a) OR #a < :t)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":t", number_attr(at.millis()))
            .send()
            .await;
        unless_condition_failed("UpdateItem", r)?;
        Ok(())
    }

    /// Every item a query finds, page after page.
    async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<AttributeMap>> {
        let mut out = Vec::new();
        let mut start: Option<AttributeMap> = None;
        loop {
            let r = query.clone().set_exclusive_start_key(start).send().await.map_err(|e| classify("Query", e))?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn now() -> Timestamp {
        SystemClock.now()
    }

    /// Deletes items in batches of 25, asking again for unprocessed ones.
    async fn batch_delete(&self, keys: Vec<AttributeMap>) -> Result<()> {
        for chunk in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .or_store_error()
                })
                .collect::<Result<_>>()?;
            for attempt in 1..=BATCH_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.as_ref(), requests.clone())
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", e))?;
                match out.unprocessed_items.and_then(|mut u| u.remove(self.table.as_ref())) {
                    Some(rest) if !rest.is_empty() && attempt < BATCH_ATTEMPTS => {
                        requests = rest;
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    }
                    Some(rest) if !rest.is_empty() => {
                        return Err(Error::Unavailable {
                            message: "DynamoDB left deletes unprocessed".into(),
                            retry_after_secs: 1,
                        })
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }
}
