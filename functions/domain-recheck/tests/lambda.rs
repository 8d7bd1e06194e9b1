//! The `domain-recheck` binary run as on AWS Lambda: a local Runtime API emulator feeds it the
//! EventBridge schedule's event, DynamoDB Local holds a tenant's domains and a DNS server on
//! loopback (`DNS_SERVER`) answers the verification TXT records. Checks what each run changes
//! in the table and what it answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_aws::DynamoStore;
use butterfly_core::clock::Timestamp;
use butterfly_core::email::EmailDomain;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{AuditStore, TenantStore};
use butterfly_core::tenant::{DomainRecord, Tenant, VerifiedBy};
use butterfly_tests::dns::TestDns;
use butterfly_tests::lambda_runtime::LambdaProcess;
use serde_json::json;

fn domain(s: &str) -> EmailDomain {
    EmailDomain::parse(s).unwrap()
}

/// An EventBridge scheduled event, as the template's schedule sends it.
fn scheduled_event() -> serde_json::Value {
    json!({
        "version": "0", "id": "5f2c3e1a-0000-4000-8000-000000000001", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-30T03:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/butterfly-domain-recheck"],
        "detail": {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_recheck_runs_on_its_schedule_through_the_lambda_runtime() {
    let bin = std::env::var("DOMAIN_RECHECK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_domain-recheck").to_string());
    let dns = TestDns::start(&["kept.test", "gone.test", "new.test", "quiet.test"]).await;
    let f = LambdaProcess::start_with(&bin, "domain-recheck", &[("DNS_SERVER", &dns.server_arg())]).await;

    let cfg = butterfly_tests::aws::local_config(&butterfly_tests::aws::dynamodb_endpoint()).await;
    let store = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), f.table.clone());
    let token = "rc-0123456789abcdef";
    let long_ago = Timestamp::from_millis(1_000_000);
    let dns_verified = |d: &str, misses: u32| DomainRecord {
        checked_at: Some(long_ago),
        misses,
        ..DomainRecord::verified(domain(d), VerifiedBy::Dns, long_ago)
    };
    let mut tenant = Tenant {
        id: TenantId::generate(),
        name: "Recheck Corp".into(),
        domains: vec![],
        domain_records: vec![],
        verification_token: Some(token.into()),
        created: long_ago,
        sso: None,
        version: 1,
        sign_in_policy: None,
    };
    tenant.set_domain_records(vec![
        // Still published: stays verified.
        dns_verified("kept.test", 0),
        // Missed once already and missing again (another value is there): withdrawn.
        dns_verified("gone.test", 1),
        // Pending, now published: verified.
        DomainRecord::pending(domain("new.test"), long_ago),
        // Vouched for by the operator: never re-checked (it has no record).
        DomainRecord::verified(domain("quiet.test"), VerifiedBy::Operator, long_ago),
    ]);
    store.create_tenant(&tenant).await.unwrap();
    let value = format!("butterfly-domain-verification={token}");
    dns.add_txt("_butterfly-verification.kept.test", &value).await;
    dns.add_txt("_butterfly-verification.new.test", &value).await;
    dns.add_txt("_butterfly-verification.gone.test", "butterfly-domain-verification=someone-else").await;

    let answer = f.runtime.invoke(scheduled_event()).await.expect("the function answers the schedule");
    let first_response = f.started.elapsed();
    assert_eq!(answer, json!({ "checked": 3, "still_verified": 2, "withdrawn": 1, "unanswered": 0 }), "summary");

    let records = |t: &Tenant| t.domain_records();
    let after = store.get_tenant(&tenant.id).await.unwrap().expect("tenant");
    let state = |d: &str, t: &Tenant| records(t).into_iter().find(|r| r.domain.as_str() == d).expect(d);
    assert_eq!(state("kept.test", &after).verified_by, Some(VerifiedBy::Dns));
    assert_eq!(state("kept.test", &after).misses, 0);
    assert!(state("kept.test", &after).checked_at.unwrap().millis() > long_ago.millis(), "re-checked now");
    assert_eq!(state("gone.test", &after).verified_by, None, "a domain whose record is gone twice is withdrawn");
    assert_eq!(state("gone.test", &after).misses, 2);
    assert_eq!(state("new.test", &after).verified_by, Some(VerifiedBy::Dns), "a pending domain verifies");
    assert_eq!(state("quiet.test", &after).verified_by, Some(VerifiedBy::Operator));
    assert_eq!(state("quiet.test", &after).checked_at, Some(long_ago), "operator-vouched domains are not re-checked");
    let audit = store.audit_page(&tenant.id, None, 50).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        (
            actions.iter().filter(|a| **a == "domain.withdraw").count(),
            actions.iter().filter(|a| **a == "domain.verify").count()
        ),
        (1, 1),
        "one withdrawal and one verification audited: {actions:?}"
    );

    // A second run the same day: only the withdrawn domain (pending again) is due.
    let again = f.runtime.invoke(scheduled_event()).await.expect("second run");
    assert_eq!(again, json!({ "checked": 1, "still_verified": 0, "withdrawn": 0, "unanswered": 0 }));

    // The DNS server gone: the run completes, counts the unanswered check and verifies nothing.
    drop(dns);
    let quiet = f.runtime.invoke(scheduled_event()).await.expect("run without DNS");
    assert_eq!(quiet, json!({ "checked": 1, "still_verified": 0, "withdrawn": 0, "unanswered": 1 }));
    let last = store.get_tenant(&tenant.id).await.unwrap().expect("tenant");
    let gone = state("gone.test", &last);
    assert_eq!(gone.verified_by, None);
    assert!(gone.last_error.as_deref().is_some_and(|e| e.starts_with("DNS did not answer")), "{gone:?}");
    assert_eq!(state("kept.test", &last), state("kept.test", &after), "a verified domain is not touched");

    f.assert_logs_carry_request_id();
    assert!(
        f.log_lines().iter().any(|l| l["fields"]["message"] == "domain re-check" && l["fields"]["withdrawn"] == 1),
        "the run's summary is logged"
    );
    println!(
        "LAMBDA_FIGURES function=domain-recheck bin={bin} first_response_ms={} peak_rss_kb={}",
        first_response.as_millis(),
        f.peak_rss_kb()
    );
}
