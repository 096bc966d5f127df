use thiserror::Error;
use zetl_postgres::chain;

#[derive(Debug, Error)]
pub enum PgTargetError {
    #[error("{0}")]
    Connect(#[from] zetl_postgres::PgError),
    #[error("PostgreSQL {what}: {}", chain(cause))]
    Sql { what: String, cause: tokio_postgres::Error },
    #[error("the _zetl schema is at version {found}, newer than this zetl knows ({known}); upgrade zetl")]
    NewerSchema { found: i64, known: i64 },
    #[error("cannot start its runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    State(String),
    /// Another process writes this integration's tables here; two writers would drop and
    /// overwrite each other's work.
    #[error(
        "another `zetl run` of integration `{integration}` is writing to this target database (it holds \
         the integration's lock there): stop it first; two writers would undo each other's work"
    )]
    Busy { integration: String },
}

impl zetl_core::Retry for PgTargetError {
    /// A lost connection, a server going away, or a conflict with other sessions (deadlock,
    /// serialization failure, lock or statement timeout): trying again from the checkpoint
    /// may cure it.
    fn is_transient(&self) -> bool {
        match self {
            PgTargetError::Connect(e) => e.is_transient(),
            PgTargetError::Sql { cause, .. } => {
                zetl_postgres::transient_sql(cause)
                    || matches!(sqlstate(cause), Some("40001" | "40P01" | "55P03" | "57014"))
            }
            // Transient so that a run reconnecting after its own failure waits for its old
            // session to end; a second process is refused at start, having made no progress.
            PgTargetError::Busy { .. } => true,
            _ => false,
        }
    }
}

impl PgTargetError {
    /// The target refused the row itself: a data exception (SQLSTATE class 22), an integrity
    /// constraint (class 23) or a datatype mismatch (42804). Only such a change can be a dead
    /// letter; any other failure says nothing about the row and must not set it aside.
    pub fn is_data_error(&self) -> bool {
        match self {
            PgTargetError::Sql { cause, .. } => {
                sqlstate(cause).is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c == "42804")
            }
            _ => false,
        }
    }
}

fn sqlstate(cause: &tokio_postgres::Error) -> Option<&str> {
    cause.code().map(|c| c.code())
}

pub(crate) trait SqlContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError>;
}

impl<T> SqlContext<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError> {
        self.map_err(|cause| PgTargetError::Sql { what: what(), cause })
    }
}
