use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {cause}")]
    Read { file: String, cause: std::io::Error },
    #[error("{file}:{line}: {problem}")]
    Variable { file: String, line: usize, problem: String },
    #[error("{file}:{line}:{column}: {problem}")]
    Syntax { file: String, line: usize, column: usize, problem: String },
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
}

/// What every source's and target's error says about itself: whether the failure may pass by
/// itself (a lost connection, a server restarting, a lock or statement timeout, a busy
/// service), so that the run loop resumes from the target's checkpoint after a pause, or is
/// definite and stops the integration with its message and fix.
pub trait Retry {
    fn is_transient(&self) -> bool;
}

/// Errors of the pipeline that moves events from a source to a target.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The target's own error is the source (for its message); whether it is transient was
    /// asked of it when it was wrapped.
    #[error("target")]
    Target {
        transient: bool,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the source stopped sending events before the pipeline was told to stop")]
    SourceGone,
    #[error("event out of order: {0}")]
    Protocol(String),
    /// A source table zetl cannot represent at the target as it is.
    #[error("table {table}: {problem}")]
    Schema { table: String, problem: String },
}

impl Retry for PipelineError {
    fn is_transient(&self) -> bool {
        matches!(self, PipelineError::Target { transient: true, .. })
    }
}
