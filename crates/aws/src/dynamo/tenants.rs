//! `TenantStore`: tenant items, with their domain and issuer claims moved in the same
//! transaction.

use super::items::{number_attr, read_body, read_tenant_id, string_attr, tenant_item};
use super::keys::{primary_key, tenant_claim_key, tenant_pk, GSI1, TENANTS_GSI, TENANT_SK};
use super::transaction::{Condition, Transaction};
use super::DynamoStore;
use async_trait::async_trait;
use butterfly_core::claims::{ClaimDiff, TenantClaim};
use butterfly_core::email::EmailDomain;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::TenantStore;
use butterfly_core::tenant::Tenant;
use butterfly_core::{Error, Result};

impl DynamoStore {
    /// A tenant through the claim that names it (two reads; sign-in start only).
    async fn tenant_holding(&self, claim: &TenantClaim) -> Result<Option<Tenant>> {
        let Some(c) = self.get_item(tenant_claim_key(claim)).await? else { return Ok(None) };
        self.get_tenant(&read_tenant_id(&c, "tenant")?).await
    }
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        let exists = Error::Conflict(format!("tenant {} already exists", tenant.id));
        tx.put(tenant_item(tenant)?, Condition::absent(), exists.clone())?;
        tx.move_tenant_claims(&ClaimDiff::between(None, Some(tenant)), &tenant.id, &exists)?;
        self.commit(tx).await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        match self.get_item(primary_key(tenant_pk(id), TENANT_SK)).await? {
            Some(it) => Ok(Some(read_body(&it)?)),
            None => Ok(None),
        }
    }

    async fn replace_tenant(&self, previous: &Tenant, next: &Tenant) -> Result<()> {
        let mut tx = Transaction::new(&self.table);
        let changed = Error::PreconditionFailed("the tenant changed meanwhile".into());
        // Items written before tenants had versions carry none.
        let version = Condition::new("attribute_exists(pk) AND (version = :v OR attribute_not_exists(version))")
            .value(":v", number_attr(previous.version));
        tx.put(tenant_item(next)?, version, changed.clone())?;
        tx.move_tenant_claims(&ClaimDiff::between(Some(previous), Some(next)), &next.id, &changed)?;
        self.commit(tx).await
    }

    async fn find_tenant_by_domain(&self, domain: &EmailDomain) -> Result<Option<Tenant>> {
        self.tenant_holding(&TenantClaim::Domain(domain.clone())).await
    }

    async fn find_tenant_by_issuer(&self, issuer: &str) -> Result<Option<Tenant>> {
        self.tenant_holding(&TenantClaim::Issuer(issuer.to_string())).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", string_attr(TENANTS_GSI));
        self.query_all(query).await?.iter().map(read_body).collect()
    }
}
