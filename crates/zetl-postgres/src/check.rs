//! Read-only prerequisite checks for `zetl check`: one verdict per line, with the fix.

use crate::catalog;
use crate::publication;
use crate::replication::ReplicationConn;
use crate::source::PgSource;
use tokio_postgres::Client;

pub type Verdict = (bool, String, String);

impl PgSource {
    pub async fn check(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        let sql = match self.conn_info().connect_sql().await {
            Ok(c) => {
                out.push((
                    true,
                    "source connection".into(),
                    format!("{:?}", self.conn_info()),
                ));
                c
            }
            Err(e) => {
                out.push((false, "source connection".into(), e.to_string()));
                return out;
            }
        };
        out.push(match catalog::check_wal_level(&sql).await {
            Ok(()) => (true, "wal_level".into(), "logical".into()),
            Err(e) => (false, "wal_level".into(), e.to_string()),
        });
        out.push(self.check_privileges(&sql).await);
        out.push(match ReplicationConn::connect(self.conn_info()).await {
            Ok(_) => (true, "replication connection".into(), String::new()),
            Err(e) => (
                false,
                "replication connection".into(),
                format!("{e} (grant REPLICATION to the user and allow it in pg_hba.conf)"),
            ),
        });
        out.push(self.check_slots(&sql).await);
        match catalog::list_tables(&sql, &self.filter).await {
            Ok(tables) => {
                out.push((
                    !tables.is_empty(),
                    "tables".into(),
                    match tables.len() {
                        0 => "no table matches tables.include / tables.exclude".into(),
                        n => format!("{n} match the filters"),
                    },
                ));
                for t in tables.iter().filter(|t| !t.has_identity()) {
                    out.push((true, format!("table {}", t.id), format!(
                        "no primary key or replica identity: inserts only (for updates and deletes: ALTER TABLE {} REPLICA IDENTITY FULL)",
                        catalog::quote_table(&t.id)
                    )));
                }
            }
            Err(e) => out.push((false, "tables".into(), e.to_string())),
        }
        out
    }

    async fn check_privileges(&self, sql: &Client) -> Verdict {
        let q = "SELECT rolsuper OR rolreplication, rolsuper OR has_database_privilege(current_database(), 'CREATE') \
                 FROM pg_roles WHERE rolname = current_user";
        match sql.query_one(q, &[]).await {
            Ok(r) if r.get::<_, bool>(0) && r.get::<_, bool>(1) => (
                true,
                "privileges".into(),
                "REPLICATION and CREATE (for the publication)".into(),
            ),
            Ok(r) if !r.get::<_, bool>(0) => (
                false,
                "privileges".into(),
                format!("`ALTER ROLE {} REPLICATION`", self.conn_info().user),
            ),
            Ok(_) => (
                false,
                "privileges".into(),
                "the user needs CREATE on the database to create the publication".into(),
            ),
            Err(e) => (false, "privileges".into(), e.to_string()),
        }
    }

    async fn check_slots(&self, sql: &Client) -> Verdict {
        let slot = self.slot_name();
        match publication::slot_state(sql, &slot).await {
            Ok(Some(s)) => (
                true,
                "replication slot".into(),
                format!(
                    "`{slot}` exists, confirmed up to {}",
                    s.confirmed_flush
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "-".into())
                ),
            ),
            Ok(None) => (
                true,
                "replication slot".into(),
                format!("`{slot}` will be created by `zetl run`"),
            ),
            Err(e) => (false, "replication slot".into(), e.to_string()),
        }
    }

    /// The server's current WAL position, for lag in bytes.
    pub async fn current_position(&self) -> Result<String, crate::PgError> {
        let sql = self.conn_info().connect_sql().await?;
        let row = sql
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|source| crate::PgError::Sql {
                what: "reading the current WAL position".into(),
                source,
            })?;
        Ok(row.get(0))
    }
}
