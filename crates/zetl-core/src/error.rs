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

/// Errors of the pipeline that moves events from a source to a target.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The target's own error is the source, so callers can tell what kind of failure it was
    /// (a lost connection is retried).
    #[error("target")]
    Target(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the source stopped sending events before the pipeline was told to stop")]
    SourceGone,
    #[error("event out of order: {0}")]
    Protocol(String),
    /// A source table zetl cannot represent at the target as it is.
    #[error("table {table}: {problem}")]
    Schema { table: String, problem: String },
}
