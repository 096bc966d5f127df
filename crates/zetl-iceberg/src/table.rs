//! One replicated table in the lake: its committed metadata, the key index (key → the data
//! file and row position holding it), and what the open transaction adds: rows buffered and
//! written to a data file still open, and position deletes of superseded rows (mirror mode;
//! changelog mode appends every change instead, see `changelog`).

mod changelog;
mod fill;
mod keyless;
mod screen;

use crate::error::{IcebergError, TableContext};
use crate::files;
use crate::key::{self, IndexKey};
use crate::types;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema as ArrowSchema};
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, SchemaRef, SnapshotRef, TableMetadata, MAIN_BRANCH};
use iceberg::writer::file_writer::ParquetWriter;
use iceberg::writer::CurrentFileStatus;
use std::collections::HashMap;
use std::sync::Arc;
use zetl_core::batch::{KeyedOp, TableBatch};

pub use changelog::layout;
use changelog::LogState;
pub use screen::TableLetters;
use zetl_core::{Row, TableSchema, Value};

/// The branch a copy made while streaming writes its chunks and the table's changes to, until
/// it is complete and becomes the table's `main` in one commit: readers of the table see the
/// rows as they were until then (`apply.resync: replace`). A restart finds it and goes on.
pub const FILL_BRANCH: &str = "zetl-fill";

/// Which branch the table's open transaction commits to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Branch {
    #[default]
    Main,
    /// A fill under way: `FILL_BRANCH`.
    Fill,
    /// The fill is complete: its last changes go to `FILL_BRANCH`, which then becomes `main`
    /// and is removed, in the same commit.
    Publish,
}

impl Branch {
    pub fn name(self) -> &'static str {
        match self {
            Branch::Main => MAIN_BRANCH,
            Branch::Fill | Branch::Publish => FILL_BRANCH,
        }
    }
}

/// Rows buffered before they go into the open data file as one row group's worth.
const BUFFER_ROWS: usize = 16_384;

/// Where a removed row was.
enum Removed {
    Nothing,
    Buffered(Row),
    InFile(u32, i64),
}

/// Where a key's row is, in 8 bytes (the index holds one per row of the table): row `pos` of
/// data file `file` (an index into `LakeTable::files`), or entry `pos` of the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    file: u32,
    pos: u32,
}

const BUFFERED: u32 = u32::MAX;

/// A data file holds fewer rows than this, so that a row's position fits a slot.
const MAX_FILE_ROWS: i64 = u32::MAX as i64;

enum Place {
    File(u32, i64),
    Buffer(usize),
}

impl Slot {
    fn file(file: u32, pos: i64) -> Slot {
        debug_assert!(pos < MAX_FILE_ROWS);
        Slot { file, pos: pos as u32 }
    }

    fn buffer(entry: usize) -> Slot {
        Slot { file: BUFFERED, pos: entry as u32 }
    }

    fn place(self) -> Place {
        match self.file {
            BUFFERED => Place::Buffer(self.pos as usize),
            file => Place::File(file, i64::from(self.pos)),
        }
    }
}

pub struct LakeTable {
    pub source: TableSchema,
    /// The columns of the rows written: the source's, plus the log columns in changelog mode.
    layout: TableSchema,
    /// Changelog mode's state; `None` in mirror mode.
    log: Option<LogState>,
    pub metadata: TableMetadata,
    /// The metadata file the catalog points at.
    pub location: String,
    /// The metadata holds a change not committed yet (a schema, a fill's branch removed).
    pub metadata_changed: bool,
    pub branch: Branch,
    schema: SchemaRef,
    arrow: Arc<ArrowSchema>,
    /// The columns whose values are checked before they are written (see `screen`).
    refusing: Vec<(usize, usize)>,
    /// The key columns in column order, and their types as stored: keys are compared in this
    /// order whatever order the source declares them in (PostgreSQL's stream and its catalog
    /// disagree on it), so that an index read back from the files matches later changes.
    key_cols: Vec<usize>,
    key_types: Vec<DataType>,
    index: HashMap<IndexKey, Slot>,
    /// Data file paths, numbered as `Slot::File` refers to them.
    files: Vec<String>,
    buffer: Vec<Option<(Vec<u8>, Row)>>,
    open: Option<(ParquetWriter, u32, i64)>,
    pub written: Vec<DataFile>,
    /// Position deletes: (data file number, row position).
    pub deletes: Vec<(u32, i64)>,
    /// The transaction emptied the table: the snapshot keeps none of the files before.
    pub truncated: bool,
    /// Rows added to data files by the open transaction (for the snapshot summary).
    pub added_rows: u64,
    /// A data file closes once it holds about this many bytes.
    pub file_size: u64,
    /// The transaction rewrites the table's rows into new files (`zetl lake maintain`).
    pub rewrite: bool,
    pub letters: TableLetters,
    footers: files::Footers,
}

impl LakeTable {
    /// The table as committed at `location` (on the fill's branch where a fill left one), its
    /// key index read back from its files.
    pub async fn load(
        file_io: &FileIO,
        source: TableSchema,
        metadata: TableMetadata,
        location: String,
        changelog: bool,
    ) -> Result<Self, IcebergError> {
        let filling = metadata.snapshot_for_ref(FILL_BRANCH).is_some();
        let mut table = Self::empty(source, metadata, location, changelog)?;
        if filling {
            table.branch = Branch::Fill;
        }
        table.rebuild_index(file_io).await?;
        Ok(table)
    }

    fn empty(
        source: TableSchema,
        metadata: TableMetadata,
        location: String,
        changelog: bool,
    ) -> Result<Self, IcebergError> {
        let schema = metadata.current_schema().clone();
        let name = source.id.to_string();
        let arrow =
            Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).table(&name, || "its Arrow schema".into())?);
        let key_cols = key_order(&source);
        let key_types = key_types(&source, &key_cols, &arrow)?;
        let layout = layout(&source, changelog)?;
        Ok(LakeTable {
            refusing: types::refusing_columns(&arrow, &layout),
            layout,
            log: changelog.then(LogState::default),
            source,
            metadata,
            location,
            metadata_changed: false,
            branch: Branch::Main,
            schema,
            arrow,
            key_cols,
            key_types,
            index: HashMap::new(),
            files: Vec::new(),
            buffer: Vec::new(),
            open: None,
            written: Vec::new(),
            deletes: Vec::new(),
            truncated: false,
            added_rows: 0,
            file_size: u64::MAX,
            rewrite: false,
            letters: TableLetters::default(),
            footers: files::Footers::default(),
        })
    }

    /// The table as committed, to be written again whole (no index: nothing is looked up).
    pub fn for_rewrite(
        source: TableSchema,
        metadata: TableMetadata,
        location: String,
        changelog: bool,
    ) -> Result<Self, IcebergError> {
        let mut table = Self::empty(source, metadata, location, changelog)?;
        table.truncated = true;
        table.rewrite = true;
        Ok(table)
    }

    /// The Arrow schema of the rows written (with Iceberg field ids).
    pub fn arrow(&self) -> &Arc<ArrowSchema> {
        &self.arrow
    }

    /// The data file paths that `deletes` number.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    pub fn name(&self) -> String {
        self.source.id.to_string()
    }

    /// The snapshot the table's rows are at: its branch's head (a fill's branch not begun
    /// yet starts from `main`).
    pub fn head(&self) -> Option<&SnapshotRef> {
        self.metadata.snapshot_for_ref(self.branch.name()).or_else(|| self.metadata.current_snapshot())
    }

    pub fn is_dirty(&self) -> bool {
        self.truncated
            || !self.written.is_empty()
            || !self.deletes.is_empty()
            || self.open.is_some()
            || self.buffer.iter().any(Option::is_some)
    }

    /// Takes a new source schema (and the table metadata evolved to it). Rows still buffered
    /// (a changelog's open source transaction) are carried over to the new columns by name.
    pub fn evolve(&mut self, source: TableSchema, metadata: TableMetadata) -> Result<(), IcebergError> {
        let layout = layout(&source, self.log.is_some())?;
        for (_, row) in self.buffer.iter_mut().flatten() {
            *row = layout
                .columns
                .iter()
                .map(|c| self.layout.column_index(&c.name).and_then(|i| row.get(i).cloned()).unwrap_or(Value::Null))
                .collect();
        }
        self.layout = layout;
        self.schema = metadata.current_schema().clone();
        let name = source.id.to_string();
        self.arrow =
            Arc::new(iceberg::arrow::schema_to_arrow_schema(&self.schema).table(&name, || "its Arrow schema".into())?);
        self.refusing = types::refusing_columns(&self.arrow, &self.layout);
        self.key_cols = key_order(&source);
        self.key_types = key_types(&source, &self.key_cols, &self.arrow)?;
        self.source = source;
        self.metadata = metadata;
        self.metadata_changed = true;
        Ok(())
    }

    /// The key index from the table's live data files minus its position deletes.
    async fn rebuild_index(&mut self, file_io: &FileIO) -> Result<(), IcebergError> {
        let name = self.name();
        let Some(snapshot) = self.head().cloned() else { return Ok(()) };
        let files::Live { data, mut deleted, .. } = files::live_files(file_io, &snapshot, &name).await?;
        let data: Vec<String> = data.into_iter().map(|(path, _)| path).collect();
        if self.log.is_some() {
            return self.rebuild_log_index(file_io, data).await;
        }
        let key_names: Vec<&str> = self.key_cols.iter().map(|&i| self.source.columns[i].name.as_str()).collect();
        if !key_names.is_empty() {
            // Sized once from the snapshot's summary: growing by doubling would hold the old
            // and the new table at once, on the largest index.
            let total = |key: &str| snapshot.summary().additional_properties.get(key).and_then(|n| n.parse().ok());
            let live =
                total("total-records").unwrap_or(0usize).saturating_sub(total("total-position-deletes").unwrap_or(0));
            self.index.reserve(live);
        }
        for path in data {
            let number = self.files.len() as u32;
            self.files.push(path.clone());
            if key_names.is_empty() {
                continue;
            }
            let gone = deleted.remove(&path).unwrap_or_default();
            let mut pos = 0i64;
            for batch in files::read_columns(file_io, &path, &key_names, &name).await? {
                let columns: Vec<&dyn arrow_array::Array> = batch.columns().iter().map(|c| c.as_ref()).collect();
                for row in 0..batch.num_rows() {
                    if !gone.contains(&pos) {
                        let k = key::from_arrays(&columns, row).map_err(|p| self.value_error(p))?;
                        self.index.insert(k.as_slice().into(), self.slot_in(number, pos)?);
                    }
                    pos += 1;
                }
            }
        }
        Ok(())
    }

    /// Row `pos` of data file `number`, read back from the table (another writer's file may
    /// be larger than zetl's).
    fn slot_in(&self, number: u32, pos: i64) -> Result<Slot, IcebergError> {
        if pos >= MAX_FILE_ROWS {
            let path = self.files.get(number as usize).map_or("", String::as_str);
            return Err(IcebergError::Unsupported(format!(
                "table {}: data file {path} holds more than {MAX_FILE_ROWS} rows; rewrite it into smaller files",
                self.name()
            )));
        }
        Ok(Slot::file(number, pos))
    }

    fn value_error(&self, problem: String) -> IcebergError {
        IcebergError::Value { table: self.name(), column: "(key)".into(), problem }
    }

    fn key_of(&self, row: &Row) -> Result<Vec<u8>, IcebergError> {
        let values: Vec<&Value> = self.key_cols.iter().map(|&i| row.get(i).unwrap_or(&Value::Null)).collect();
        key::from_values(&self.key_types, &values).map_err(|p| self.value_error(p))
    }

    /// Empties the table in the open transaction.
    pub fn truncate(&mut self) {
        self.index.clear();
        self.files.clear();
        self.buffer.clear();
        self.open = None;
        self.written.clear();
        self.deletes.clear();
        self.truncated = true;
        self.all_applied();
    }

    /// A dead letter's row, applied again: over its key, or appended to a keyless table.
    pub async fn replay(&mut self, file_io: &FileIO, row: Row) -> Result<(), IcebergError> {
        if !self.key_cols.is_empty() {
            return self.upsert(file_io, row, None, false, "replay").await;
        }
        if self.admit(&row, &[], "replay")? {
            self.append(file_io, None, row).await?;
        }
        Ok(())
    }

    /// Applies one table's collapsed changes.
    pub async fn apply(&mut self, file_io: &FileIO, changes: &TableBatch) -> Result<(), IcebergError> {
        if changes.truncate {
            self.truncate();
        }
        // A key change comes as a delete of the old key, mostly before the move to the new
        // one: where the old row was is kept for the move's unsent values.
        let moves = changes.keyed_ops().any(|op| matches!(op, KeyedOp::Move { .. }));
        let mut gone: HashMap<Vec<u8>, Removed> = HashMap::new();
        for op in changes.keyed_ops() {
            match op {
                KeyedOp::Upsert(row) => self.upsert(file_io, row.clone(), None, changes.filling, "upsert").await?,
                KeyedOp::Delete(old) | KeyedOp::Expire(old) => {
                    let k = self.key_of(old)?;
                    self.applied(&k);
                    let removed = self.remove(&k);
                    if moves {
                        gone.insert(k, removed);
                    }
                }
                KeyedOp::Move { row, from } => {
                    let k = self.key_of(from)?;
                    self.applied(&k);
                    let old = match self.remove(&k) {
                        Removed::Nothing => gone.remove(&k).unwrap_or(Removed::Nothing),
                        removed => removed,
                    };
                    self.upsert(file_io, row.clone(), Some(old), changes.filling, "key change").await?;
                }
            }
        }
        if !changes.unkeyed.is_empty() {
            self.apply_keyless(file_io, &changes.unkeyed).await?;
        }
        Ok(())
    }

    /// Rows of a copy: upserts by key (a copy continued after a restart may meet keys again).
    pub async fn copy_rows(&mut self, file_io: &FileIO, rows: &[Row]) -> Result<(), IcebergError> {
        for row in rows {
            if self.log.is_some() {
                self.log_row(file_io, row.clone(), "copy", changelog::When::Copy).await?;
            } else if self.key_cols.is_empty() {
                if self.admit(row, &[], "copy")? {
                    self.append(file_io, None, row.clone()).await?;
                }
            } else {
                self.upsert(file_io, row.clone(), None, false, "copy").await?;
            }
        }
        Ok(())
    }

    /// Writes `row` over its key. Unchanged columns (a TOASTed value the source did not send)
    /// take the old row's values: `moved_from` (a key change), or the row the key holds. A
    /// row the table cannot store leaves the key's row as it is (see `screen`; `op` names
    /// the change in a dead letter).
    async fn upsert(
        &mut self,
        file_io: &FileIO,
        mut row: Row,
        moved_from: Option<Removed>,
        filling: bool,
        op: &'static str,
    ) -> Result<(), IcebergError> {
        let k = self.key_of(&row)?;
        if !self.admit(&row, &k, op)? {
            return Ok(());
        }
        self.applied(&k);
        let old = match self.remove(&k) {
            Removed::Nothing => moved_from.unwrap_or(Removed::Nothing),
            removed => removed,
        };
        // Rare (TOAST): the positions are only collected when there is one.
        if row.iter().any(|v| matches!(v, Value::Unchanged)) {
            let unchanged: Vec<usize> = (0..row.len()).filter(|&i| matches!(row[i], Value::Unchanged)).collect();
            let old = match old {
                Removed::Buffered(old) => old,
                Removed::InFile(file, pos) => self.read_back(file_io, file, pos, &unchanged).await?,
                // A fill's update for a key its copy has not reached: the copy brings the row.
                Removed::Nothing if filling => return Ok(()),
                Removed::Nothing => return Err(self.no_row_for_unsent(&row)),
            };
            fill_from(&mut row, &unchanged, &old);
        }
        self.append(file_io, Some(k), row).await
    }

    fn no_row_for_unsent(&self, row: &Row) -> IcebergError {
        IcebergError::State(format!(
            "table {}, key {}: an update left columns unsent and the table holds no row under that key",
            self.name(),
            self.source.describe_key(row)
        ))
    }

    /// The columns `wanted` of row `pos` of data file `file`, as a row of the source's width
    /// (other columns NULL). A file still being written is closed first, to be readable.
    async fn read_back(
        &mut self,
        file_io: &FileIO,
        file: u32,
        pos: i64,
        wanted: &[usize],
    ) -> Result<Row, IcebergError> {
        if self.open.as_ref().is_some_and(|(_, open, _)| *open == file) {
            self.close_file().await?;
        }
        let (path, table) = (self.files.get(file as usize).cloned().unwrap_or_default(), self.name());
        let names: Vec<&str> = wanted.iter().map(|&i| self.source.columns[i].name.as_str()).collect();
        let batch = files::read_row(file_io, &mut self.footers, &path, pos, &names, &table).await?;
        let mut row = vec![Value::Null; self.source.columns.len()];
        for (&i, column) in wanted.iter().zip(batch.columns()) {
            row[i] = types::stored_value(column.as_ref()).map_err(|problem| IcebergError::Value {
                table: self.name(),
                column: self.source.columns[i].name.clone(),
                problem,
            })?;
        }
        Ok(row)
    }

    /// Removes the row under key `k`, marking it deleted where it was written.
    fn remove(&mut self, k: &[u8]) -> Removed {
        match self.index.remove(k).map(Slot::place) {
            None => Removed::Nothing,
            Some(Place::Buffer(i)) => match self.buffer.get_mut(i).and_then(Option::take) {
                Some((_, row)) => Removed::Buffered(row),
                None => Removed::Nothing,
            },
            Some(Place::File(file, pos)) => {
                self.deletes.push((file, pos));
                Removed::InFile(file, pos)
            }
        }
    }

    async fn append(&mut self, file_io: &FileIO, k: Option<Vec<u8>>, row: Row) -> Result<(), IcebergError> {
        if let Some(k) = &k {
            self.index.insert(k.as_slice().into(), Slot::buffer(self.buffer.len()));
        }
        self.buffer.push(Some((k.unwrap_or_default(), row)));
        if self.buffer.len() >= BUFFER_ROWS {
            self.flush_buffer(file_io, self.file_size).await?;
        }
        Ok(())
    }

    /// Writes the buffered rows into the open data file (opening one), which closes once it
    /// has `file_size` bytes.
    pub async fn flush_buffer(&mut self, file_io: &FileIO, file_size: u64) -> Result<(), IcebergError> {
        if self.has_unstamped() {
            // A file holds stamped rows only; these wait for their source commit.
            return Ok(());
        }
        let live: Vec<(usize, Vec<u8>, Row)> =
            self.buffer.drain(..).enumerate().filter_map(|(i, entry)| entry.map(|(k, r)| (i, k, r))).collect();
        if live.is_empty() {
            return Ok(());
        }
        let rows: Vec<&Row> = live.iter().map(|(_, _, r)| r).collect();
        let batch = types::record_batch(&self.arrow, &self.layout, &rows)?;
        let (number, first) = self.write_batch(file_io, &batch).await?;
        let keyed = !self.key_cols.is_empty();
        for (offset, (i, k, _)) in live.iter().enumerate() {
            // Only where the key still points at this row: a changelog keeps superseded and
            // deleted versions in the buffer.
            if keyed && self.index.get(k.as_slice()) == Some(&Slot::buffer(*i)) {
                self.index.insert(k.as_slice().into(), Slot::file(number, first + offset as i64));
            }
        }
        self.roll(file_size).await
    }

    /// Writes `batch` (rows of the table's current schema) into the open data file, opening
    /// one; returns the file's number and where the batch's first row is in it.
    pub async fn write_batch(&mut self, file_io: &FileIO, batch: &RecordBatch) -> Result<(u32, i64), IcebergError> {
        let name = self.name();
        if self.open.as_ref().is_some_and(|(_, _, next)| *next + batch.num_rows() as i64 >= MAX_FILE_ROWS) {
            self.close_file().await?;
        }
        let (writer, number, next) = match self.open.as_mut() {
            Some(open) => open,
            None => {
                let path = format!("{}/data/{}.parquet", self.metadata.location(), uuid::Uuid::new_v4());
                let writer = files::open_data_file(file_io, self.schema.clone(), &path, &name).await?;
                self.files.push(path);
                self.open.insert((writer, self.files.len() as u32 - 1, 0))
            }
        };
        iceberg::writer::file_writer::FileWriter::write(writer, batch)
            .await
            .table(&name, || "writing a data file".into())?;
        let first = *next;
        *next += batch.num_rows() as i64;
        self.added_rows += batch.num_rows() as u64;
        Ok((*number, first))
    }

    /// Closes the open data file once it holds about `file_size` bytes.
    pub async fn roll(&mut self, file_size: u64) -> Result<(), IcebergError> {
        if self.open.as_ref().is_some_and(|(writer, _, _)| writer.current_written_size() as u64 >= file_size) {
            self.close_file().await?;
        }
        Ok(())
    }

    /// Closes the open data file: it joins the files the next commit adds.
    pub async fn close_file(&mut self) -> Result<(), IcebergError> {
        let Some((writer, _, _)) = self.open.take() else { return Ok(()) };
        let spec = self.metadata.default_partition_spec_id();
        if let Some(file) = files::close_data_file(writer, spec, &self.name()).await? {
            self.written.push(file);
        }
        Ok(())
    }

    /// The transaction is committed as `metadata` at `location`.
    pub fn committed(&mut self, metadata: TableMetadata, location: String) {
        self.metadata = metadata;
        self.location = location;
        self.written.clear();
        self.deletes.clear();
        self.truncated = false;
        self.metadata_changed = false;
        self.added_rows = 0;
        if self.branch == Branch::Publish {
            self.branch = Branch::Main;
        }
    }
}

/// Takes the `unchanged` (unsent) columns of `row` from `old`, the key's previous version.
fn fill_from(row: &mut Row, unchanged: &[usize], old: &Row) {
    for &i in unchanged {
        row[i] = old.get(i).cloned().unwrap_or(Value::Null);
    }
}

fn key_order(source: &TableSchema) -> Vec<usize> {
    let mut order = source.key_columns().to_vec();
    order.sort_unstable();
    order
}

/// The Arrow types of the key columns `key_cols`, as the table stores them.
fn key_types(source: &TableSchema, key_cols: &[usize], arrow: &ArrowSchema) -> Result<Vec<DataType>, IcebergError> {
    key_cols
        .iter()
        .map(|&i| {
            let name = &source.columns[i].name;
            arrow.field_with_name(name).map(|f| f.data_type().clone()).map_err(|_| {
                IcebergError::State(format!("table {}: the Iceberg table has no key column {name}", source.id))
            })
        })
        .collect()
}
