//! `SetupLinkStore`: one item per tenant (`TENANT#<id>` / `SETUPLINK`) holding the owner and
//! the link's hash; a use is one conditional `UpdateItem` (of concurrent uses one wins).

use super::items::{number_attr, read_number, read_string, read_tenant_id, read_token_hash, string_attr, AttributeMap};
use super::keys::{primary_key, tenant_pk, SETUP_LINK_SK};
use super::DynamoStore;
use crate::errors::{classify, unless_condition_failed};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use butterfly_core::clock::Timestamp;
use butterfly_core::email::UserName;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::SetupLinkStore;
use butterfly_core::setup_link::SetupLinkRecord;
use butterfly_core::token::TokenHash;
use butterfly_core::{Error, Result};

fn link_key(tenant: &TenantId) -> AttributeMap {
    primary_key(tenant_pk(tenant), SETUP_LINK_SK)
}

fn link_item(r: &SetupLinkRecord) -> AttributeMap {
    let mut it = link_key(&r.tenant);
    it.insert("tenant".into(), string_attr(r.tenant.as_str()));
    it.insert("owner".into(), string_attr(r.owner.as_str()));
    it.insert("hash".into(), string_attr(r.hash.to_hex()));
    it.insert("created_ms".into(), number_attr(r.created.millis()));
    it.insert("expires_ms".into(), number_attr(r.expires.millis()));
    if let Some(u) = r.used {
        it.insert("used_ms".into(), number_attr(u.millis()));
    }
    it
}

fn read_link(it: &AttributeMap) -> Result<SetupLinkRecord> {
    let millis = |name: &str| -> Result<Timestamp> {
        read_number(it, name)?.map(Timestamp).ok_or_else(|| Error::store(format!("setup link without {name}")))
    };
    Ok(SetupLinkRecord {
        tenant: read_tenant_id(it, "tenant")?,
        owner: UserName::parse(read_string(it, "owner")?).map_err(Error::store)?,
        hash: read_token_hash(it, "hash")?,
        created: millis("created_ms")?,
        expires: millis("expires_ms")?,
        used: read_number(it, "used_ms")?.map(Timestamp),
    })
}

/// The attributes a request returned, if it returned an item.
fn returned(attributes: Option<AttributeMap>) -> Result<Option<SetupLinkRecord>> {
    attributes.filter(|a| !a.is_empty()).map(|a| read_link(&a)).transpose()
}

#[async_trait]
impl SetupLinkStore for DynamoStore {
    async fn put_setup_link(&self, link: &SetupLinkRecord) -> Result<Option<SetupLinkRecord>> {
        let out = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(link_item(link)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        returned(out.attributes)
    }

    async fn get_setup_link(&self, tenant: &TenantId) -> Result<Option<SetupLinkRecord>> {
        self.get_item(link_key(tenant)).await?.map(|it| read_link(&it)).transpose()
    }

    async fn use_setup_link(
        &self,
        tenant: &TenantId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<Option<SetupLinkRecord>> {
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(link_key(tenant)))
            .update_expression("SET used_ms = :at")
            // Concurrent uses serialise on this condition: exactly one sees the link unused.
            .condition_expression("#h = :h AND attribute_not_exists(used_ms) AND expires_ms > :at")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":h", string_attr(hash.to_hex()))
            .expression_attribute_values(":at", number_attr(at.millis()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match unless_condition_failed("UpdateItem", r)? {
            Some(out) => returned(out.attributes),
            None => Ok(None),
        }
    }
}
