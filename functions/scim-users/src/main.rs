//! Lambda `scim-users`: every `/scim/v2` route, over DynamoDB.

use butterfly_core::clock::SystemClock;
use butterfly_lambda::{connect, init_logging, lambda_layers, or_refuse_to_start, Config, InitError};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let cfg = or_refuse_to_start(Config::from_env());
    let aws = or_refuse_to_start(connect(&cfg).await);
    let cursor_key = or_refuse_to_start(
        aws.keys.as_ref().map(|k| k.cursor.clone()).ok_or(InitError::Missing("CURSOR_KEY_SECRET_ID")),
    );
    let quota = butterfly_lambda::limits(&cfg).scim;
    let app = butterfly_api::scim_app(Arc::new(aws.store), Arc::new(SystemClock), cursor_key, cfg.base_url(), quota);
    lambda_http::run(lambda_layers(app, aws.counter)).await
}
