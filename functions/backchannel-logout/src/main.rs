//! Lambda `backchannel-logout`: `POST /sso/backchannel-logout` (OIDC Back-Channel Logout 1.0) and
//! `POST /sso/universal-logout/{tenant}` (Okta Universal Logout), over DynamoDB.

use butterfly_lambda::{app_parts, connect, init_logging, run, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = Config::from_env()?;
    let aws = connect(&cfg).await?;
    let parts = app_parts(&cfg, &aws)?;
    run(butterfly_api::logout::logout_router(parts.logout_state()), aws).await
}
