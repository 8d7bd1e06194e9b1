//! `UserStore`: user items with their claims (each carrying a copy of the user) and the
//! tenant's counts, all moved in the user's transaction.

use super::audit::audit_put;
use super::items::{
    number_attr, read_number, read_string, read_token, read_user_of, string_attr, user_item, AttributeMap,
};
use super::keys::{
    primary_key, tenant_pk, tenant_users_gsi, token_pk, user_claim_key, user_pk, GSI1, SCIM_TOKEN_SK, USER_COUNT_SK,
    USER_SK,
};
use super::transaction::{super_admin_delta, Condition, Transaction};
use super::{DynamoStore, BATCH_ATTEMPTS};
use crate::errors::classify;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use butterfly_core::audit::AuditEvent;
use butterfly_core::claims::{ClaimDiff, UserClaim};
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::UserStore;
use butterfly_core::sso::Subject;
use butterfly_core::token::{invalid_scim_token, TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use std::time::Duration;

fn version_changed() -> Error {
    Error::PreconditionFailed("version changed".into())
}

impl DynamoStore {
    /// Replaces a user in one transaction: version condition, claim moves, the tenant's
    /// super_admin count (its decrement conditional with `keep_a_super_admin`), the audit event.
    async fn replace_user_in_tx(
        &self,
        previous: &User,
        next: &User,
        audit: Option<&AuditEvent>,
        keep_a_super_admin: bool,
    ) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        let same_version = Condition::new("version = :v").value(":v", number_attr(previous.version));
        tx.put(user_item(next)?, same_version, version_changed())?;
        let diff = ClaimDiff::between(Some(previous), Some(next));
        tx.move_user_claims(&diff, next, &version_changed())?;
        let delta = super_admin_delta(Some(previous), Some(next));
        if delta != 0 || keep_a_super_admin {
            tx.add_to_counts(&next.tenant, 0, delta, keep_a_super_admin)?;
        }
        audit_put(&mut tx, audit)?;
        self.commit(tx).await
    }

    /// The items of a user's creation: the user, its claims, the tenant's counts, the audit event.
    fn add_user_creation(&self, tx: &mut Transaction, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
        tx.put(user_item(user)?, Condition::absent(), Error::Conflict("a user with this id already exists".into()))?;
        tx.move_user_claims(&ClaimDiff::between(None, Some(user)), user, &version_changed())?;
        tx.add_to_counts(&user.tenant, 1, super_admin_delta(None, Some(user)), false)?;
        audit_put(tx, audit)
    }

    /// A token's record and one other item, in one strongly consistent `BatchGetItem`.
    async fn token_and_item(
        &self,
        hash: &TokenHash,
        other: AttributeMap,
    ) -> Result<(Option<TokenRecord>, Option<AttributeMap>)> {
        let tk = token_pk(hash);
        let other_pk = read_string(&other, "pk")?.to_string();
        let mut keys = vec![primary_key(tk.clone(), SCIM_TOKEN_SK), other];
        let mut found: Vec<AttributeMap> = Vec::new();
        for attempt in 1..=BATCH_ATTEMPTS {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(keys.clone()))
                .consistent_read(true)
                .build()
                .or_store_error()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(self.table.as_ref(), ka)
                .send()
                .await
                .map_err(|e| classify("BatchGetItem", e))?;
            if let Some(mut r) = out.responses {
                found.extend(r.remove(self.table.as_ref()).unwrap_or_default());
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(self.table.as_ref())) {
                Some(rest) if !rest.keys().is_empty() && attempt < BATCH_ATTEMPTS => {
                    keys = rest.keys().to_vec();
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Some(rest) if !rest.keys().is_empty() => {
                    return Err(Error::Unavailable {
                        message: "DynamoDB left keys unprocessed".into(),
                        retry_after_secs: 1,
                    })
                }
                _ => break,
            }
        }
        let pk_of = |it: &AttributeMap| read_string(it, "pk").map(str::to_string).unwrap_or_default();
        let token = match found.iter().find(|it| pk_of(it) == tk) {
            Some(it) => Some(read_token(*hash, it)?),
            None => None,
        };
        Ok((token, found.into_iter().find(|it| pk_of(it) == other_pk)))
    }

    /// The user a claim names, from the copy it carries (one consistent read).
    async fn user_holding(&self, claim: &UserClaim) -> Result<Option<User>> {
        match self.get_item(user_claim_key(claim)).await? {
            Some(it) => read_user_of(&it, claim.tenant()),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn resolve_token_and_get_user(
        &self,
        hash: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (token, user) = self.token_and_item(hash, primary_key(user_pk(id), USER_SK)).await?;
        let user = match (user, &token) {
            (Some(it), Some(t)) => read_user_of(&it, &t.tenant)?,
            _ => None,
        };
        Ok((token, user))
    }

    async fn resolve_token_and_find_user(
        &self,
        hash: &TokenHash,
        claim: &UserClaim,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (token, held) = self.token_and_item(hash, user_claim_key(claim)).await?;
        let user = match (held, &token) {
            (Some(it), Some(t)) if &t.tenant == claim.tenant() => read_user_of(&it, claim.tenant())?,
            _ => None,
        };
        Ok((token, user))
    }

    async fn create_user_checked(
        &self,
        user: &User,
        audit: Option<&AuditEvent>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        // First, so that a refused token is answered as such whatever else fails.
        let live = Condition::new(
            "attribute_exists(pk) AND tenant = :t AND (attribute_not_exists(token_expires) OR token_expires > :now)",
        )
        .value(":t", string_attr(user.tenant.as_str()))
        .value(":now", number_attr(now.millis()));
        tx.check(primary_key(token_pk(token), SCIM_TOKEN_SK), live, invalid_scim_token())?;
        self.add_user_creation(&mut tx, user, audit)?;
        self.commit(tx).await
    }

    async fn create_user_audited(&self, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        self.add_user_creation(&mut tx, user, audit)?;
        self.commit(tx).await
    }

    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        match self.get_item(primary_key(user_pk(id), USER_SK)).await? {
            Some(it) => read_user_of(&it, tenant),
            None => Ok(None),
        }
    }

    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>> {
        self.user_holding(&UserClaim::UserName { tenant: tenant.clone(), folded: folded.to_string() }).await
    }

    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>> {
        self.user_holding(&UserClaim::ExternalId { tenant: tenant.clone(), external_id: external_id.to_string() }).await
    }

    async fn find_user_by_subject(&self, tenant: &TenantId, subject: &Subject) -> Result<Option<User>> {
        self.user_holding(&UserClaim::Subject { tenant: tenant.clone(), subject: subject.clone() }).await
    }

    async fn replace_user_audited(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, false).await
    }

    async fn replace_user_guarded(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, true).await
    }

    async fn delete_user_audited(&self, previous: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        let same_version = Condition::new("version = :v").value(":v", number_attr(previous.version));
        tx.delete(primary_key(user_pk(&previous.id), USER_SK), same_version, version_changed())?;
        // A delete only releases claims.
        tx.move_user_claims(&ClaimDiff::between(Some(previous), None), previous, &version_changed())?;
        tx.add_to_counts(&previous.tenant, -1, super_admin_delta(Some(previous), None), false)?;
        audit_put(&mut tx, audit)?;
        self.commit(tx).await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<User>> {
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut to_skip = skip;
        let mut start: Option<AttributeMap> = None;
        while out.len() < limit {
            let want = (limit - out.len()) as u64 + to_skip;
            let mut q = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .expression_attribute_values(":p", string_attr(tenant_users_gsi(tenant)))
                .limit(want.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(a) => q
                    .key_condition_expression("gsi1pk = :p AND gsi1sk > :a")
                    .expression_attribute_values(":a", string_attr(a.to_string())),
                None => q.key_condition_expression("gsi1pk = :p"),
            };
            let r = q.send().await.map_err(|e| classify("Query", e))?;
            for it in r.items() {
                if to_skip > 0 {
                    to_skip -= 1;
                    continue;
                }
                if out.len() < limit {
                    if let Some(u) = read_user_of(it, tenant)? {
                        out.push(u);
                    }
                }
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn count_users(&self, tenant: &TenantId) -> Result<u64> {
        match self.get_item(primary_key(tenant_pk(tenant), USER_COUNT_SK)).await? {
            Some(it) => Ok(read_number(&it, "n")?.unwrap_or(0).max(0) as u64),
            None => Ok(0),
        }
    }
}
