//! Lambda `console`: the customer's admin console under `/console` (Overview, Single Sign-On,
//! SCIM provisioning, Team, Audit, the CSV export and the two static files), server-rendered
//! pages behind a session, the role matrix and CSRF-checked forms, over DynamoDB and Secrets
//! Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| butterfly_api::console::console_router(parts.console_state()),
    )
    .await
}
