//! `UserStore`: users keyed by tenant and id, their claims in `unique`, the tenant's count,
//! all moved in the user's write.

use crate::audit::write_audit;
use crate::codec::{from_json, read_json, read_user, tenant_users, to_json};
use crate::keys::{tenant_users_end, tenant_users_start, user_claim_key, user_key, TOKENS, UNIQUE, USERS, USER_COUNTS};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::audit::AuditEvent;
use butterfly_core::claims::{ClaimDiff, UserClaim};
use butterfly_core::clock::Timestamp;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::UserStore;
use butterfly_core::sso::Subject;
use butterfly_core::token::{invalid_scim_token, TokenHash, TokenRecord};
use butterfly_core::user::{User, LAST_SUPER_ADMIN};
use butterfly_core::{Error, Result};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

/// Executes a user write's claim moves: new claims must be free, released ones are deleted
/// (a kept claim names the same user id, so it stays as it is).
fn move_user_claims(tx: &WriteTransaction, diff: &ClaimDiff<UserClaim>, user: &UserId) -> Result<()> {
    let mut unique = tx.open_table(UNIQUE).or_store_error()?;
    for claim in &diff.add {
        let key = user_claim_key(claim);
        if unique.get(key.as_str()).or_store_error()?.is_some() {
            return Err(claim.taken());
        }
        unique.insert(key.as_str(), user.as_bytes().as_slice()).or_store_error()?;
    }
    for claim in &diff.remove {
        unique.remove(user_claim_key(claim).as_str()).or_store_error()?;
    }
    Ok(())
}

/// A user's creation inside a write transaction: the audit event, the user, its claims, the count.
fn create_in_tx(tx: &WriteTransaction, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
    write_audit(tx, audit)?;
    let mut users = tx.open_table(USERS).or_store_error()?;
    let key = user_key(&user.tenant, &user.id);
    if users.get(key.as_slice()).or_store_error()?.is_some() {
        return Err(Error::Conflict("a user with this id already exists".into()));
    }
    move_user_claims(tx, &ClaimDiff::between(None, Some(user)), &user.id)?;
    users.insert(key.as_slice(), to_json(user)?.as_slice()).or_store_error()?;
    add_to_count(tx, &user.tenant, 1)
}

/// Adds `by` to the tenant's user count.
fn add_to_count(tx: &WriteTransaction, tenant: &TenantId, by: i64) -> Result<()> {
    let mut counts = tx.open_table(USER_COUNTS).or_store_error()?;
    let n = counts.get(tenant.as_str()).or_store_error()?.map(|v| v.value()).unwrap_or(0);
    counts.insert(tenant.as_str(), n.saturating_add_signed(by)).or_store_error()?;
    Ok(())
}

/// The stored user `previous` was read from, if it is still that version.
fn still_as_read(users: &impl ReadableTable<&'static [u8], &'static [u8]>, previous: &User) -> Result<User> {
    let Some(stored) = read_user(users, &user_key(&previous.tenant, &previous.id))? else {
        return Err(Error::NotFound(format!("User {} not found", previous.id)));
    };
    if stored.version != previous.version {
        return Err(Error::PreconditionFailed("version changed".into()));
    }
    Ok(stored)
}

impl EmbeddedStore {
    /// Replaces a user in one write transaction: version check, claim moves and, with
    /// `keep_a_super_admin`, the tenant's active super_admins counted in the same transaction
    /// (writes are serialised, so two demotions cannot both see the other one).
    async fn replace_user_in_tx(
        &self,
        previous: &User,
        next: &User,
        audit: Option<&AuditEvent>,
        keep_a_super_admin: bool,
    ) -> Result<()> {
        let (previous, next) = (previous.clone(), next.clone());
        let audit = audit.cloned();
        self.write(move |tx| {
            write_audit(tx, audit.as_ref())?;
            let mut users = tx.open_table(USERS).or_store_error()?;
            let stored = still_as_read(&users, &previous)?;
            if keep_a_super_admin && stored.counts_as_super_admin() && !next.counts_as_super_admin() {
                let others = tenant_users(&users, &previous.tenant)?
                    .filter(|u| u.id != previous.id && u.counts_as_super_admin())
                    .count();
                if others == 0 {
                    return Err(Error::Conflict(LAST_SUPER_ADMIN.into()));
                }
            }
            move_user_claims(tx, &ClaimDiff::between(Some(&previous), Some(&next)), &next.id)?;
            users
                .insert(user_key(&previous.tenant, &previous.id).as_slice(), to_json(&next)?.as_slice())
                .or_store_error()?;
            Ok(())
        })
        .await
    }

    /// The user a claim names (claim and user in one read transaction).
    async fn user_holding(&self, claim: UserClaim) -> Result<Option<User>> {
        self.read(move |tx| claimed_user(tx, &claim)).await
    }
}

/// The user `claim` names, read in `tx`.
fn claimed_user(tx: &ReadTransaction, claim: &UserClaim) -> Result<Option<User>> {
    let unique = tx.open_table(UNIQUE).or_store_error()?;
    let Some(id) = unique.get(user_claim_key(claim).as_str()).or_store_error()? else {
        return Ok(None);
    };
    let id: [u8; 16] = id.value().try_into().map_err(|_| Error::store("corrupt uniqueness claim"))?;
    let users = tx.open_table(USERS).or_store_error()?;
    read_user(&users, &user_key(claim.tenant(), &UserId::from_bytes(id)))
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn resolve_token_and_get_user(
        &self,
        hash: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (hash, id) = (*hash, *id);
        self.read(move |tx| {
            let tokens = tx.open_table(TOKENS).or_store_error()?;
            let Some(rec) = read_json::<_, TokenRecord>(&tokens, hash.as_bytes().as_slice())? else {
                return Ok((None, None));
            };
            let users = tx.open_table(USERS).or_store_error()?;
            let user = read_user(&users, &user_key(&rec.tenant, &id))?;
            Ok((Some(rec), user))
        })
        .await
    }

    async fn resolve_token_and_find_user(
        &self,
        hash: &TokenHash,
        claim: &UserClaim,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (hash, claim) = (*hash, claim.clone());
        self.read(move |tx| {
            let tokens = tx.open_table(TOKENS).or_store_error()?;
            let Some(rec) = read_json::<_, TokenRecord>(&tokens, hash.as_bytes().as_slice())? else {
                return Ok((None, None));
            };
            if &rec.tenant != claim.tenant() {
                return Ok((Some(rec), None));
            }
            let user = claimed_user(tx, &claim)?;
            Ok((Some(rec), user))
        })
        .await
    }

    async fn create_user_checked(
        &self,
        user: &User,
        audit: Option<&AuditEvent>,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<()> {
        let (user, audit, token) = (user.clone(), audit.cloned(), *token);
        self.write(move |tx| {
            // First, so that a refused token is answered as such whatever else fails.
            let tokens = tx.open_table(TOKENS).or_store_error()?;
            let live = read_json::<_, TokenRecord>(&tokens, token.as_bytes().as_slice())?
                .is_some_and(|r| r.tenant == user.tenant && r.is_live(now));
            drop(tokens);
            if !live {
                return Err(invalid_scim_token());
            }
            create_in_tx(tx, &user, audit.as_ref())
        })
        .await
    }

    async fn create_user_audited(&self, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let user = user.clone();
        let audit = audit.cloned();
        self.write(move |tx| create_in_tx(tx, &user, audit.as_ref())).await
    }

    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let key = user_key(tenant, id);
        self.read(move |tx| read_user(&tx.open_table(USERS).or_store_error()?, &key)).await
    }

    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>> {
        self.user_holding(UserClaim::UserName { tenant: tenant.clone(), folded: folded.to_string() }).await
    }

    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>> {
        self.user_holding(UserClaim::ExternalId { tenant: tenant.clone(), external_id: external_id.to_string() }).await
    }

    async fn find_user_by_subject(&self, tenant: &TenantId, subject: &Subject) -> Result<Option<User>> {
        self.user_holding(UserClaim::Subject { tenant: tenant.clone(), subject: subject.clone() }).await
    }

    async fn replace_user_audited(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, false).await
    }

    async fn replace_user_guarded(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_in_tx(previous, next, audit, true).await
    }

    async fn delete_user_audited(&self, previous: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let previous = previous.clone();
        let audit = audit.cloned();
        self.write(move |tx| {
            write_audit(tx, audit.as_ref())?;
            let mut users = tx.open_table(USERS).or_store_error()?;
            let stored = still_as_read(&users, &previous)?;
            move_user_claims(tx, &ClaimDiff::between(Some(&stored), None), &stored.id)?;
            users.remove(user_key(&stored.tenant, &stored.id).as_slice()).or_store_error()?;
            add_to_count(tx, &stored.tenant, -1)
        })
        .await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<User>> {
        let start = match after {
            Some(a) => {
                let mut k = user_key(tenant, a);
                k.push(0); // strictly after
                k
            }
            None => tenant_users_start(tenant),
        };
        let end = tenant_users_end(tenant);
        self.scan(move |tx| {
            let users = tx.open_table(USERS).or_store_error()?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for row in users.range::<&[u8]>(start.as_slice()..end.as_slice()).or_store_error()?.skip(skip as usize) {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.or_store_error()?;
                out.push(from_json::<User>(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn count_users(&self, tenant: &TenantId) -> Result<u64> {
        let tenant = tenant.clone();
        self.read(move |tx| {
            let counts = tx.open_table(USER_COUNTS).or_store_error()?;
            Ok(counts.get(tenant.as_str()).or_store_error()?.map(|v| v.value()).unwrap_or(0))
        })
        .await
    }
}
