//! `AuditStore`: a tenant's events in one partition, newest first by their UUIDv7 sort key.

use super::items::{audit_item, read_body, string_attr, AttributeMap};
use super::keys::audit_pk;
use super::transaction::Transaction;
use super::DynamoStore;
use crate::errors::classify;
use async_trait::async_trait;
use butterfly_core::audit::AuditEvent;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::AuditStore;
use butterfly_core::Result;

/// Adds an audit event, if any, to a transaction (written, or dropped, with it).
pub(super) fn audit_put(tx: &mut Transaction, event: Option<&AuditEvent>) -> Result<()> {
    match event {
        Some(e) => tx.put_unconditional(audit_item(e)?),
        None => Ok(()),
    }
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        self.put_item(audit_item(event)?).await
    }

    async fn audit_page(&self, tenant: &TenantId, before: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let now = Self::now();
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut start: Option<AttributeMap> = None;
        while out.len() < limit {
            let mut q = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .expression_attribute_values(":p", string_attr(audit_pk(tenant)))
                .scan_index_forward(false)
                .limit((limit - out.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take());
            q = match before {
                Some(b) => {
                    q.key_condition_expression("pk = :p AND sk < :b").expression_attribute_values(":b", string_attr(b))
                }
                None => q.key_condition_expression("pk = :p"),
            };
            let r = q.send().await.map_err(|e| classify("Query", e))?;
            for it in r.items() {
                let e: AuditEvent = read_body(it)?;
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
