//! The signal table (`source.signal_table`): a fence before each chunk of a copy made while
//! streaming, for servers that do not tell a snapshot's binlog position (MySQL).
//!
//! A chunk read beside the stream must see every transaction the stream has passed (later
//! ones it may see too: they are applied again after it and converge). The binlog is written
//! before the storage engine commits, so a transaction the stream has already read can still
//! be invisible to a snapshot opened at that moment. So zetl first commits a write of its own
//! here: the storage engine commits in binlog order (MySQL with `binlog_order_commits = ON`,
//! its default; MariaDB always), so once that commit returns, every transaction before it in
//! the binlog is visible, and a snapshot opened next sees them all. One row per integration
//! says when it last fenced and how often; the table itself is never replicated.

use crate::catalog::quote_table;
use crate::error::{MyError, SqlContext};
use crate::flavor::Flavor;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use zetl_core::check::Verdict;
use zetl_core::TableId;

#[derive(Debug, Clone)]
pub struct SignalTable {
    pub id: TableId,
    integration: String,
}

impl SignalTable {
    pub fn new(id: TableId, integration: &str) -> SignalTable {
        SignalTable { id, integration: integration.to_string() }
    }

    /// The grants the zetl user needs on the table, for error messages.
    fn grant_fix(&self) -> String {
        format!(
            "GRANT CREATE, INSERT, UPDATE, DELETE, DROP ON {} TO the zetl user (or create the table beforehand: \
             `zetl run` creates it if it is missing)",
            quote_table(&self.id)
        )
    }

    /// Creates the table unless it exists (by `zetl run`, before streaming).
    pub async fn create(&self, conn: &mut Conn) -> Result<(), MyError> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (integration VARCHAR(190) NOT NULL PRIMARY KEY, \
             fenced_at DATETIME(6) NOT NULL, fences BIGINT NOT NULL) ENGINE = InnoDB",
            quote_table(&self.id)
        );
        conn.query_drop(sql).await.ctx(|| format!("creating the signal table {} ({})", self.id, self.grant_fix()))
    }

    /// Commits this integration's fence (autocommit; a transaction left open on `conn` is
    /// committed by the next `START TRANSACTION` anyway).
    pub async fn fence(&self, conn: &mut Conn) -> Result<(), MyError> {
        conn.exec_drop(self.upsert(), (&self.integration,))
            .await
            .ctx(|| format!("writing to the signal table {} ({})", self.id, self.grant_fix()))
    }

    fn upsert(&self) -> String {
        format!(
            "INSERT INTO {} (integration, fenced_at, fences) VALUES (?, NOW(6), 1) \
             ON DUPLICATE KEY UPDATE fenced_at = NOW(6), fences = fences + 1",
            quote_table(&self.id)
        )
    }

    pub async fn exists(&self, conn: &mut Conn) -> Result<bool, MyError> {
        let found: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&self.id.schema, &self.id.name),
            )
            .await
            .ctx(|| format!("looking up the signal table {}", self.id))?;
        Ok(found.is_some())
    }

    /// `zetl check`: the table can be written (tried in a transaction rolled back, which
    /// leaves nothing in the table or the binlog), and on MySQL commits follow the binlog.
    pub async fn check(&self, conn: &mut Conn, flavor: Flavor) -> Vec<Verdict> {
        let what = format!("signal table {}", self.id);
        let mut out = vec![match self.exists(conn).await {
            Err(e) => Verdict::fail(what, e.to_string()),
            Ok(false) => Verdict::warn(
                what,
                format!("does not exist yet: `zetl run` creates it, which needs CREATE on it ({})", self.grant_fix()),
            ),
            Ok(true) => match self.try_write(conn).await {
                Ok(()) => Verdict::pass(what, "zetl can write its fence there".into()),
                Err(e) => Verdict::fail(what, e.to_string()),
            },
        }];
        if flavor != Flavor::MariaDb {
            out.push(match order_commits(conn).await {
                Ok(true) => Verdict::pass("binlog_order_commits".into(), "ON".into()),
                Ok(false) => Verdict::fail("binlog_order_commits".into(), ORDER_COMMITS_FIX.into()),
                Err(e) => Verdict::fail("binlog_order_commits".into(), e.to_string()),
            });
        }
        out
    }

    async fn try_write(&self, conn: &mut Conn) -> Result<(), MyError> {
        conn.query_drop("START TRANSACTION").await.ctx(|| "starting a trial transaction".into())?;
        let wrote = self.fence(conn).await;
        conn.query_drop("ROLLBACK").await.ctx(|| "rolling the trial back".into())?;
        wrote
    }

    /// `zetl drop`: removes this integration's row, and the table once no integration has one.
    pub async fn release(&self, conn: &mut Conn) -> Result<(), MyError> {
        if !self.exists(conn).await? {
            return Ok(());
        }
        let table = quote_table(&self.id);
        let what = || format!("removing this integration from the signal table {}", self.id);
        conn.exec_drop(format!("DELETE FROM {table} WHERE integration = ?"), (&self.integration,)).await.ctx(what)?;
        let others: Option<u64> =
            conn.query_first(format!("SELECT COUNT(*) FROM {table}")).await.ctx(|| "counting its rows".into())?;
        if others == Some(0) {
            conn.query_drop(format!("DROP TABLE IF EXISTS {table}"))
                .await
                .ctx(|| format!("dropping the signal table {}", self.id))?;
        } else {
            tracing::info!(table = %self.id, "the signal table is kept: other integrations write to it");
        }
        Ok(())
    }
}

const ORDER_COMMITS_FIX: &str = "OFF: transactions may then become visible out of binlog order, so the signal \
     table's fence proves nothing; SET GLOBAL binlog_order_commits = ON and set it in my.cnf";

async fn order_commits(conn: &mut Conn) -> Result<bool, MyError> {
    let on: Option<i64> =
        conn.query_first("SELECT @@GLOBAL.binlog_order_commits").await.ctx(|| "reading binlog_order_commits".into())?;
    Ok(on == Some(1))
}

/// Before `zetl run` uses the table on MySQL: the fence holds only if commits follow the binlog.
pub async fn require_order_commits(conn: &mut Conn, flavor: Flavor) -> Result<(), MyError> {
    if flavor == Flavor::MariaDb || order_commits(conn).await? {
        return Ok(());
    }
    Err(MyError::Prerequisite(format!("source.signal_table is set but binlog_order_commits is {ORDER_COMMITS_FIX}")))
}
