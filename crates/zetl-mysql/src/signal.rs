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
            "GRANT INSERT, UPDATE ON {t} TO the zetl user, plus CREATE to let `zetl run` create it and DELETE, DROP \
             for `zetl drop`",
            t = quote_table(&self.id)
        )
    }

    /// Creates the table unless it exists (by `zetl run`, before streaming). Looked up first:
    /// `CREATE TABLE IF NOT EXISTS` wants the CREATE grant even when the table is there.
    pub async fn create(&self, conn: &mut Conn) -> Result<(), MyError> {
        if self.exists(conn).await? {
            return Ok(());
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (integration VARCHAR(190) NOT NULL PRIMARY KEY, \
             fenced_at DATETIME(6) NOT NULL, fences BIGINT NOT NULL) ENGINE = InnoDB",
            quote_table(&self.id)
        );
        conn.query_drop(sql).await.ctx(|| format!("creating the signal table {} ({})", self.id, self.grant_fix()))
    }

    /// Commits this integration's fence (autocommit; a transaction left open on `conn` is
    /// committed by the next `START TRANSACTION` anyway). A table dropped meanwhile (`zetl
    /// drop` of the last other integration) is created again.
    pub async fn fence(&self, conn: &mut Conn) -> Result<(), MyError> {
        match self.write(conn).await {
            Err(MyError::Sql { cause: mysql_async::Error::Server(e), .. }) if e.code == NO_SUCH_TABLE => {
                self.create(conn).await?;
                self.write(conn).await
            }
            wrote => wrote,
        }
    }

    async fn write(&self, conn: &mut Conn) -> Result<(), MyError> {
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
        out.push(match self.fence_problem(conn, flavor).await {
            Ok(None) => {
                Verdict::pass("signal table fence".into(), "its database is logged; commits follow the binlog".into())
            }
            Ok(Some(why)) => Verdict::fail("signal table fence".into(), why),
            Err(e) => Verdict::fail("signal table fence".into(), e.to_string()),
        });
        out
    }

    /// Before `zetl run` uses the table: a fence holds only if it reaches the binlog and, on
    /// MySQL, commits follow the binlog's order.
    pub async fn require_fence_holds(&self, conn: &mut Conn, flavor: Flavor) -> Result<(), MyError> {
        match self.fence_problem(conn, flavor).await? {
            None => Ok(()),
            Some(why) => Err(MyError::Prerequisite(format!("source.signal_table {}: {why}", self.id))),
        }
    }

    /// Why a fence would prove nothing, if it would not: it would not reach the binlog
    /// (`binlog-do-db` / `binlog-ignore-db` leaving its database out: a commit outside the
    /// binlog is ordered with none of the binlog's), or MySQL commits out of binlog order.
    async fn fence_problem(&self, conn: &mut Conn, flavor: Flavor) -> Result<Option<String>, MyError> {
        let row = flavor.binlog_status(conn).await?;
        let list = |i: usize| row.get::<Option<String>, _>(i).flatten().unwrap_or_default();
        let (only, ignored) = (list(2), list(3));
        let db = &self.id.schema;
        if left_out(db, &only, &ignored) {
            return Ok(Some(format!(
                "the server does not log database `{db}` (binlog-do-db: `{only}`, binlog-ignore-db: `{ignored}`), \
                 so a fence there proves nothing: put the signal table in a logged database"
            )));
        }
        if flavor == Flavor::MariaDb || order_commits(conn).await? {
            return Ok(None);
        }
        Ok(Some(ORDER_COMMITS_FIX.into()))
    }

    async fn try_write(&self, conn: &mut Conn) -> Result<(), MyError> {
        conn.query_drop("START TRANSACTION").await.ctx(|| "starting a trial transaction".into())?;
        let wrote = self.write(conn).await;
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

const ORDER_COMMITS_FIX: &str = "binlog_order_commits is OFF: transactions may then become visible out of binlog \
     order, so the signal table's fence proves nothing; SET GLOBAL binlog_order_commits = ON and set it in my.cnf";

async fn order_commits(conn: &mut Conn) -> Result<bool, MyError> {
    let on: Option<i64> =
        conn.query_first("SELECT @@GLOBAL.binlog_order_commits").await.ctx(|| "reading binlog_order_commits".into())?;
    Ok(on == Some(1))
}

/// Whether binlog filters (`Binlog_Do_DB`, `Binlog_Ignore_DB`: comma-separated) leave `db` out.
fn left_out(db: &str, only: &str, ignored: &str) -> bool {
    fn names(list: &str) -> Vec<&str> {
        list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect()
    }
    let only = names(only);
    (!only.is_empty() && !only.contains(&db)) || names(ignored).contains(&db)
}

/// `ER_NO_SUCH_TABLE`.
const NO_SUCH_TABLE: u16 = 1146;

#[cfg(test)]
mod tests {
    use super::left_out;

    #[test]
    fn binlog_filters_that_leave_the_database_out() {
        assert!(!left_out("zetl", "", ""));
        assert!(!left_out("zetl", "shop,zetl", ""));
        assert!(left_out("zetl", "shop", ""));
        assert!(left_out("zetl", "", "tmp, zetl"));
        assert!(!left_out("zetl", "", "zetl_old"));
    }
}
