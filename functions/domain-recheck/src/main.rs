//! Lambda `domain-recheck` (an EventBridge schedule, daily): re-checks every DNS-verified email
//! domain's `_butterfly-verification` TXT record, and every pending one. A verified domain
//! whose record is missing at two consecutive checks stops routing sign-ins (audited).

use butterfly_core::clock::SystemClock;
use butterfly_core::domain::DomainService;
use butterfly_lambda::{connect, init_logging, or_refuse_to_start, Config};
use lambda_http::{lambda_runtime, service_fn, LambdaEvent};
use std::sync::Arc;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = or_refuse_to_start(Config::from_env());
    let aws = or_refuse_to_start(connect(&cfg).await);
    let dns = or_refuse_to_start(butterfly_lambda_outbound::txt_lookup(&cfg));
    let service = Arc::new(DomainService::new(Arc::new(aws.store), Arc::new(dns), Arc::new(SystemClock)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let service = service.clone();
        // Every log line of the run carries the Lambda request id, as the HTTP functions' do.
        let span = tracing::info_span!("request", request_id = %event.context.request_id);
        async move {
            let sum = service.recheck_all().await?;
            tracing::info!(
                checked = sum.checked,
                still_verified = sum.still_verified,
                withdrawn = sum.withdrawn,
                unanswered = sum.unanswered,
                "domain re-check"
            );
            Ok::<_, lambda_http::Error>(serde_json::json!({
                "checked": sum.checked, "still_verified": sum.still_verified,
                "withdrawn": sum.withdrawn, "unanswered": sum.unanswered,
            }))
        }
        .instrument(span)
    }))
    .await
}
