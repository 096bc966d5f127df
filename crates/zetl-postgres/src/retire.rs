//! `zetl drop`: removing what an integration holds on the source (its slot and publications),
//! so a retired integration does not make the server keep WAL for ever.

use crate::catalog::quote_ident;
use crate::error::{PgError, SqlContext};
use crate::publication::{append_name, slot_state};
use crate::source::PgSource;

/// What `zetl drop` would remove.
#[derive(Debug)]
pub struct Retirement {
    pub slot: Option<String>,
    pub slot_active_pid: Option<i32>,
    pub publications: Vec<String>,
}

impl PgSource {
    pub async fn retirement(&self) -> Result<Retirement, PgError> {
        let sql = self.conn_info().connect_sql().await?;
        let slot = self.slot_name();
        let state = slot_state(&sql, &slot).await?;
        let mut publications = Vec::new();
        for name in [self.publication_name(), append_name(&self.publication_name())] {
            let exists = sql
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .ctx(|| format!("looking up publication {name}"))?
                .is_some();
            if exists {
                publications.push(name);
            }
        }
        Ok(Retirement {
            slot_active_pid: state.as_ref().and_then(|s| s.active_pid),
            slot: state.map(|_| slot),
            publications,
        })
    }

    /// Drops the slot and the publications. Refuses while a process streams from the slot.
    pub async fn retire(&self, plan: &Retirement) -> Result<(), PgError> {
        if let Some(pid) = plan.slot_active_pid {
            return Err(PgError::Prerequisite(format!(
                "slot `{}` is in use by server process {pid}: stop `zetl run` for this integration first",
                self.slot_name()
            )));
        }
        let sql = self.conn_info().connect_sql().await?;
        if let Some(slot) = &plan.slot {
            sql.execute("SELECT pg_drop_replication_slot($1)", &[slot])
                .await
                .ctx(|| format!("dropping slot {slot}"))?;
        }
        for name in &plan.publications {
            sql.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
                .await
                .ctx(|| format!("dropping publication {name}"))?;
        }
        Ok(())
    }
}
