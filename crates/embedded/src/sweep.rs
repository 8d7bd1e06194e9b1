//! The local server's minute sweep: what DynamoDB's TTL deletes in production.

use crate::codec::from_json;
use crate::keys::{quota_window, session_index_keys, LOGINS, ONCE, QUOTAS, SESSIONS, SESSION_INDEX};
use crate::EmbeddedStore;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::sso::{LoginTransaction, Session};
use butterfly_core::Result;
use redb::ReadableTable;

/// A counter is swept this long after its window started (windows are a minute; a minute more
/// for stragglers).
const QUOTA_KEPT_MS: i64 = 120_000;

impl EmbeddedStore {
    /// Deletes what has expired by `now`: login transactions, single-use keys, sessions (with
    /// their index entries) and old counters. Reads already treat these as absent; this keeps
    /// the file from growing with every anonymous sign-in start. Returns how many items went.
    pub async fn sweep_expired(&self, now: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let mut removed = 0u64;
            {
                let mut logins = tx.open_table(LOGINS).or_store_error()?;
                let expired: Vec<Vec<u8>> = logins
                    .iter()
                    .or_store_error()?
                    .filter_map(|row| row.ok())
                    .filter(|(_, v)| from_json::<LoginTransaction>(v.value()).is_ok_and(|t| t.expires <= now))
                    .map(|(k, _)| k.value().to_vec())
                    .collect();
                for k in expired {
                    logins.remove(k.as_slice()).or_store_error()?;
                    removed += 1;
                }
            }
            {
                let mut once = tx.open_table(ONCE).or_store_error()?;
                let expired: Vec<String> = once
                    .iter()
                    .or_store_error()?
                    .filter_map(|row| row.ok())
                    .filter(|(_, v)| v.value() <= now.millis())
                    .map(|(k, _)| k.value().to_string())
                    .collect();
                for k in expired {
                    once.remove(k.as_str()).or_store_error()?;
                    removed += 1;
                }
            }
            {
                let mut quotas = tx.open_table(QUOTAS).or_store_error()?;
                let old: Vec<String> = quotas
                    .iter()
                    .or_store_error()?
                    .filter_map(|row| row.ok())
                    .map(|(k, _)| k.value().to_string())
                    .filter(|k| quota_window(k).is_some_and(|w| w + QUOTA_KEPT_MS <= now.millis()))
                    .collect();
                for k in old {
                    quotas.remove(k.as_str()).or_store_error()?;
                    removed += 1;
                }
            }
            {
                let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
                let mut index = tx.open_table(SESSION_INDEX).or_store_error()?;
                let expired: Vec<(Vec<u8>, Session)> = sessions
                    .iter()
                    .or_store_error()?
                    .filter_map(|row| row.ok())
                    .filter_map(|(k, v)| from_json::<Session>(v.value()).ok().map(|s| (k.value().to_vec(), s)))
                    .filter(|(_, s)| s.expires <= now)
                    .collect();
                for (k, s) in expired {
                    sessions.remove(k.as_slice()).or_store_error()?;
                    for ik in session_index_keys(&s) {
                        index.remove(ik.as_str()).or_store_error()?;
                    }
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
