//! Value codecs: records are stored as JSON; the tenant's token pointer as raw hashes.

use butterfly_core::error::StoreResultExt;
use butterfly_core::ports::TokenSlots;
use butterfly_core::token::TokenHash;
use butterfly_core::user::User;
use butterfly_core::Result;
use redb::ReadableTable;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).or_store_error()
}

pub fn from_json<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).or_store_error()
}

/// The tenant-token pointer: the current token's hash, then the overlapped one's if any.
pub fn encode_slots(s: &TokenSlots) -> Vec<u8> {
    let mut v = s.current.as_bytes().to_vec();
    if let Some(p) = &s.previous {
        v.extend_from_slice(p.as_bytes());
    }
    v
}

pub fn decode_slots(b: &[u8]) -> Option<TokenSlots> {
    let hash = |s: &[u8]| <[u8; 32]>::try_from(s).ok().map(TokenHash::from_bytes);
    match b.len() {
        32 => Some(TokenSlots { current: hash(b)?, previous: None }),
        64 => Some(TokenSlots { current: hash(&b[..32])?, previous: Some(hash(&b[32..])?) }),
        _ => None,
    }
}

/// The record under `key` in a table of JSON values, if any.
pub fn read_json<'k, K, T>(
    t: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> Result<Option<T>>
where
    K: redb::Key + 'static,
    T: DeserializeOwned,
{
    match t.get(key).or_store_error()? {
        Some(v) => Ok(Some(from_json(v.value())?)),
        None => Ok(None),
    }
}

/// A user by its key in the `users` table.
pub fn read_user(t: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8]) -> Result<Option<User>> {
    read_json(t, key)
}

/// Every user of a tenant (a contiguous key range), for checks inside a write transaction.
pub fn tenant_users<'a>(
    users: &'a impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &butterfly_core::ids::TenantId,
) -> Result<impl Iterator<Item = User> + 'a> {
    let (start, end) = (crate::keys::tenant_users_start(tenant), crate::keys::tenant_users_end(tenant));
    let rows = users.range::<&[u8]>(start.as_slice()..end.as_slice()).or_store_error()?;
    Ok(rows.filter_map(|row| row.ok().and_then(|(_, v)| from_json::<User>(v.value()).ok())))
}
