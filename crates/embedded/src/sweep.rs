//! The local server's minute sweep: what DynamoDB's TTL deletes in production.

use crate::codec::from_json;
use crate::keys::{quota_window, session_index_keys, LOGINS, ONCE, QUOTAS, SESSIONS, SESSION_INDEX};
use crate::EmbeddedStore;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::sso::{LoginTransaction, Session};
use butterfly_core::Result;
use redb::{Key, TableDefinition, Value, WriteTransaction};

/// A counter is swept this long after its window started (windows are a minute; a minute more
/// for stragglers).
const QUOTA_KEPT_MS: i64 = 120_000;

/// Removes the rows of `table` that `expired` picks; how many went.
fn remove_expired<K: Key + 'static, V: Value + 'static>(
    tx: &WriteTransaction,
    table: TableDefinition<K, V>,
    mut expired: impl for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
) -> Result<u64> {
    let mut t = tx.open_table(table).or_store_error()?;
    let mut removed = 0u64;
    t.retain(|k, v| {
        let gone = expired(k, v);
        removed += u64::from(gone);
        !gone
    })
    .or_store_error()?;
    Ok(removed)
}

impl EmbeddedStore {
    /// Deletes what has expired by `now`: login transactions, single-use keys, sessions (with
    /// their index entries) and old counters. Reads already treat these as absent; this keeps
    /// the file from growing with every anonymous sign-in start. Returns how many items went.
    pub async fn sweep_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let mut removed =
                remove_expired(tx, LOGINS, |_, v| from_json::<LoginTransaction>(v).is_ok_and(|t| t.expires <= now))?;
            removed += remove_expired(tx, ONCE, |_, expires_ms| expires_ms <= now.millis())?;
            removed +=
                remove_expired(tx, QUOTAS, |k, _| quota_window(k).is_some_and(|w| w + QUOTA_KEPT_MS <= now.millis()))?;
            let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
            let mut index = tx.open_table(SESSION_INDEX).or_store_error()?;
            let expired: Vec<Session> = sessions
                .extract_if(|_, v| from_json::<Session>(v).is_ok_and(|s| s.expires <= now))
                .or_store_error()?
                .map(|row| row.or_store_error().and_then(|(_, v)| from_json::<Session>(v.value())))
                .collect::<Result<_>>()?;
            for s in &expired {
                for k in session_index_keys(s) {
                    index.remove(k.as_str()).or_store_error()?;
                }
            }
            Ok(removed + expired.len() as u64)
        })
        .await
    }
}
