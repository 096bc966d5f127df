//! The publications and the slot zetl owns for an integration.
//!
//! Two publications: `<name>` publishes every change of tables that have a replica identity;
//! `<name>_append` publishes only inserts (and truncates) of tables without one, because
//! publishing UPDATE/DELETE for such a table makes the *source* reject those statements.

use crate::catalog::{quote_ident, quote_table, TableInfo};
use crate::error::{PgError, SqlContext};
use crate::lsn::Lsn;
use std::collections::{BTreeSet, HashSet};
use tokio_postgres::Client;
use zetl_core::TableId;

pub fn append_name(publication: &str) -> String {
    format!("{publication}_append")
}

/// What each of the two publications must publish.
const PUBLISH_ALL: Publish = Publish { insert: true, update: true, delete: true, truncate: true };
const PUBLISH_APPEND: Publish = Publish { insert: true, update: false, delete: false, truncate: true };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Publish {
    insert: bool,
    update: bool,
    delete: bool,
    truncate: bool,
}

impl Publish {
    fn option(self) -> String {
        let kinds =
            [("insert", self.insert), ("update", self.update), ("delete", self.delete), ("truncate", self.truncate)];
        kinds.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
    }
}

/// Makes the two publications hold exactly `tables` (split by identity), with the options
/// zetl needs.
/// Returns whether a table was added to a publication: a transaction open across that moment
/// had its earlier changes to the table left out of the stream (see `source::copy_snapshot`).
pub async fn sync_publications(client: &Client, publication: &str, tables: &[TableInfo]) -> Result<bool, PgError> {
    let (full, append): (Vec<&TableInfo>, Vec<&TableInfo>) = tables.iter().partition(|t| t.has_identity());
    let added = sync_one(client, publication, PUBLISH_ALL, &full).await?;
    Ok(sync_one(client, &append_name(publication), PUBLISH_APPEND, &append).await? | added)
}

/// The OIDs of the tables the integration's publications hold now. A table zetl streams that
/// is not among them has lost changes: dropped and created again (a publication holds the
/// OID, not the name), or removed from the publication by hand.
pub async fn published_oids(client: &Client, publication: &str) -> Result<HashSet<u32>, PgError> {
    let names = vec![publication.to_string(), append_name(publication)];
    let rows = client
        .query(
            "SELECT pr.prrelid FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid \
             WHERE p.pubname = ANY($1)",
            &[&names],
        )
        .await
        .ctx(|| format!("reading the tables of publication {publication}"))?;
    Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
}

async fn sync_one(client: &Client, name: &str, publish: Publish, tables: &[&TableInfo]) -> Result<bool, PgError> {
    let found = client
        .query_opt(
            "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot \
             FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .ctx(|| format!("looking up publication {name}"))?;
    let options = format!("publish = '{}', publish_via_partition_root = true", publish.option());
    match found {
        None => {
            client
                .batch_execute(&format!("CREATE PUBLICATION {} WITH ({options})", quote_ident(name)))
                .await
                .ctx(|| format!("creating publication {name}"))?;
            tracing::info!(publication = name, "created publication");
        }
        Some(row) if row.get::<_, bool>(0) => {
            return Err(PgError::Prerequisite(format!(
                "publication `{name}` publishes ALL TABLES, so zetl cannot keep it to the tables of its \
                 filters: drop it (`DROP PUBLICATION {}`) and let zetl create its own, or name another one \
                 with source.publication",
                quote_ident(name)
            )));
        }
        Some(row) => {
            let has = Publish { insert: row.get(1), update: row.get(2), delete: row.get(3), truncate: row.get(4) };
            if has != publish || !row.get::<_, bool>(5) {
                // Anything less loses changes without a word (no deletes, or partitions' changes
                // under their own names that zetl does not stream).
                tracing::warn!(
                    publication = name,
                    found = %format!("publish = '{}', publish_via_partition_root = {}", has.option(), row.get::<_, bool>(5)),
                    "publication options differ from what zetl needs; setting {options}"
                );
                client
                    .batch_execute(&format!("ALTER PUBLICATION {} SET ({options})", quote_ident(name)))
                    .await
                    .ctx(|| format!("setting the options of publication {name}"))?;
            }
        }
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
    Ok(!add.is_empty())
}

#[derive(Debug)]
pub struct SlotState {
    pub confirmed_flush: Option<Lsn>,
    pub active_pid: Option<i32>,
    /// The server invalidated it (`wal_status = 'lost'`: it fell more than
    /// `max_slot_wal_keep_size` behind): the WAL it needed is gone.
    pub lost: bool,
}

pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>, PgError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, active_pid, wal_status = 'lost' \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ctx(|| format!("looking up slot {slot}"))?;
    Ok(row.map(|r| SlotState {
        confirmed_flush: r.get::<_, Option<String>>(0).and_then(|s| Lsn::parse(&s)),
        active_pid: r.get(1),
        lost: r.get::<_, Option<bool>>(2).unwrap_or(false),
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
