//! `LoginStore`: sign-in transactions by the hash of their `state`, taken once.

use crate::codec::{from_json, to_json};
use crate::keys::LOGINS;
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ports::LoginStore;
use butterfly_core::sso::LoginTransaction;
use butterfly_core::token::TokenHash;
use butterfly_core::Result;

#[async_trait]
impl LoginStore for EmbeddedStore {
    async fn put_login(&self, login: &LoginTransaction) -> Result<()> {
        let login = login.clone();
        self.write(move |tx| {
            let mut t = tx.open_table(LOGINS).or_store_error()?;
            t.insert(login.state_hash.as_bytes().as_slice(), to_json(&login)?.as_slice()).or_store_error()?;
            Ok(())
        })
        .await
    }

    async fn take_login(&self, state_hash: &TokenHash) -> Result<Option<LoginTransaction>> {
        let h = *state_hash;
        self.write(move |tx| {
            let mut t = tx.open_table(LOGINS).or_store_error()?;
            let removed = t.remove(h.as_bytes().as_slice()).or_store_error()?.map(|v| v.value().to_vec());
            removed.map(|b| from_json::<LoginTransaction>(&b)).transpose()
        })
        .await
    }
}
