//! `AuditStore`: a tenant's events under `tenant \x1f event id`, read newest first.

use crate::codec::{from_json, to_json};
use crate::keys::{audit_end, audit_key, AUDIT};
use crate::EmbeddedStore;
use async_trait::async_trait;
use butterfly_core::audit::AuditEvent;
use butterfly_core::clock::{Clock, SystemClock};
use butterfly_core::error::StoreResultExt;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::AuditStore;
use butterfly_core::Result;

/// Adds an audit event to a write transaction (committed, or dropped, with it).
pub fn write_audit(tx: &redb::WriteTransaction, e: Option<&AuditEvent>) -> Result<()> {
    if let Some(e) = e {
        let mut t = tx.open_table(AUDIT).or_store_error()?;
        t.insert(audit_key(&e.tenant, &e.id).as_str(), to_json(e)?.as_slice()).or_store_error()?;
    }
    Ok(())
}

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        let event = event.clone();
        self.write(move |tx| write_audit(tx, Some(&event))).await
    }

    async fn audit_page(&self, tenant: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let start = audit_key(tenant, "");
        let end = match before {
            Some(b) => audit_key(tenant, b),
            None => audit_end(tenant),
        };
        let now = SystemClock.now();
        self.scan(move |tx| {
            let t = tx.open_table(AUDIT).or_store_error()?;
            let mut out = Vec::with_capacity(limit.min(1000));
            for row in t.range::<&str>(start.as_str()..end.as_str()).or_store_error()?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.or_store_error()?;
                let e: AuditEvent = from_json(v.value())?;
                if e.expires > now {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }
}
