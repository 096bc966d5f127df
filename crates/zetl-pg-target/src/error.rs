use thiserror::Error;
use zetl_postgres::chain;

#[derive(Debug, Error)]
pub enum PgTargetError {
    #[error("{0}")]
    Connect(#[from] zetl_postgres::PgError),
    #[error("PostgreSQL {what}: {}", chain(cause))]
    Sql { what: String, cause: tokio_postgres::Error },
    #[error("migrating the _zetl schema: {0}")]
    Migrate(#[source] sqlx::Error),
    #[error("the _zetl schema is at version {found}, newer than this zetl knows ({known}); upgrade zetl")]
    NewerSchema { found: i64, known: i64 },
    #[error("cannot start its runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    State(String),
}

impl PgTargetError {
    /// A lost connection or a server going away: a reconnect may cure it.
    pub fn is_transient(&self) -> bool {
        match self {
            PgTargetError::Connect(e) => e.is_transient(),
            PgTargetError::Sql { cause, .. } => zetl_postgres::transient_sql(cause),
            _ => false,
        }
    }
}

pub(crate) trait SqlContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError>;
}

impl<T> SqlContext<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError> {
        self.map_err(|cause| PgTargetError::Sql { what: what(), cause })
    }
}
