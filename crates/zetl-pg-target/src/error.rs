use thiserror::Error;

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
}

/// tokio-postgres' own text omits the server's message ("db error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = cause.source();
    }
    text
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
