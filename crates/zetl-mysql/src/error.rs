use thiserror::Error;

#[derive(Debug, Error)]
pub enum MyError {
    #[error("invalid source url: {0}")]
    Url(String),
    #[error("cannot connect to {addr}: {cause}")]
    Connect { addr: String, cause: mysql_async::Error },
    #[error("{what}: {cause}")]
    Sql { what: String, cause: mysql_async::Error },
    #[error("the source is not ready for replication: {0}")]
    Prerequisite(String),
    #[error(
        "the binlog at the stored position {position} is no longer on the server ({cause}); \
         the integration must be copied again: run `zetl resync --all -c FILE -i NAME`, then `zetl run`"
    )]
    BinlogPurged { position: String, cause: String },
    #[error("binlog stream: {0}")]
    Protocol(String),
    #[error("binlog stream: {0}")]
    Disconnected(String),
    #[error("binlog event at {position}: checksum mismatch (the event is corrupt)")]
    Checksum { position: String },
    #[error(
        "{what} was logged as a statement, not as rows, at {position} (a session with binlog_format \
         STATEMENT or MIXED); zetl reads only row events, so the target would miss it. Set \
         binlog_format=ROW for every session (SET GLOBAL binlog_format = 'ROW', in my.cnf, and in \
         any client that sets it per session), then run {fix} and `zetl run` again"
    )]
    StatementDml {
        /// `a data change to shop.t`, or `a data change to a table zetl cannot tell`.
        what: String,
        position: String,
        /// `zetl resync -c FILE -i NAME shop.t`, or `--all` when the table is unknown.
        fix: String,
    },
    #[error(
        "compressed binlog event {event_type} at {position}: zetl cannot read compressed binlog \
         events. Turn compression off (SET GLOBAL log_bin_compress = OFF, and in my.cnf); events \
         already written compressed cannot be read, so then run `zetl resync --all -c FILE -i NAME` \
         and `zetl run`"
    )]
    CompressedEvent { event_type: String, position: String },
    #[error(
        "XA COMMIT of transaction {xid} at {position}, but zetl did not see that transaction \
         prepared: it was prepared before the initial copy was taken, so its rows are not at the \
         target. Run `zetl resync --all -c FILE -i NAME` (or `zetl resync` the tables it \
         wrote), then `zetl run`"
    )]
    XaUnknown { xid: String, position: String },
    #[error("table {table}, column {column}: {reason}")]
    Value { table: String, column: String, reason: String },
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("the pipeline stopped")]
    PipelineClosed,
}

/// Adds what was being done to a driver error.
pub(crate) trait SqlContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, MyError>;
}

impl<T> SqlContext<T> for Result<T, mysql_async::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, MyError> {
        self.map_err(|cause| MyError::Sql { what: what(), cause })
    }
}

impl zetl_core::Retry for MyError {
    /// Failures a reconnect may cure: a lost connection, a server restarting or going away.
    fn is_transient(&self) -> bool {
        match self {
            MyError::Sql { cause, .. } | MyError::Connect { cause, .. } => match cause {
                mysql_async::Error::Io(_) => true,
                mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
                // 1053 server shutdown, 2006 gone away, 2013 lost connection, 1927 killed;
                // 1412 the table's definition changed after the copy's consistent snapshot
                // began (a copy right after DDL): a new snapshot from the checkpoint sees it.
                mysql_async::Error::Server(s) => matches!(s.code, 1053 | 2006 | 2013 | 1927 | 1412),
                _ => false,
            },
            MyError::Disconnected(_) => true,
            _ => false,
        }
    }
}

/// The writer is gone: the events channel closed.
impl From<zetl_core::channel::Closed> for MyError {
    fn from(_: zetl_core::channel::Closed) -> Self {
        MyError::PipelineClosed
    }
}
