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
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` that local emulators use), with [`timeouts`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts()).load().await
}

/// How long one AWS call may take. The SDK's defaults bound only the connect: a connection
/// that accepts and never answers held a request until the function's own 10 s timeout, and
/// the caller got API Gateway's error instead of our 503 with `Retry-After`. A healthy
/// DynamoDB call takes milliseconds; an attempt gets [`ATTEMPT_TIMEOUT`], a call with its
/// retries [`OPERATION_TIMEOUT`], so a request of one or two calls still answers in time.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// One attempt of an AWS call.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// One AWS call, its retries included.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

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
