//! Lambda `scim-users`: every `/scim/v2` route, over DynamoDB.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    butterfly_lambda::serve(butterfly_lambda::scim_state, butterfly_api::scim_router).await
}
