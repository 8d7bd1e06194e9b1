//! Lambda `domain-lookup`: `GET|POST /login`, `POST /sso/lookup`, `GET|POST /sso/initiate`: where a sign-in starts, over DynamoDB and Secrets Manager.

use butterfly_lambda::{app_parts, connect, init_logging, run, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = Config::from_env()?;
    let aws = connect(&cfg).await?;
    let parts = app_parts(&cfg, &aws)?;
    run(butterfly_api::sso::login_router(parts.sso_state()), aws).await
}
