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
                out.push((true, "source connection".into(), format!("{:?}", self.conn_info())));
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
                out.push(self.check_ownership(&sql, &tables).await);
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
            Ok(r) if r.get::<_, bool>(0) && r.get::<_, bool>(1) => {
                (true, "privileges".into(), "REPLICATION and CREATE (for the publication)".into())
            }
            Ok(r) if !r.get::<_, bool>(0) => {
                (false, "privileges".into(), format!("`ALTER ROLE {} REPLICATION`", self.conn_info().user))
            }
            Ok(_) => {
                (false, "privileges".into(), "the user needs CREATE on the database to create the publication".into())
            }
            Err(e) => (false, "privileges".into(), e.to_string()),
        }
    }

    /// Only a table's owner (or a superuser) may add it to a publication.
    async fn check_ownership(&self, sql: &Client, tables: &[catalog::TableInfo]) -> Verdict {
        let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
        let q = "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = ANY($1) AND NOT pg_has_role(current_user, c.relowner, 'USAGE') \
                 AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) ORDER BY 1";
        match sql.query(q, &[&oids]).await {
            Ok(rows) if rows.is_empty() => {
                (true, "table ownership".into(), "the user may publish every matching table".into())
            }
            Ok(rows) => {
                let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                (false, "table ownership".into(), format!(
                    "only a table's owner can add it to the publication; not owned by `{}`: {} (grant the owning role to it, or create the publication as the owner and name it in source.publication)",
                    self.conn_info().user,
                    names.join(", ")
                ))
            }
            Err(e) => (false, "table ownership".into(), e.to_string()),
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
                    s.confirmed_flush.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
                ),
            ),
            Ok(None) => (true, "replication slot".into(), format!("`{slot}` will be created by `zetl run`")),
            Err(e) => (false, "replication slot".into(), e.to_string()),
        }
    }

    /// The server's current WAL position, for lag in bytes.
    pub async fn current_position(&self) -> Result<String, crate::PgError> {
        let sql = self.conn_info().connect_sql().await?;
        let row = sql
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|source| crate::PgError::Sql { what: "reading the current WAL position".into(), cause: source })?;
        Ok(row.get(0))
    }
}
