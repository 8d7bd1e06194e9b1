//! `SessionStore`: sessions by the hash of their cookie, with their index entries (by user,
//! provider session and issuer) written and removed in the same write.

use crate::codec::{from_json, read_json, read_user, to_json};
use crate::keys::{
    issuer_sessions_prefix, session_index_keys, sid_sessions_prefix, user_key, user_sessions_prefix, SESSIONS,
    SESSION_INDEX, USERS,
};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::SessionStore;
use butterfly_core::sso::Session;
use butterfly_core::token::TokenHash;
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use redb::{ReadableTable, Table};

/// The keys of a table starting with `prefix`.
fn keys_with_prefix(t: &impl ReadableTable<&'static str, ()>, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in t.range::<&str>(prefix..).or_store_error()? {
        let (k, _) = row.or_store_error()?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        out.push(k.to_string());
    }
    Ok(out)
}

/// Removes a session and its index entries; whether there was one.
fn remove_session(
    sessions: &mut Table<'_, &'static [u8], &'static [u8]>,
    index: &mut Table<'_, &'static str, ()>,
    hash: &TokenHash,
) -> Result<bool> {
    let removed = sessions.remove(hash.as_bytes().as_slice()).or_store_error()?.map(|v| v.value().to_vec());
    let Some(b) = removed else { return Ok(false) };
    for k in session_index_keys(&from_json::<Session>(&b)?) {
        index.remove(k.as_str()).or_store_error()?;
    }
    Ok(true)
}

impl EmbeddedStore {
    /// Deletes the sessions an index prefix lists, with all their index entries, in one write.
    async fn delete_indexed_sessions(&self, prefix: String) -> Result<u32> {
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
            let mut index = tx.open_table(SESSION_INDEX).or_store_error()?;
            let mut n = 0u32;
            for k in keys_with_prefix(&index, &prefix)? {
                index.remove(k.as_str()).or_store_error()?;
                let Some(hash) = k.rsplit('\x1f').next().and_then(TokenHash::from_hex) else { continue };
                if remove_session(&mut sessions, &mut index, &hash)? {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let session = session.clone();
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
            let mut index = tx.open_table(SESSION_INDEX).or_store_error()?;
            if sessions.get(session.hash.as_bytes().as_slice()).or_store_error()?.is_some() {
                return Err(Error::Conflict("a session with this id exists".into()));
            }
            sessions.insert(session.hash.as_bytes().as_slice(), to_json(&session)?.as_slice()).or_store_error()?;
            for k in session_index_keys(&session) {
                index.insert(k.as_str(), ()).or_store_error()?;
            }
            Ok(())
        })
        .await
    }

    async fn session_with_user(&self, hash: &TokenHash) -> Result<Option<(Session, Option<User>)>> {
        let hash = *hash;
        self.read(move |tx| {
            let sessions = tx.open_table(SESSIONS).or_store_error()?;
            let Some(session) = read_json::<_, Session>(&sessions, hash.as_bytes().as_slice())? else {
                return Ok(None);
            };
            let users = tx.open_table(USERS).or_store_error()?;
            let user = read_user(&users, &user_key(&session.tenant, &session.user))?;
            Ok(Some((session, user)))
        })
        .await
    }

    async fn touch_session(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let hash = *hash;
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
            let found = read_json::<_, Session>(&sessions, hash.as_bytes().as_slice())?;
            // A session ended meanwhile stays ended.
            if let Some(mut s) = found.filter(|s| s.last_seen < at) {
                s.last_seen = at;
                sessions.insert(hash.as_bytes().as_slice(), to_json(&s)?.as_slice()).or_store_error()?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool> {
        let hash = *hash;
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).or_store_error()?;
            let mut index = tx.open_table(SESSION_INDEX).or_store_error()?;
            remove_session(&mut sessions, &mut index, &hash)
        })
        .await
    }

    async fn delete_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        self.delete_indexed_sessions(user_sessions_prefix(tenant, user)).await
    }

    async fn delete_sid_sessions(&self, issuer: &str, sid: &str) -> Result<u32> {
        self.delete_indexed_sessions(sid_sessions_prefix(issuer, sid)).await
    }

    async fn delete_issuer_sessions(&self, tenant: &TenantId, issuer: &str) -> Result<u32> {
        self.delete_indexed_sessions(issuer_sessions_prefix(tenant, issuer)).await
    }
}
