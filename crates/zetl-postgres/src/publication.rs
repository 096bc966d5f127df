//! The publications and the slot zetl owns for an integration.
//!
//! Two publications: `<name>` publishes every change of tables that have a replica identity;
//! `<name>_append` publishes only inserts (and truncates) of tables without one, because
//! publishing UPDATE/DELETE for such a table makes the *source* reject those statements.

use crate::catalog::{quote_ident, quote_table, TableInfo};
use crate::error::{PgError, SqlContext};
use crate::lsn::Lsn;
use std::collections::BTreeSet;
use tokio_postgres::Client;
use zetl_core::TableId;

pub fn append_name(publication: &str) -> String {
    format!("{publication}_append")
}

/// Makes the two publications hold exactly `tables` (split by identity).
pub async fn sync_publications(client: &Client, publication: &str, tables: &[TableInfo]) -> Result<(), PgError> {
    let (full, append): (Vec<&TableInfo>, Vec<&TableInfo>) = tables.iter().partition(|t| t.has_identity());
    sync_one(client, publication, "insert, update, delete, truncate", &full).await?;
    sync_one(client, &append_name(publication), "insert, truncate", &append).await
}

async fn sync_one(client: &Client, name: &str, publish: &str, tables: &[&TableInfo]) -> Result<(), PgError> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .ctx(|| format!("looking up publication {name}"))?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} WITH (publish = '{publish}', publish_via_partition_root = true)",
                quote_ident(name)
            ))
            .await
            .ctx(|| format!("creating publication {name}"))?;
        tracing::info!(publication = name, "created publication");
    }
    let current: BTreeSet<TableId> = client
        .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&name])
        .await
        .ctx(|| format!("reading publication {name}"))?
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let wanted: BTreeSet<TableId> = tables.iter().map(|t| t.id.clone()).collect();
    let add: Vec<String> = wanted.difference(&current).map(quote_table).collect();
    let drop: Vec<String> = current.difference(&wanted).map(quote_table).collect();
    if !add.is_empty() {
        client
            .batch_execute(&format!("ALTER PUBLICATION {} ADD TABLE {}", quote_ident(name), add.join(", ")))
            .await
            .ctx(|| format!("adding tables to publication {name}"))?;
    }
    if !drop.is_empty() {
        client
            .batch_execute(&format!("ALTER PUBLICATION {} DROP TABLE {}", quote_ident(name), drop.join(", ")))
            .await
            .ctx(|| format!("removing tables from publication {name}"))?;
    }
    Ok(())
}

#[derive(Debug)]
pub struct SlotState {
    pub confirmed_flush: Option<Lsn>,
    pub active_pid: Option<i32>,
}

pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>, PgError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ctx(|| format!("looking up slot {slot}"))?;
    Ok(row.map(|r| SlotState {
        confirmed_flush: r.get::<_, Option<String>>(0).and_then(|s| Lsn::parse(&s)),
        active_pid: r.get(1),
    }))
}

/// Drops the slot, ending a walsender that still holds it (a previous zetl that died).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), PgError> {
    if let Some(state) = slot_state(client, slot).await? {
        if let Some(pid) = state.active_pid {
            client
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .ctx(|| format!("ending the walsender holding slot {slot}"))?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .ctx(|| format!("dropping slot {slot}"))?;
        tracing::info!(slot, "dropped replication slot");
    }
    Ok(())
}
