//! Where MariaDB and MySQL differ for replication, kept in one place: how a consistent
//! snapshot's binlog position is learnt, and how a binlog dump is started by GTID.

use crate::error::{MyError, SqlContext};
use crate::position::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    /// `binary_log_status`: the server has `SHOW BINARY LOG STATUS` (MySQL 8.2 and later;
    /// 8.4 removed `SHOW MASTER STATUS`).
    MySql {
        binary_log_status: bool,
    },
}

impl Flavor {
    /// From `@@version` (`10.11.19-MariaDB-log`, `8.4.3`, `8.0.36-0ubuntu0.22.04.1`).
    pub fn of(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            return Flavor::MariaDb;
        }
        let mut parts = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Flavor::MySql { binary_log_status: (major, minor) >= (8, 2) }
    }

    /// The statement that tells the current binlog file and offset (and, on MySQL, the
    /// executed GTID set in its fifth column). MySQL 8.2 renamed `SHOW MASTER STATUS` to
    /// `SHOW BINARY LOG STATUS` and 8.4 removed the old name (MySQL 8.4 Reference Manual,
    /// "SHOW BINARY LOG STATUS Statement"); MariaDB keeps the old one.
    pub fn binlog_status_sql(self) -> &'static str {
        match self {
            Flavor::MySql { binary_log_status: true } => "SHOW BINARY LOG STATUS",
            Flavor::MariaDb | Flavor::MySql { binary_log_status: false } => "SHOW MASTER STATUS",
        }
    }

    /// Starts a consistent-snapshot transaction on each connection. All of them see the same
    /// data only when they report the same binlog position; MariaDB tells that without a
    /// lock, MySQL needs `FLUSH TABLES WITH READ LOCK` for the moment the snapshots open.
    /// Returns the position of the first connection and which others match it.
    pub async fn open_snapshots(self, conns: &mut [Conn]) -> Result<(BinlogPos, Vec<bool>), MyError> {
        match self {
            Flavor::MariaDb => {
                let mut positions = Vec::with_capacity(conns.len());
                for conn in conns.iter_mut() {
                    start_snapshot(conn).await?;
                    let rows: Vec<(String, String)> = conn
                        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                        .await
                        .ctx(|| "reading the snapshot's binlog position".into())?;
                    let get =
                        |name: &str| rows.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
                    let (Some(file), Some(pos)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position")) else {
                        return Err(MyError::Prerequisite(
                            "the server reports no binlog snapshot position (is log_bin on?)".into(),
                        ));
                    };
                    positions.push(BinlogPos::new(file, pos.parse().unwrap_or(4)));
                }
                let mut first = positions[0].clone();
                let gtid: Option<String> = conns[0]
                    .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (first.file.clone(), first.pos))
                    .await
                    .ctx(|| "reading the snapshot's GTID position".into())?
                    .flatten();
                first.gtid = gtid;
                let same = positions.iter().map(|p| p.file == first.file && p.pos == first.pos).collect();
                Ok((first, same))
            }
            Flavor::MySql { .. } => {
                conns[0].query_drop("FLUSH TABLES WITH READ LOCK").await.ctx(|| "locking for the snapshot".into())?;
                for conn in conns.iter_mut() {
                    start_snapshot(conn).await?;
                }
                let status: Option<mysql_async::Row> = conns[0]
                    .query_first(self.binlog_status_sql())
                    .await
                    .ctx(|| "reading the binlog position".into())?;
                conns[0].query_drop("UNLOCK TABLES").await.ctx(|| "unlocking".into())?;
                let status = status.ok_or_else(|| MyError::Prerequisite("binary logging is off (log_bin)".into()))?;
                let file: Option<String> = status.get(0);
                let pos: Option<u64> = status.get(1);
                let mut at = BinlogPos::new(file.unwrap_or_default(), pos.unwrap_or(4));
                at.gtid = status.get::<Option<String>, _>(4).flatten().filter(|g| !g.is_empty());
                Ok((at, vec![true; conns.len()]))
            }
        }
    }

    /// The server's binlog status row: file, offset, `Binlog_Do_DB`, `Binlog_Ignore_DB`, and on
    /// MySQL the executed GTID set.
    pub async fn binlog_status(self, conn: &mut Conn) -> Result<mysql_async::Row, MyError> {
        let row: Option<mysql_async::Row> =
            conn.query_first(self.binlog_status_sql()).await.ctx(|| "reading the binlog position".into())?;
        row.ok_or_else(|| MyError::Prerequisite("binary logging is off (log_bin)".into()))
    }

    /// The binlog file and offset the server has written up to.
    pub async fn binlog_end(self, conn: &mut Conn) -> Result<(String, u64), MyError> {
        let row = self.binlog_status(conn).await?;
        let unread = || MyError::Protocol("the binlog status has no file and offset".into());
        Ok((row.get::<String, _>(0).ok_or_else(unread)?, row.get::<u64, _>(1).ok_or_else(unread)?))
    }

    /// Session settings on the dump connection before it registers as a replica, and whether
    /// the dump then starts by GTID (MariaDB) or by file and offset (MySQL: its GTID dump
    /// needs the executed set, which file and offset already pin down on the same server).
    pub fn dump_settings(self, start: &BinlogPos, heartbeat_secs: u64) -> (Vec<String>, bool) {
        let mut sql = vec![format!("SET @master_heartbeat_period = {}", heartbeat_secs * 1_000_000_000)];
        match self {
            Flavor::MariaDb => {
                // 4: the replica understands GTID events (MariaDB 10.0+).
                sql.push("SET @mariadb_slave_capability = 4".into());
                match start.gtid.as_deref().filter(|g| !g.is_empty()) {
                    Some(gtid) => {
                        sql.push(format!("SET @slave_connect_state = '{}'", gtid.replace('\'', "")));
                        (sql, true)
                    }
                    None => (sql, false),
                }
            }
            Flavor::MySql { .. } => (sql, false),
        }
    }
}

/// Opens a consistent-snapshot transaction on `conn`.
pub async fn start_snapshot(conn: &mut Conn) -> Result<(), MyError> {
    let iso = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
    conn.query_drop(iso).await.ctx(|| "setting the isolation level".into())?;
    let start = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
    conn.query_drop(start).await.ctx(|| "starting the snapshot transaction".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binlog_status_statement_follows_the_version() {
        let sql = |v: &str| Flavor::of(v).binlog_status_sql();
        assert_eq!(sql("10.11.19-MariaDB-0+deb12u1-log"), "SHOW MASTER STATUS");
        assert_eq!(sql("11.4.2-MariaDB"), "SHOW MASTER STATUS");
        assert_eq!(sql("5.7.44-log"), "SHOW MASTER STATUS");
        assert_eq!(sql("8.0.36-0ubuntu0.22.04.1"), "SHOW MASTER STATUS");
        assert_eq!(sql("8.1.0"), "SHOW MASTER STATUS");
        assert_eq!(sql("8.2.0"), "SHOW BINARY LOG STATUS");
        assert_eq!(sql("8.4.3"), "SHOW BINARY LOG STATUS");
        assert_eq!(sql("9.1.0-commercial"), "SHOW BINARY LOG STATUS");
        assert_eq!(Flavor::of("8.0.36"), Flavor::MySql { binary_log_status: false });
    }
}
