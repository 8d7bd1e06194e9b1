//! Lambda `session`: `GET /me`, `POST /logout`, `GET /`: the signed-in session, over DynamoDB and Secrets Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| butterfly_api::sso::session_router(parts.sso_state()),
    )
    .await
}
