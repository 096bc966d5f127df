//! zetl's bookkeeping in the catalog database, in the catalog's transaction: the checkpoint
//! and per-table state, the same logical rows the other targets keep in `_zetl`.

use crate::catalog::SqlCatalog;
use crate::db::Cell;
use crate::error::IcebergError;
use std::collections::HashMap;
use zetl_core::{Checkpoint, CopiedTable, CopyUnderWay, Phase, Position, TableId, TableSchema, TableState};

impl SqlCatalog {
    pub fn load_checkpoint(&self, integration: &str) -> Result<Option<Checkpoint>, IcebergError> {
        let rows = self.query(
            "SELECT position, phase FROM zetl_checkpoints WHERE integration = ?",
            &[integration.into()],
            || "reading the checkpoint".into(),
        )?;
        rows.first()
            .map(|r| {
                let phase = r[1].text().unwrap_or_default();
                let phase =
                    Phase::parse(&phase).map_err(|e| IcebergError::State(format!("{e} in zetl_checkpoints")))?;
                Ok(Checkpoint { position: Position(r[0].text().unwrap_or_default()), phase })
            })
            .transpose()
    }

    pub fn store_checkpoint(&self, integration: &str, checkpoint: &Checkpoint) -> Result<(), IcebergError> {
        let sql = format!(
            "INSERT INTO zetl_checkpoints VALUES (?, ?, ?, {}) ON CONFLICT (integration) DO UPDATE \
             SET position = excluded.position, phase = excluded.phase, updated_at = excluded.updated_at",
            self.now_sql()
        );
        let args = [integration.into(), (&checkpoint.position.0).into(), checkpoint.phase.as_str().into()];
        self.execute(&sql, &args, || "storing the checkpoint".into())?;
        Ok(())
    }

    pub fn set_table_state(
        &self,
        integration: &str,
        table: &TableId,
        state: TableState,
        rows: u64,
    ) -> Result<(), IcebergError> {
        let sql = format!(
            "INSERT INTO zetl_tables (integration, table_schema, table_name, state, rows_copied, updated_at) \
             VALUES (?, ?, ?, ?, ?, {}) ON CONFLICT (integration, table_schema, table_name) DO UPDATE \
             SET state = excluded.state, rows_copied = excluded.rows_copied, \
             updated_at = excluded.updated_at, state_reason = NULL, copy_cursor = NULL",
            self.now_sql()
        );
        let args = [
            integration.into(),
            (&table.schema).into(),
            (&table.name).into(),
            state.as_str().into(),
            (rows as i64).into(),
        ];
        self.execute(&sql, &args, || format!("recording the state of {table}"))?;
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
        let sql = format!(
            "UPDATE zetl_tables SET rows_copied = ?, copy_cursor = coalesce(?, copy_cursor), \
             updated_at = {} WHERE integration = ? AND table_schema = ? AND table_name = ?",
            self.now_sql()
        );
        let args =
            [(rows as i64).into(), cursor.into(), integration.into(), (&table.schema).into(), (&table.name).into()];
        self.execute(&sql, &args, || format!("recording the progress of the copy of {table}"))?;
        Ok(())
    }

    pub fn copies_under_way(&self, integration: &str) -> Result<Vec<(TableId, CopyUnderWay)>, IcebergError> {
        let rows = self.query(
            "SELECT table_schema, table_name, copy_cursor, rows_copied FROM zetl_tables \
             WHERE integration = ? AND state = ? AND copy_cursor IS NOT NULL",
            &[integration.into(), TableState::Copying.as_str().into()],
            || "listing the copies under way".into(),
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let parts = r[2].text().unwrap_or_default().lines().map(str::to_string).collect();
                (table_id(r), CopyUnderWay { parts, rows: r[3].int().max(0) as u64 })
            })
            .collect())
    }

    pub fn set_copied(&self, integration: &str, table: &TableId, copied: &CopiedTable) -> Result<(), IcebergError> {
        let at = copied.consistent_at.as_ref().map(|p| p.0.as_str());
        self.execute(
            "UPDATE zetl_tables SET copied_at = ?, source_id = ? \
             WHERE integration = ? AND table_schema = ? AND table_name = ?",
            &[
                at.into(),
                copied.source_id.as_deref().into(),
                integration.into(),
                (&table.schema).into(),
                (&table.name).into(),
            ],
            || format!("recording where the copy of {table} is consistent"),
        )?;
        Ok(())
    }

    pub fn copied_tables(&self, integration: &str) -> Result<Vec<(TableId, CopiedTable)>, IcebergError> {
        let rows = self.query(
            "SELECT table_schema, table_name, copied_at, source_id, source_schema FROM zetl_tables \
             WHERE integration = ? AND state = ?",
            &[integration.into(), TableState::Streaming.as_str().into()],
            || "listing copied tables".into(),
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let copied = CopiedTable {
                    consistent_at: r[2].text().map(Position),
                    source_id: r[3].text(),
                    schema: r[4].text().as_deref().and_then(TableSchema::from_stored),
                };
                (table_id(r), copied)
            })
            .collect())
    }

    pub fn stored_schemas(&self, integration: &str) -> Result<HashMap<TableId, TableSchema>, IcebergError> {
        let rows = self.query(
            "SELECT source_schema FROM zetl_tables WHERE integration = ? AND source_schema IS NOT NULL",
            &[integration.into()],
            || "reading stored schemas".into(),
        )?;
        Ok(rows.iter().filter_map(|r| TableSchema::from_stored(&r[0].text()?)).map(|s| (s.id.clone(), s)).collect())
    }

    pub fn store_schema(&self, integration: &str, schema: &TableSchema) -> Result<(), IcebergError> {
        let stored = schema.to_stored();
        self.execute(
            "UPDATE zetl_tables SET source_schema = ? WHERE integration = ? AND table_schema = ? AND table_name = ?",
            &[(&stored).into(), integration.into(), (&schema.id.schema).into(), (&schema.id.name).into()],
            || format!("storing the schema of {}", schema.id),
        )?;
        Ok(())
    }

    pub fn mark_table(
        &self,
        integration: &str,
        table: &TableId,
        state: TableState,
        reason: Option<&str>,
    ) -> Result<bool, IcebergError> {
        let sql = format!(
            "UPDATE zetl_tables SET state = ?, state_reason = ?, updated_at = {} \
             WHERE integration = ? AND table_schema = ? AND table_name = ?",
            self.now_sql()
        );
        let args =
            [state.as_str().into(), reason.into(), integration.into(), (&table.schema).into(), (&table.name).into()];
        let n = self.execute(&sql, &args, || format!("marking {table} {}", state.as_str()))?;
        Ok(n > 0)
    }

    pub fn known_tables(&self, integration: &str) -> Result<Vec<TableId>, IcebergError> {
        let rows = self.query(
            "SELECT table_schema, table_name FROM zetl_tables WHERE integration = ?",
            &[integration.into()],
            || "listing tables".into(),
        )?;
        Ok(rows.iter().map(|r| table_id(r)).collect())
    }

    pub fn forget(&self, integration: &str) -> Result<(), IcebergError> {
        for table in ["zetl_checkpoints", "zetl_tables"] {
            let sql = format!("DELETE FROM {table} WHERE integration = ?");
            self.execute(&sql, &[integration.into()], || format!("forgetting {table}"))?;
        }
        Ok(())
    }
}

/// The table named by a row's first two columns (schema, name).
pub(crate) fn table_id(row: &[Cell]) -> TableId {
    TableId::new(row[0].text().unwrap_or_default(), row[1].text().unwrap_or_default())
}

/// What `zetl status` shows, read from the catalog (SQLite lets readers in beside the writer).
pub fn read_status(
    config: &crate::IcebergTargetConfig,
    integration: &str,
) -> Result<zetl_core::status::TargetStatus, IcebergError> {
    use zetl_core::status::{TableStatus, TargetStatus};
    let mut status = TargetStatus::default();
    // A SQLite catalog not created yet: nothing ran (and `status` creates nothing).
    if config.sqlite_path().is_some_and(|p| !std::path::Path::new(p).exists()) {
        return Ok(status);
    }
    let catalog = SqlCatalog::open(config)?;
    let checkpoint = catalog.query(
        "SELECT position, phase, updated_at FROM zetl_checkpoints WHERE integration = ?",
        &[integration.into()],
        || "reading the checkpoint".into(),
    )?;
    if let Some(row) = checkpoint.first() {
        let phase = row[1].text().unwrap_or_default();
        status.phase = Some(Phase::parse(&phase).map_err(|e| IcebergError::State(format!("{e} in zetl_checkpoints")))?);
        status.position = row[0].text();
        status.updated_at = row[2].text();
    }
    let rows = catalog.query(
        "SELECT table_schema, table_name, state, rows_copied, updated_at, state_reason FROM zetl_tables \
         WHERE integration = ? ORDER BY 1, 2",
        &[integration.into()],
        || "reading table state".into(),
    )?;
    for row in rows {
        let state = TableState::parse(&row[2].text().unwrap_or_default()).map_err(IcebergError::State)?;
        status.tables.push(TableStatus {
            schema: row[0].text().unwrap_or_default(),
            name: row[1].text().unwrap_or_default(),
            state,
            rows_copied: row[3].int(),
            updated_at: row[4].text().unwrap_or_default(),
            reason: row[5].text(),
        });
    }
    Ok(status)
}
