//! The embedded DuckDB target: the default warehouse, a single file, no server to run.
//!
//! One DuckDB transaction holds whole source transactions and the checkpoint that covers them.

mod catalog;
mod checks;
mod columnar;
mod config;
mod ddl;
pub mod dead_letters;
mod error;
mod merge;
mod screen;
mod stage;
mod state;
pub mod status;
pub mod types;

pub use config::DuckdbTargetConfig;
pub use error::DuckdbError;

use duckdb::Connection;
use error::Context;
use screen::Guard;
use stage::Stage;
use std::collections::HashMap;
use std::path::Path;
use zetl_core::apply::{ApplyPolicy, DeadLetter, DeleteMode, Replayed};
use zetl_core::batch::Batch;
use zetl_core::bookkeeping::Bookkeeping;
use zetl_core::columns::RecordBatch;
use zetl_core::target::{Target, TargetAdmin};
use zetl_core::{Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, Row, TableId, TableSchema, TableState, Value};

pub struct DuckdbTarget {
    conn: Connection,
    integration: String,
    stages: HashMap<TableId, Stage>,
    /// The source schemas stored when the target was opened: what an existing table was
    /// last brought up to, until this run brings it up again (`stages`).
    stored: HashMap<TableId, TableSchema>,
    next_stage: usize,
    apply: ApplyPolicy,
    books: Bookkeeping,
}

/// The catalog the target file is attached as.
const CATALOG: &str = "\"zetl target\"";

impl DuckdbTarget {
    pub fn open(path: &Path, integration: &str) -> Result<Self, DuckdbError> {
        Self::open_with_memory(path, integration, None)
    }

    /// Opens the file with DuckDB's buffer pool capped at `memory_limit` (e.g. `256MB`).
    pub fn open_with_memory(path: &Path, integration: &str, memory_limit: Option<&str>) -> Result<Self, DuckdbError> {
        let open_err = |source| DuckdbError::Open { path: path.display().to_string(), cause: source };
        // Attached under a name no source schema has: opened directly, the file's catalog
        // would be named after the file, and a schema of the same name (`bench.duckdb`
        // holding schema `bench`) would make every `bench.t` ambiguous.
        let conn = Connection::open_in_memory().map_err(open_err)?;
        conn.execute_batch(&format!(
            "ATTACH {file} AS {CATALOG}; USE {CATALOG}; DETACH memory",
            file = types::literal(&path.display().to_string())
        ))
        .map_err(open_err)?;
        if let Some(limit) = memory_limit {
            conn.execute_batch(&format!("SET memory_limit = {}", types::literal(limit)))
                .context(|| format!("setting memory_limit to {limit}"))?;
        }
        state::migrate(&conn)?;
        let letters_pending = dead_letters::pending_tables(&conn, integration)?;
        let stored = state::stored_schemas(&conn, integration)?;
        Ok(Self {
            stored,
            conn,
            integration: integration.to_string(),
            stages: HashMap::new(),
            next_stage: 0,
            apply: ApplyPolicy::default(),
            books: Bookkeeping::new(letters_pending),
        })
    }

    /// The source schema `table` was last brought up to: in this run, or as stored.
    fn known_schema(&self, table: &TableId) -> Option<&TableSchema> {
        self.stages.get(table).map(|s| &s.schema).or_else(|| self.stored.get(table))
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Per-table delete mode and truncate policy (default: hard deletes, truncates applied).
    pub fn with_apply_policy(mut self, apply: ApplyPolicy) -> Self {
        self.apply = apply;
        self
    }

    fn soft(&self, table: &TableId) -> bool {
        self.apply.for_table(table).deletes == DeleteMode::Soft
    }

    fn guard(&self, table: &TableId) -> Guard<'_> {
        Guard {
            integration: &self.integration,
            on_error: self.apply.for_table(table).on_error,
            letters_pending: self.books.has_pending_letters(table),
        }
    }

    fn stage(&self, table: &TableId) -> Result<&Stage, DuckdbError> {
        self.stages.get(table).ok_or_else(|| DuckdbError::State(format!("rows for {table} arrived before its schema")))
    }
}

impl TargetAdmin for DuckdbTarget {
    fn request_resync(&mut self, table: &TableId) -> Result<bool, DuckdbError> {
        state::mark_table(&self.conn, &self.integration, table, TableState::ResyncRequested, None)
    }

    fn forget_position(&mut self) -> Result<(), DuckdbError> {
        state::forget(&self.conn, &self.integration)
    }

    fn list_dead_letters(&mut self) -> Result<Vec<DeadLetter>, DuckdbError> {
        dead_letters::list(&self.conn, &self.integration)
    }

    fn replay_dead_letters(&mut self, ids: &[i64]) -> Result<Replayed, DuckdbError> {
        dead_letters::replay(&self.conn, &self.integration, ids)
    }
}

impl Target for DuckdbTarget {
    type Error = DuckdbError;

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, DuckdbError> {
        state::load_checkpoint(&self.conn, &self.integration)
    }

    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, DuckdbError> {
        state::copied_tables(&self.conn, &self.integration)
    }

    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, DuckdbError> {
        state::copies_under_way(&self.conn, &self.integration)
    }

    fn mark_tables(&mut self, tables: &[TableId], state: TableState, reason: Option<&str>) -> Result<(), DuckdbError> {
        for table in tables {
            state::mark_table(&self.conn, &self.integration, table, state, reason)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), DuckdbError> {
        self.conn.execute_batch("BEGIN TRANSACTION").context(|| "beginning a transaction".into())
    }

    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, DuckdbError> {
        let added = ddl::ensure_table(&self.conn, schema, self.soft(&schema.id), self.known_schema(&schema.id))?;
        state::store_schema(&self.conn, &self.integration, schema)?;
        let unchanged = self.stages.get(&schema.id).is_some_and(|s| s.schema == *schema);
        if !unchanged {
            self.next_stage += 1;
            let stage = Stage::create(&self.conn, schema, self.next_stage)?;
            if let Some(old) = self.stages.insert(schema.id.clone(), stage) {
                self.conn
                    .execute_batch(&format!("DROP TABLE IF EXISTS {}", old.sql_name()))
                    .context(|| format!("dropping old staging table of {}", schema.id))?;
            }
        }
        Ok(added)
    }

    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), DuckdbError> {
        let col = &schema.columns[column];
        self.conn
            .execute(
                &format!(
                    "UPDATE {} SET {} = {}",
                    ddl::qualified(&schema.id),
                    types::ident(&col.name),
                    types::from_wire(&col.ty, "?")
                ),
                [types::to_db(value, &col.ty)],
            )
            .context(|| format!("filling the added column {} of {}", col.name, schema.id))?;
        Ok(())
    }

    fn alter_needs_commit(&mut self, schema: &TableSchema) -> Result<bool, DuckdbError> {
        // Added columns and changed types alike.
        Ok(self.known_schema(&schema.id).is_some_and(|known| {
            schema.columns.iter().any(|c| known.columns.iter().all(|old| old.name != c.name || old.ty != c.ty))
        }))
    }

    fn copy_start(&mut self, table: &TableId) -> Result<(), DuckdbError> {
        self.conn
            .execute_batch(&format!("DELETE FROM {}", ddl::qualified(table)))
            .context(|| format!("emptying {table} before the copy"))?;
        if self.books.copy_started(table) {
            dead_letters::supersede_table(&self.conn, &self.integration, table, dead_letters::COPIED)?;
        }
        state::set_table_state(&self.conn, &self.integration, table, TableState::Copying, 0)
    }

    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), DuckdbError> {
        let stage = self.stage(table)?;
        let dead = if stage::can_append_directly(stage) {
            stage::append_directly(&self.conn, stage, rows)?;
            0
        } else {
            merge::flush_inserts(&self.conn, stage, &mut rows.iter().collect(), &self.guard(table))?
        };
        self.books.wrote(table, rows.len() as u64, dead, self.soft(table));
        Ok(())
    }

    fn copy_columns(&mut self, table: &TableId, batch: &RecordBatch) -> Result<bool, DuckdbError> {
        if !stage::append_columns(&self.conn, self.stage(table)?, batch)? {
            return Ok(false);
        }
        self.books.wrote(table, batch.num_rows() as u64, 0, self.soft(table));
        Ok(true)
    }

    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), DuckdbError> {
        self.books.copy_reached(table, after);
        Ok(())
    }

    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), DuckdbError> {
        self.books.copy_holds(table, rows);
        Ok(())
    }

    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), DuckdbError> {
        self.books.copy_done(table);
        state::set_table_state(&self.conn, &self.integration, table, TableState::Streaming, rows)?;
        state::set_copied(&self.conn, &self.integration, table, copied)?;
        match self.stages.get(table) {
            Some(stage) => state::store_schema(&self.conn, &self.integration, &stage.schema),
            None => Ok(()),
        }
    }

    fn fill_aside(&mut self, table: &TableId, aside: &TableId, resumed: bool) -> Result<bool, DuckdbError> {
        let exists = ddl::table_exists(&self.conn, aside)?;
        if resumed {
            return Ok(exists);
        }
        self.drop_aside(aside)?;
        if self.books.copy_started(table) {
            dead_letters::supersede_table(&self.conn, &self.integration, table, dead_letters::COPIED)?;
        }
        state::set_table_state(&self.conn, &self.integration, table, TableState::Copying, 0)?;
        Ok(true)
    }

    fn replace_with_aside(&mut self, table: &TableId, aside: &TableId) -> Result<(), DuckdbError> {
        // By name: the table may hold columns the source dropped since (they stay, NULL).
        let (t, a) = (ddl::qualified(table), ddl::qualified(aside));
        self.conn
            .execute_batch(&format!("DELETE FROM {t}; INSERT INTO {t} BY NAME SELECT * FROM {a}"))
            .context(|| format!("replacing the rows of {table} with those of {aside}"))?;
        dead_letters::move_table(&self.conn, &self.integration, aside, table)?;
        self.books.moved(aside, table);
        self.drop_aside(aside)
    }

    fn drop_aside(&mut self, aside: &TableId) -> Result<(), DuckdbError> {
        if let Some(stage) = self.stages.remove(aside) {
            self.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS {}", stage.sql_name()))
                .context(|| format!("dropping the staging table of {aside}"))?;
        }
        self.conn
            .execute_batch(&format!("DROP TABLE IF EXISTS {}", ddl::qualified(aside)))
            .context(|| format!("dropping {aside}"))
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), DuckdbError> {
        for (table, changes) in &batch.tables {
            let soft = self.soft(table);
            self.books.applying(table);
            let guard = self.guard(table);
            let dead = merge::apply_table(&self.conn, self.stage(table)?, changes, soft, &guard)?;
            self.books.wrote(table, 0, dead, soft);
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), DuckdbError> {
        for (table, rows, cursor) in self.books.copies() {
            state::set_copy_progress(&self.conn, &self.integration, table, rows, cursor.as_deref())?;
        }
        for table in self.books.take_soft_touched() {
            self.conn
                .execute(
                    &format!("UPDATE {} SET _zetl_position = ? WHERE _zetl_position IS NULL", ddl::qualified(&table)),
                    duckdb::params![checkpoint.position.0],
                )
                .context(|| format!("recording the source position of {table}'s changes"))?;
        }
        if self.books.letters_need_position() {
            dead_letters::set_position(&self.conn, &self.integration, &checkpoint.position)?;
        }
        state::store_checkpoint(&self.conn, &self.integration, checkpoint)?;
        self.conn.execute_batch("COMMIT").context(|| "committing".into())?;
        self.books.committed();
        Ok(())
    }

    fn dead_letters(&self) -> u64 {
        self.books.dead_letters()
    }

    fn rollback(&mut self) -> Result<(), DuckdbError> {
        self.conn.execute_batch("ROLLBACK").context(|| "rolling back".into())?;
        // Letters superseded in the undone transaction are pending again.
        self.books.rolled_back(dead_letters::pending_tables(&self.conn, &self.integration)?);
        Ok(())
    }

    fn reset(&mut self) -> Result<(), DuckdbError> {
        let tables = state::known_tables(&self.conn, &self.integration)?;
        self.conn.execute_batch("BEGIN TRANSACTION").context(|| "beginning a reset".into())?;
        for table in &tables {
            for t in [table.clone(), table.fill_aside()] {
                self.conn
                    .execute_batch(&format!("DROP TABLE IF EXISTS {}", ddl::qualified(&t)))
                    .context(|| format!("dropping {t} for a fresh copy"))?;
            }
        }
        state::forget(&self.conn, &self.integration)?;
        self.conn.execute_batch("COMMIT").context(|| "committing the reset".into())
    }
}
