use crate::pgoutput::DecodeError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PgError {
    /// Also for a PostgreSQL target's URL, which shares this connection code.
    #[error("invalid PostgreSQL url: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL at {addr}: {cause}")]
    Connect { addr: String, cause: std::io::Error },
    #[error("authentication as `{user}` failed: {reason}")]
    Auth { user: String, reason: String },
    /// The server asked for a password exchange the URL's `require_auth` (or its default for
    /// an unverified server) does not allow; nothing was sent.
    #[error("refusing to authenticate as `{user}` by {method}: {reason}")]
    AuthRefused { user: String, method: &'static str, reason: String },
    #[error("PostgreSQL refused {what}: {message}{}", hint.as_deref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Server { what: String, code: String, message: String, hint: Option<String> },
    #[error("PostgreSQL {what}: {}{}", chain(cause), hint_for(cause.code().map(|c| c.code())).map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Sql { what: String, cause: tokio_postgres::Error },
    #[error("replication connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected replication protocol message: {0}")]
    Protocol(String),
    #[error("cannot decode WAL at {lsn}: {cause}")]
    Decode { lsn: String, cause: DecodeError },
    #[error("table {table}, column {column}: {reason}")]
    Value { table: String, column: String, reason: String },
    #[error("the source is not ready for replication: {0}")]
    Prerequisite(String),
    /// The private directory for spilled transactions could not be made or was not private.
    #[error("cannot keep large transactions on disk in {dir}: {reason}")]
    SpillDir { dir: String, reason: String },
    #[error("the pipeline stopped")]
    PipelineClosed,
}

/// What to do about a server error zetl can explain better than the server (by SQLSTATE).
pub fn hint_for(code: Option<&str>) -> Option<&'static str> {
    match code? {
        // character_not_in_repertoire: "invalid byte sequence for encoding "UTF8"".
        "22021" => Some(
            "a text value at the source is not valid UTF-8 (a database whose encoding is SQL_ASCII \
             stores any bytes; `zetl check` shows the encoding), and zetl reads text as UTF-8. Correct \
             the value at the source; if the stream already holds it, start over afterwards with \
             `zetl resync --all`",
        ),
        _ => None,
    }
}

/// An error with its causes: tokio-postgres' own text omits them ("error performing TLS
/// handshake" without saying why).
pub fn chain(e: &dyn std::error::Error) -> String {
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

/// Connection-level failures a reconnect can cure.
fn io_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | Interrupted
            );
        }
        next = cause.source();
    }
    false
}

impl zetl_core::Retry for PgError {
    /// Whether reconnecting may help (the server restarted, the network blinked).
    fn is_transient(&self) -> bool {
        match self {
            PgError::Connect { .. } | PgError::Io(_) => true,
            PgError::Sql { cause, .. } => transient_sql(cause),
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 55006 object in use (slot still held by a dying walsender)
            PgError::Server { code, .. } => {
                matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "55006")
            }
            _ => false,
        }
    }
}

/// A SQL error a reconnect may cure: the connection closed or broke, or the server is shutting
/// down or starting (57P01-03).
pub fn transient_sql(cause: &tokio_postgres::Error) -> bool {
    cause.is_closed()
        || io_transient(cause)
        || matches!(cause.code().map(|c| c.code()), Some("57P01" | "57P02" | "57P03"))
}

pub(crate) trait SqlContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgError>;
}

impl<T> SqlContext<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, PgError> {
        self.map_err(|source| PgError::Sql { what: what(), cause: source })
    }
}

/// The writer is gone: the events channel closed.
impl From<zetl_core::channel::Closed> for PgError {
    fn from(_: zetl_core::channel::Closed) -> Self {
        PgError::PipelineClosed
    }
}
