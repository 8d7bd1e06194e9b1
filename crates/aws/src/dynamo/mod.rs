//! The DynamoDB adapter: every store port over one table, following `docs/storage.md`.
//! Each port method on a request path is exactly one DynamoDB request.

use crate::errors::{classify, tx_failure, unless_condition_failed, TxFailure};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use butterfly_core::audit::AuditEvent;
use butterfly_core::clock::{Clock, SystemClock, Timestamp};
use butterfly_core::email::EmailDomain;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::{
    AuditStore, LoginStore, OnceStore, QuotaStore, SessionStore, TenantStore, TokenSlots, TokenStore, UserStore,
};
use butterfly_core::sso::{LoginTransaction, Session, Subject};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::{TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Item = HashMap<String, Av>;

const GSI1: &str = "gsi1";
/// A transaction that collides with another one on the same item is retried this often.
const TX_ATTEMPTS: u32 = 6;
/// `BatchGetItem` may leave keys unprocessed under load; they are asked for again this often.
const BATCH_ATTEMPTS: u32 = 4;

/// The DynamoDB store. Cheap to clone; build it once per Lambda instance.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
}

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(Av::S(v)) => Ok(v),
        _ => Err(Error::Store(format!("item without string attribute {name}"))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<Option<i64>> {
    match item.get(name) {
        Some(Av::N(v)) => v.parse().map(Some).map_err(|_| Error::Store(format!("bad number in {name}"))),
        None => Ok(None),
        _ => Err(Error::Store(format!("attribute {name} is not a number"))),
    }
}

fn body<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T> {
    serde_json::from_str(get_s(item, "body")?).map_err(|e| Error::Store(format!("corrupt item body: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Store(e.to_string()))
}

fn token_pk(h: &TokenHash) -> String {
    format!("SCIMTOKEN#{}", h.to_hex())
}
fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}
fn user_pk(id: &UserId) -> String {
    format!("USER#{id}")
}
fn users_gsi(t: &TenantId) -> String {
    format!("TENANT#{t}#USERS")
}
fn uname_pk(t: &TenantId, folded: &str) -> String {
    format!("TENANT#{t}#UN#{folded}")
}
fn ext_pk(t: &TenantId, e: &str) -> String {
    format!("TENANT#{t}#EXT#{e}")
}
fn sub_pk(t: &TenantId, s: &Subject) -> String {
    format!("TENANT#{t}#SUB#{}#{}", s.issuer, s.sub)
}
fn domain_pk(d: &str) -> String {
    format!("DOMAIN#{d}")
}
fn issuer_pk(i: &str) -> String {
    format!("ISSUER#{i}")
}
fn session_pk(h: &TokenHash) -> String {
    format!("SESSION#{}", h.to_hex())
}
fn user_sessions_pk(t: &TenantId, u: &UserId) -> String {
    format!("TENANT#{t}#USER#{u}#SESSIONS")
}
fn sid_sessions_pk(issuer: &str, sid: &str) -> String {
    format!("SID#{issuer}#{sid}")
}
fn issuer_sessions_pk(t: &TenantId, issuer: &str) -> String {
    format!("TENANT#{t}#ISS#{issuer}#SESSIONS")
}
fn login_pk(h: &TokenHash) -> String {
    format!("LOGIN#{}", h.to_hex())
}
/// DynamoDB's TTL attribute (seconds) for an expiry in milliseconds.
fn ttl(at: Timestamp) -> Av {
    n(at.millis().div_euclid(1000) + 1)
}

fn audit_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#AUDIT")
}

fn audit_item(e: &AuditEvent) -> Result<Item> {
    let mut it = key(audit_pk(&e.tenant), &e.id);
    it.insert("body".into(), s(json(e)?));
    it.insert("expires_at".into(), ttl(e.expires));
    Ok(it)
}

fn tenant_item(t: &Tenant) -> Result<Item> {
    let mut it = key(tenant_pk(&t.id), "TENANT");
    it.insert("body".into(), s(json(t)?));
    it.insert("version".into(), n(t.version));
    it.insert("gsi1pk".into(), s("TENANTS"));
    it.insert("gsi1sk".into(), s(format!("{:020}#{}", t.created.millis(), t.id)));
    Ok(it)
}

fn user_item(u: &User) -> Result<Item> {
    let mut it = key(user_pk(&u.id), "USER");
    it.insert("tenant".into(), s(u.tenant.as_str()));
    it.insert("version".into(), n(u.version));
    it.insert("body".into(), s(json(u)?));
    it.insert("gsi1pk".into(), s(users_gsi(&u.tenant)));
    it.insert("gsi1sk".into(), s(u.id.to_string()));
    Ok(it)
}

fn claim_item(pk: String, u: &User) -> Result<Item> {
    let mut it = key(pk, "CLAIM");
    it.insert("user".into(), s(u.id.to_string()));
    it.insert("body".into(), s(json(u)?));
    Ok(it)
}

fn token_item(r: &TokenRecord) -> Item {
    let mut it = key(token_pk(&r.hash), "SCIMTOKEN");
    it.insert("tenant".into(), s(r.tenant.as_str()));
    it.insert("display_prefix".into(), s(r.display_prefix.clone()));
    it.insert("created".into(), n(r.created.millis()));
    if let Some(t) = r.last_used {
        it.insert("last_used".into(), n(t.millis()));
    }
    if let Some(t) = r.expires {
        it.insert("token_expires".into(), n(t.millis()));
        it.insert("expires_at".into(), ttl(t));
    }
    if let Some(h) = &r.replaces {
        it.insert("replaces".into(), s(h.to_hex()));
    }
    it
}

fn parse_token(hash: TokenHash, it: &Item) -> Result<TokenRecord> {
    Ok(TokenRecord {
        hash,
        tenant: TenantId::parse(get_s(it, "tenant")?).ok_or_else(|| Error::Store("bad tenant id".into()))?,
        display_prefix: get_s(it, "display_prefix")?.to_string(),
        created: Timestamp(get_n(it, "created")?.unwrap_or(0)),
        last_used: get_n(it, "last_used")?.map(Timestamp),
        expires: get_n(it, "token_expires")?.map(Timestamp),
        replaces: match it.get("replaces") {
            Some(Av::S(h)) => Some(TokenHash::from_hex(h).ok_or_else(|| Error::Store("bad token hash".into()))?),
            _ => None,
        },
    })
}

/// A user read from an item, if it belongs to `tenant`.
fn user_of(it: &Item, tenant: &TenantId) -> Result<Option<User>> {
    let u: User = body(it)?;
    Ok((&u.tenant == tenant).then_some(u))
}

fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: &[(&str, Av)],
    names: &[(&str, &str)],
) -> Result<TransactWriteItem> {
    let mut p = Put::builder().table_name(table).set_item(Some(item));
    if let Some(c) = condition {
        p = p.condition_expression(c);
    }
    for (k, v) in values {
        p = p.expression_attribute_values(*k, v.clone());
    }
    for (k, v) in names {
        p = p.expression_attribute_names(*k, *v);
    }
    Ok(TransactWriteItem::builder().put(p.build().map_err(|e| Error::Store(e.to_string()))?).build())
}

fn delete(
    table: &str,
    k: Item,
    condition: Option<&str>,
    values: &[(&str, Av)],
    names: &[(&str, &str)],
) -> Result<TransactWriteItem> {
    let mut d = Delete::builder().table_name(table).set_key(Some(k));
    if let Some(c) = condition {
        d = d.condition_expression(c);
    }
    for (k, v) in values {
        d = d.expression_attribute_values(*k, v.clone());
    }
    for (k, v) in names {
        d = d.expression_attribute_names(*k, *v);
    }
    Ok(TransactWriteItem::builder().delete(d.build().map_err(|e| Error::Store(e.to_string()))?).build())
}

/// The refusal of a write that would leave a tenant without an active super_admin.
pub const LAST_SUPER_ADMIN: &str = "this is the last super_admin: make someone else super_admin first";

/// The change to a tenant's counts (`n` users, `sa` active super_admins) in a user write.
/// With `keep_a_super_admin`, a decrement of `sa` is conditional on another one remaining.
fn add_count(
    table: &str,
    tenant: &TenantId,
    users: i64,
    super_admins: i64,
    keep_a_super_admin: bool,
) -> Result<TransactWriteItem> {
    let mut u = Update::builder()
        .table_name(table)
        .set_key(Some(key(tenant_pk(tenant), "USERCOUNT")))
        .update_expression("ADD n :by, sa :sa")
        .expression_attribute_values(":by", n(users))
        .expression_attribute_values(":sa", n(super_admins));
    if keep_a_super_admin && super_admins < 0 {
        u = u.condition_expression("sa > :one").expression_attribute_values(":one", n(1));
    }
    let u = u.build().map_err(|e| Error::Store(e.to_string()))?;
    Ok(TransactWriteItem::builder().update(u).build())
}

/// +1, 0 or -1: how a write from `before` to `after` changes the tenant's active super_admins.
fn super_admin_delta(before: Option<&User>, after: Option<&User>) -> i64 {
    i64::from(after.is_some_and(User::counts_as_super_admin))
        - i64::from(before.is_some_and(User::counts_as_super_admin))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table as `template.yaml` declares it (for local and test setups; in AWS the
    /// stack creates it) and turns on TTL.
    pub async fn create_table(&self) -> Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let ks = |name: &str, kt: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kt).build();
        let err = |e: aws_sdk_dynamodb::error::BuildError| Error::Store(e.to_string());
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(ks("gsi1pk", KeyType::Hash).map_err(err)?)
            .key_schema(ks("gsi1sk", KeyType::Range).map_err(err)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(err)?;
        self.client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(err)?)
            .attribute_definitions(attr("sk").map_err(err)?)
            .attribute_definitions(attr("gsi1pk").map_err(err)?)
            .attribute_definitions(attr("gsi1sk").map_err(err)?)
            .key_schema(ks("pk", KeyType::Hash).map_err(err)?)
            .key_schema(ks("sk", KeyType::Range).map_err(err)?)
            .global_secondary_indexes(gsi)
            .send()
            .await
            .map_err(|e| classify("CreateTable", e))?;
        self.client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().map_err(err)?,
            )
            .send()
            .await
            .map_err(|e| classify("UpdateTimeToLive", e))?;
        Ok(())
    }

    /// Opens a TLS connection to DynamoDB ahead of the first request (Lambda init).
    /// A cheap read of a key that never exists; failures are only logged.
    pub async fn warm_up(&self) {
        let r = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key("WARMUP".into(), "WARMUP")))
            .send()
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %classify("GetItem", e), "DynamoDB warm-up request failed");
        }
    }

    async fn get(&self, op_key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(op_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item)
    }

    /// Runs a transaction, retrying when it collides with another transaction on an item.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> std::result::Result<(), TxFailure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) => match tx_failure(e) {
                    TxFailure::Conflict if attempt < TX_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt * attempt))).await;
                    }
                    TxFailure::Conflict => {
                        return Err(TxFailure::Other(Error::Unavailable {
                            message: "concurrent writes to the same user; retry".into(),
                            retry_after_secs: 1,
                        }))
                    }
                    other => return Err(other),
                },
            }
        }
    }

    fn now() -> Timestamp {
        SystemClock.now()
    }

    /// A tenant through a claim item (domain or issuer) that names it.
    async fn tenant_via(&self, claim: Item) -> Result<Option<Tenant>> {
        let Some(c) = self.get(claim).await? else { return Ok(None) };
        let id = TenantId::parse(get_s(&c, "tenant")?).ok_or_else(|| Error::Store("bad tenant id".into()))?;
        self.get_tenant(&id).await
    }

    /// Deletes items in batches of 25, asking again for unprocessed ones.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<()> {
        for chunk in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| Error::Store(e.to_string()))
                })
                .collect::<Result<_>>()?;
            for attempt in 1..=BATCH_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table.as_ref(), requests.clone())
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", e))?;
                match out.unprocessed_items.and_then(|mut u| u.remove(self.table.as_ref())) {
                    Some(rest) if !rest.is_empty() && attempt < BATCH_ATTEMPTS => {
                        requests = rest;
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    }
                    Some(rest) if !rest.is_empty() => {
                        return Err(Error::Unavailable {
                            message: "DynamoDB left deletes unprocessed".into(),
                            retry_after_secs: 1,
                        })
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Replaces a user in one transaction: version condition, claim moves, the tenant's
    /// super_admin count (its decrement conditional with `keep_a_super_admin`), the audit event.
    async fn replace_user_tx(
        &self,
        previous: &User,
        next: &User,
        audit: Option<&AuditEvent>,
        keep_a_super_admin: bool,
    ) -> Result<()> {
        let t = &self.table;
        let tenant = &next.tenant;
        let prev_version = [(":v", n(previous.version))];
        let mine = [(":me", s(next.id.to_string()))];
        let user_attr = [("#u", "user")];
        // Index 0 is the user; remember which index claims which attribute.
        let mut items = vec![put(t, user_item(next)?, Some("version = :v"), &prev_version, &[])?];
        let mut claims: Vec<&'static str> = vec!["user"];
        let moves = [
            (
                "userName",
                Some(uname_pk(tenant, previous.user_name.folded())),
                Some(uname_pk(tenant, next.user_name.folded())),
            ),
            (
                "externalId",
                previous.external_id.as_deref().map(|e| ext_pk(tenant, e)),
                next.external_id.as_deref().map(|e| ext_pk(tenant, e)),
            ),
            (
                "subject",
                previous.subject.as_ref().map(|x| sub_pk(tenant, x)),
                next.subject.as_ref().map(|x| sub_pk(tenant, x)),
            ),
        ];
        for (attr, old, new) in moves {
            match (old, new) {
                (Some(o), Some(n)) if o == n => {
                    // Same claim: refresh its copy of the user; it must still be ours.
                    items.push(put(t, claim_item(n, next)?, Some("#u = :me"), &mine, &user_attr)?);
                    claims.push(attr);
                }
                (old, new) => {
                    if let Some(n) = new {
                        items.push(put(t, claim_item(n, next)?, Some("attribute_not_exists(pk)"), &[], &[])?);
                        claims.push(attr);
                    }
                    if let Some(o) = old {
                        items.push(delete(t, key(o, "CLAIM"), Some("#u = :me"), &mine, &user_attr)?);
                        claims.push("stale");
                    }
                }
            }
        }
        let delta = super_admin_delta(Some(previous), Some(next));
        if delta != 0 || keep_a_super_admin {
            items.push(add_count(t, tenant, 0, delta, keep_a_super_admin)?);
            claims.push("superAdmins");
        }
        if let Some(a) = audit {
            items.push(put(t, audit_item(a)?, None, &[], &[])?);
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match claims.get(i).copied() {
                Some("userName") => Error::Uniqueness("userName".into()),
                Some("externalId") => Error::Uniqueness("externalId".into()),
                Some("subject") => Error::Uniqueness("subject".into()),
                Some("superAdmins") => Error::Conflict(LAST_SUPER_ADMIN.into()),
                _ => Error::PreconditionFailed("version changed".into()),
            })
        })
    }

    /// Deletes the sessions listed under an index partition (strongly consistent query), with
    /// their other index items.
    async fn delete_indexed_sessions(&self, index_pk: String) -> Result<u32> {
        let mut keys = Vec::new();
        let mut count = 0u32;
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(index_pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for it in r.items() {
                let hex = get_s(it, "sk")?;
                let hash = TokenHash::from_hex(hex).ok_or_else(|| Error::Store("bad session index".into()))?;
                keys.push(key(session_pk(&hash), "SESSION"));
                for other in ["user_idx_pk", "sid_pk", "iss_idx_pk"] {
                    if let Ok(pk) = get_s(it, other) {
                        keys.push(key(pk.to_string(), hex));
                    }
                }
                keys.push(key(index_pk.clone(), hex));
                count += 1;
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        self.batch_delete(keys).await?;
        Ok(count)
    }
}

/// The condition that the tenant's token pointer still names exactly `slots`.
fn slots_condition(slots: &TokenSlots) -> (String, Vec<(&'static str, Av)>) {
    let mut values = vec![(":cur", s(slots.current.to_hex()))];
    let cond = match &slots.previous {
        Some(p) => {
            values.push((":prev", s(p.to_hex())));
            "#h = :cur AND previous = :prev".to_string()
        }
        None => "#h = :cur AND attribute_not_exists(previous)".to_string(),
    };
    (cond, values)
}

fn tx_err(f: TxFailure, on_condition: impl Fn(usize) -> Error) -> Error {
    match f {
        TxFailure::Condition(i) => on_condition(i),
        TxFailure::Conflict => Error::Unavailable { message: "transaction conflict".into(), retry_after_secs: 1 },
        TxFailure::Other(e) => e,
    }
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let t = &self.table;
        let mut items = vec![put(t, tenant_item(tenant)?, Some("attribute_not_exists(pk)"), &[], &[])?];
        for d in &tenant.domains {
            let mut it = key(domain_pk(d.as_str()), "DOMAIN");
            it.insert("tenant".into(), s(tenant.id.as_str()));
            items.push(put(t, it, Some("attribute_not_exists(pk)"), &[], &[])?);
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match i {
                0 => Error::Conflict(format!("tenant {} already exists", tenant.id)),
                i => Error::Uniqueness(format!(
                    "the domain {} is already verified by another Butterfly organisation",
                    tenant.domains.get(i - 1).map(|d| d.as_str()).unwrap_or("?")
                )),
            })
        })
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        match self.get(key(tenant_pk(id), "TENANT")).await? {
            Some(it) => Ok(Some(body(&it)?)),
            None => Ok(None),
        }
    }

    async fn replace_tenant(&self, previous: &Tenant, next: &Tenant) -> Result<()> {
        let t = &self.table;
        let me = [(":me", s(next.id.as_str()))];
        // Items written before tenants had versions carry none.
        let mut items = vec![put(
            t,
            tenant_item(next)?,
            Some("attribute_exists(pk) AND (version = :v OR attribute_not_exists(version))"),
            &[(":v", n(previous.version))],
            &[],
        )?];
        let mut labels: Vec<String> = vec![String::new()];
        let free_or_mine = Some("attribute_not_exists(pk) OR tenant = :me");
        for d in &next.domains {
            let mut it = key(domain_pk(d.as_str()), "DOMAIN");
            it.insert("tenant".into(), s(next.id.as_str()));
            items.push(put(t, it, free_or_mine, &me, &[])?);
            labels.push(format!("the domain {d} is already verified by another Butterfly organisation"));
        }
        for d in previous.domains.iter().filter(|d| !next.domains.contains(d)) {
            items.push(delete(t, key(domain_pk(d.as_str()), "DOMAIN"), Some("tenant = :me"), &me, &[])?);
            labels.push(String::new());
        }
        let old_iss = previous.claimed_issuer().map(|i| i.as_str());
        let new_iss = next.claimed_issuer().map(|i| i.as_str());
        if old_iss != new_iss {
            if let Some(i) = new_iss {
                let mut it = key(issuer_pk(i), "ISSUER");
                it.insert("tenant".into(), s(next.id.as_str()));
                items.push(put(t, it, free_or_mine, &me, &[])?);
                labels.push(format!("the issuer {i} is already connected to another Butterfly organisation"));
            }
            if let Some(i) = old_iss {
                items.push(delete(t, key(issuer_pk(i), "ISSUER"), Some("tenant = :me"), &me, &[])?);
                labels.push(String::new());
            }
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match labels.get(i).filter(|l| !l.is_empty()) {
                Some(l) => Error::Uniqueness(l.clone()),
                None => Error::PreconditionFailed("the tenant changed meanwhile".into()),
            })
        })
    }

    async fn find_tenant_by_domain(&self, domain: &EmailDomain) -> Result<Option<Tenant>> {
        self.tenant_via(key(domain_pk(domain.as_str()), "DOMAIN")).await
    }

    async fn find_tenant_by_issuer(&self, issuer: &str) -> Result<Option<Tenant>> {
        self.tenant_via(key(issuer_pk(issuer), "ISSUER")).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :p")
                .expression_attribute_values(":p", s("TENANTS"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for it in r.items() {
                out.push(body(it)?);
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn resolve_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        match self.get(key(token_pk(hash), "SCIMTOKEN")).await? {
            Some(it) => Ok(Some(parse_token(*hash, &it)?)),
            None => Ok(None),
        }
    }

    async fn token_slots(&self, tenant: &TenantId) -> Result<Option<TokenSlots>> {
        let Some(ptr) = self.get(key(tenant_pk(tenant), "SCIMTOKEN")).await? else { return Ok(None) };
        let hash = |name: &str| -> Result<TokenHash> {
            TokenHash::from_hex(get_s(&ptr, name)?).ok_or_else(|| Error::Store("bad token hash".into()))
        };
        let previous = if ptr.contains_key("previous") { Some(hash("previous")?) } else { None };
        Ok(Some(TokenSlots { current: hash("hash")?, previous }))
    }

    async fn install_token(&self, new: &TokenRecord, expected: Option<&TokenSlots>) -> Result<()> {
        let t = &self.table;
        let mut ptr = key(tenant_pk(&new.tenant), "SCIMTOKEN");
        ptr.insert("hash".into(), s(new.hash.to_hex()));
        let mut items = vec![put(t, token_item(new), Some("attribute_not_exists(pk)"), &[], &[])?];
        match expected {
            None => items.push(put(t, ptr, Some("attribute_not_exists(pk)"), &[], &[])?),
            Some(slots) => {
                let (cond, values) = slots_condition(slots);
                items.push(put(t, ptr, Some(&cond), &values, &[("#h", "hash")])?);
                // Every live token of the tenant stops working in this write.
                items.push(delete(t, key(token_pk(&slots.current), "SCIMTOKEN"), None, &[], &[])?);
                if let Some(p) = &slots.previous {
                    items.push(delete(t, key(token_pk(p), "SCIMTOKEN"), None, &[], &[])?);
                }
            }
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match (i, expected) {
                (1, None) => Error::Conflict("the tenant already has a SCIM token".into()),
                (1, Some(_)) => Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into()),
                _ => Error::Conflict("a token with this hash exists".into()),
            })
        })
    }

    async fn install_token_with_overlap(
        &self,
        new: &TokenRecord,
        expected: &TokenSlots,
        old_expires: Timestamp,
    ) -> Result<()> {
        let t = &self.table;
        let old = &expected.current;
        let mut ptr = key(tenant_pk(&new.tenant), "SCIMTOKEN");
        ptr.insert("hash".into(), s(new.hash.to_hex()));
        ptr.insert("previous".into(), s(old.to_hex()));
        let deadline = Update::builder()
            .table_name(t.as_ref())
            .set_key(Some(key(token_pk(old), "SCIMTOKEN")))
            .update_expression("SET token_expires = :e, expires_at = :ttl")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(token_expires) OR token_expires > :e)",
            )
            .expression_attribute_values(":e", n(old_expires.millis()))
            .expression_attribute_values(":ttl", ttl(old_expires))
            .build()
            .map_err(|e| Error::Store(e.to_string()))?;
        let (cond, values) = slots_condition(expected);
        let mut items = vec![
            put(t, token_item(new), Some("attribute_not_exists(pk)"), &[], &[])?,
            put(t, ptr, Some(&cond), &values, &[("#h", "hash")])?,
            TransactWriteItem::builder().update(deadline).build(),
        ];
        // The token the current one overlapped stops working now: two live tokens at most.
        if let Some(p) = &expected.previous {
            items.push(delete(t, key(token_pk(p), "SCIMTOKEN"), None, &[], &[])?);
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match i {
                0 => Error::Conflict("a token with this hash exists".into()),
                _ => Error::Conflict("the tenant's SCIM token changed meanwhile; retry".into()),
            })
        })
    }

    async fn retire_previous(&self, tenant: &TenantId, current: &TokenHash, previous: &TokenHash) -> Result<()> {
        let t = &self.table;
        let forget = Update::builder()
            .table_name(t.as_ref())
            .set_key(Some(key(tenant_pk(tenant), "SCIMTOKEN")))
            .update_expression("REMOVE previous")
            .condition_expression("#h = :cur AND previous = :prev")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":cur", s(current.to_hex()))
            .expression_attribute_values(":prev", s(previous.to_hex()))
            .build()
            .map_err(|e| Error::Store(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().update(forget).build(),
            delete(t, key(token_pk(previous), "SCIMTOKEN"), None, &[], &[])?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            // Retired already, or the pointer moved on (a rotation removed it): nothing to do.
            Err(f) => match tx_err(f, |_| Error::Conflict(String::new())) {
                Error::Conflict(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn record_token_use(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(token_pk(hash), "SCIMTOKEN")))
            .update_expression("SET last_used = :t")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(last_used) OR last_used < :t)")
            .expression_attribute_values(":t", n(at.millis()))
            .send()
            .await;
        // Rotated away meanwhile, or a newer use is already recorded.
        unless_condition_failed("UpdateItem", r)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn resolve_token_and_get_user(
        &self,
        hash: &TokenHash,
        id: &UserId,
    ) -> Result<(Option<TokenRecord>, Option<User>)> {
        let (tk, uk) = (token_pk(hash), user_pk(id));
        let mut keys = vec![key(tk.clone(), "SCIMTOKEN"), key(uk.clone(), "USER")];
        let mut found: Vec<Item> = Vec::new();
        for attempt in 1..=BATCH_ATTEMPTS {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(keys.clone()))
                .consistent_read(true)
                .build()
                .map_err(|e| Error::Store(e.to_string()))?;
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
        let pk_of = |it: &Item| get_s(it, "pk").map(str::to_string).unwrap_or_default();
        let token = match found.iter().find(|it| pk_of(it) == tk) {
            Some(it) => Some(parse_token(*hash, it)?),
            None => None,
        };
        let user = match (found.iter().find(|it| pk_of(it) == uk), &token) {
            (Some(it), Some(t)) => user_of(it, &t.tenant)?,
            _ => None,
        };
        Ok((token, user))
    }

    async fn create_user_with(&self, user: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let t = &self.table;
        let absent = Some("attribute_not_exists(pk)");
        let mut items = vec![
            put(t, user_item(user)?, absent, &[], &[])?,
            put(t, claim_item(uname_pk(&user.tenant, user.user_name.folded()), user)?, absent, &[], &[])?,
        ];
        let mut labels = vec!["id", "userName"];
        if let Some(e) = &user.external_id {
            items.push(put(t, claim_item(ext_pk(&user.tenant, e), user)?, absent, &[], &[])?);
            labels.push("externalId");
        }
        if let Some(sub) = &user.subject {
            items.push(put(t, claim_item(sub_pk(&user.tenant, sub), user)?, absent, &[], &[])?);
            labels.push("subject");
        }
        items.push(add_count(t, &user.tenant, 1, super_admin_delta(None, Some(user)), false)?);
        if let Some(a) = audit {
            items.push(put(t, audit_item(a)?, None, &[], &[])?);
        }
        self.transact(items).await.map_err(|f| {
            tx_err(f, |i| match labels.get(i).copied() {
                Some("id") => Error::Conflict("a user with this id already exists".into()),
                Some(attr) => Error::Uniqueness(attr.into()),
                None => Error::Store("unexpected transaction failure".into()),
            })
        })
    }

    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        match self.get(key(user_pk(id), "USER")).await? {
            Some(it) => user_of(&it, tenant),
            None => Ok(None),
        }
    }

    async fn find_user_by_user_name(&self, tenant: &TenantId, folded: &str) -> Result<Option<User>> {
        match self.get(key(uname_pk(tenant, folded), "CLAIM")).await? {
            Some(it) => user_of(&it, tenant),
            None => Ok(None),
        }
    }

    async fn find_user_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<User>> {
        match self.get(key(ext_pk(tenant, external_id), "CLAIM")).await? {
            Some(it) => user_of(&it, tenant),
            None => Ok(None),
        }
    }

    async fn find_user_by_subject(&self, tenant: &TenantId, subject: &Subject) -> Result<Option<User>> {
        match self.get(key(sub_pk(tenant, subject), "CLAIM")).await? {
            Some(it) => user_of(&it, tenant),
            None => Ok(None),
        }
    }

    async fn replace_user_with(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_tx(previous, next, audit, false).await
    }

    async fn replace_user_guarded(&self, previous: &User, next: &User, audit: Option<&AuditEvent>) -> Result<()> {
        self.replace_user_tx(previous, next, audit, true).await
    }

    async fn delete_user_with(&self, previous: &User, audit: Option<&AuditEvent>) -> Result<()> {
        let t = &self.table;
        let mine = [(":me", s(previous.id.to_string()))];
        let user_attr = [("#u", "user")];
        let mut items = vec![
            delete(t, key(user_pk(&previous.id), "USER"), Some("version = :v"), &[(":v", n(previous.version))], &[])?,
            delete(
                t,
                key(uname_pk(&previous.tenant, previous.user_name.folded()), "CLAIM"),
                Some("#u = :me"),
                &mine,
                &user_attr,
            )?,
        ];
        if let Some(e) = &previous.external_id {
            items.push(delete(t, key(ext_pk(&previous.tenant, e), "CLAIM"), Some("#u = :me"), &mine, &user_attr)?);
        }
        if let Some(x) = &previous.subject {
            items.push(delete(t, key(sub_pk(&previous.tenant, x), "CLAIM"), Some("#u = :me"), &mine, &user_attr)?);
        }
        items.push(add_count(t, &previous.tenant, -1, super_admin_delta(Some(previous), None), false)?);
        if let Some(a) = audit {
            items.push(put(t, audit_item(a)?, None, &[], &[])?);
        }
        self.transact(items).await.map_err(|f| tx_err(f, |_| Error::PreconditionFailed("version changed".into())))
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
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let want = (limit - out.len()) as u64 + to_skip;
            let mut q = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .expression_attribute_values(":p", s(users_gsi(tenant)))
                .limit(want.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(a) => q
                    .key_condition_expression("gsi1pk = :p AND gsi1sk > :a")
                    .expression_attribute_values(":a", s(a.to_string())),
                None => q.key_condition_expression("gsi1pk = :p"),
            };
            let r = q.send().await.map_err(|e| classify("Query", e))?;
            for it in r.items() {
                if to_skip > 0 {
                    to_skip -= 1;
                    continue;
                }
                if out.len() < limit {
                    if let Some(u) = user_of(it, tenant)? {
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
        match self.get(key(tenant_pk(tenant), "USERCOUNT")).await? {
            Some(it) => Ok(get_n(&it, "n")?.unwrap_or(0).max(0) as u64),
            None => Ok(0),
        }
    }
}

#[async_trait]
impl OnceStore for DynamoStore {
    async fn claim_once(&self, scope: &str, k: &str, expires_at: Timestamp) -> Result<bool> {
        let mut it = key(format!("ONCE#{scope}#{k}"), "ONCE");
        // TTL works in seconds; reads compare milliseconds.
        it.insert("expires_at".into(), n(expires_at.millis().div_euclid(1000) + 1));
        it.insert("expires_ms".into(), n(expires_at.millis()));
        let r = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(it))
            // Absent, or present but expired (DynamoDB deletes expired items only eventually).
            .condition_expression("attribute_not_exists(pk) OR expires_ms <= :now")
            .expression_attribute_values(":now", n(Self::now().millis()))
            .send()
            .await;
        Ok(unless_condition_failed("PutItem", r)?.is_some())
    }
}

#[async_trait]
impl QuotaStore for DynamoStore {
    async fn take_quota(
        &self,
        k: &str,
        window_start: Timestamp,
        window_secs: i64,
        want: u32,
        limit: u32,
    ) -> Result<u32> {
        if want == 0 || want > limit {
            return Ok(0);
        }
        // One counter item per key and window, gone (TTL) a minute after the window ends.
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(format!("QUOTA#{k}#{}", window_start.millis()), "QUOTA")))
            .update_expression("ADD n :want SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(n) OR n <= :max")
            .expression_attribute_values(":want", n(want))
            .expression_attribute_values(":max", n(limit - want))
            .expression_attribute_values(":ttl", ttl(window_start.plus_secs(window_secs + 60)))
            .send()
            .await;
        Ok(if unless_condition_failed("UpdateItem", r)?.is_some() { want } else { 0 })
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let t = &self.table;
        let hex = session.hash.to_hex();
        let expires = ttl(session.expires);
        let user_idx = user_sessions_pk(&session.tenant, &session.user);
        let iss_idx = issuer_sessions_pk(&session.tenant, &session.issuer);
        let sid_idx = session.sid.as_deref().map(|sid| sid_sessions_pk(&session.issuer, sid));
        let mut main = key(session_pk(&session.hash), "SESSION");
        main.insert("body".into(), s(json(session)?));
        main.insert("user".into(), s(session.user.to_string()));
        main.insert("last_seen".into(), n(session.last_seen.millis()));
        main.insert("expires_at".into(), expires.clone());
        // Each index item names the others, so deleting through any index removes them all.
        let mut by_user = key(user_idx.clone(), &hex);
        by_user.insert("expires_at".into(), expires.clone());
        by_user.insert("iss_idx_pk".into(), s(iss_idx.clone()));
        let mut by_iss = key(iss_idx.clone(), &hex);
        by_iss.insert("expires_at".into(), expires.clone());
        by_iss.insert("user_idx_pk".into(), s(user_idx.clone()));
        let mut items = vec![put(t, main, Some("attribute_not_exists(pk)"), &[], &[])?];
        if let Some(sp) = &sid_idx {
            by_user.insert("sid_pk".into(), s(sp.clone()));
            by_iss.insert("sid_pk".into(), s(sp.clone()));
            let mut by_sid = key(sp.clone(), &hex);
            by_sid.insert("user_idx_pk".into(), s(user_idx.clone()));
            by_sid.insert("iss_idx_pk".into(), s(iss_idx.clone()));
            by_sid.insert("expires_at".into(), expires.clone());
            items.push(put(t, by_sid, None, &[], &[])?);
        }
        items.push(put(t, by_user, None, &[], &[])?);
        items.push(put(t, by_iss, None, &[], &[])?);
        self.transact(items).await.map_err(|f| tx_err(f, |_| Error::Conflict("a session with this id exists".into())))
    }

    async fn session_with_user(&self, hash: &TokenHash) -> Result<Option<(Session, Option<User>)>> {
        let Some(it) = self.get(key(session_pk(hash), "SESSION")).await? else { return Ok(None) };
        let mut session: Session = body(&it)?;
        if let Some(t) = get_n(&it, "last_seen")? {
            session.last_seen = session.last_seen.max(Timestamp(t));
        }
        let user = self.get_user(&session.tenant, &session.user).await?;
        Ok(Some((session, user)))
    }

    async fn touch_session(&self, hash: &TokenHash, at: Timestamp) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(session_pk(hash), "SESSION")))
            .update_expression("SET last_seen = :t")
            .condition_expression("attribute_exists(pk) AND last_seen < :t")
            .expression_attribute_values(":t", n(at.millis()))
            .send()
            .await;
        // Ended meanwhile, or a later use is recorded.
        unless_condition_failed("UpdateItem", r)?;
        Ok(())
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(session_pk(hash), "SESSION")))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = unless_condition_failed("DeleteItem", out)?.and_then(|o| o.attributes).filter(|a| !a.is_empty());
        let Some(old) = old else { return Ok(false) };
        let session: Session = body(&old)?;
        let hex = hash.to_hex();
        let mut keys = vec![
            key(user_sessions_pk(&session.tenant, &session.user), &hex),
            key(issuer_sessions_pk(&session.tenant, &session.issuer), &hex),
        ];
        if let Some(sid) = &session.sid {
            keys.push(key(sid_sessions_pk(&session.issuer, sid), &hex));
        }
        self.batch_delete(keys).await?;
        Ok(true)
    }

    async fn delete_user_sessions(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        self.delete_indexed_sessions(user_sessions_pk(tenant, user)).await
    }

    async fn delete_sid_sessions(&self, issuer: &str, sid: &str) -> Result<u32> {
        self.delete_indexed_sessions(sid_sessions_pk(issuer, sid)).await
    }

    async fn delete_issuer_sessions(&self, tenant: &TenantId, issuer: &str) -> Result<u32> {
        self.delete_indexed_sessions(issuer_sessions_pk(tenant, issuer)).await
    }
}

#[async_trait]
impl LoginStore for DynamoStore {
    async fn put_login(&self, login: &LoginTransaction) -> Result<()> {
        let mut it = key(login_pk(&login.state_hash), "LOGIN");
        it.insert("body".into(), s(json(login)?));
        it.insert("expires_at".into(), ttl(login.expires));
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(it))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn take_login(&self, state_hash: &TokenHash) -> Result<Option<LoginTransaction>> {
        let out = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key(login_pk(state_hash), "LOGIN")))
            // The condition makes concurrent takes serialise: exactly one sees the item.
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match unless_condition_failed("DeleteItem", out)?.and_then(|o| o.attributes).filter(|a| !a.is_empty()) {
            Some(it) => Ok(Some(body(&it)?)),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(audit_item(event)?))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn audit_page(&self, tenant: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let now = Self::now();
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let mut q = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .expression_attribute_values(":p", s(audit_pk(tenant)))
                .scan_index_forward(false)
                .limit((limit - out.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match before {
                Some(b) => q.key_condition_expression("pk = :p AND sk < :b").expression_attribute_values(":b", s(b)),
                None => q.key_condition_expression("pk = :p"),
            };
            let r = q.send().await.map_err(|e| classify("Query", e))?;
            for it in r.items() {
                let e: AuditEvent = body(it)?;
                if e.expires > now && out.len() < limit {
                    out.push(e);
                }
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }
}
