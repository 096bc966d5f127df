use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DynError {
    #[error("{0}")]
    Config(String),
    /// Something about a table or its stream that the user must change first.
    #[error("DynamoDB table {table}: {problem}")]
    Prerequisite { table: String, problem: String },
    #[error("DynamoDB {what}: {cause}")]
    Api { what: String, cause: String, transient: bool },
    /// The stream no longer holds changes zetl has not applied.
    #[error("{0}; the changes in between are lost to the stream: run `zetl resync --all` for a new copy")]
    Gap(String),
    #[error("the pipeline stopped")]
    Closed,
}

impl zetl_core::Retry for DynError {
    /// A lost connection or a throttled service: a reconnect may cure it.
    fn is_transient(&self) -> bool {
        matches!(self, DynError::Api { transient: true, .. })
    }
}

/// Error codes the service answers when it is busy: worth a retry from the checkpoint once the
/// SDK's own retries are spent.
const BUSY: [&str; 6] = [
    "ThrottlingException",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
];

/// An SDK error with what was being done; failures to reach the service (no response,
/// timeout) and a busy service count as transient.
pub(crate) fn api<E, R>(what: impl Into<String>, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> DynError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match e.as_service_error() {
        None => true,
        Some(service) => service.code().is_some_and(|code| BUSY.contains(&code)),
    };
    DynError::Api { what: what.into(), cause: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(), transient }
}

/// The writer is gone: the events channel closed.
impl From<zetl_core::channel::Closed> for DynError {
    fn from(_: zetl_core::channel::Closed) -> Self {
        DynError::Closed
    }
}
