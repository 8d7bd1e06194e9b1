//! Lambda `admin`: `GET|PUT /admin/sso`, `GET /admin/users`, `PUT /admin/users/{id}/role`,
//! `GET /admin/audit` (session + permission matrix + CSRF), over DynamoDB and Secrets Manager.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| butterfly_api::admin::admin_router(parts.admin_state()),
    )
    .await
}
