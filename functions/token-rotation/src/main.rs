//! Lambda `token-rotation`: `GET|POST /admin/scim-token` (super_admins; session + CSRF), over
//! DynamoDB.

use butterfly_lambda::{app_parts, connect, init_logging, run, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = Config::from_env()?;
    let aws = connect(&cfg).await?;
    let parts = app_parts(&cfg, &aws)?;
    run(butterfly_api::admin::token_rotation_router(parts.admin_state()), aws).await
}
