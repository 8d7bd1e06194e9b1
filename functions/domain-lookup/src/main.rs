//! Lambda `domain-lookup`: `GET|POST /login`, `POST /sso/lookup`, `GET|POST /sso/initiate`: where a sign-in starts, over DynamoDB and Secrets Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::NotServed),
        |parts| butterfly_api::sso::login_router(parts.sso_state()),
    )
    .await
}
