//! `zetl lake maintain`: keeps an integration's Iceberg tables fast to read and their storage
//! bounded. Per table, holding the catalog's write lock (a running `zetl run` waits at its next
//! transaction and then reads the table again):
//!   - rewrites the table's rows into new files when it has position deletes or several small
//!     files (one `replace` snapshot, carrying the position of the snapshot it replaces);
//!   - expires snapshots older than `older_than`, always keeping the current one (the one the
//!     stored checkpoint describes);
//!   - after the catalog commit, deletes the files no kept snapshot or metadata file refers to
//!     (those of expired snapshots, and orphans of transactions that never committed) when they
//!     are older than `older_than`.

use crate::catalog::SqlCatalog;
use crate::commit;
use crate::config::{IcebergTargetConfig, Mode};
use crate::error::{IcebergError, TableContext};
use crate::files;
use crate::table::{LakeTable, FILL_BRANCH};
use crate::warehouse::Warehouse;
use arrow_array::{BooleanArray, RecordBatch};
use futures_util::StreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::MetadataLocation;
use std::collections::HashSet;
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use zetl_core::TableSchema;

/// What maintenance did to one table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    pub table: String,
    /// Data files of the current snapshot before and after.
    pub data_files: (usize, usize),
    /// Position-delete files the rewrite made unnecessary.
    pub delete_files: usize,
    pub snapshots_expired: usize,
    pub files_removed: usize,
}

pub fn maintain(
    config: &IcebergTargetConfig,
    integration: &str,
    older_than: Duration,
) -> Result<Vec<Maintained>, IcebergError> {
    let catalog = SqlCatalog::open(config)?;
    let rt = crate::runtime("maintenance")?;
    let (warehouse, file_io) = rt.block_on(Warehouse::open(config))?;
    let schemas = catalog.stored_schemas(integration)?;
    let mut done = Vec::new();
    for table in catalog.known_tables(integration)? {
        // A table whose copy never completed has no stored schema: nothing to keep yet.
        let Some(source) = schemas.get(&table) else { continue };
        catalog.begin("taking the catalog's write lock")?;
        let outcome = catalog.metadata_location(&table).and_then(|start| {
            let Some(start) = start else { return Ok((Maintained::default(), Vec::new())) };
            let (report, obsolete, moved) =
                rt.block_on(maintain_table(&start, &file_io, &warehouse, config, source, older_than))?;
            if let Some(to) = moved {
                catalog.swap(&table, &start, &to)?;
            }
            catalog.commit()?;
            Ok((report, obsolete))
        });
        let (report, obsolete) = match outcome {
            Ok(r) => r,
            Err(e) => {
                let _ = catalog.rollback();
                return Err(e);
            }
        };
        let mut report = report;
        for file in obsolete {
            if rt.block_on(file_io.delete(&file)).is_ok() {
                report.files_removed += 1;
            }
        }
        done.push(report);
    }
    Ok(done)
}

/// Rewrites and expires one table (at metadata `start`) inside the catalog transaction;
/// returns what was done, the files to delete once that transaction is committed, and the
/// new metadata file when there is one.
async fn maintain_table(
    start: &str,
    file_io: &FileIO,
    warehouse: &Warehouse,
    config: &IcebergTargetConfig,
    source: &TableSchema,
    older_than: Duration,
) -> Result<(Maintained, Vec<String>, Option<String>), IcebergError> {
    let id = &source.id;
    let name = id.to_string();
    let mut report = Maintained { table: name.clone(), ..Maintained::default() };
    let mut metadata = TableMetadata::read_from(file_io, start).await.table(&name, || format!("reading {start}"))?;
    let mut location = start.to_string();
    if let Some(current) = metadata.current_snapshot().cloned() {
        let live = files::live_files(file_io, &current, &name).await?;
        report.data_files = (live.data.len(), live.data.len());
        let small = live.data.iter().filter(|(_, bytes)| *bytes < config.target_file_size / 2).count();
        if !live.delete_files.is_empty() || small >= 2 {
            let changelog = config.mode == Mode::Changelog;
            let mut table = LakeTable::for_rewrite(source.clone(), metadata.clone(), location.clone(), changelog)?;
            table.file_size = config.target_file_size;
            for (path, _) in &live.data {
                let gone = live.deleted.get(path);
                let mut first = 0i64;
                let mut batches = files::batches(file_io, path, &name).await?;
                while let Some(batch) = batches.next().await {
                    let batch = batch?;
                    let rows = batch.num_rows() as i64;
                    let kept = match gone {
                        Some(gone) => keep_rows(&batch, first, gone)?,
                        None => batch,
                    };
                    first += rows;
                    let kept = files::conform(&kept, table.arrow()).map_err(|e| rewrite_error(&name, path, e))?;
                    table.write_batch(file_io, &kept).await?;
                    table.roll(config.target_file_size).await?;
                }
            }
            let mut properties = current.summary().additional_properties.clone();
            properties.insert("zetl.maintenance".into(), "rewrite".into());
            if let Some(committed) = commit::produce(file_io, &mut table, &properties).await? {
                report.data_files.1 = table.written.len();
                report.delete_files = live.delete_files.len();
                metadata = committed.metadata;
                location = committed.location;
            }
        }
    }
    let cutoff = SystemTime::now() - older_than;
    let cutoff_ms = cutoff.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    // A copy under way on its branch keeps its head (expiring it would drop the branch).
    let heads = [metadata.current_snapshot_id(), metadata.snapshot_for_ref(FILL_BRANCH).map(|s| s.snapshot_id())];
    let expired: Vec<i64> = metadata
        .snapshots()
        .filter(|s| !heads.contains(&Some(s.snapshot_id())) && s.timestamp_ms() < cutoff_ms)
        .map(|s| s.snapshot_id())
        .collect();
    if !expired.is_empty() {
        metadata = TableMetadataBuilder::new_from_metadata(metadata, Some(location.clone()))
            .remove_snapshots(&expired)
            .build()
            .table(&name, || "expiring snapshots".into())?
            .metadata;
        let next = MetadataLocation::from_str(&location)
            .table(&name, || format!("reading {location}"))?
            .with_next_version()
            .with_new_metadata(&metadata);
        metadata.write_to(file_io, &next).await.table(&name, || format!("writing {next}"))?;
        location = next.to_string();
        report.snapshots_expired = expired.len();
    }
    let mut kept: HashSet<String> = HashSet::from([location.clone()]);
    kept.extend(metadata.metadata_log().iter().map(|m| m.metadata_file.clone()));
    for snapshot in metadata.snapshots() {
        files::referenced(file_io, snapshot, &name, &mut kept).await?;
    }
    let obsolete = unreferenced(warehouse, metadata.location(), &kept, cutoff).await?;
    let moved = (location != start).then_some(location);
    Ok((report, obsolete, moved))
}

/// The rows of `batch` (whose first row is at `first` in its file) that `gone` does not list.
fn keep_rows(batch: &RecordBatch, first: i64, gone: &HashSet<i64>) -> Result<RecordBatch, IcebergError> {
    let mask: BooleanArray = (0..batch.num_rows()).map(|i| Some(!gone.contains(&(first + i as i64)))).collect();
    arrow_select::filter::filter_record_batch(batch, &mask)
        .map_err(|e| IcebergError::State(format!("dropping deleted rows: {e}")))
}

fn rewrite_error(table: &str, path: &str, problem: String) -> IcebergError {
    IcebergError::State(format!("table {table}: rewriting {path}: {problem}"))
}

/// A location without the `file://` of a local one: metadata may name a local file either way.
fn plain(location: &str) -> &str {
    location.strip_prefix("file://").unwrap_or(location)
}

/// Files under the table's `data/` and `metadata/` that `kept` does not name and that were last
/// written before `cutoff`.
async fn unreferenced(
    warehouse: &Warehouse,
    table_dir: &str,
    kept: &HashSet<String>,
    cutoff: SystemTime,
) -> Result<Vec<String>, IcebergError> {
    let kept: HashSet<&str> = kept.iter().map(|f| plain(f)).collect();
    let mut out = Vec::new();
    for dir in ["data", "metadata"] {
        for (path, written) in warehouse.list(&format!("{}/{dir}", table_dir.trim_end_matches('/'))).await? {
            if written <= cutoff && !kept.contains(plain(&path)) {
                out.push(path);
            }
        }
    }
    Ok(out)
}
