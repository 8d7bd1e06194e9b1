//! Lambda `admin`: `GET|PUT /admin/sso`, `GET /admin/users`, `PUT /admin/users/{id}/role`,
//! `GET /admin/audit` (session + permission matrix + CSRF), over DynamoDB and Secrets Manager.

use butterfly_lambda::{app_parts, connect, init_logging, run, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = Config::from_env()?;
    let aws = connect(&cfg).await?;
    let parts = app_parts(&cfg, &aws)?;
    run(butterfly_api::admin::admin_router(parts.admin_state()), aws).await
}
