//! zetl's bookkeeping in the target: the `_zetl` schema, created and upgraded by the versioned
//! SQL files in migrations/duckdb, the checkpoint row and per-table state.

use crate::error::{Context, DuckdbError};
use duckdb::{params, Connection, OptionalExt};
use std::collections::HashMap;
use zetl_core::{Checkpoint, CopiedTable, CopyUnderWay, Phase, Position, TableId, TableSchema, TableState};

/// Migrations in order; the index + 1 is the version they bring the schema to.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/duckdb/0001_state.sql"),
    include_str!("../../../migrations/duckdb/0002_copy_position.sql"),
    include_str!("../../../migrations/duckdb/0003_dead_letters.sql"),
    include_str!("../../../migrations/duckdb/0004_source_id.sql"),
    include_str!("../../../migrations/duckdb/0005_superseded_letters.sql"),
    include_str!("../../../migrations/duckdb/0006_stored_schema.sql"),
    include_str!("../../../migrations/duckdb/0007_copy_cursor.sql"),
];

pub fn migrate(conn: &Connection) -> Result<(), DuckdbError> {
    conn.execute_batch(MIGRATIONS[0]).context(|| "creating the _zetl schema".into())?;
    let found: i64 = conn
        .query_row("SELECT coalesce(max(version), 0) FROM _zetl.schema_version", [], |r| r.get(0))
        .context(|| "reading _zetl.schema_version".into())?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(DuckdbError::NewerSchema { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN; {sql}; INSERT INTO _zetl.schema_version VALUES ({version}, now()); COMMIT;"
        ))
        .context(|| format!("applying migration {version}"))?;
    }
    Ok(())
}

pub fn load_checkpoint(conn: &Connection, integration: &str) -> Result<Option<Checkpoint>, DuckdbError> {
    let row: Option<(String, String)> = conn
        .query_row("SELECT position, phase FROM _zetl.checkpoints WHERE integration = ?", params![integration], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .context(|| "reading the checkpoint".into())?;
    row.map(|(position, phase)| {
        let phase = Phase::parse(&phase).map_err(|e| DuckdbError::State(format!("{e} in _zetl.checkpoints")))?;
        Ok(Checkpoint { position: Position(position), phase })
    })
    .transpose()
}

pub fn store_checkpoint(conn: &Connection, integration: &str, checkpoint: &Checkpoint) -> Result<(), DuckdbError> {
    conn.execute(
        "INSERT INTO _zetl.checkpoints VALUES (?, ?, ?, now()) \
         ON CONFLICT (integration) DO UPDATE SET position = excluded.position, \
         phase = excluded.phase, updated_at = excluded.updated_at",
        params![integration, checkpoint.position.0, checkpoint.phase.as_str()],
    )
    .context(|| "storing the checkpoint".into())?;
    Ok(())
}

pub fn set_table_state(
    conn: &Connection,
    integration: &str,
    table: &TableId,
    state: TableState,
    rows: u64,
) -> Result<(), DuckdbError> {
    conn.execute(
        "INSERT INTO _zetl.tables (integration, table_schema, table_name, state, rows_copied, updated_at) \
         VALUES (?, ?, ?, ?, ?, now()) \
         ON CONFLICT (integration, table_schema, table_name) DO UPDATE SET state = excluded.state, \
         rows_copied = excluded.rows_copied, updated_at = excluded.updated_at, state_reason = NULL, \
         copy_cursor = NULL",
        params![integration, table.schema, table.name, state.as_str(), rows as i64],
    )
    .context(|| format!("recording the state of {table}"))?;
    Ok(())
}

/// A copy under way holds `rows`, and stands at `cursor` when it moved on (the stored one
/// stays otherwise).
pub fn set_copy_progress(
    conn: &Connection,
    integration: &str,
    table: &TableId,
    rows: u64,
    cursor: Option<&str>,
) -> Result<(), DuckdbError> {
    conn.execute(
        "UPDATE _zetl.tables SET rows_copied = ?, copy_cursor = coalesce(?, copy_cursor), updated_at = now() \
         WHERE integration = ? AND table_schema = ? AND table_name = ?",
        params![rows as i64, cursor, integration, table.schema, table.name],
    )
    .context(|| format!("recording the progress of the copy of {table}"))?;
    Ok(())
}

/// Copies under way that stored a cursor: a restart continues them there.
pub fn copies_under_way(conn: &Connection, integration: &str) -> Result<Vec<(TableId, CopyUnderWay)>, DuckdbError> {
    let what = || "listing the copies under way".to_string();
    let mut stmt = conn
        .prepare(
            "SELECT table_schema, table_name, copy_cursor, rows_copied FROM _zetl.tables \
             WHERE integration = ? AND state = ? AND copy_cursor IS NOT NULL",
        )
        .context(what)?;
    let rows = stmt
        .query_map(params![integration, TableState::Copying.as_str()], |r| {
            let parts = r.get::<_, String>(2)?.lines().map(str::to_string).collect();
            let copy = CopyUnderWay { parts, rows: r.get::<_, i64>(3)?.max(0) as u64 };
            Ok((TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?), copy))
        })
        .context(what)?;
    rows.collect::<Result<Vec<_>, _>>().context(what)
}

pub fn set_copied(
    conn: &Connection,
    integration: &str,
    table: &TableId,
    copied: &CopiedTable,
) -> Result<(), DuckdbError> {
    let at = copied.consistent_at.as_ref().map(|p| p.0.as_str());
    conn.execute(
        "UPDATE _zetl.tables SET copied_at = ?, source_id = ? \
         WHERE integration = ? AND table_schema = ? AND table_name = ?",
        params![at, copied.source_id, integration, table.schema, table.name],
    )
    .context(|| format!("recording where the copy of {table} is consistent"))?;
    Ok(())
}

/// Tables whose copy is committed and that stream since.
pub fn copied_tables(conn: &Connection, integration: &str) -> Result<Vec<(TableId, CopiedTable)>, DuckdbError> {
    let mut stmt = conn
        .prepare(
            "SELECT table_schema, table_name, copied_at, source_id, source_schema FROM _zetl.tables \
             WHERE integration = ? AND state = ?",
        )
        .context(|| "listing copied tables".into())?;
    let rows = stmt
        .query_map(params![integration, TableState::Streaming.as_str()], |r| {
            let copied = CopiedTable {
                consistent_at: r.get::<_, Option<String>>(2)?.map(Position),
                source_id: r.get(3)?,
                schema: r.get::<_, Option<String>>(4)?.as_deref().and_then(TableSchema::from_stored),
            };
            Ok((TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?), copied))
        })
        .context(|| "listing copied tables".into())?;
    rows.collect::<Result<Vec<_>, _>>().context(|| "listing copied tables".into())
}

/// The source schema stored for each table of this integration, whatever its state.
pub fn stored_schemas(conn: &Connection, integration: &str) -> Result<HashMap<TableId, TableSchema>, DuckdbError> {
    let mut stmt = conn
        .prepare("SELECT source_schema FROM _zetl.tables WHERE integration = ? AND source_schema IS NOT NULL")
        .context(|| "reading stored schemas".into())?;
    let rows =
        stmt.query_map(params![integration], |r| r.get::<_, String>(0)).context(|| "reading stored schemas".into())?;
    let texts = rows.collect::<Result<Vec<_>, _>>().context(|| "reading stored schemas".into())?;
    Ok(texts.iter().filter_map(|t| TableSchema::from_stored(t)).map(|s| (s.id.clone(), s)).collect())
}

/// Stores the schema `table` was brought up to, in the open transaction (a table with no row
/// yet gets it with its copy: `set_copied`).
pub fn store_schema(conn: &Connection, integration: &str, schema: &TableSchema) -> Result<(), DuckdbError> {
    conn.execute(
        "UPDATE _zetl.tables SET source_schema = ? WHERE integration = ? AND table_schema = ? AND table_name = ?",
        params![schema.to_stored(), integration, schema.id.schema, schema.id.name],
    )
    .context(|| format!("storing the schema of {}", schema.id))?;
    Ok(())
}

/// Sets `state` on a table of this integration (a resync request: its committed copy no
/// longer counts). Returns false when the integration has no such table.
pub fn mark_table(
    conn: &Connection,
    integration: &str,
    table: &TableId,
    state: TableState,
    reason: Option<&str>,
) -> Result<bool, DuckdbError> {
    let n = conn
        .execute(
            "UPDATE _zetl.tables SET state = ?, state_reason = ?, updated_at = now() \
             WHERE integration = ? AND table_schema = ? AND table_name = ?",
            params![state.as_str(), reason, integration, table.schema, table.name],
        )
        .context(|| format!("marking {table} {}", state.as_str()))?;
    Ok(n > 0)
}

/// Tables this integration wrote, to be emptied before a fresh initial copy.
pub fn known_tables(conn: &Connection, integration: &str) -> Result<Vec<TableId>, DuckdbError> {
    tables_in_state(conn, integration, "%")
}

/// Tables of this integration whose state matches the LIKE pattern.
pub fn tables_in_state(conn: &Connection, integration: &str, state: &str) -> Result<Vec<TableId>, DuckdbError> {
    let mut stmt = conn
        .prepare("SELECT table_schema, table_name FROM _zetl.tables WHERE integration = ? AND state LIKE ?")
        .context(|| "listing tables".into())?;
    let rows = stmt
        .query_map(params![integration, state], |r| Ok(TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .context(|| "listing tables".into())?;
    rows.collect::<Result<Vec<_>, _>>().context(|| "listing tables".into())
}

pub fn forget(conn: &Connection, integration: &str) -> Result<(), DuckdbError> {
    conn.execute("DELETE FROM _zetl.checkpoints WHERE integration = ?", params![integration])
        .context(|| "forgetting the checkpoint".into())?;
    conn.execute("DELETE FROM _zetl.tables WHERE integration = ?", params![integration])
        .context(|| "forgetting table state".into())?;
    Ok(())
}
