//! Lambda `token-rotation`: `GET|POST /admin/scim-token` (super_admins; session + CSRF), over
//! DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(
        butterfly_lambda_outbound::app_parts(butterfly_lambda_outbound::Sessions::Served),
        |parts| butterfly_api::admin::token_rotation_router(parts.admin_state()),
    )
    .await
}
