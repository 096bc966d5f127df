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

/// An SDK error with what was being done; failures to reach the service (no response,
/// timeout) and a busy service count as transient.
pub(crate) fn api<E>(what: impl Into<String>, e: aws_sdk_dynamodb::error::SdkError<E>) -> DynError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let (cause, transient) = zetl_aws::describe(&e);
    DynError::Api { what: what.into(), cause, transient }
}

/// The writer is gone: the events channel closed.
impl From<zetl_core::channel::Closed> for DynError {
    fn from(_: zetl_core::channel::Closed) -> Self {
        DynError::Closed
    }
}
