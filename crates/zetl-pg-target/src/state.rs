//! Checkpoints and per-table state in `_zetl`, written inside the data's own transaction.

use crate::error::{PgTargetError, SqlContext};
use std::collections::HashMap;
use tokio_postgres::Client;
use zetl_core::{Checkpoint, CopiedTable, CopyUnderWay, Phase, Position, TableId, TableSchema, TableState};

pub async fn load_checkpoint(c: &Client, integration: &str) -> Result<Option<Checkpoint>, PgTargetError> {
    let row = c
        .query_opt("SELECT position, phase FROM _zetl.checkpoints WHERE integration = $1", &[&integration])
        .await
        .ctx(|| "reading the checkpoint".into())?;
    let Some(row) = row else { return Ok(None) };
    let phase: String = row.get(1);
    let phase = Phase::parse(&phase).map_err(|e| PgTargetError::State(format!("{e} in _zetl.checkpoints")))?;
    Ok(Some(Checkpoint { position: Position(row.get(0)), phase }))
}

pub async fn store_checkpoint(c: &Client, integration: &str, cp: &Checkpoint) -> Result<(), PgTargetError> {
    c.execute(
        "INSERT INTO _zetl.checkpoints VALUES ($1, $2, $3, now()) ON CONFLICT (integration) \
         DO UPDATE SET position = excluded.position, phase = excluded.phase, updated_at = excluded.updated_at",
        &[&integration, &cp.position.0, &cp.phase.as_str()],
    )
    .await
    .ctx(|| "storing the checkpoint".into())?;
    Ok(())
}

pub async fn set_table_state(
    c: &Client,
    integration: &str,
    table: &TableId,
    state: TableState,
    rows: i64,
    copied: &CopiedTable,
) -> Result<(), PgTargetError> {
    let at = copied.consistent_at.as_ref().map(|p| p.0.as_str());
    let schema = copied.schema.as_ref().map(TableSchema::to_stored);
    c.execute(
        "INSERT INTO _zetl.tables (integration, table_schema, table_name, state, rows_copied, updated_at, \
                                   copied_at, source_id, source_schema) VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8) \
         ON CONFLICT (integration, table_schema, table_name) DO UPDATE SET state = excluded.state, \
         rows_copied = excluded.rows_copied, updated_at = excluded.updated_at, copied_at = excluded.copied_at, \
         source_id = excluded.source_id, state_reason = NULL, copy_cursor = NULL, \
         source_schema = coalesce(excluded.source_schema, _zetl.tables.source_schema)",
        &[&integration, &table.schema, &table.name, &state.as_str(), &rows, &at, &copied.source_id, &schema],
    )
    .await
    .ctx(|| format!("recording the state of {table}"))?;
    Ok(())
}

/// A copy under way holds `rows`, and stands at `cursor` when it moved on (the stored one
/// stays otherwise).
pub async fn set_copy_progress(
    c: &Client,
    integration: &str,
    table: &TableId,
    rows: i64,
    cursor: Option<&str>,
) -> Result<(), PgTargetError> {
    c.execute(
        "UPDATE _zetl.tables SET rows_copied = $1, copy_cursor = coalesce($2, copy_cursor), updated_at = now() \
         WHERE integration = $3 AND table_schema = $4 AND table_name = $5",
        &[&rows, &cursor, &integration, &table.schema, &table.name],
    )
    .await
    .ctx(|| format!("recording the progress of the copy of {table}"))?;
    Ok(())
}

/// Copies under way that stored a cursor: a restart continues them there.
pub async fn copies_under_way(c: &Client, integration: &str) -> Result<Vec<(TableId, CopyUnderWay)>, PgTargetError> {
    let rows = c
        .query(
            "SELECT table_schema, table_name, copy_cursor, rows_copied FROM _zetl.tables \
             WHERE integration = $1 AND state = $2 AND copy_cursor IS NOT NULL",
            &[&integration, &TableState::Copying.as_str()],
        )
        .await
        .ctx(|| "listing the copies under way".into())?;
    Ok(rows
        .iter()
        .map(|r| {
            let parts = r.get::<_, &str>(2).lines().map(str::to_string).collect();
            let copy = CopyUnderWay { parts, rows: r.get::<_, i64>(3).max(0) as u64 };
            (TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)), copy)
        })
        .collect())
}

pub async fn copied_tables(c: &Client, integration: &str) -> Result<Vec<(TableId, CopiedTable)>, PgTargetError> {
    let rows = c
        .query(
            "SELECT table_schema, table_name, copied_at, source_id, source_schema FROM _zetl.tables \
             WHERE integration = $1 AND state = $2",
            &[&integration, &TableState::Streaming.as_str()],
        )
        .await
        .ctx(|| "listing copied tables".into())?;
    Ok(rows
        .iter()
        .map(|r| {
            let copied = CopiedTable {
                consistent_at: r.get::<_, Option<String>>(2).map(Position),
                source_id: r.get(3),
                schema: r.get::<_, Option<&str>>(4).and_then(TableSchema::from_stored),
            };
            (TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)), copied)
        })
        .collect())
}

/// The source schema stored for each table of this integration, whatever its state.
pub async fn stored_schemas(c: &Client, integration: &str) -> Result<HashMap<TableId, TableSchema>, PgTargetError> {
    let rows = c
        .query(
            "SELECT source_schema FROM _zetl.tables WHERE integration = $1 AND source_schema IS NOT NULL",
            &[&integration],
        )
        .await
        .ctx(|| "reading stored schemas".into())?;
    Ok(rows.iter().filter_map(|r| TableSchema::from_stored(r.get(0))).map(|s| (s.id.clone(), s)).collect())
}

/// Stores the schema a table was brought up to, in the open transaction (a table with no row
/// yet gets it with its copy).
pub async fn store_schema(c: &Client, integration: &str, schema: &TableSchema) -> Result<(), PgTargetError> {
    c.execute(
        "UPDATE _zetl.tables SET source_schema = $4 WHERE integration = $1 AND table_schema = $2 AND table_name = $3",
        &[&integration, &schema.id.schema, &schema.id.name, &schema.to_stored()],
    )
    .await
    .ctx(|| format!("storing the schema of {}", schema.id))?;
    Ok(())
}

/// Sets `state` (and why, for `zetl status`) on the listed tables of this integration.
pub async fn mark_tables(
    c: &Client,
    integration: &str,
    tables: &[TableId],
    state: TableState,
    reason: Option<&str>,
) -> Result<(), PgTargetError> {
    for table in tables {
        c.execute(
            "UPDATE _zetl.tables SET state = $4, state_reason = $5, updated_at = now() \
             WHERE integration = $1 AND table_schema = $2 AND table_name = $3",
            &[&integration, &table.schema, &table.name, &state.as_str(), &reason],
        )
        .await
        .ctx(|| format!("marking {table} {}", state.as_str()))?;
    }
    Ok(())
}

pub async fn known_tables(c: &Client, integration: &str) -> Result<Vec<TableId>, PgTargetError> {
    let rows = c
        .query("SELECT table_schema, table_name FROM _zetl.tables WHERE integration = $1", &[&integration])
        .await
        .ctx(|| "listing tables".into())?;
    Ok(rows.iter().map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1))).collect())
}

pub async fn forget(c: &Client, integration: &str) -> Result<(), PgTargetError> {
    c.execute("DELETE FROM _zetl.checkpoints WHERE integration = $1", &[&integration])
        .await
        .ctx(|| "forgetting the checkpoint".into())?;
    c.execute("DELETE FROM _zetl.tables WHERE integration = $1", &[&integration])
        .await
        .ctx(|| "forgetting table state".into())?;
    Ok(())
}
