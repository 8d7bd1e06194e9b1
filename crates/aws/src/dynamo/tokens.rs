//! `TokenStore`: SCIM token items and the tenant's token pointer, rotated in one transaction.

use super::items::{number_attr, read_token, read_token_hash, string_attr, token_item, token_pointer_item, ttl_attr};
use super::keys::{primary_key, tenant_pk, token_pk, SCIM_TOKEN_SK};
use super::transaction::{Condition, Transaction};
use super::DynamoStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{TokenSlots, TokenStore};
use butterfly_core::token::{TokenHash, TokenRecord};
use butterfly_core::{Error, Result};

fn token_key(hash: &TokenHash) -> super::items::AttributeMap {
    primary_key(token_pk(hash), SCIM_TOKEN_SK)
}

/// The condition that the tenant's token pointer still names exactly `slots`.
fn names_exactly(slots: &TokenSlots) -> Condition {
    let c = match &slots.previous {
        Some(p) => Condition::new("#h = :cur AND previous = :prev").value(":prev", string_attr(p.to_hex())),
        None => Condition::new("#h = :cur AND attribute_not_exists(previous)"),
    };
    c.value(":cur", string_attr(slots.current.to_hex())).name("#h", "hash")
}

fn token_exists() -> Error {
    Error::Conflict("a token with this hash exists".into())
}

fn slots_changed() -> Error {
    Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into())
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        match self.get_item(token_key(hash)).await? {
            Some(it) => Ok(Some(read_token(*hash, &it)?)),
            None => Ok(None),
        }
    }

    async fn token_slots(&self, tenant: &TenantId) -> Result<Option<TokenSlots>> {
        let Some(ptr) = self.get_item(primary_key(tenant_pk(tenant), SCIM_TOKEN_SK)).await? else { return Ok(None) };
        let previous = if ptr.contains_key("previous") { Some(read_token_hash(&ptr, "previous")?) } else { None };
        Ok(Some(TokenSlots { current: read_token_hash(&ptr, "hash")?, previous }))
    }

    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        tx.put(token_item(new), Condition::absent(), token_exists())?;
        let pointer = token_pointer_item(&new.tenant, &new.hash, None);
        match expected {
            None => {
                tx.put(pointer, Condition::absent(), Error::Conflict("the tenant already has a SCIM token".into()))?
            }
            Some(slots) => {
                tx.put(pointer, names_exactly(slots), slots_changed())?;
                // Every live token of the tenant stops working in this write.
                tx.delete(token_key(&slots.current), Condition::none(), token_exists())?;
                if let Some(p) = &slots.previous {
                    tx.delete(token_key(p), Condition::none(), token_exists())?;
                }
            }
        }
        self.commit(tx).await
    }

    async fn install_token_with_overlap(
        &self,
        new: &TokenRecord,
        expected: &TokenSlots,
        old_expires: Timestamp,
    ) -> Result<()> {
        let old = &expected.current;
        let deadline = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(token_key(old)))
            .update_expression("SET token_expires = :e, expires_at = :ttl")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(token_expires) OR token_expires > :e)",
            )
            .expression_attribute_values(":e", number_attr(old_expires.millis()))
            .expression_attribute_values(":ttl", ttl_attr(old_expires))
            .build()
            .or_store_error()?;
        let mut tx = Transaction::new(&self.table);
        tx.put(token_item(new), Condition::absent(), token_exists())?;
        tx.put(token_pointer_item(&new.tenant, &new.hash, Some(old)), names_exactly(expected), slots_changed())?;
        tx.push(TransactWriteItem::builder().update(deadline).build(), slots_changed());
        // The token the current one overlapped stops working now: two live tokens at most.
        if let Some(p) = &expected.previous {
            tx.delete(token_key(p), Condition::none(), slots_changed())?;
        }
        self.commit(tx).await
    }

    async fn retire_previous(&self, tenant: &TenantId, current: &TokenHash, previous: &TokenHash) -> Result<()> {
        let forget = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(primary_key(tenant_pk(tenant), SCIM_TOKEN_SK)))
            .update_expression("REMOVE previous")
            .condition_expression("#h = :cur AND previous = :prev")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":cur", string_attr(current.to_hex()))
            .expression_attribute_values(":prev", string_attr(previous.to_hex()))
            .build()
            .or_store_error()?;
        let mut tx = Transaction::new(&self.table);
        tx.push(TransactWriteItem::builder().update(forget).build(), slots_changed());
        tx.delete(token_key(previous), Condition::none(), slots_changed())?;
        match self.commit(tx).await {
            // Retired already, or the pointer moved on (a rotation removed it): nothing to do.
            Ok(()) | Err(Error::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn record_token_use(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        // Not if it was rotated away meanwhile, or a newer use is already recorded.
        self.set_time_if_newer(token_key(hash), "last_used", at).await
    }
}
