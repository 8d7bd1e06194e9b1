//! Transactions (`TransactWriteItems`): the items of one atomic write, each with what its
//! failed condition means, and the claim moves of a [`ClaimDiff`].

use super::items::{number_attr, string_attr, tenant_claim_item, user_claim_item, AttributeMap};
use super::keys::{primary_key, tenant_claim_key, tenant_pk, user_claim_key, USER_COUNT_SK};
use super::DynamoStore;
use crate::errors::{tx_failure, TxFailure};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};
use butterfly_core::claims::{ClaimDiff, TenantClaim, UserClaim};
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::user::{User, LAST_SUPER_ADMIN};
use butterfly_core::{Error, Result};
use std::collections::HashMap;
use std::time::Duration;

/// A transaction that collides with another one on the same item is retried this often.
const TX_ATTEMPTS: u32 = 6;

/// The condition of one transaction item, with its placeholders.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    expression: Option<String>,
    values: Vec<(&'static str, AttributeValue)>,
    names: Vec<(&'static str, &'static str)>,
}

impl Condition {
    /// No condition: the item is written whatever is there.
    pub fn none() -> Self {
        Condition::default()
    }

    pub fn new(expression: impl Into<String>) -> Self {
        Condition { expression: Some(expression.into()), ..Condition::default() }
    }

    /// The item does not exist yet.
    pub fn absent() -> Self {
        Condition::new("attribute_not_exists(pk)")
    }

    /// A user claim names this user (`user` is a reserved word, hence `#u`).
    fn held_by_user(user: &User) -> Self {
        Condition::new("#u = :me").value(":me", string_attr(user.id.to_string())).name("#u", "user")
    }

    /// A tenant claim names this tenant.
    fn held_by_tenant(tenant: &TenantId) -> Self {
        Condition::new("tenant = :me").value(":me", string_attr(tenant.as_str()))
    }

    /// A tenant claim is free or names this tenant.
    fn free_or_held_by_tenant(tenant: &TenantId) -> Self {
        Condition::new("attribute_not_exists(pk) OR tenant = :me").value(":me", string_attr(tenant.as_str()))
    }

    pub fn value(mut self, placeholder: &'static str, v: AttributeValue) -> Self {
        self.values.push((placeholder, v));
        self
    }

    pub fn name(mut self, placeholder: &'static str, attribute: &'static str) -> Self {
        self.names.push((placeholder, attribute));
        self
    }

    /// The placeholder values, `None` when there are none (DynamoDB refuses an empty map).
    fn value_map(&self) -> Option<HashMap<String, AttributeValue>> {
        let map: HashMap<_, _> = self.values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        (!map.is_empty()).then_some(map)
    }

    /// The placeholder names, `None` when there are none.
    fn name_map(&self) -> Option<HashMap<String, String>> {
        let map: HashMap<_, _> = self.names.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        (!map.is_empty()).then_some(map)
    }
}

/// The items of one transaction, each with the refusal its failed condition stands for.
#[derive(Debug, Default)]
pub struct Transaction {
    table: String,
    items: Vec<TransactWriteItem>,
    refusals: Vec<Error>,
}

/// The refusal of an item whose condition cannot fail.
fn unexpected() -> Error {
    Error::store("unexpected transaction failure")
}

impl Transaction {
    pub fn new(table: &str) -> Self {
        Transaction { table: table.to_string(), ..Transaction::default() }
    }

    /// An already built item (an `Update`).
    pub fn push(&mut self, item: TransactWriteItem, refusal: Error) {
        self.items.push(item);
        self.refusals.push(refusal);
    }

    pub fn put(&mut self, item: AttributeMap, condition: Condition, refusal: Error) -> Result<()> {
        let p = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_expression_attribute_values(condition.value_map())
            .set_expression_attribute_names(condition.name_map())
            .set_condition_expression(condition.expression);
        self.push(TransactWriteItem::builder().put(p.build().or_store_error()?).build(), refusal);
        Ok(())
    }

    /// A put whose condition cannot fail.
    pub fn put_unconditional(&mut self, item: AttributeMap) -> Result<()> {
        self.put(item, Condition::none(), unexpected())
    }

    pub fn delete(&mut self, key: AttributeMap, condition: Condition, refusal: Error) -> Result<()> {
        let d = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_expression_attribute_values(condition.value_map())
            .set_expression_attribute_names(condition.name_map())
            .set_condition_expression(condition.expression);
        self.push(TransactWriteItem::builder().delete(d.build().or_store_error()?).build(), refusal);
        Ok(())
    }

    /// A condition on an item the transaction does not write (it must hold for the write to
    /// happen).
    pub fn check(&mut self, key: AttributeMap, condition: Condition, refusal: Error) -> Result<()> {
        let c = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_expression_attribute_values(condition.value_map())
            .set_expression_attribute_names(condition.name_map())
            .set_condition_expression(condition.expression);
        self.push(TransactWriteItem::builder().condition_check(c.build().or_store_error()?).build(), refusal);
        Ok(())
    }

    /// The user claims a write of `user` moves: new ones must be free, kept ones are rewritten
    /// with this copy of the user and must still be this user's, released ones are deleted if
    /// still this user's (else someone changed the user meanwhile: `stale`).
    pub fn move_user_claims(&mut self, diff: &ClaimDiff<UserClaim>, user: &User, stale: &Error) -> Result<()> {
        for claim in &diff.add {
            self.put(user_claim_item(claim, user)?, Condition::absent(), claim.taken())?;
        }
        for claim in &diff.keep {
            self.put(user_claim_item(claim, user)?, Condition::held_by_user(user), claim.taken())?;
        }
        for claim in &diff.remove {
            self.delete(user_claim_key(claim), Condition::held_by_user(user), stale.clone())?;
        }
        Ok(())
    }

    /// The tenant claims a tenant write moves: each one it holds must be free or already its
    /// own (written again), released ones are deleted if still its own (else `stale`).
    pub fn move_tenant_claims(
        &mut self,
        diff: &ClaimDiff<TenantClaim>,
        tenant: &TenantId,
        stale: &Error,
    ) -> Result<()> {
        for claim in diff.add.iter().chain(&diff.keep) {
            self.put(tenant_claim_item(claim, tenant), Condition::free_or_held_by_tenant(tenant), claim.taken())?;
        }
        for claim in &diff.remove {
            self.delete(tenant_claim_key(claim), Condition::held_by_tenant(tenant), stale.clone())?;
        }
        Ok(())
    }

    /// The change to a tenant's counts (`n` users, `sa` active super_admins) in a user write.
    /// With `keep_a_super_admin`, a decrement of `sa` is conditional on another one remaining.
    pub fn add_to_counts(
        &mut self,
        tenant: &TenantId,
        users: i64,
        super_admins: i64,
        keep_a_super_admin: bool,
    ) -> Result<()> {
        let mut u = Update::builder()
            .table_name(&self.table)
            .set_key(Some(primary_key(tenant_pk(tenant), USER_COUNT_SK)))
            .update_expression("ADD n :by, sa :sa")
            .expression_attribute_values(":by", number_attr(users))
            .expression_attribute_values(":sa", number_attr(super_admins));
        if keep_a_super_admin && super_admins < 0 {
            u = u.condition_expression("sa > :one").expression_attribute_values(":one", number_attr(1));
        }
        let u = u.build().or_store_error()?;
        self.push(TransactWriteItem::builder().update(u).build(), Error::Conflict(LAST_SUPER_ADMIN.into()));
        Ok(())
    }
}

/// +1, 0 or -1: how a write from `before` to `after` changes the tenant's active super_admins.
pub fn super_admin_delta(before: Option<&User>, after: Option<&User>) -> i64 {
    i64::from(after.is_some_and(User::counts_as_super_admin))
        - i64::from(before.is_some_and(User::counts_as_super_admin))
}

impl DynamoStore {
    /// Runs a transaction, retrying when it collides with another transaction on an item. A
    /// failed condition is answered with that item's refusal.
    pub(super) async fn commit(&self, tx: Transaction) -> Result<()> {
        let Transaction { items, refusals, .. } = tx;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let Err(e) = r else { return Ok(()) };
            match tx_failure(e) {
                TxFailure::Conflict if attempt < TX_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt * attempt))).await;
                }
                TxFailure::Conflict => {
                    return Err(Error::Unavailable {
                        message: "concurrent writes to the same user; retry".into(),
                        retry_after_secs: 1,
                    })
                }
                TxFailure::Condition(i) => return Err(refusals.get(i).cloned().unwrap_or_else(unexpected)),
                TxFailure::Other(e) => return Err(e),
            }
        }
    }
}
