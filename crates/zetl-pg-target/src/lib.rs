//! PostgreSQL target: the warehouse is a PostgreSQL database. Tables are created from the
//! source schema (under a mapped schema name if configured), and each target transaction holds
//! its data and the checkpoint together, as with DuckDB.
//!
//! The `Target` surface is blocking (the pipeline runs it on a thread of its own), so the
//! target owns a single-threaded runtime for its connection.

mod config;
mod copy_binary;
mod ddl;
pub mod dead_letters;
mod error;
mod merge;
mod migrate;
mod state;
pub mod types;

pub use config::PostgresTargetConfig;
pub use error::PgTargetError;

use error::SqlContext;
use merge::Stage;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use tokio_postgres::Client;
use zetl_core::apply::{ApplyPolicy, DeleteMode, Replayed};
use zetl_core::batch::Batch;
use zetl_core::bookkeeping::Bookkeeping;
use zetl_core::columns::RecordBatch;
use zetl_core::status::{TableStatus, TargetStatus};
use zetl_core::target::{Target, TargetAdmin};
use zetl_core::{
    Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, Phase, Row, TableId, TableSchema, TableState, Value,
};
use zetl_postgres::conninfo::ConnInfo;

/// PostgreSQL's NAMEDATALEN - 1: longer names are cut.
const MAX_IDENTIFIER_BYTES: usize = 63;

pub struct PgTarget {
    runtime: tokio::runtime::Runtime,
    client: Client,
    integration: String,
    /// Source schema → target schema.
    schemas: HashMap<String, String>,
    stages: HashMap<TableId, Stage>,
    /// The source schemas stored when the target was opened: what an existing table was
    /// last brought up to, until this run brings it up again (`stages`).
    stored: HashMap<TableId, TableSchema>,
    next_stage: usize,
    apply: ApplyPolicy,
    books: Bookkeeping,
    /// Tables a copy emptied that have had no copied rows yet: their primary key is dropped
    /// before the first ones arrive and built again when the copy is done (`ddl::drop_key`).
    emptied: HashSet<TableId>,
    /// Tables whose primary key this process dropped for a copy and has not built again.
    unkeyed: HashSet<TableId>,
    /// Tables whose key was built again in the open transaction: unkeyed once more if it rolls back.
    rekeyed: Vec<TableId>,
}

impl PgTarget {
    /// Connects (TLS per `sslmode`, as for a PostgreSQL source) and brings `_zetl` up to date.
    pub fn connect(url: &str, integration: &str, schemas: HashMap<String, String>) -> Result<Self, PgTargetError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(PgTargetError::Runtime)?;
        let info = ConnInfo::from_url(url)?;
        let client = runtime.block_on(async {
            let client = info.connect_sql().await?;
            migrate::migrate(&client).await?;
            let pending = dead_letters::pending_tables(&client, integration).await?;
            let stored = state::stored_schemas(&client, integration).await?;
            Ok::<_, PgTargetError>((client, pending, stored))
        })?;
        let (client, letters_pending, stored) = client;
        Ok(Self {
            runtime,
            client,
            integration: integration.to_string(),
            schemas,
            stages: HashMap::new(),
            stored,
            next_stage: 0,
            apply: ApplyPolicy::default(),
            books: Bookkeeping::new(letters_pending),
            emptied: HashSet::new(),
            unkeyed: HashSet::new(),
            rekeyed: Vec::new(),
        })
    }

    /// Per-table delete mode and truncate policy (default: hard deletes, truncates applied).
    pub fn with_apply_policy(mut self, apply: ApplyPolicy) -> Self {
        self.apply = apply;
        self
    }

    /// Makes this the integration's only writer at this database (`zetl run`): a session
    /// advisory lock, held while the connection lives and freed when the process dies. A
    /// writer killed a moment ago holds it until the server notices its session is gone, so
    /// the lock is tried for a few seconds before another writer is assumed.
    pub fn claim(self) -> Result<Self, PgTargetError> {
        let key = writer_lock_key(&self.integration);
        let got: bool = self.run(async {
            for _ in 0..CLAIM_TRIES {
                let row = self.client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await;
                if row.ctx(|| "taking the integration's writer lock".into())?.get(0) {
                    return Ok(true);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok(false)
        })?;
        if !got {
            return Err(PgTargetError::Busy { integration: self.integration.clone() });
        }
        Ok(self)
    }

    fn target_schema(&self, table: &TableId) -> String {
        self.schemas.get(&table.schema).cloned().unwrap_or_else(|| table.schema.clone())
    }

    fn target_name(&self, table: &TableId) -> String {
        format!("{}.{}", types::ident(&self.target_schema(table)), types::ident(&table.name))
    }

    fn soft(&self, table: &TableId) -> bool {
        self.apply.for_table(table).deletes == DeleteMode::Soft
    }

    fn stage(&self, table: &TableId) -> Result<&Stage, PgTargetError> {
        self.stages
            .get(table)
            .ok_or_else(|| PgTargetError::State(format!("rows for {table} arrived before its schema")))
    }

    fn run<T>(&self, f: impl Future<Output = Result<T, PgTargetError>>) -> Result<T, PgTargetError> {
        self.runtime.block_on(f)
    }

    fn sql(&self, sql: &str) -> Result<(), PgTargetError> {
        self.run(async { self.client.batch_execute(sql).await.ctx(|| sql.to_string()) })
    }

    /// Before the first rows a copy writes into the table it emptied: its primary key goes.
    fn unkey_for_copy(&mut self, table: &TableId) -> Result<(), PgTargetError> {
        if self.emptied.remove(table) && self.run(ddl::drop_key(&self.client, &self.target_name(table)))? {
            tracing::info!(table = %table, "primary key dropped while the copy fills the table");
            self.unkeyed.insert(table.clone());
        }
        Ok(())
    }

    /// Gives `table` its primary key again (a no-op when it has it), built from the rows it holds.
    fn rekey(&mut self, table: &TableId) -> Result<(), PgTargetError> {
        self.unkeyed.remove(table);
        let schema = &self.stage(table)?.schema;
        if self.run(ddl::follow_key(&self.client, &self.target_name(table), schema))? {
            tracing::info!(table = %table, "primary key built after the copy");
            self.rekeyed.push(table.clone());
        }
        Ok(())
    }
}

impl TargetAdmin for PgTarget {
    fn request_resync(&mut self, table: &TableId) -> Result<bool, PgTargetError> {
        let (client, integration) = (&self.client, &self.integration);
        let n = self.runtime.block_on(async {
            client
                .execute(
                    "UPDATE _zetl.tables SET state = $4, updated_at = now() \
                     WHERE integration = $1 AND table_schema = $2 AND table_name = $3",
                    &[integration, &table.schema, &table.name, &TableState::ResyncRequested.as_str()],
                )
                .await
                .ctx(|| format!("marking {table} for a new copy"))
        })?;
        Ok(n > 0)
    }

    fn forget_position(&mut self) -> Result<(), PgTargetError> {
        let (client, integration) = (&self.client, &self.integration);
        self.runtime.block_on(state::forget(client, integration))
    }

    fn list_dead_letters(&mut self) -> Result<Vec<zetl_core::apply::DeadLetter>, PgTargetError> {
        self.run(dead_letters::list(&self.client, &self.integration))
    }

    fn replay_dead_letters(&mut self, ids: &[i64]) -> Result<Replayed, PgTargetError> {
        let name = |schema: &str, table: &str| self.target_name(&TableId::new(schema, table));
        self.run(dead_letters::replay(&self.client, &self.integration, ids, name))
    }
}

impl Target for PgTarget {
    type Error = PgTargetError;

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, PgTargetError> {
        self.run(state::load_checkpoint(&self.client, &self.integration))
    }

    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, PgTargetError> {
        self.run(state::copied_tables(&self.client, &self.integration))
    }

    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, PgTargetError> {
        self.run(state::copies_under_way(&self.client, &self.integration))
    }

    fn mark_tables(
        &mut self,
        tables: &[TableId],
        state: TableState,
        reason: Option<&str>,
    ) -> Result<(), PgTargetError> {
        self.run(state::mark_tables(&self.client, &self.integration, tables, state, reason))
    }

    fn begin(&mut self) -> Result<(), PgTargetError> {
        self.sql("BEGIN")
    }

    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, PgTargetError> {
        let (target_schema, target) = (self.target_schema(&schema.id), self.target_name(&schema.id));
        let soft = self.soft(&schema.id);
        let previous = self.stages.get(&schema.id).map(|s| &s.schema).or_else(|| self.stored.get(&schema.id));
        let added = self.run(ddl::ensure_table(&self.client, &target_schema, &target, schema, soft, previous))?;
        self.run(state::store_schema(&self.client, &self.integration, schema))?;
        if self.stages.get(&schema.id).is_some_and(|s| s.schema == *schema) {
            return Ok(added);
        }
        self.next_stage += 1;
        let stage = self.run(Stage::create(&self.client, schema, target, self.next_stage))?;
        if let Some(old) = self.stages.insert(schema.id.clone(), stage) {
            self.run(old.drop(&self.client))?;
        }
        Ok(added)
    }

    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), PgTargetError> {
        let col = &schema.columns[column];
        let sql = format!(
            "UPDATE {} SET {c} = $1::text::{ty}",
            self.target_name(&schema.id),
            c = types::ident(&col.name),
            ty = types::pg_type(&col.ty)
        );
        let text = (!value.is_null()).then(|| types::literal(value));
        self.run(async {
            self.client
                .execute(&sql, &[&text])
                .await
                .ctx(|| format!("filling the added column {} of {}", col.name, schema.id))
        })?;
        Ok(())
    }

    fn copy_start(&mut self, table: &TableId) -> Result<(), PgTargetError> {
        let sql = format!("DELETE FROM {}", self.target_name(table));
        let deleted = self.run(async { self.client.execute(&sql, &[]).await.ctx(|| sql.clone()) })?;
        // Only a table that was empty loses its key for the copy: dropping it locks readers
        // out until the transaction commits, and those of a table with rows go on reading
        // them until the copy is complete.
        if deleted == 0 {
            self.emptied.insert(table.clone());
        }
        if self.books.copy_started(table) {
            let why = dead_letters::COPIED;
            self.run(dead_letters::supersede_table(&self.client, &self.integration, table, why))?;
        }
        let copying = TableState::Copying;
        self.run(state::set_table_state(&self.client, &self.integration, table, copying, 0, &CopiedTable::default()))
    }

    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), PgTargetError> {
        self.unkey_for_copy(table)?;
        self.run(merge::copy_rows(&self.client, self.stage(table)?, rows))?;
        self.books.wrote(table, rows.len() as u64, 0, self.soft(table));
        Ok(())
    }

    fn copy_columns(&mut self, table: &TableId, batch: &RecordBatch) -> Result<bool, PgTargetError> {
        self.unkey_for_copy(table)?;
        if !self.run(merge::copy_columns(&self.client, self.stage(table)?, batch))? {
            return Ok(false);
        }
        self.books.wrote(table, batch.num_rows() as u64, 0, self.soft(table));
        Ok(true)
    }

    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), PgTargetError> {
        self.books.copy_reached(table, after);
        Ok(())
    }

    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), PgTargetError> {
        self.books.copy_holds(table, rows);
        Ok(())
    }

    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), PgTargetError> {
        self.emptied.remove(table);
        // Also for a copy a restart continued: its key may have gone in an earlier run.
        if self.stages.contains_key(table) {
            self.rekey(table)?;
        }
        self.books.copy_done(table);
        let (rows, streaming) = (rows as i64, TableState::Streaming);
        let copied = CopiedTable { schema: self.stages.get(table).map(|s| s.schema.clone()), ..copied.clone() };
        self.run(state::set_table_state(&self.client, &self.integration, table, streaming, rows, &copied))
    }

    fn fill_aside(&mut self, table: &TableId, aside: &TableId, resumed: bool) -> Result<bool, PgTargetError> {
        if aside.name.len() > MAX_IDENTIFIER_BYTES {
            // PostgreSQL would cut the name; such a table is filled in place.
            return Ok(false);
        }
        let name = self.target_name(aside);
        let exists: bool = self.run(async {
            let row = self.client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await;
            Ok(row.ctx(|| format!("looking for {name}"))?.get(0))
        })?;
        if resumed {
            return Ok(exists);
        }
        self.drop_aside(aside)?;
        if self.books.copy_started(table) {
            let why = dead_letters::COPIED;
            self.run(dead_letters::supersede_table(&self.client, &self.integration, table, why))?;
        }
        let copying = TableState::Copying;
        self.run(state::set_table_state(&self.client, &self.integration, table, copying, 0, &CopiedTable::default()))?;
        Ok(true)
    }

    fn replace_with_aside(&mut self, table: &TableId, aside: &TableId) -> Result<(), PgTargetError> {
        let stage = self.stage(aside)?;
        // By name: the table may hold columns the source dropped since (they stay, NULL).
        let soft = self.soft(table).then_some(ddl::SOFT_COLUMNS.iter().map(|(n, _)| *n)).into_iter().flatten();
        let columns: Vec<String> =
            stage.schema.columns.iter().map(|c| c.name.as_str()).chain(soft).map(types::ident).collect();
        let (t, a) = (self.target_name(table), self.target_name(aside));
        // DELETE rather than TRUNCATE: readers go on reading the old rows until the commit.
        self.sql(&format!("DELETE FROM {t}; INSERT INTO {t} ({c}) SELECT {c} FROM {a}", c = columns.join(", ")))?;
        self.run(dead_letters::move_table(&self.client, &self.integration, aside, table))?;
        self.books.moved(aside, table);
        self.drop_aside(aside)
    }

    fn drop_aside(&mut self, aside: &TableId) -> Result<(), PgTargetError> {
        if let Some(stage) = self.stages.remove(aside) {
            self.run(stage.drop(&self.client))?;
        }
        self.sql(&format!("DROP TABLE IF EXISTS {}", self.target_name(aside)))
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), PgTargetError> {
        // A merge names the key (`ON CONFLICT`): a table still being copied gets it back first.
        let copying: Vec<TableId> = batch.tables.keys().filter(|t| self.unkeyed.contains(*t)).cloned().collect();
        for table in &copying {
            self.rekey(table)?;
        }
        for (table, changes) in &batch.tables {
            let settings = self.apply.for_table(table);
            let soft = settings.deletes == DeleteMode::Soft;
            let stage = self.stage(table)?;
            let (client, integration) = (&self.client, &self.integration);
            let pending = self.books.has_pending_letters(table);
            let dead = self.run(dead_letters::apply_guarded(
                client,
                integration,
                stage,
                changes,
                soft,
                settings.on_error,
                pending,
            ))?;
            self.books.applying(table);
            self.books.wrote(table, 0, dead, soft);
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), PgTargetError> {
        for (table, rows, cursor) in self.books.copies() {
            self.run(state::set_copy_progress(&self.client, &self.integration, table, rows as i64, cursor.as_deref()))?;
        }
        for table in self.books.take_soft_touched() {
            let sql =
                format!("UPDATE {} SET _zetl_position = $1 WHERE _zetl_position IS NULL", self.target_name(&table));
            self.run(async {
                self.client
                    .execute(&sql, &[&checkpoint.position.0])
                    .await
                    .ctx(|| format!("positioning rows of {table}"))
            })?;
        }
        if self.books.letters_need_position() {
            self.run(dead_letters::set_position(&self.client, &self.integration, &checkpoint.position.0))?;
        }
        self.run(state::store_checkpoint(&self.client, &self.integration, checkpoint))?;
        self.sql("COMMIT")?;
        self.rekeyed.clear();
        self.books.committed();
        Ok(())
    }

    fn dead_letters(&self) -> u64 {
        self.books.dead_letters()
    }

    fn rollback(&mut self) -> Result<(), PgTargetError> {
        self.sql("ROLLBACK")?;
        // Keys dropped in the undone transaction are back; those built in it are gone again.
        self.unkeyed.extend(self.rekeyed.drain(..));
        // Letters superseded in the undone transaction are pending again.
        let pending = self.run(dead_letters::pending_tables(&self.client, &self.integration))?;
        self.books.rolled_back(pending);
        Ok(())
    }

    fn reset(&mut self) -> Result<(), PgTargetError> {
        let tables = self.run(state::known_tables(&self.client, &self.integration))?;
        self.sql("BEGIN")?;
        for table in &tables {
            self.sql(&format!("DROP TABLE IF EXISTS {}", self.target_name(table)))?;
            self.sql(&format!("DROP TABLE IF EXISTS {}", self.target_name(&table.fill_aside())))?;
        }
        self.run(state::forget(&self.client, &self.integration))?;
        self.sql("COMMIT")
    }
}

/// What `zetl status` shows of a PostgreSQL target, read without changing anything (no
/// migration): empty when `_zetl` does not exist yet.
pub fn read_status(url: &str, integration: &str) -> Result<TargetStatus, PgTargetError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(PgTargetError::Runtime)?;
    let info = ConnInfo::from_url(url)?;
    runtime.block_on(async {
        let c = info.connect_sql().await?;
        let exists: bool = c
            .query_one("SELECT to_regclass('_zetl.checkpoints') IS NOT NULL", &[])
            .await
            .ctx(|| "looking for _zetl".into())?
            .get(0);
        let mut status = TargetStatus::default();
        if !exists {
            return Ok(status);
        }
        if let Some(r) = c
            .query_opt(
                "SELECT phase, position, updated_at::text FROM _zetl.checkpoints WHERE integration = $1",
                &[&integration],
            )
            .await
            .ctx(|| "reading the checkpoint".into())?
        {
            let phase: String = r.get(0);
            status.phase = Some(Phase::parse(&phase).map_err(PgTargetError::State)?);
            status.position = Some(r.get(1));
            status.updated_at = Some(r.get(2));
        }
        let rows = c
            .query(
                "SELECT table_schema, table_name, state, rows_copied, updated_at::text, state_reason FROM _zetl.tables \
                 WHERE integration = $1 ORDER BY 1, 2",
                &[&integration],
            )
            .await
            .ctx(|| "reading table state".into())?;
        for r in &rows {
            let state: String = r.get(2);
            status.tables.push(TableStatus {
                schema: r.get(0),
                name: r.get(1),
                state: TableState::parse(&state).map_err(PgTargetError::State)?,
                rows_copied: r.get(3),
                updated_at: r.get(4),
                reason: r.get(5),
            });
        }
        Ok(status)
    })
}

/// Tries of the writer lock, 250 ms apart.
const CLAIM_TRIES: u32 = 20;

/// The advisory lock key of an integration's writer: FNV-1a of its name, apart from the
/// migration lock's key space by a prefix.
fn writer_lock_key(integration: &str) -> i64 {
    let hash = format!("zetl run {integration}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash as i64
}
