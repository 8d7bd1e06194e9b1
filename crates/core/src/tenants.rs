//! The operator's tenant use cases: creating a tenant (with the email domains it owns) and
//! listing them.

use crate::clock::Clock;
use crate::email::EmailDomain;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::ports::TenantStore;
use crate::tenant::{DomainRecord, Tenant, VerifiedBy};
use std::sync::Arc;

/// Tenants, for the operator (the CLI, the local stack's first start, the tests).
#[derive(Clone)]
pub struct TenantService {
    store: Arc<dyn TenantStore>,
    clock: Arc<dyn Clock>,
}

impl TenantService {
    pub fn new(store: Arc<dyn TenantStore>, clock: Arc<dyn Clock>) -> Self {
        TenantService { store, clock }
    }

    /// A new tenant; `domains` (parsed at the edge: [`EmailDomain::parse_list`]) are verified
    /// on the operator's word.
    pub async fn create_tenant(&self, name: &str, domains: &[EmailDomain]) -> Result<Tenant> {
        let name = Tenant::check_name(name).map_err(Error::InvalidValue)?;
        // Operators tell tenants apart by name: two with one name are a mistake waiting to happen.
        if self.store.list_tenants().await?.iter().any(|t| t.name.to_lowercase() == name.to_lowercase()) {
            return Err(Error::Conflict(format!("a tenant named {name:?} exists already ('tenant list' shows it)")));
        }
        if let Some(d) = domains.iter().find(|d| d.is_consumer()) {
            return Err(Error::InvalidValue(format!(
                "{d} is a public mailbox provider; only domains your organisation owns can route sign-ins"
            )));
        }
        let now = self.clock.now();
        let mut t = Tenant {
            id: TenantId::generate(),
            name,
            domains: vec![],
            domain_records: vec![],
            verification_token: None,
            created: now,
            sso: None,
            version: 1,
            sign_in_policy: None,
        };
        // Domains named by the operator at creation are verified on the operator's word.
        t.set_domain_records(
            domains.iter().map(|d| DomainRecord::verified(d.clone(), VerifiedBy::Operator, now)).collect(),
        );
        self.store.create_tenant(&t).await?;
        Ok(t)
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.store.list_tenants().await
    }
}
