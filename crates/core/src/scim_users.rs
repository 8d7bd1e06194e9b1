//! SCIM provisioning of users: authenticating the tenant's SCIM client by its token (and
//! spending its quota), then creating, reading, replacing, patching, deleting and listing users.

use crate::actor::Actor;
use crate::audit::{AuditAction, AuditEvent};
use crate::claims::{UniqueAttribute, UserClaim};
use crate::clock::{Clock, Timestamp};
use crate::error::{Error, Result, Taken};
use crate::ids::{TenantId, UserId};
use crate::limit::{QuotaPolicy, TenantQuota};
use crate::ports::ScimUserStore;
use crate::revocation::{Revoker, Trigger};
use crate::scim::cursor::{self, CursorError, CursorKey, CursorState};
use crate::scim::doc::{normalize, Draft, NewUserBase};
use crate::scim::filter::{self, Filter, Lookup};
use crate::scim::list::{ListQuery, Paging};
use crate::scim::patch;
use crate::scim::USER_SCHEMA;
use crate::token::{invalid_scim_token, ScimToken, TokenHash, TokenRecord, LAST_USED_GRANULARITY_SECS};
use crate::usecase::{retry_on_conflict, Attempt};
use crate::user::User;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How often an unconditional read-modify-write is retried when another writer got there first.
const WRITE_ATTEMPTS: usize = 8;
/// Page size used when scanning a tenant for a filter no index answers.
const SCAN_PAGE: usize = 500;

/// An authenticated SCIM client: the tenant its token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub token: TokenHash,
}

/// An authenticated write's caller and the user it targets, as read with the token.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub caller: Caller,
    pub user: User,
}

/// One page of a user listing.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: Option<u64>,
    pub start_index: Option<u64>,
    pub next_cursor: Option<String>,
}

/// `If-Match` as sent: `*` or a list of entity tags ([`Precondition::from_header`] reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    None,
    Any,
    OneOf(Vec<String>),
}

impl Precondition {
    pub fn from_header(h: Option<&str>) -> Precondition {
        match h.map(str::trim) {
            None | Some("") => Precondition::None,
            Some("*") => Precondition::Any,
            Some(list) => Precondition::OneOf(list.split(',').map(|t| strip_weak(t.trim()).to_string()).collect()),
        }
    }
    fn check(&self, u: &User) -> Result<()> {
        match self {
            Precondition::None | Precondition::Any => Ok(()),
            Precondition::OneOf(tags) => {
                let current = u.etag();
                if tags.iter().any(|t| t == strip_weak(&current)) {
                    Ok(())
                } else {
                    Err(Error::PreconditionFailed(format!(
                        "If-Match does not match the user's current version {current}; read the user again before writing"
                    )))
                }
            }
        }
    }
}

fn strip_weak(t: &str) -> &str {
    t.strip_prefix("W/").unwrap_or(t)
}

/// Does a presented `If-None-Match` match this user?
pub fn if_none_match(h: Option<&str>, u: &User) -> bool {
    match h.map(str::trim) {
        None | Some("") => false,
        Some("*") => true,
        Some(list) => list.split(',').any(|t| strip_weak(t.trim()) == strip_weak(&u.etag())),
    }
}

/// A write lost to concurrent writers (with `If-Match`, at once; without, after every attempt).
fn concurrent_change() -> Error {
    Error::PreconditionFailed(
        "the user was changed by another request at the same time; read it again and retry".into(),
    )
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("User {id} not found"))
}

/// What this instance saw of each token's bookkeeping: the last-used time it read or recorded.
/// A hint, never a credential (every request still proves its token in the store); it only says
/// whether a create may skip the token read because nothing is due (no first-use retirement, no
/// last-used update within [`LAST_USED_GRANULARITY_SECS`]).
#[derive(Default)]
struct TokenUseHints(Mutex<HashMap<TokenHash, Timestamp>>);

/// Hints kept per instance at most; past it they are dropped (each costs one token read again).
const MAX_HINTS: usize = 10_000;

impl TokenUseHints {
    fn note(&self, hash: TokenHash, last_used: Timestamp) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= MAX_HINTS {
                m.clear();
            }
            m.insert(hash, last_used);
        }
    }
    fn forget(&self, hash: &TokenHash) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(hash);
        }
    }
    /// The token's use was recorded (and so its first-use retirement done) within the last
    /// granularity window, as far as this instance knows.
    fn nothing_due(&self, hash: &TokenHash, now: Timestamp) -> bool {
        self.0.lock().ok().and_then(|m| m.get(hash).copied()).is_some_and(|t| {
            let age = now.millis() - t.millis();
            (0..LAST_USED_GRANULARITY_SECS * 1000).contains(&age)
        })
    }
}

/// Held over a one-write create: if the request is dropped before the write answers (its
/// client went away), the token's hint is forgotten, so its next create reads the token first.
/// Else a revoked token whose hint is still fresh could spend the tenant's quota one dropped
/// request after another, never learning it is refused.
struct ForgetUnlessAnswered<'a> {
    hints: &'a TokenUseHints,
    hash: &'a TokenHash,
    answered: bool,
}

impl Drop for ForgetUnlessAnswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.hints.forget(self.hash);
        }
    }
}

/// SCIM provisioning of users.
#[derive(Clone)]
pub struct ScimService {
    store: Arc<dyn ScimUserStore>,
    clock: Arc<dyn Clock>,
    cursor_key: CursorKey,
    revoker: Revoker,
    quota: Arc<TenantQuota>,
    hints: Arc<TokenUseHints>,
}

/// What an audit event of a SCIM write says about the user (never secrets).
fn scim_audit(action: AuditAction, u: &User, at: Timestamp) -> AuditEvent {
    AuditEvent::new(&u.tenant, at, action, Actor::Scim.to_string()).target(u.id).details(serde_json::json!({
        "userName": u.user_name.as_str(),
        "active": u.active,
        "role": u.role.map(|r| r.as_str()),
        "version": u.version,
    }))
}

impl ScimService {
    pub fn new(
        store: Arc<dyn ScimUserStore>,
        clock: Arc<dyn Clock>,
        cursor_key: CursorKey,
        quota: QuotaPolicy,
    ) -> Self {
        let revoker = Revoker::new(store.clone(), clock.clone());
        let quota = Arc::new(TenantQuota::new(store.clone(), quota));
        ScimService { store, clock, cursor_key, revoker, quota, hints: Arc::default() }
    }

    async fn record_use_and_retire_replaced(&self, rec: &TokenRecord, now: Timestamp) {
        if rec.last_used.is_none() {
            if let Some(old) = &rec.replaces {
                // Overlap rotation: the new token's first use ends the old one. If this fails,
                // the next request tries again, and the old token's deadline holds meanwhile.
                if let Err(e) = self.store.retire_previous(&rec.tenant, &rec.hash, old).await {
                    tracing::warn!(error = %e, "the overlapped SCIM token was not retired yet");
                    return;
                }
            }
        }
        if rec.last_used_is_stale(now) {
            // A failed last-used update must not fail the request.
            match self.store.record_token_use(&rec.hash, now).await {
                Ok(()) => self.hints.note(rec.hash, now),
                Err(e) => tracing::warn!(error = %e, "the SCIM token's last use was not recorded"),
            }
        } else if let Some(t) = rec.last_used {
            self.hints.note(rec.hash, t);
        }
    }

    /// The record a token's hash found, if it proves the token: same hash, before its deadline,
    /// and of the tenant the token names (a token whose routing part names another tenant is
    /// refused like an unknown one).
    fn check_record(&self, token: &ScimToken, rec: Option<TokenRecord>) -> Result<TokenRecord> {
        let presented = token.hash();
        match rec {
            Some(r) if r.hash.ct_eq(&presented) && r.is_live(self.clock.now()) && token.routes_to(&r.tenant) => Ok(r),
            _ => Err(invalid_scim_token()),
        }
    }

    /// A proven token's request: spends one request of the tenant's quota, does the token's
    /// bookkeeping (last use, first-use retirement), and names the caller.
    async fn admit(&self, token: &ScimToken, rec: Option<TokenRecord>) -> Result<Caller> {
        let rec = self.check_record(token, rec)?;
        let now = self.clock.now();
        self.quota.admit(&rec.tenant, now).await?;
        self.record_use_and_retire_replaced(&rec, now).await;
        Ok(Caller { tenant: rec.tenant, token: rec.hash })
    }

    /// Authenticates a request by its token (from the `Authorization` header:
    /// [`ScimToken::from_authorization`]), and spends one request of the tenant's SCIM quota.
    pub async fn authenticate(&self, token: &ScimToken) -> Result<Caller> {
        let rec = self.store.resolve_token(&token.hash()).await?;
        self.admit(token, rec).await
    }

    /// Authenticates and reads the user in one store round trip.
    async fn authenticate_with_user(&self, token: &ScimToken, id: &str) -> Result<(Caller, User)> {
        let hash = token.hash();
        let Some(uid) = UserId::parse(id) else {
            // Not one of our ids: authenticate anyway so a bad token is still a 401.
            self.check_record(token, self.store.resolve_token(&hash).await?)?;
            return Err(not_found(id));
        };
        let (rec, user) = self.store.resolve_token_and_get_user(&hash, &uid).await?;
        let caller = self.admit(token, rec).await?;
        match user {
            Some(u) if u.tenant == caller.tenant => Ok((caller, u)),
            _ => Err(not_found(id)),
        }
    }

    pub async fn get_user(&self, token: &ScimToken, id: &str) -> Result<User> {
        Ok(self.authenticate_with_user(token, id).await?.1)
    }

    pub async fn create_user(&self, caller: &Caller, body: &Value) -> Result<User> {
        let user = self.new_user(&caller.tenant, body)?;
        let audit = scim_audit(AuditAction::ScimUserCreate, &user, user.created);
        self.store.create_user_audited(&user, Some(&audit)).await.map_err(|e| explain_uniqueness(e, &user))?;
        Ok(user)
    }

    fn new_user(&self, tenant: &TenantId, body: &Value) -> Result<User> {
        let draft = Draft::parse(&normalize(resource_body(body)?))?;
        draft.into_new_user(NewUserBase { id: UserId::generate(), tenant: tenant.clone(), now: self.clock.now() })
    }

    /// `POST /Users` as sent: the token and the body (or why it could not be read). In one store
    /// round trip when it can be — the token names its tenant, this instance holds quota for
    /// it, and nothing of the token's bookkeeping is due — the user is written in the same
    /// atomic write as the check that the token is live; otherwise the token is read first (two
    /// round trips). A bad token is a 401 whatever the body: a body error is answered only
    /// after the token was read and proven.
    /// `E` is the caller's error type, so that a body its HTTP layer could not read (too large,
    /// wrong media type) is answered as that layer words it, after the token check.
    pub async fn create_user_as<E: From<Error>>(
        &self,
        token: &ScimToken,
        body: std::result::Result<Value, E>,
    ) -> std::result::Result<User, E> {
        let (hash, now) = (token.hash(), self.clock.now());
        if let (Some(tenant), Ok(v)) = (token.route(), &body) {
            // The quota first: the body is read once on the path a create usually takes.
            if self.hints.nothing_due(&hash, now) && self.quota.spend_held(&tenant, now) {
                match self.new_user(&tenant, v) {
                    Ok(user) => {
                        let audit = scim_audit(AuditAction::ScimUserCreate, &user, user.created);
                        let mut unanswered = ForgetUnlessAnswered { hints: &self.hints, hash: &hash, answered: false };
                        let written = self.store.create_user_checked(&user, Some(&audit), &hash, now).await;
                        unanswered.answered = true;
                        return match written {
                            Ok(()) => Ok(user),
                            Err(Error::Unauthorized(_)) => {
                                self.quota.give_back(&tenant, now);
                                self.hints.forget(&hash);
                                Err(invalid_scim_token().into())
                            }
                            Err(e) => Err(explain_uniqueness(e, &user).into()),
                        };
                    }
                    // A bad body: answered on the path below, after the token (a bad token is
                    // a 401 whatever the body), which spends the quota itself.
                    Err(_) => self.quota.give_back(&tenant, now),
                }
            }
        }
        let caller = self.authenticate(token).await?;
        Ok(self.create_user(&caller, &body?).await?)
    }

    /// Authenticates a write to `/Users/{id}` and reads the user, in one store round trip,
    /// before anything of the request body is looked at (a bad token is a 401 whatever the body).
    pub async fn authorize_write(&self, token: &ScimToken, id: &str) -> Result<WriteTarget> {
        let (caller, user) = self.authenticate_with_user(token, id).await?;
        Ok(WriteTarget { caller, user })
    }

    pub async fn replace_user(&self, target: WriteTarget, body: &Value, if_match: &Precondition) -> Result<User> {
        let draft = Draft::parse(&normalize(resource_body(body)?))?; // validated before any store write
        self.modify(target, if_match, |u| draft.clone().apply_put(u)).await
    }

    pub async fn patch_user(&self, target: WriteTarget, body: &Value, if_match: &Precondition) -> Result<User> {
        let ops = patch::parse_request(body)?;
        self.modify(target, if_match, |u| patch::apply_to_user(u, &ops)).await
    }

    /// Read, change, write with a version condition. With `If-Match` a concurrent change is a
    /// 412; without, the change is re-applied to the newer version.
    async fn modify(
        &self,
        target: WriteTarget,
        pre: &Precondition,
        change: impl Fn(&mut User) -> Result<()>,
    ) -> Result<User> {
        let WriteTarget { caller, user } = target;
        let (tenant, id, change) = (&caller.tenant, user.id, &change);
        let written = retry_on_conflict(WRITE_ATTEMPTS, Some(user), |current| async move {
            // After a concurrent change (no If-Match), the change is re-applied to the newer version.
            let current = match current {
                Some(u) => u,
                None => self.store.get_user(tenant, &id).await?.ok_or_else(|| not_found(&id.to_string()))?,
            };
            pre.check(&current)?;
            let mut next = current.clone();
            change(&mut next)?;
            if next == current {
                return Ok(Attempt::Done(current)); // nothing changed: no write, same version
            }
            next.version = current.version + 1;
            let now = self.clock.now();
            next.last_modified = now.max(current.last_modified);
            let deactivated = current.active && !next.active;
            if deactivated {
                // Kills every existing session in this very write, whatever happens next.
                next.sessions_revoked_at = Some(now);
            }
            let audit = scim_audit(AuditAction::ScimUserUpdate, &next, now);
            match self.store.replace_user_audited(&current, &next, Some(&audit)).await {
                Ok(()) => {
                    if deactivated {
                        self.end_sessions_after_write(Trigger::ScimDeactivation, &next, now).await;
                    }
                    Ok(Attempt::Done(next))
                }
                Err(Error::PreconditionFailed(_)) if *pre == Precondition::None => Ok(Attempt::Retry(None)),
                Err(Error::PreconditionFailed(_)) => Err(concurrent_change()),
                Err(e) => Err(explain_uniqueness(e, &next)),
            }
        })
        .await?;
        written.ok_or_else(concurrent_change)
    }

    /// Ends the sessions of a user whose write (a deactivation or the deletion) just committed.
    /// The write already ends every session (its cut-off, or the user being gone refuses them),
    /// so a failure of this bookkeeping is logged, never answered: the write stands. A lost
    /// receipt is logged by the revoker.
    async fn end_sessions_after_write(&self, trigger: Trigger, user: &User, now: Timestamp) {
        if let Err(e) = self.revoker.revoke_user(trigger, &user.tenant, &user.id, &Actor::Scim, now).await {
            tracing::error!(
                user = %user.id, trigger = ?trigger, error = %e,
                "the user's sessions were not deleted yet; the committed write already refuses them"
            );
        }
    }

    pub async fn delete_user(&self, token: &ScimToken, id: &str, pre: &Precondition) -> Result<()> {
        let (_, current) = self.authenticate_with_user(token, id).await?;
        pre.check(&current)?;
        let now = self.clock.now();
        let audit = scim_audit(AuditAction::ScimUserDelete, &current, now);
        self.store.delete_user_audited(&current, Some(&audit)).await.map_err(|e| match e {
            Error::NotFound(_) => not_found(id),
            other => other,
        })?;
        self.end_sessions_after_write(Trigger::ScimDelete, &current, now).await;
        Ok(())
    }

    /// `GET /Users` as sent: the token and the query (or why it could not be read). A lookup of
    /// one `userName`, `externalId` or `id` with a token that names its tenant reads the token and
    /// the user in one store round trip; anything else authenticates first (a bad token is a 401
    /// whatever the query), then lists.
    pub async fn list_users_as(
        &self,
        token: &ScimToken,
        q: std::result::Result<&ListQuery, &Error>,
    ) -> Result<UserPage> {
        if let (Some(tenant), Ok(q)) = (token.route(), q) {
            let parsed = q.filter.as_deref().and_then(|f| filter::parse(f).ok());
            let single = parsed.as_ref().and_then(Filter::lookups);
            if let Some([one]) = single.as_deref() {
                let hash = token.hash();
                let (rec, user) = match one {
                    Lookup::UserName(folded) => {
                        let claim = UserClaim::UserName { tenant, folded: folded.clone() };
                        self.store.resolve_token_and_find_user(&hash, &claim).await?
                    }
                    Lookup::ExternalId(e) => {
                        let claim = UserClaim::ExternalId { tenant, external_id: e.clone() };
                        self.store.resolve_token_and_find_user(&hash, &claim).await?
                    }
                    Lookup::Id(id) => match UserId::parse(id) {
                        Some(uid) => self.store.resolve_token_and_get_user(&hash, &uid).await?,
                        None => (self.store.resolve_token(&hash).await?, None),
                    },
                };
                let caller = self.admit(token, rec).await?;
                let found = user.filter(|u| u.tenant == caller.tenant).into_iter().collect();
                return self.list(&caller, q, parsed, Some(found)).await;
            }
        }
        let caller = self.authenticate(token).await?;
        self.list_users(&caller, q.map_err(Clone::clone)?).await
    }

    pub async fn list_users(&self, caller: &Caller, q: &ListQuery) -> Result<UserPage> {
        self.list(caller, q, None, None).await
    }

    /// A listing; `parsed`: the query's filter, if already parsed; `found`: the users the
    /// filter's lookups found, if already read.
    async fn list(
        &self,
        caller: &Caller,
        q: &ListQuery,
        parsed: Option<Filter>,
        found: Option<Vec<User>>,
    ) -> Result<UserPage> {
        let filter = match parsed {
            Some(f) => Some(f),
            None => q.filter.as_deref().map(filter::parse).transpose().map_err(Error::InvalidFilter)?,
        };
        let fingerprint = cursor::query_fingerprint(q.filter.as_deref());
        let now = self.clock.now();
        let after = match &q.paging {
            Paging::Cursor(Some(c)) => Some(
                cursor::decode(&self.cursor_key, &caller.tenant, fingerprint, c, now)
                    .map_err(|e| match e {
                        CursorError::Invalid => Error::InvalidCursor(
                            "the cursor is not one this server issued for this query; start again without it".into(),
                        ),
                        CursorError::Expired => {
                            Error::ExpiredCursor("the cursor has expired; start again without it".into())
                        }
                    })?
                    .after,
            ),
            _ => None,
        };
        let lookups = filter.as_ref().and_then(Filter::lookups);
        match (lookups, &q.paging) {
            (Some(lookups), paging) => {
                let mut found = match found {
                    Some(f) => f,
                    None => self.lookup(&caller.tenant, &lookups).await?,
                };
                // Whatever the store found is held to the filter; a lone lookup by its own
                // attribute rule, anything else on the rendered document.
                match filter.as_ref().map(|f| (f, f.single_lookup())) {
                    Some((_, Some(exact))) => found.retain(|u| exact.holds_for(u)),
                    Some((f, None)) => found.retain(|u| f.matches(&crate::scim::doc::user_json(u, ""))),
                    None => {}
                }
                found.sort_by_key(|u| u.id);
                found.dedup_by_key(|u| u.id);
                let total = found.len() as u64;
                match paging {
                    Paging::Index { start_index } => {
                        let users =
                            found.into_iter().skip((*start_index - 1) as usize).take(q.count as usize).collect();
                        Ok(UserPage { users, total: Some(total), start_index: Some(*start_index), next_cursor: None })
                    }
                    Paging::Cursor(_) => {
                        let rest: Vec<User> = found.into_iter().filter(|u| after.is_none_or(|a| u.id > a)).collect();
                        self.cursor_page(caller, fingerprint, rest, q.count as usize, Some(total), now)
                    }
                }
            }
            (None, Paging::Index { start_index }) => {
                let skip = start_index - 1;
                match &filter {
                    None => {
                        let total = self.store.count_users(&caller.tenant).await?;
                        let users = if q.count == 0 || skip >= total {
                            vec![]
                        } else {
                            self.store.list_users(&caller.tenant, None, skip, q.count as usize).await?
                        };
                        Ok(UserPage { users, total: Some(total), start_index: Some(*start_index), next_cursor: None })
                    }
                    Some(f) => {
                        // No index answers this filter: scan the tenant, keep only the window.
                        let (mut matched, mut users, mut after) = (0u64, Vec::new(), None);
                        loop {
                            let page = self.store.list_users(&caller.tenant, after.as_ref(), 0, SCAN_PAGE).await?;
                            let done = page.len() < SCAN_PAGE;
                            after = page.last().map(|u| u.id);
                            for u in page {
                                if f.matches(&crate::scim::doc::user_json(&u, "")) {
                                    if matched >= skip && (users.len() as u64) < q.count {
                                        users.push(u);
                                    }
                                    matched += 1;
                                }
                            }
                            if done {
                                break;
                            }
                        }
                        Ok(UserPage { users, total: Some(matched), start_index: Some(*start_index), next_cursor: None })
                    }
                }
            }
            (None, Paging::Cursor(_)) => {
                let want = q.count as usize;
                let total = match &filter {
                    None => Some(self.store.count_users(&caller.tenant).await?),
                    Some(_) => None,
                };
                if want == 0 {
                    return Ok(UserPage { users: vec![], total, start_index: None, next_cursor: None });
                }
                let mut collected: Vec<User> = Vec::new();
                let mut pos = after;
                loop {
                    let page_size = if filter.is_some() { SCAN_PAGE } else { want + 1 };
                    let page = self.store.list_users(&caller.tenant, pos.as_ref(), 0, page_size).await?;
                    let done = page.len() < page_size;
                    pos = page.last().map(|u| u.id);
                    collected
                        .extend(page.into_iter().filter(|u| {
                            filter.as_ref().is_none_or(|f| f.matches(&crate::scim::doc::user_json(u, "")))
                        }));
                    if done || collected.len() > want {
                        break;
                    }
                }
                self.cursor_page(caller, fingerprint, collected, want, total, now)
            }
        }
    }

    /// Cuts `rest` (users after the cursor, in order) to a page and signs the next cursor.
    fn cursor_page(
        &self,
        caller: &Caller,
        fp: [u8; 8],
        mut rest: Vec<User>,
        want: usize,
        total: Option<u64>,
        now: Timestamp,
    ) -> Result<UserPage> {
        let more = rest.len() > want;
        rest.truncate(want);
        let next_cursor = match (more, rest.last()) {
            (true, Some(last)) => {
                Some(cursor::encode(&self.cursor_key, &caller.tenant, fp, CursorState { after: last.id }, now))
            }
            _ => None,
        };
        Ok(UserPage { users: rest, total, start_index: None, next_cursor })
    }

    async fn lookup(&self, tenant: &TenantId, lookups: &[Lookup]) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for l in lookups {
            let found = match l {
                Lookup::UserName(folded) => self.store.find_user_by_user_name(tenant, folded).await?,
                Lookup::ExternalId(e) => self.store.find_user_by_external_id(tenant, e).await?,
                Lookup::Id(id) => match UserId::parse(id) {
                    Some(uid) => self.store.get_user(tenant, &uid).await?,
                    None => None,
                },
            };
            out.extend(found);
        }
        Ok(out)
    }
}

/// Turns a store's refusal of a taken claim into a message for the client.
fn explain_uniqueness(e: Error, user: &User) -> Error {
    match e {
        Error::Taken(Taken::User(UniqueAttribute::ExternalId)) => Error::Uniqueness(format!(
            "another user of this tenant already has externalId {:?}",
            user.external_id.as_deref().unwrap_or("")
        )),
        Error::Taken(_) => Error::Uniqueness(format!(
            "a user with userName {:?} already exists (userName is compared case-insensitively)",
            user.user_name.as_str()
        )),
        other => other,
    }
}

/// A POST/PUT body: a JSON object whose `schemas`, if given, include the core User schema.
fn resource_body(body: &Value) -> Result<&serde_json::Map<String, Value>> {
    let Value::Object(o) = body else {
        return Err(Error::InvalidSyntax("the body must be a JSON object (a SCIM User)".into()));
    };
    if let Some((_, schemas)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) {
        let ok = schemas
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))));
        if !ok {
            return Err(Error::InvalidSyntax(format!("schemas must include {USER_SCHEMA:?}")));
        }
    }
    Ok(o)
}
