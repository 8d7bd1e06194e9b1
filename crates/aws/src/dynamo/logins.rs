//! `LoginStore`: sign-in transactions, taken by a conditional delete (one taker wins).

use super::items::{login_item, read_body};
use super::keys::{login_pk, primary_key, LOGIN_SK};
use super::DynamoStore;
use crate::errors::unless_condition_failed;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use butterfly_core::ports::LoginStore;
use butterfly_core::sso::LoginTransaction;
use butterfly_core::token::TokenHash;
use butterfly_core::Result;

#[async_trait]
impl LoginStore for DynamoStore {
    async fn put_login(&self, login: &LoginTransaction) -> Result<()> {
        self.put_item(login_item(login)?).await
    }

    async fn take_login(&self, state_hash: &TokenHash) -> Result<Option<LoginTransaction>> {
        let out = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(primary_key(login_pk(state_hash), LOGIN_SK)))
            // The condition makes concurrent takes serialise: exactly one sees the item.
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match unless_condition_failed("DeleteItem", out)?.and_then(|o| o.attributes).filter(|a| !a.is_empty()) {
            Some(it) => Ok(Some(read_body(&it)?)),
            None => Ok(None),
        }
    }
}
