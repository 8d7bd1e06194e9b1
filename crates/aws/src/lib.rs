//! AWS adapters: the DynamoDB single-table store (every store port) and Secrets Manager (OIDC
//! client secrets). SDK clients are built once (per Lambda instance) from the environment.

pub mod counter;
pub mod dynamo;
pub mod errors;
pub mod secrets;

pub use counter::RequestCounter;
pub use dynamo::DynamoStore;
pub use secrets::SecretsManagerStore;

/// Loads the shared AWS configuration from the environment (region, credentials, and the
/// standard endpoint overrides `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`,
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` that local emulators use).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// A DynamoDB client, optionally counting the requests it sends.
pub fn dynamodb_client(cfg: &aws_config::SdkConfig, counter: Option<RequestCounter>) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(cfg);
    if let Some(c) = counter {
        b = b.interceptor(c);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

pub fn secretsmanager_client(cfg: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(cfg)
}
