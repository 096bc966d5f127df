//! Read-only prerequisite checks for `zetl check`: one verdict per line, with the fix.

use crate::catalog;
use crate::replication::ReplicationConn;
use crate::source::PgSource;
use tokio_postgres::Client;

pub use zetl_core::check::{Outcome, Verdict};

/// The server converts text from the database's encoding into UTF-8 for zetl, except from
/// SQL_ASCII, which stores any bytes: a value that is not UTF-8 then stops the copy or stream.
async fn check_encoding(sql: &Client) -> Verdict {
    let what = "database encoding".to_string();
    match sql
        .query_one("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()", &[])
        .await
    {
        Ok(r) if r.get::<_, String>(0) == "SQL_ASCII" => Verdict::warn(
            what,
            "SQL_ASCII: text is stored unchecked, and a value that is not UTF-8 stops replication at that row".into(),
        ),
        Ok(r) => Verdict::pass(what, r.get(0)),
        Err(e) => Verdict::fail(what, e.to_string()),
    }
}

impl PgSource {
    /// `known_slots`: the slots of every integration in the config file, so that slots of
    /// retired integrations can be pointed out.
    pub(crate) async fn verdicts(&self, known_slots: &[String]) -> Vec<Verdict> {
        let mut out = Vec::new();
        let sql = match self.conn_info().connect_sql().await {
            Ok(c) => {
                out.push(Verdict::pass("source connection".into(), format!("{:?}", self.conn_info())));
                c
            }
            Err(e) => {
                out.push(Verdict::fail("source connection".into(), e.to_string()));
                return out;
            }
        };
        out.push(match catalog::check_wal_level(&sql).await {
            Ok(()) => Verdict::pass("wal_level".into(), "logical".into()),
            Err(e) => Verdict::fail("wal_level".into(), e.to_string()),
        });
        out.push(check_encoding(&sql).await);
        out.push(self.check_privileges(&sql).await);
        out.push(match ReplicationConn::connect(self.conn_info()).await {
            Ok(_) => Verdict::pass("replication connection".into(), String::new()),
            Err(e) => Verdict::fail(
                "replication connection".into(),
                format!("{e} (grant REPLICATION to the user and allow it in pg_hba.conf)"),
            ),
        });
        out.push(self.check_slots(&sql).await);
        out.extend(self.check_orphan_slots(&sql, known_slots).await);
        match catalog::list_tables(&sql, &self.filter).await {
            Ok(tables) => {
                out.push(Verdict::new(
                    Outcome::from(!tables.is_empty()),
                    "tables".into(),
                    match tables.len() {
                        0 => "no table matches tables.include / tables.exclude".into(),
                        n => format!("{n} match the filters"),
                    },
                ));
                out.push(self.check_ownership(&sql, &tables).await);
                for t in tables.iter().filter(|t| !t.has_identity()) {
                    out.push(Verdict::pass(format!("table {}", t.id), format!(
                        "no primary key or replica identity: inserts only (for updates and deletes: ALTER TABLE {} REPLICA IDENTITY FULL)",
                        catalog::quote_table(&t.id)
                    )));
                }
            }
            Err(e) => out.push(Verdict::fail("tables".into(), e.to_string())),
        }
        out
    }

    async fn check_privileges(&self, sql: &Client) -> Verdict {
        let q = "SELECT rolsuper OR rolreplication, rolsuper OR has_database_privilege(current_database(), 'CREATE') \
                 FROM pg_roles WHERE rolname = current_user";
        match sql.query_one(q, &[]).await {
            Ok(r) if r.get::<_, bool>(0) && r.get::<_, bool>(1) => {
                Verdict::pass("privileges".into(), "REPLICATION and CREATE (for the publication)".into())
            }
            Ok(r) if !r.get::<_, bool>(0) => {
                Verdict::fail("privileges".into(), format!("`ALTER ROLE {} REPLICATION`", self.conn_info().user))
            }
            Ok(_) => Verdict::fail(
                "privileges".into(),
                "the user needs CREATE on the database to create the publication".into(),
            ),
            Err(e) => Verdict::fail("privileges".into(), e.to_string()),
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
                Verdict::pass("table ownership".into(), "the user may publish every matching table".into())
            }
            Ok(rows) => {
                let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                Verdict::fail("table ownership".into(), format!(
                    "only a table's owner can add it to the publication; not owned by `{}`: {} (grant the owning role to it, or create the publication as the owner and name it in source.publication)",
                    self.conn_info().user,
                    names.join(", ")
                ))
            }
            Err(e) => Verdict::fail("table ownership".into(), e.to_string()),
        }
    }

    async fn check_slots(&self, sql: &Client) -> Verdict {
        let slot = self.slot_name();
        let q = "SELECT confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, \
                 wal_status FROM pg_replication_slots WHERE slot_name = $1";
        let budget = self.config.slot_wal_budget_mb.saturating_mul(1 << 20);
        match sql.query_opt(q, &[&slot]).await {
            Ok(Some(r)) => {
                let retained = r.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64;
                let confirmed = r.get::<_, Option<String>>(0).unwrap_or_else(|| "-".into());
                let detail = format!("`{slot}` confirmed up to {confirmed}, retains {} MiB of WAL", retained >> 20);
                if r.get::<_, Option<String>>(2).as_deref() == Some("lost") {
                    let fix = format!(
                        "`{slot}` was invalidated by the server (it fell more than max_slot_wal_keep_size behind): \
                         the changes since {confirmed} are gone; copy everything again with \
                         `zetl resync -c FILE -i {} --all`",
                        self.integration
                    );
                    Verdict::fail("replication slot".into(), fix)
                } else if retained > budget {
                    let fix = format!(
                        "{detail}, over the budget of {} MiB (source.slot_wal_budget_mb): is zetl running and keeping up? A retired integration's slot is removed with `zetl drop`",
                        budget >> 20
                    );
                    Verdict::fail("replication slot".into(), fix)
                } else {
                    Verdict::pass("replication slot".into(), detail)
                }
            }
            Ok(None) => Verdict::pass("replication slot".into(), format!("`{slot}` will be created by `zetl run`")),
            Err(e) => Verdict::fail("replication slot".into(), e.to_string()),
        }
    }

    /// zetl's slots (named `zetl_…`) that no integration of the config file uses: a retired
    /// integration's slot makes the server keep WAL for ever.
    async fn check_orphan_slots(&self, sql: &Client, known: &[String]) -> Vec<Verdict> {
        let q = "SELECT slot_name::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots \
                 WHERE slot_type = 'logical' AND slot_name LIKE 'zetl\\_%' AND NOT temporary AND database = current_database()";
        match sql.query(q, &[]).await {
            Ok(rows) => rows
                .iter()
                .filter(|r| !known.contains(&r.get::<_, String>(0)))
                .map(|r| {
                    let name: String = r.get(0);
                    let retained = r.get::<_, Option<i64>>(1).unwrap_or(0).max(0) >> 20;
                    let fix = format!(
                        "`{name}` belongs to no integration in this file and retains {retained} MiB of WAL; if its integration is retired: SELECT pg_drop_replication_slot('{name}')"
                    );
                    Verdict::warn("unused slot".into(), fix)
                })
                .collect(),
            Err(e) => vec![Verdict::warn("unused slots".into(), e.to_string())],
        }
    }

    /// The server's current WAL position, for lag in bytes.
    pub(crate) async fn wal_position(&self) -> Result<String, crate::PgError> {
        let sql = self.conn_info().connect_sql().await?;
        let row = sql
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|source| crate::PgError::Sql { what: "reading the current WAL position".into(), cause: source })?;
        Ok(row.get(0))
    }
}
