use thiserror::Error;

#[derive(Debug, Error)]
pub enum PgTargetError {
    #[error("target: {0}")]
    Connect(#[from] zetl_postgres::PgError),
    #[error("target: PostgreSQL {what}: {}", chain(cause))]
    Sql { what: String, cause: tokio_postgres::Error },
    #[error("target: the _zetl schema is at version {found}, newer than this zetl knows ({known}); upgrade zetl")]
    NewerSchema { found: i64, known: i64 },
    #[error("target: cannot start its runtime: {0}")]
    Runtime(std::io::Error),
    #[error("target: {0}")]
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

pub(crate) trait SqlContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError>;
}

impl<T> SqlContext<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgTargetError> {
        self.map_err(|cause| PgTargetError::Sql { what: what(), cause })
    }
}
