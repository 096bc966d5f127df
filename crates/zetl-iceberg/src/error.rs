use thiserror::Error;

#[derive(Debug, Error)]
pub enum IcebergError {
    #[error("Iceberg catalog {catalog}: {context}: {cause}")]
    Catalog { catalog: String, context: String, cause: crate::db::DbError },
    #[error("Iceberg table {table}: {context}: {cause}")]
    Table { table: String, context: String, cause: Box<iceberg::Error> },
    #[error("Iceberg warehouse {location}: {context}: {cause}")]
    Warehouse { location: String, context: String, cause: Box<iceberg::Error> },
    #[error("table {table}, column {column}: {problem}")]
    Value { table: String, column: String, problem: String },
    /// A change whose value the table cannot store (`apply.on_error: fail`).
    #[error("table {table}, key {key}: the target rejected the change: column {column}: {problem}")]
    Rejected { table: String, key: String, column: String, problem: String },
    /// Another writer committed to the table since this one read it.
    #[error("Iceberg table {table} was changed by another writer since zetl read it (expected metadata {expected}); only one `zetl run` may write an integration's tables")]
    Conflict { table: String, expected: String },
    /// Another process writes this integration's tables; two writers would undo each
    /// other's commits.
    #[error(
        "another `zetl run` of integration `{integration}` is writing to this Iceberg catalog (it holds \
         the integration's writer lock): stop it first; two writers would undo each other's work"
    )]
    Busy { integration: String },
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Unsupported(String),
}

/// A lost connection to a PostgreSQL catalog or to an S3 warehouse passes; local files'
/// failures do not.
impl zetl_core::Retry for IcebergError {
    fn is_transient(&self) -> bool {
        // Busy is transient so that a run reopening the target after its own failure waits
        // for its old lock to go; a second process is refused at start, having done nothing.
        match self {
            IcebergError::Busy { .. } => true,
            IcebergError::Catalog { cause, .. } => cause.is_transient(),
            IcebergError::Table { cause, .. } | IcebergError::Warehouse { cause, .. } => retryable(cause),
            _ => false,
        }
    }
}

/// Whether the error, or one it was made from (a Parquet writer's failure wraps the
/// storage's), is one the storage marked retryable: S3 unreachable or busy.
fn retryable(error: &iceberg::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<iceberg::Error>().is_some_and(|e| e.retryable()) {
            return true;
        }
        next = e.source();
    }
    false
}

/// Attaches what was being done to an error of the catalog database.
pub(crate) trait CatalogContext<T> {
    fn catalog(self, catalog: &str, what: impl FnOnce() -> String) -> Result<T, IcebergError>;
}

impl<T> CatalogContext<T> for Result<T, crate::db::DbError> {
    fn catalog(self, catalog: &str, what: impl FnOnce() -> String) -> Result<T, IcebergError> {
        self.map_err(|cause| IcebergError::Catalog { catalog: catalog.to_string(), context: what(), cause })
    }
}

/// Attaches the table and what was being done to an error of the Iceberg library.
pub(crate) trait TableContext<T> {
    fn table(self, table: &str, what: impl FnOnce() -> String) -> Result<T, IcebergError>;
}

impl<T> TableContext<T> for Result<T, iceberg::Error> {
    fn table(self, table: &str, what: impl FnOnce() -> String) -> Result<T, IcebergError> {
        self.map_err(|cause| IcebergError::Table { table: table.to_string(), context: what(), cause: Box::new(cause) })
    }
}
