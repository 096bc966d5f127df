//! `zetl drop`: removing what an integration holds on the source (its slot and publications),
//! so a retired integration does not make the server keep WAL for ever.

use crate::catalog::quote_ident;
use crate::error::{PgError, SqlContext};
use crate::publication::{append_name, slot_state};
use crate::source::PgSource;
use zetl_core::source::{Held, Holdings};

const SLOT: &str = "replication slot";
const PUBLICATION: &str = "publication";

impl PgSource {
    pub(crate) async fn retirement(&self) -> Result<Holdings, PgError> {
        let sql = self.conn_info().connect_sql().await?;
        let slot = self.slot_name();
        let mut items = Vec::new();
        if let Some(state) = slot_state(&sql, &slot).await? {
            let in_use_by = state.active_pid.map(|pid| format!("server process {pid}"));
            items.push(Held { kind: SLOT, name: slot, in_use_by });
        }
        for name in [self.publication_name(), append_name(&self.publication_name())] {
            let exists = sql
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .ctx(|| format!("looking up publication {name}"))?
                .is_some();
            if exists {
                items.push(Held { kind: PUBLICATION, name, in_use_by: None });
            }
        }
        Ok(Holdings::Held { place: format!("{:?}", self.conn_info()), items })
    }

    /// Drops the slot and the publications. Refuses while a process streams from the slot.
    pub(crate) async fn retire(&self, holdings: &Holdings) -> Result<(), PgError> {
        let Holdings::Held { items, .. } = holdings else { return Ok(()) };
        if let Some(Held { name, in_use_by: Some(user), .. }) = items.iter().find(|h| h.in_use_by.is_some()) {
            return Err(PgError::Prerequisite(format!(
                "slot `{name}` is in use by {user}: stop `zetl run` for this integration first"
            )));
        }
        let sql = self.conn_info().connect_sql().await?;
        for held in items {
            let name = &held.name;
            if held.kind == SLOT {
                sql.execute("SELECT pg_drop_replication_slot($1)", &[name])
                    .await
                    .ctx(|| format!("dropping slot {name}"))?;
            } else {
                sql.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
                    .await
                    .ctx(|| format!("dropping publication {name}"))?;
            }
        }
        Ok(())
    }
}
