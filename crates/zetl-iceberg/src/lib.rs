//! The Apache Iceberg target: every replicated table an Iceberg v2 table (namespace = source
//! schema) in a SQL catalog that Spark's JdbcCatalog and pyiceberg's SqlCatalog open, with
//! Parquet data files and position deletes (mirror mode: the table equals the source table),
//! or one appended row per change (changelog mode).
//!
//! A commit writes each changed table's files, manifests and metadata, then moves every
//! table's catalog pointer and the checkpoint in one catalog transaction: either all of a
//! commit is visible or none, and the source is acknowledged only after it.

mod catalog;
mod commit;
mod config;
mod db;
mod error;
mod files;
mod key;
mod letter_row;
mod letters;
pub mod maintain;
mod replay;
#[cfg(feature = "s3")]
mod s3;
pub mod state;
mod table;
pub mod types;
pub mod warehouse;

pub use catalog::SqlCatalog;
pub use config::{CatalogConfig, CatalogKind, DurationSetting, IcebergTargetConfig, Mode};
pub use error::IcebergError;

use error::TableContext;
use iceberg::io::FileIO;
use iceberg::spec::{FormatVersion, SortOrder, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec};
use iceberg::MetadataLocation;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use table::{Branch, LakeTable, FILL_BRANCH};
use zetl_core::apply::{ApplyPolicy, DeadLetter, OnError, Replayed};
use zetl_core::batch::Batch;
use zetl_core::bookkeeping::Bookkeeping;
use zetl_core::target::{Target, TargetAdmin};
use zetl_core::{Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, Row, TableId, TableSchema, TableState, Value};

/// `zetl check`: the catalog and the warehouse can be reached; creates nothing.
pub fn check(config: &IcebergTargetConfig) -> Result<(), IcebergError> {
    SqlCatalog::check(config)?;
    runtime("the check")?.block_on(async {
        let (warehouse, _) = warehouse::Warehouse::open(config).await?;
        warehouse.check(config).await
    })
}

/// The runtime one thread of zetl drives the lake's I/O with (S3 needs its network and timers).
pub(crate) fn runtime(what: &str) -> Result<tokio::runtime::Runtime, IcebergError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| IcebergError::State(format!("cannot start {what}'s runtime: {e}")))
}

pub struct IcebergTarget {
    config: IcebergTargetConfig,
    catalog: SqlCatalog,
    file_io: FileIO,
    rt: tokio::runtime::Runtime,
    integration: String,
    tables: BTreeMap<TableId, LakeTable>,
    /// Tables filled aside → the table they replace: here the same Iceberg table, whose fill
    /// writes to its branch `FILL_BRANCH` (see `fill_aside`).
    aside: HashMap<TableId, TableId>,
    books: Bookkeeping,
    in_transaction: bool,
    policy: ApplyPolicy,
}

impl IcebergTarget {
    pub fn open(config: &IcebergTargetConfig, integration: &str) -> Result<Self, IcebergError> {
        let catalog = SqlCatalog::open(config)?;
        let rt = runtime("the Iceberg writer")?;
        let (_, file_io) = rt.block_on(warehouse::Warehouse::open(config))?;
        let books = Bookkeeping::new(catalog.letter_tables(integration)?);
        Ok(IcebergTarget {
            config: config.clone(),
            catalog,
            file_io,
            rt,
            integration: integration.to_string(),
            tables: BTreeMap::new(),
            aside: HashMap::new(),
            books,
            in_transaction: false,
            policy: ApplyPolicy::default(),
        })
    }

    /// How changes are applied (`apply:`): here, which tables set aside what they cannot store.
    pub fn with_apply_policy(mut self, policy: ApplyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Makes this process the integration's only writer (`zetl run`); see `SqlCatalog::claim`.
    pub fn claim(mut self) -> Result<Self, IcebergError> {
        if !self.catalog.claim(&self.integration)? {
            return Err(IcebergError::Busy { integration: self.integration.clone() });
        }
        Ok(self)
    }

    fn table_location(&self, table: &TableId) -> String {
        format!("{}/{}/{}", self.config.warehouse_location(), table.schema, table.name)
    }

    fn changelog(&self) -> bool {
        self.config.mode == Mode::Changelog
    }

    /// The table's current metadata from the catalog, if it has the table.
    fn read_metadata(&self, table: &TableId) -> Result<Option<(TableMetadata, String)>, IcebergError> {
        let Some(location) = self.catalog.metadata_location(table)? else { return Ok(None) };
        let name = table.to_string();
        let metadata = self
            .rt
            .block_on(TableMetadata::read_from(&self.file_io, &location))
            .table(&name, || format!("reading {location}"))?;
        Ok(Some((metadata, location)))
    }

    /// Creates the table in the catalog, empty, at its first metadata file.
    fn create(&self, source: &TableSchema) -> Result<(TableMetadata, String), IcebergError> {
        let name = source.id.to_string();
        let schema = types::lake_schema(&table::layout(source, self.changelog())?, None, 0)?;
        let location = self.table_location(&source.id);
        let properties = HashMap::from([
            ("write.format.default".to_string(), "parquet".to_string()),
            ("write.parquet.compression-codec".to_string(), "zstd".to_string()),
            ("zetl.integration".to_string(), self.integration.clone()),
        ]);
        let metadata = TableMetadataBuilder::new(
            schema,
            UnboundPartitionSpec::builder().build(),
            SortOrder::unsorted_order(),
            location.clone(),
            FormatVersion::V2,
            properties,
        )
        .and_then(|b| b.build())
        .table(&name, || "creating its metadata".into())?
        .metadata;
        let first = MetadataLocation::new_with_metadata(&location, &metadata);
        self.rt.block_on(metadata.write_to(&self.file_io, &first)).table(&name, || format!("writing {first}"))?;
        let first = first.to_string();
        self.catalog.create_table(&source.id, &first)?;
        Ok((metadata, first))
    }

    /// The table as committed at `location`, its key index read back from its files.
    fn open_table(
        &self,
        source: TableSchema,
        metadata: TableMetadata,
        location: String,
    ) -> Result<LakeTable, IcebergError> {
        let id = source.id.clone();
        let load = LakeTable::load(&self.file_io, source, metadata, location, self.changelog());
        let mut table = self.rt.block_on(load)?;
        table.file_size = self.config.target_file_size;
        table.letters.set_aside = self.policy.for_table(&id).on_error == OnError::DeadLetter;
        if self.books.has_pending_letters(&id) {
            table.letters.pending = self.catalog.letter_keys(&self.integration, &id)?;
        }
        Ok(table)
    }

    /// Forgets what the open transaction did to the tables: they are read again when next used.
    fn discard(&mut self) {
        self.tables.clear();
    }

    /// The Iceberg table that `table`'s rows go to (a table filled aside is its table's
    /// branch), held by this transaction.
    fn lake_id(&self, table: &TableId) -> Result<TableId, IcebergError> {
        let id = self.aside.get(table).unwrap_or(table);
        let lake = self.tables.get(id).ok_or_else(|| before_schema(id))?;
        if lake.branch == Branch::Fill && id == table && !self.aside.values().any(|t| t == table) {
            // A fill's branch no fill goes on with would take changes readers never see.
            return Err(IcebergError::State(format!(
                "table {id}: changes arrived for the table while its branch {FILL_BRANCH} holds a copy not under way"
            )));
        }
        Ok(id.clone())
    }

    /// A fill's branch is given up: the table goes on from its `main`, without the branch.
    fn end_fill(&mut self, table: &TableId) -> Result<(), IcebergError> {
        let name = table.to_string();
        let without = |metadata: TableMetadata, location: &str| {
            TableMetadataBuilder::new_from_metadata(metadata, Some(location.to_string()))
                .remove_ref(FILL_BRANCH)
                .build()
                .map(|b| b.metadata)
                .table(&name, || format!("removing the branch {FILL_BRANCH}"))
        };
        if let Some(lake) = self.tables.get(table) {
            if lake.branch == Branch::Main {
                return Ok(());
            }
            let (source, location) = (lake.source.clone(), lake.location.clone());
            let metadata = without(lake.metadata.clone(), &location)?;
            let mut fresh = self.open_table(source, metadata, location)?;
            fresh.metadata_changed = true;
            self.tables.insert(table.clone(), fresh);
            tracing::info!(table = %table, branch = FILL_BRANCH, "the copy's branch is given up");
            return Ok(());
        }
        // Not in use by this run (a table out of the filters now): its metadata is moved on.
        let Some((metadata, location)) = self.read_metadata(table)? else { return Ok(()) };
        if metadata.snapshot_for_ref(FILL_BRANCH).is_none() {
            return Ok(());
        }
        let metadata = without(metadata, &location)?;
        let next = MetadataLocation::from_str(&location)
            .table(&name, || format!("reading {location}"))?
            .with_next_version()
            .with_new_metadata(&metadata);
        self.rt.block_on(metadata.write_to(&self.file_io, &next)).table(&name, || format!("writing {next}"))?;
        let own = !self.in_transaction;
        if own {
            self.catalog.begin("removing a copy's branch")?;
        }
        self.catalog.swap(table, &location, &next.to_string())?;
        if own {
            self.catalog.commit()?;
        }
        tracing::info!(table = %table, branch = FILL_BRANCH, "the copy's branch is given up");
        Ok(())
    }
}

impl TargetAdmin for IcebergTarget {
    fn request_resync(&mut self, table: &TableId) -> Result<bool, IcebergError> {
        self.catalog.mark_table(&self.integration, table, TableState::ResyncRequested, None)
    }

    fn forget_position(&mut self) -> Result<(), IcebergError> {
        self.catalog.forget(&self.integration)
    }

    fn list_dead_letters(&mut self) -> Result<Vec<DeadLetter>, IcebergError> {
        self.catalog.list_letters(&self.integration)
    }

    fn replay_dead_letters(&mut self, ids: &[i64]) -> Result<Replayed, IcebergError> {
        self.replay(ids)
    }
}

impl Target for IcebergTarget {
    type Error = IcebergError;

    fn dead_letters(&self) -> u64 {
        self.books.dead_letters()
    }

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, IcebergError> {
        self.catalog.load_checkpoint(&self.integration)
    }

    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, IcebergError> {
        self.catalog.copied_tables(&self.integration)
    }

    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, IcebergError> {
        self.catalog.copies_under_way(&self.integration)
    }

    /// A fill of `table` writes to the table's branch `FILL_BRANCH` (mirror and changelog
    /// modes alike), which becomes `main` when it is complete (`replace_with_aside`): readers
    /// see the table as it was until then, and then the whole copy with every change since.
    fn fill_aside(&mut self, table: &TableId, aside: &TableId, resumed: bool) -> Result<bool, IcebergError> {
        let branch = self.tables.get(table).ok_or_else(|| before_schema(table))?.branch;
        if resumed {
            if branch == Branch::Main {
                return Ok(false);
            }
        } else {
            self.copy_start(table)?;
            self.tables.get_mut(table).ok_or_else(|| before_schema(table))?.branch = Branch::Fill;
        }
        self.aside.insert(aside.clone(), table.clone());
        Ok(true)
    }

    fn replace_with_aside(&mut self, table: &TableId, aside: &TableId) -> Result<(), IcebergError> {
        self.aside.remove(aside);
        self.tables.get_mut(table).ok_or_else(|| before_schema(table))?.branch = Branch::Publish;
        Ok(())
    }

    fn drop_aside(&mut self, aside: &TableId) -> Result<(), IcebergError> {
        let table = match self.aside.remove(aside) {
            Some(table) => table,
            None => match aside.replaced_by_aside() {
                Some(table) => table,
                None => return Ok(()),
            },
        };
        self.end_fill(&table)
    }

    fn mark_tables(&mut self, tables: &[TableId], state: TableState, reason: Option<&str>) -> Result<(), IcebergError> {
        for table in tables {
            self.catalog.mark_table(&self.integration, table, state, reason)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), IcebergError> {
        self.catalog.begin("beginning a transaction")?;
        self.in_transaction = true;
        // `zetl lake maintain` may have rewritten or expired a table since the last commit
        // (it holds this same lock while it does): such a table is read again.
        let mut moved = Vec::new();
        for (id, table) in &self.tables {
            let now = self.catalog.metadata_location(id)?;
            if now.as_deref() != Some(table.location.as_str()) {
                moved.push((id.clone(), table.source.clone()));
            }
        }
        for (id, source) in moved {
            tracing::info!(table = %id, "the table changed since the last commit (lake maintenance): reading it again");
            self.tables.remove(&id);
            let (metadata, location) = self
                .read_metadata(&id)?
                .ok_or_else(|| IcebergError::State(format!("table {id} is no longer in the catalog; resync it")))?;
            let table = self.open_table(source, metadata, location)?;
            self.tables.insert(id, table);
        }
        Ok(())
    }

    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, IcebergError> {
        if let Some(table) = self.aside.get(&schema.id) {
            // The table itself is brought up (by the pipeline, before its aside).
            let schema = TableSchema { id: table.clone(), ..schema.clone() };
            return self.ensure_table(&schema);
        }
        let changelog = self.changelog();
        if let Some(t) = self.tables.get_mut(&schema.id) {
            if t.source == *schema {
                return Ok(Vec::new());
            }
            // What the transaction holds was captured under the old columns: written first.
            self.rt.block_on(async {
                t.flush_buffer(&self.file_io, 0).await?;
                t.close_file().await
            })?;
            let added = added_columns(&t.source, schema);
            let name = schema.id.to_string();
            let current = t.metadata.current_schema().clone();
            let next_id = t.metadata.schemas_iter().map(|s| s.schema_id()).max().unwrap_or(0) + 1;
            let layout = table::layout(schema, changelog)?;
            let evolved = types::lake_schema(&layout, Some(&current), next_id)?;
            let metadata = if evolved.as_struct() == current.as_struct()
                && evolved.identifier_field_ids().eq(current.identifier_field_ids())
            {
                t.metadata.clone()
            } else {
                TableMetadataBuilder::new_from_metadata(t.metadata.clone(), Some(t.location.clone()))
                    .add_current_schema(evolved)
                    .and_then(|b| b.build())
                    .table(&name, || "evolving its schema".into())?
                    .metadata
            };
            t.evolve(schema.clone(), metadata)?;
            self.catalog.store_schema(&self.integration, schema)?;
            return Ok(added);
        }
        let (metadata, location) = match self.read_metadata(&schema.id)? {
            Some(found) => found,
            None => self.create(schema)?,
        };
        let stored = self.catalog.stored_schemas(&self.integration)?.remove(&schema.id);
        let source = stored.clone().unwrap_or(schema.clone());
        let table = self.open_table(source, metadata, location)?;
        self.tables.insert(schema.id.clone(), table);
        if stored.as_ref() != Some(schema) {
            // Brought up to the new schema the same way as a change seen while running.
            let added = self.ensure_table(schema)?;
            return Ok(if stored.is_some() { added } else { Vec::new() });
        }
        Ok(Vec::new())
    }

    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), IcebergError> {
        if value.is_null() {
            return Ok(());
        }
        let id = self.lake_id(&schema.id)?;
        let lake = self.tables.get_mut(&id).ok_or_else(|| before_schema(&id))?;
        self.rt.block_on(lake.fill_column(&self.file_io, column, value))
    }

    fn copy_start(&mut self, table: &TableId) -> Result<(), IcebergError> {
        let changelog = self.changelog();
        self.end_fill(table)?;
        if self.books.copy_started(table) {
            self.catalog.supersede_letters(&self.integration, table, None, letters::COPIED)?;
        }
        let lake = self.tables.get_mut(table).ok_or_else(|| before_schema(table))?;
        if changelog {
            self.rt.block_on(lake.log_copy_start(&self.file_io))?;
        } else {
            lake.truncate();
        }
        self.catalog.set_table_state(&self.integration, table, TableState::Copying, 0)
    }

    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), IcebergError> {
        let table = &self.lake_id(table)?;
        let lake = self.tables.get_mut(table).ok_or_else(|| before_schema(table))?;
        self.rt.block_on(lake.copy_rows(&self.file_io, rows))?;
        let dead = self.store_letters(table)?;
        self.books.wrote(table, (rows.len() as u64).saturating_sub(dead), dead, false);
        Ok(())
    }

    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), IcebergError> {
        self.books.copy_reached(table, after);
        Ok(())
    }

    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), IcebergError> {
        self.books.copy_holds(table, rows);
        Ok(())
    }

    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), IcebergError> {
        self.books.copy_done(table);
        self.catalog.set_table_state(&self.integration, table, TableState::Streaming, rows)?;
        self.catalog.set_copied(&self.integration, table, copied)?;
        if let Some(t) = self.tables.get(table) {
            self.catalog.store_schema(&self.integration, &t.source)?;
        }
        Ok(())
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), IcebergError> {
        if let Some(first) = batch.commits.first() {
            // The source transaction open at the end of the last batch committed first in
            // this one, whichever tables it touched.
            for lake in self.tables.values_mut().filter(|t| t.has_unstamped()) {
                lake.stamp(first);
            }
        }
        for (table, changes) in &batch.tables {
            let table = &self.lake_id(table)?;
            if self.books.has_pending_letters(table) {
                self.books.applying(table);
                if changes.truncate {
                    self.catalog.supersede_letters(&self.integration, table, None, letters::TRUNCATED)?;
                }
            }
            let lake = self.tables.get_mut(table).ok_or_else(|| before_schema(table))?;
            if batch.changelog {
                self.rt.block_on(lake.apply_log(&self.file_io, changes, &batch.commits))?;
            } else {
                self.rt.block_on(lake.apply(&self.file_io, changes))?;
            }
            let dead = self.store_letters(table)?;
            self.books.wrote(table, 0, dead, false);
        }
        Ok(())
    }

    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), IcebergError> {
        let properties = self.snapshot_properties(&checkpoint.position.0);
        if let Some((id, _)) = self.tables.iter().find(|(_, t)| t.has_unstamped()) {
            return Err(IcebergError::State(format!(
                "table {id}: a commit came inside a source transaction, whose changes have no position yet"
            )));
        }
        let mut produced = Vec::new();
        for (id, table) in self.tables.iter_mut() {
            if !table.is_dirty() && !table.metadata_changed && table.branch != Branch::Publish {
                continue;
            }
            if let Some(done) = self.rt.block_on(commit::produce(&self.file_io, table, &properties))? {
                produced.push((id.clone(), table.location.clone(), done));
            }
        }
        let result = (|| {
            for (id, from, done) in &produced {
                self.catalog.swap(id, from, &done.location)?;
            }
            for (table, rows, cursor) in self.books.copies() {
                self.catalog.set_copy_progress(&self.integration, table, rows, cursor.as_deref())?;
            }
            if self.books.letters_need_position() {
                self.catalog.position_letters(&self.integration, &checkpoint.position)?;
            }
            self.catalog.store_checkpoint(&self.integration, checkpoint)?;
            self.catalog.commit()
        })();
        if let Err(e) = result {
            self.discard();
            return Err(e);
        }
        self.in_transaction = false;
        for (id, _, done) in produced {
            if let Some(t) = self.tables.get_mut(&id) {
                t.committed(done.metadata, done.location);
            }
        }
        self.books.committed();
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), IcebergError> {
        if self.in_transaction {
            self.catalog.rollback()?;
            self.in_transaction = false;
        }
        self.discard();
        self.books.rolled_back(self.catalog.letter_tables(&self.integration)?);
        Ok(())
    }

    fn reset(&mut self) -> Result<(), IcebergError> {
        let tables = self.catalog.known_tables(&self.integration)?;
        self.catalog.begin("beginning a reset")?;
        for table in &tables {
            self.catalog.drop_table(table)?;
        }
        self.catalog.forget(&self.integration)?;
        self.catalog.commit()?;
        self.discard();
        Ok(())
    }
}

impl IcebergTarget {
    /// What a snapshot's summary says of the commit that made it: whose, and at which source
    /// position (read back by people and engines; zetl's own checkpoint is in the catalog).
    fn snapshot_properties(&self, position: &str) -> HashMap<String, String> {
        HashMap::from([
            ("zetl.integration".to_string(), self.integration.clone()),
            ("zetl.position".to_string(), position.to_string()),
        ])
    }

    /// Stores the letters `table`'s last changes set aside, and marks superseded those its
    /// applied changes made stale; returns how many were set aside.
    fn store_letters(&mut self, table: &TableId) -> Result<u64, IcebergError> {
        let Some(lake) = self.tables.get_mut(table) else { return Ok(0) };
        let (new, superseded) = (std::mem::take(&mut lake.letters.new), std::mem::take(&mut lake.letters.superseded));
        for key in &superseded {
            self.catalog.supersede_letters(&self.integration, table, Some(key), letters::LATER_CHANGE)?;
        }
        for letter in &new {
            self.catalog.add_letter(&self.integration, letter)?;
        }
        Ok(new.len() as u64)
    }
}

fn before_schema(table: &TableId) -> IcebergError {
    IcebergError::State(format!("rows for {table} arrived before its schema"))
}

/// Columns of `new` that `old` did not have.
fn added_columns(old: &TableSchema, new: &TableSchema) -> Vec<String> {
    new.columns.iter().filter(|c| old.column_index(&c.name).is_none()).map(|c| c.name.clone()).collect()
}
