use thiserror::Error;

#[derive(Debug, Error)]
pub enum DuckdbError {
    /// Most often the file is held by another process (a running `zetl run`).
    #[error("cannot open DuckDB file {path}: {cause} (a DuckDB file is open to one process at a time: stop the `zetl run` that holds it first; a running zetl with metrics.listen takes `zetl resync` requests itself)")]
    Open { path: String, cause: duckdb::Error },
    #[error("DuckDB {context}: {cause}")]
    Sql { context: String, cause: duckdb::Error },
    #[error("table {table}, key {key}: cannot write the row: {cause}")]
    Row { table: String, key: String, cause: String },
    #[error("integration {integration}, table {table}, key {key}: the target rejected the change: {problem}")]
    Rejected { integration: String, table: String, key: String, problem: String },
    #[error("the target's _zetl schema is at version {found}, newer than this zetl knows ({known}); upgrade zetl")]
    NewerSchema { found: i64, known: i64 },
    #[error("{0}")]
    State(String),
    /// Two source names that DuckDB, whose identifiers are case-insensitive, takes as one.
    #[error("{what} `{a}` and `{b}` are one name in DuckDB (identifiers are case-insensitive there): {fix}")]
    CaseCollision { what: &'static str, a: String, b: String, fix: &'static str },
}

/// The DuckDB file is local and held by this process alone: nothing of it passes by itself.
impl zetl_core::Retry for DuckdbError {
    fn is_transient(&self) -> bool {
        false
    }
}

/// Attaches what was being done to a DuckDB error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, DuckdbError>;
}

impl<T> Context<T> for Result<T, duckdb::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, DuckdbError> {
        self.map_err(|source| DuckdbError::Sql { context: what(), cause: source })
    }
}
