//! AWS SDK errors → domain errors.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use butterfly_core::{Error, StoreFailure};

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "LimitExceededException",
];

/// The output of a conditional request, or `None` when its condition did not hold (an expected
/// outcome the caller interprets: already taken, already gone, not newer); other failures
/// are classified as by [`classify`].
pub fn unless_condition_failed<T, E>(op: &str, r: Result<T, SdkError<E, HttpResponse>>) -> Result<Option<T>, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(out) => Ok(Some(out)),
        Err(e) => match classify(op, e) {
            Error::Conflict(_) => Ok(None),
            other => Err(other),
        },
    }
}

/// Throttling, 5xx, timeouts and connection failures are retryable (`Unavailable`: HTTP 503
/// with `Retry-After`); a failed condition is a `Conflict` the caller interprets; anything
/// else is a store failure.
pub fn classify<E>(op: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = |why: String| Error::Unavailable { message: format!("{op}: {why}"), retry_after_secs: 1 };
    let failure = match &e {
        SdkError::TimeoutError(_) => return unavailable("timed out".into()),
        SdkError::DispatchFailure(d) => return unavailable(format!("request not sent: {d:?}")),
        SdkError::ResponseError(_) => return unavailable("unreadable response".into()),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let status = se.raw().status().as_u16();
            if code.ends_with("ConditionalCheckFailedException") {
                return Error::Conflict(format!("{op}: condition failed"));
            } else if RETRYABLE_CODES.contains(&code) || status >= 500 {
                return unavailable(code.to_string());
            }
            format!("{op}: {code}: {}", se.err().message().unwrap_or(""))
        }
        _ => format!("{op}: {e}"),
    };
    Error::Store(StoreFailure::caused_by(failure, e))
}

/// Why a transaction was cancelled.
#[derive(Debug)]
pub enum TxFailure {
    /// The condition of the item at this index failed.
    Condition(usize),
    /// Another transaction was using one of the items; retry.
    Conflict,
    Other(Error),
}

pub fn tx_failure(e: SdkError<TransactWriteItemsError, HttpResponse>) -> TxFailure {
    if let SdkError::ServiceError(se) = &e {
        if let TransactWriteItemsError::TransactionCanceledException(c) = se.err() {
            let reasons = c.cancellation_reasons();
            if let Some(i) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                return TxFailure::Condition(i);
            }
            if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                return TxFailure::Conflict;
            }
        }
        if let TransactWriteItemsError::TransactionInProgressException(_) = se.err() {
            return TxFailure::Conflict;
        }
    }
    TxFailure::Other(classify("TransactWriteItems", e))
}
