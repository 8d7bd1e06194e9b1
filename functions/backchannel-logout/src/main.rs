//! Lambda `backchannel-logout`: `POST /sso/backchannel-logout` (OIDC Back-Channel Logout 1.0),
//! `POST /sso/universal-logout` and `POST /sso/universal-logout/{tenant}` (Okta Universal
//! Logout), over DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::NotServed),
        |parts| butterfly_api::logout::logout_router(parts.logout_state()),
    )
    .await
}
