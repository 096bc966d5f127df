//! zetl's bookkeeping in the catalog database, in the catalog's transaction: the checkpoint
//! and per-table state, the same logical rows the other targets keep in `_zetl`.

use crate::catalog::SqlCatalog;
use crate::error::{CatalogContext, IcebergError};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use zetl_core::{Checkpoint, CopiedTable, CopyUnderWay, Phase, Position, TableId, TableSchema, TableState};

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

impl SqlCatalog {
    pub fn load_checkpoint(&self, integration: &str) -> Result<Option<Checkpoint>, IcebergError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT position, phase FROM zetl_checkpoints WHERE integration = ?",
                params![integration],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .catalog(&self.label, || "reading the checkpoint".into())?;
        row.map(|(position, phase)| {
            let phase = Phase::parse(&phase).map_err(|e| IcebergError::State(format!("{e} in zetl_checkpoints")))?;
            Ok(Checkpoint { position: Position(position), phase })
        })
        .transpose()
    }

    pub fn store_checkpoint(&self, integration: &str, checkpoint: &Checkpoint) -> Result<(), IcebergError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO zetl_checkpoints VALUES (?, ?, ?, {NOW}) ON CONFLICT (integration) DO UPDATE \
                     SET position = excluded.position, phase = excluded.phase, updated_at = excluded.updated_at"
                ),
                params![integration, checkpoint.position.0, checkpoint.phase.as_str()],
            )
            .catalog(&self.label, || "storing the checkpoint".into())?;
        Ok(())
    }

    pub fn set_table_state(
        &self,
        integration: &str,
        table: &TableId,
        state: TableState,
        rows: u64,
    ) -> Result<(), IcebergError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO zetl_tables (integration, table_schema, table_name, state, rows_copied, updated_at) \
                     VALUES (?, ?, ?, ?, ?, {NOW}) ON CONFLICT (integration, table_schema, table_name) DO UPDATE \
                     SET state = excluded.state, rows_copied = excluded.rows_copied, \
                     updated_at = excluded.updated_at, state_reason = NULL, copy_cursor = NULL"
                ),
                params![integration, table.schema, table.name, state.as_str(), rows as i64],
            )
            .catalog(&self.label, || format!("recording the state of {table}"))?;
        Ok(())
    }

    /// A copy under way holds `rows`, and stands at `cursor` when it moved on.
    pub fn set_copy_progress(
        &self,
        integration: &str,
        table: &TableId,
        rows: u64,
        cursor: Option<&str>,
    ) -> Result<(), IcebergError> {
        self.conn
            .execute(
                &format!(
                    "UPDATE zetl_tables SET rows_copied = ?, copy_cursor = coalesce(?, copy_cursor), \
                     updated_at = {NOW} WHERE integration = ? AND table_schema = ? AND table_name = ?"
                ),
                params![rows as i64, cursor, integration, table.schema, table.name],
            )
            .catalog(&self.label, || format!("recording the progress of the copy of {table}"))?;
        Ok(())
    }

    pub fn copies_under_way(&self, integration: &str) -> Result<Vec<(TableId, CopyUnderWay)>, IcebergError> {
        let what = || "listing the copies under way".to_string();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT table_schema, table_name, copy_cursor, rows_copied FROM zetl_tables \
                 WHERE integration = ? AND state = ? AND copy_cursor IS NOT NULL",
            )
            .catalog(&self.label, what)?;
        let rows = stmt
            .query_map(params![integration, TableState::Copying.as_str()], |r| {
                let parts = r.get::<_, String>(2)?.lines().map(str::to_string).collect();
                let copy = CopyUnderWay { parts, rows: r.get::<_, i64>(3)?.max(0) as u64 };
                Ok((TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?), copy))
            })
            .catalog(&self.label, what)?;
        rows.collect::<Result<Vec<_>, _>>().catalog(&self.label, what)
    }

    pub fn set_copied(&self, integration: &str, table: &TableId, copied: &CopiedTable) -> Result<(), IcebergError> {
        let at = copied.consistent_at.as_ref().map(|p| p.0.as_str());
        self.conn
            .execute(
                "UPDATE zetl_tables SET copied_at = ?, source_id = ? \
                 WHERE integration = ? AND table_schema = ? AND table_name = ?",
                params![at, copied.source_id, integration, table.schema, table.name],
            )
            .catalog(&self.label, || format!("recording where the copy of {table} is consistent"))?;
        Ok(())
    }

    pub fn copied_tables(&self, integration: &str) -> Result<Vec<(TableId, CopiedTable)>, IcebergError> {
        let what = || "listing copied tables".to_string();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT table_schema, table_name, copied_at, source_id, source_schema FROM zetl_tables \
                 WHERE integration = ? AND state = ?",
            )
            .catalog(&self.label, what)?;
        let rows = stmt
            .query_map(params![integration, TableState::Streaming.as_str()], |r| {
                let copied = CopiedTable {
                    consistent_at: r.get::<_, Option<String>>(2)?.map(Position),
                    source_id: r.get(3)?,
                    schema: r.get::<_, Option<String>>(4)?.as_deref().and_then(TableSchema::from_stored),
                };
                Ok((TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?), copied))
            })
            .catalog(&self.label, what)?;
        rows.collect::<Result<Vec<_>, _>>().catalog(&self.label, what)
    }

    pub fn stored_schemas(&self, integration: &str) -> Result<HashMap<TableId, TableSchema>, IcebergError> {
        let what = || "reading stored schemas".to_string();
        let mut stmt = self
            .conn
            .prepare("SELECT source_schema FROM zetl_tables WHERE integration = ? AND source_schema IS NOT NULL")
            .catalog(&self.label, what)?;
        let rows = stmt.query_map(params![integration], |r| r.get::<_, String>(0)).catalog(&self.label, what)?;
        let texts = rows.collect::<Result<Vec<_>, _>>().catalog(&self.label, what)?;
        Ok(texts.iter().filter_map(|t| TableSchema::from_stored(t)).map(|s| (s.id.clone(), s)).collect())
    }

    pub fn store_schema(&self, integration: &str, schema: &TableSchema) -> Result<(), IcebergError> {
        self.conn
            .execute(
                "UPDATE zetl_tables SET source_schema = ? WHERE integration = ? AND table_schema = ? AND table_name = ?",
                params![schema.to_stored(), integration, schema.id.schema, schema.id.name],
            )
            .catalog(&self.label, || format!("storing the schema of {}", schema.id))?;
        Ok(())
    }

    pub fn mark_table(
        &self,
        integration: &str,
        table: &TableId,
        state: TableState,
        reason: Option<&str>,
    ) -> Result<bool, IcebergError> {
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE zetl_tables SET state = ?, state_reason = ?, updated_at = {NOW} \
                     WHERE integration = ? AND table_schema = ? AND table_name = ?"
                ),
                params![state.as_str(), reason, integration, table.schema, table.name],
            )
            .catalog(&self.label, || format!("marking {table} {}", state.as_str()))?;
        Ok(n > 0)
    }

    pub fn known_tables(&self, integration: &str) -> Result<Vec<TableId>, IcebergError> {
        let what = || "listing tables".to_string();
        let mut stmt = self
            .conn
            .prepare("SELECT table_schema, table_name FROM zetl_tables WHERE integration = ?")
            .catalog(&self.label, what)?;
        let rows = stmt
            .query_map(params![integration], |r| Ok(TableId::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .catalog(&self.label, what)?;
        rows.collect::<Result<Vec<_>, _>>().catalog(&self.label, what)
    }

    pub fn forget(&self, integration: &str) -> Result<(), IcebergError> {
        for table in ["zetl_checkpoints", "zetl_tables"] {
            self.conn
                .execute(&format!("DELETE FROM {table} WHERE integration = ?"), params![integration])
                .catalog(&self.label, || format!("forgetting {table}"))?;
        }
        Ok(())
    }
}

/// What `zetl status` shows, read from the catalog file (SQLite lets readers in beside the
/// writer).
pub fn read_status(
    config: &crate::IcebergTargetConfig,
    integration: &str,
) -> Result<zetl_core::status::TargetStatus, IcebergError> {
    use zetl_core::status::{TableStatus, TargetStatus};
    let mut status = TargetStatus::default();
    let Some(path) = config.sqlite_path().filter(|p| std::path::Path::new(p).exists()) else { return Ok(status) };
    let catalog = SqlCatalog::open(path, &config.catalog.name)?;
    if let Some(checkpoint) = catalog.load_checkpoint(integration)? {
        status.phase = Some(checkpoint.phase);
        status.position = Some(checkpoint.position.0);
        status.updated_at = catalog
            .conn
            .query_row("SELECT updated_at FROM zetl_checkpoints WHERE integration = ?", params![integration], |r| {
                r.get(0)
            })
            .optional()
            .catalog(&catalog.label, || "reading the checkpoint".into())?;
    }
    let what = || "reading table state".to_string();
    let mut stmt = catalog
        .conn
        .prepare(
            "SELECT table_schema, table_name, state, rows_copied, updated_at, state_reason FROM zetl_tables \
             WHERE integration = ? ORDER BY 1, 2",
        )
        .catalog(&catalog.label, what)?;
    let rows = stmt
        .query_map(params![integration], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .catalog(&catalog.label, what)?;
    for row in rows {
        let (schema, name, state, rows_copied, updated_at, reason) = row.catalog(&catalog.label, what)?;
        let state = TableState::parse(&state).map_err(IcebergError::State)?;
        status.tables.push(TableStatus { schema, name, state, rows_copied, updated_at, reason });
    }
    Ok(status)
}
