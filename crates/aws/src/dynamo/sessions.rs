//! `SessionStore`: session items and their index partitions (by user, provider session and
//! issuer), created in one transaction and deleted through any index.

use super::items::{
    read_body, read_number, read_string, session_index_keys, session_items, string_attr, AttributeMap,
    SESSION_INDEX_LINKS,
};
use super::keys::{issuer_sessions_pk, primary_key, session_pk, sid_sessions_pk, user_sessions_pk, SESSION_SK};
use super::transaction::{Condition, Transaction};
use super::DynamoStore;
use crate::errors::unless_condition_failed;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use butterfly_core::clock::Timestamp;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::{SessionStore, UserStore};
use butterfly_core::sso::Session;
use butterfly_core::token::TokenHash;
use butterfly_core::user::User;
use butterfly_core::{Error, Result};

fn session_key(hash: &TokenHash) -> AttributeMap {
    primary_key(session_pk(hash), SESSION_SK)
}

impl DynamoStore {
    /// Deletes the sessions listed under an index partition (strongly consistent query), with
    /// their other index items.
    async fn delete_indexed_sessions(&self, index_pk: String) -> Result<u32> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", string_attr(index_pk.clone()))
            .consistent_read(true);
        let listed = self.query_all(query).await?;
        let mut keys = Vec::new();
        for it in &listed {
            let hex = read_string(it, "sk")?;
            let hash = TokenHash::from_hex(hex).ok_or_else(|| Error::store("bad session index"))?;
            keys.push(session_key(&hash));
            for other in SESSION_INDEX_LINKS {
                if let Ok(pk) = read_string(it, other) {
                    keys.push(primary_key(pk.to_string(), hex));
                }
            }
            keys.push(primary_key(index_pk.clone(), hex));
        }
        self.batch_delete(keys).await?;
        Ok(listed.len() as u32)
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let exists = || Error::Conflict("a session with this id exists".into());
        let (main, index) = session_items(session)?;
        let mut tx = Transaction::new(&self.table);
        tx.put(main, Condition::absent(), exists())?;
        for it in index {
            tx.put(it, Condition::none(), exists())?;
        }
        self.commit(tx).await
    }

    async fn session_with_user(&self, hash: &TokenHash) -> Result<Option<(Session, Option<User>)>> {
        let Some(it) = self.get_item(session_key(hash)).await? else { return Ok(None) };
        let mut session: Session = read_body(&it)?;
        if let Some(t) = read_number(&it, "last_seen")? {
            session.last_seen = session.last_seen.max(Timestamp(t));
        }
        let user = self.get_user(&session.tenant, &session.user).await?;
        Ok(Some((session, user)))
    }

    async fn touch_session(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        // Not if it ended meanwhile, or a later use is recorded.
        self.set_time_if_newer(session_key(hash), "last_seen", at).await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(session_key(hash)))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = unless_condition_failed("DeleteItem", out)?.and_then(|o| o.attributes).filter(|a| !a.is_empty());
        let Some(old) = old else { return Ok(false) };
        let session: Session = read_body(&old)?;
        self.batch_delete(session_index_keys(&session)).await?;
        Ok(true)
    }

    async fn delete_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        self.delete_indexed_sessions(user_sessions_pk(tenant, user)).await
    }

    async fn delete_sid_sessions(&self, issuer: &str, sid: &str) -> Result<u32> {
        self.delete_indexed_sessions(sid_sessions_pk(issuer, sid)).await
    }

    async fn delete_issuer_sessions(&self, tenant: &TenantId, issuer: &str) -> Result<u32> {
        self.delete_indexed_sessions(issuer_sessions_pk(tenant, issuer)).await
    }
}
