//! Lambda `console`: the customer's admin console under `/console` (Overview, Single Sign-On,
//! SCIM provisioning, Team, Audit, the CSV export and the two static files), server-rendered
//! pages behind a session, the role matrix and CSRF-checked forms, and the owner's one-time
//! setup link (`/console/setup`), over DynamoDB and Secrets Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| {
            butterfly_api::console::console_router(parts.console_state())
                .merge(butterfly_api::setup::setup_router(parts.setup_state()))
        },
    )
    .await
}
