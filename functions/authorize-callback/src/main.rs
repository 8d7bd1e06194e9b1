//! Lambda `authorize-callback`: `GET /sso/callback`: completes a sign-in, over DynamoDB and Secrets Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| butterfly_api::sso::callback_router(parts.sso_state()),
    )
    .await
}
