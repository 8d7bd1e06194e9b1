//! `TokenStore`: token records and the tenant's token pointer, rotated in one write.

use crate::codec::{decode_slots, encode_slots, read_json, to_json};
use crate::keys::{TENANT_TOKEN, TOKENS};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{TokenSlots, TokenStore};
use butterfly_core::token::{TokenHash, TokenRecord};
use butterfly_core::{Error, Result};
use redb::{ReadableTable, Table};

/// The tenant's token slots as stored.
fn stored_slots(
    ptr: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: &TenantId,
) -> Result<Option<TokenSlots>> {
    Ok(ptr.get(tenant.as_str()).or_store_error()?.and_then(|v| decode_slots(v.value())))
}

fn put_token(tokens: &mut Table<'_, &'static [u8], &'static [u8]>, record: &TokenRecord) -> Result<()> {
    tokens.insert(record.hash.as_bytes().as_slice(), to_json(record)?.as_slice()).or_store_error()?;
    Ok(())
}

fn put_slots(ptr: &mut Table<'_, &'static str, &'static [u8]>, tenant: &TenantId, slots: &TokenSlots) -> Result<()> {
    ptr.insert(tenant.as_str(), encode_slots(slots).as_slice()).or_store_error()?;
    Ok(())
}

fn remove_token(tokens: &mut Table<'_, &'static [u8], &'static [u8]>, hash: &TokenHash) -> Result<()> {
    tokens.remove(hash.as_bytes().as_slice()).or_store_error()?;
    Ok(())
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let hash = *hash;
        self.read(move |tx| read_json(&tx.open_table(TOKENS).or_store_error()?, hash.as_bytes().as_slice())).await
    }

    async fn token_slots(&self, tenant: &TenantId) -> Result<Option<TokenSlots>> {
        let tenant = tenant.clone();
        self.read(move |tx| stored_slots(&tx.open_table(TENANT_TOKEN).or_store_error()?, &tenant)).await
    }

    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()> {
        let new = new.clone();
        let expected = expected.copied();
        self.write(move |tx| {
            let mut ptr = tx.open_table(TENANT_TOKEN).or_store_error()?;
            let mut tokens = tx.open_table(TOKENS).or_store_error()?;
            match (stored_slots(&ptr, &new.tenant)?, expected) {
                (None, None) => {}
                (Some(cur), Some(exp)) if cur == exp => {
                    // Every live token of the tenant stops working in this write.
                    remove_token(&mut tokens, &cur.current)?;
                    if let Some(p) = cur.previous {
                        remove_token(&mut tokens, &p)?;
                    }
                }
                (Some(_), None) => return Err(Error::Conflict("the tenant already has a SCIM token".into())),
                _ => return Err(Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into())),
            }
            put_token(&mut tokens, &new)?;
            put_slots(&mut ptr, &new.tenant, &TokenSlots { current: new.hash, previous: None })
        })
        .await
    }

    async fn install_token_with_overlap(
        &self,
        new: &TokenRecord,
        expected: &TokenSlots,
        old_expires: Timestamp,
    ) -> Result<()> {
        let (new, expected) = (new.clone(), *expected);
        self.write(move |tx| {
            let mut ptr = tx.open_table(TENANT_TOKEN).or_store_error()?;
            let mut tokens = tx.open_table(TOKENS).or_store_error()?;
            if stored_slots(&ptr, &new.tenant)? != Some(expected) {
                return Err(Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into()));
            }
            let old = expected.current;
            let Some(mut old_rec) = read_json::<_, TokenRecord>(&tokens, old.as_bytes().as_slice())? else {
                return Err(Error::Conflict("the current SCIM token is gone; retry".into()));
            };
            old_rec.expires = Some(old_rec.expires.map_or(old_expires, |e| e.min(old_expires)));
            if let Some(p) = expected.previous {
                remove_token(&mut tokens, &p)?;
            }
            put_token(&mut tokens, &old_rec)?;
            put_token(&mut tokens, &new)?;
            put_slots(&mut ptr, &new.tenant, &TokenSlots { current: new.hash, previous: Some(old) })
        })
        .await
    }

    async fn retire_previous(&self, tenant: &TenantId, current: &TokenHash, previous: &TokenHash) -> Result<()> {
        let (tenant, current, previous) = (tenant.clone(), *current, *previous);
        self.write(move |tx| {
            let mut ptr = tx.open_table(TENANT_TOKEN).or_store_error()?;
            let mut tokens = tx.open_table(TOKENS).or_store_error()?;
            if stored_slots(&ptr, &tenant)? == Some(TokenSlots { current, previous: Some(previous) }) {
                remove_token(&mut tokens, &previous)?;
                put_slots(&mut ptr, &tenant, &TokenSlots { current, previous: None })?;
            }
            Ok(())
        })
        .await
    }

    async fn record_token_use(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let hash = *hash;
        self.write(move |tx| {
            let mut tokens = tx.open_table(TOKENS).or_store_error()?;
            // A token rotated away meanwhile stays gone.
            if let Some(mut rec) = read_json::<_, TokenRecord>(&tokens, hash.as_bytes().as_slice())? {
                if rec.last_used.is_none_or(|t| t < at) {
                    rec.last_used = Some(at);
                    put_token(&mut tokens, &rec)?;
                }
            }
            Ok(())
        })
        .await
    }
}
