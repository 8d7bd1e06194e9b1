//! `TenantStore`: tenant records, with their domain and issuer claims moved in the same write.

use crate::codec::{from_json, read_json, to_json};
use crate::keys::{tenant_claim_key, TENANTS};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::claims::{ClaimDiff, TenantClaim};
use butterfly_core::email::EmailDomain;
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::TenantStore;
use butterfly_core::tenant::Tenant;
use butterfly_core::{Error, Result};
use redb::{ReadableTable, WriteTransaction};

/// Executes a tenant write's claim moves: each claim the tenant holds must be free or already
/// its own (written again), released ones are deleted.
fn move_tenant_claims(tx: &WriteTransaction, diff: &ClaimDiff<TenantClaim>, tenant: &TenantId) -> Result<()> {
    for claim in diff.add.iter().chain(&diff.keep) {
        let (table, key) = tenant_claim_key(claim);
        let mut t = tx.open_table(table).or_store_error()?;
        let owner = t.get(key).or_store_error()?.map(|v| v.value().to_string());
        if owner.is_some_and(|o| o != tenant.as_str()) {
            return Err(claim.taken());
        }
        t.insert(key, tenant.as_str()).or_store_error()?;
    }
    for claim in &diff.remove {
        let (table, key) = tenant_claim_key(claim);
        tx.open_table(table).or_store_error()?.remove(key).or_store_error()?;
    }
    Ok(())
}

impl EmbeddedStore {
    /// The tenant a claim names (one read transaction).
    async fn tenant_holding(&self, claim: TenantClaim) -> Result<Option<Tenant>> {
        self.read(move |tx| {
            let (table, key) = tenant_claim_key(&claim);
            let Some(id) = tx.open_table(table).or_store_error()?.get(key).or_store_error()? else { return Ok(None) };
            read_json(&tx.open_table(TENANTS).or_store_error()?, id.value())
        })
        .await
    }
}

#[async_trait]
impl TenantStore for EmbeddedStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let mut tenants = tx.open_table(TENANTS).or_store_error()?;
            if tenants.get(tenant.id.as_str()).or_store_error()?.is_some() {
                return Err(Error::Conflict(format!("tenant {} already exists", tenant.id)));
            }
            move_tenant_claims(tx, &ClaimDiff::between(None, Some(&tenant)), &tenant.id)?;
            tenants.insert(tenant.id.as_str(), to_json(&tenant)?.as_slice()).or_store_error()?;
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let id = id.clone();
        self.read(move |tx| read_json(&tx.open_table(TENANTS).or_store_error()?, id.as_str())).await
    }

    async fn replace_tenant(&self, previous: &Tenant, next: &Tenant) -> Result<()> {
        let (previous, next) = (previous.clone(), next.clone());
        self.write(move |tx| {
            let mut tenants = tx.open_table(TENANTS).or_store_error()?;
            let Some(stored) = read_json::<_, Tenant>(&tenants, previous.id.as_str())? else {
                return Err(Error::NotFound(format!("tenant {} does not exist", previous.id)));
            };
            if stored.version != previous.version {
                return Err(Error::PreconditionFailed("the tenant changed meanwhile".into()));
            }
            move_tenant_claims(tx, &ClaimDiff::between(Some(&previous), Some(&next)), &next.id)?;
            tenants.insert(next.id.as_str(), to_json(&next)?.as_slice()).or_store_error()?;
            Ok(())
        })
        .await
    }

    async fn find_tenant_by_domain(&self, domain: &EmailDomain) -> Result<Option<Tenant>> {
        self.tenant_holding(TenantClaim::Domain(domain.clone())).await
    }

    async fn find_tenant_by_issuer(&self, issuer: &str) -> Result<Option<Tenant>> {
        self.tenant_holding(TenantClaim::Issuer(issuer.to_string())).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.scan(|tx| {
            let t = tx.open_table(TENANTS).or_store_error()?;
            let mut out = Vec::new();
            for row in t.iter().or_store_error()? {
                let (_, v) = row.or_store_error()?;
                out.push(from_json::<Tenant>(v.value())?);
            }
            out.sort_by_key(|t: &Tenant| t.created);
            Ok(out)
        })
        .await
    }
}
