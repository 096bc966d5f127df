//! Parquet files of a table: data files and position-delete files written, and read back to
//! rebuild the key index.

use crate::error::{IcebergError, TableContext};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::io::{FileIO, FileMetadata};
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, Manifest, ManifestFile, ManifestList, NestedField, PrimitiveType, Schema,
    SchemaRef, Snapshot, Type,
};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriter, ParquetWriterBuilder};
use parquet::arrow::arrow_reader::{ArrowReaderBuilder, ArrowReaderMetadata, RowSelection, RowSelector};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The reserved field ids of a position-delete file's columns (Iceberg spec).
const DELETE_FILE_PATH_ID: i32 = 2147483546;
const DELETE_POS_ID: i32 = 2147483545;

/// Row groups stay small enough that reading one row back (an unsent TOASTed value) reads
/// one group's column chunks, not a whole file's.
const ROW_GROUP_ROWS: usize = 65_536;

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Opens a Parquet data file at `path` for rows of `schema`.
pub async fn open_data_file(
    file_io: &FileIO,
    schema: SchemaRef,
    path: &str,
    table: &str,
) -> Result<ParquetWriter, IcebergError> {
    let output = file_io.new_output(path).table(table, || format!("creating {path}"))?;
    ParquetWriterBuilder::new(properties(), schema).build(output).await.table(table, || format!("opening {path}"))
}

/// Closes a data file: its manifest entry.
pub async fn close_data_file(
    writer: ParquetWriter,
    spec_id: i32,
    table: &str,
) -> Result<Option<DataFile>, IcebergError> {
    let built = writer.close().await.table(table, || "closing a data file".into())?;
    let Some(mut builder) = built.into_iter().next() else { return Ok(None) };
    builder.content(DataContentType::Data).partition_spec_id(spec_id);
    builder.build().map(Some).map_err(|e| IcebergError::State(format!("table {table}: data file entry: {e}")))
}

fn delete_schema() -> Result<Schema, iceberg::Error> {
    Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(DELETE_FILE_PATH_ID, "file_path", Type::Primitive(PrimitiveType::String))),
            Arc::new(NestedField::required(DELETE_POS_ID, "pos", Type::Primitive(PrimitiveType::Long))),
        ])
        .build()
}

/// Rows of position deletes per Arrow batch: the paths are materialised a batch at a time.
const DELETES_PER_BATCH: usize = 65_536;

/// Writes the position deletes `deletes` (number of a data file in `files`, row position),
/// sorted by path and position as the spec requires, to a new file at `path`.
pub async fn write_deletes(
    file_io: &FileIO,
    path: &str,
    deletes: &[(u32, i64)],
    files: &[String],
    spec_id: i32,
    table: &str,
) -> Result<DataFile, IcebergError> {
    let file_path = |n: u32| files.get(n as usize).map_or("", String::as_str);
    let mut sorted = deletes.to_vec();
    sorted.sort_unstable_by(|a, b| file_path(a.0).cmp(file_path(b.0)).then(a.1.cmp(&b.1)));
    let schema = Arc::new(delete_schema().table(table, || "the position-delete schema".into())?);
    let arrow =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).table(table, || "the position-delete schema".into())?);
    let output = file_io.new_output(path).table(table, || format!("creating {path}"))?;
    let mut writer = ParquetWriterBuilder::new(properties(), schema)
        .build(output)
        .await
        .table(table, || format!("opening {path}"))?;
    for chunk in sorted.chunks(DELETES_PER_BATCH) {
        let paths: StringArray = chunk.iter().map(|(n, _)| Some(file_path(*n))).collect();
        let positions: Int64Array = chunk.iter().map(|(_, pos)| Some(*pos)).collect();
        let batch = RecordBatch::try_new(arrow.clone(), vec![Arc::new(paths), Arc::new(positions)])
            .map_err(|e| IcebergError::State(format!("table {table}: position deletes: {e}")))?;
        writer.write(&batch).await.table(table, || format!("writing {path}"))?;
    }
    let built = writer.close().await.table(table, || format!("closing {path}"))?;
    let mut builder = built
        .into_iter()
        .next()
        .ok_or_else(|| IcebergError::State(format!("table {table}: the position-delete file came out empty")))?;
    builder.content(DataContentType::PositionDeletes).partition_spec_id(spec_id);
    builder.build().map_err(|e| IcebergError::State(format!("table {table}: position-delete entry: {e}")))
}

/// The manifests of `snapshot`.
pub async fn manifests(file_io: &FileIO, snapshot: &Snapshot, table: &str) -> Result<Vec<ManifestFile>, IcebergError> {
    let path = snapshot.manifest_list();
    let input = file_io.new_input(path).table(table, || format!("opening {path}"))?;
    let bytes = input.read().await.table(table, || format!("reading {path}"))?;
    let list =
        ManifestList::parse_with_version(&bytes, FormatVersion::V2).table(table, || format!("parsing {path}"))?;
    Ok(list.entries().to_vec())
}

pub async fn load_manifest(file_io: &FileIO, manifest: &ManifestFile, table: &str) -> Result<Manifest, IcebergError> {
    manifest.load_manifest(file_io).await.table(table, || format!("reading manifest {}", manifest.manifest_path))
}

/// A Parquet file of the table, read through the warehouse's storage by ranges: the footer,
/// then only the column chunks and row groups asked for.
async fn parquet(
    file_io: &FileIO,
    path: &str,
    table: &str,
) -> Result<ParquetRecordBatchStreamBuilder<ArrowFileReader>, IcebergError> {
    let input = file_io.new_input(path).table(table, || format!("opening {path}"))?;
    let meta = input.metadata().await.table(table, || format!("looking up {path}"))?;
    let reader = input.reader().await.table(table, || format!("opening {path}"))?;
    ParquetRecordBatchStreamBuilder::new(ArrowFileReader::new(meta, reader))
        .await
        .map_err(|e| IcebergError::State(format!("table {table}: reading {path}: {e}")))
}

/// The columns `names` of a Parquet file, whole.
pub async fn read_columns(
    file_io: &FileIO,
    path: &str,
    names: &[&str],
    table: &str,
) -> Result<Vec<RecordBatch>, IcebergError> {
    let bad = |e: String| IcebergError::State(format!("table {table}: reading {path}: {e}"));
    let builder = parquet(file_io, path, table).await?;
    let mask = projection(&builder, names).map_err(bad)?;
    let stream = builder.with_projection(mask).with_batch_size(65_536).build().map_err(|e| bad(e.to_string()))?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| bad(e.to_string()))?;
    batches.into_iter().map(|b| in_order(b, names).map_err(bad)).collect()
}

/// The footers of the data files rows were read back from, by path (data files never change
/// once written): a row read back again from the same file costs one ranged read, not a size
/// lookup, a footer read and the read. Bounded: emptied when full.
#[derive(Default)]
pub struct Footers(HashMap<String, (u64, ArrowReaderMetadata)>);

impl Footers {
    const MOST: usize = 64;

    async fn builder(
        &mut self,
        file_io: &FileIO,
        path: &str,
        table: &str,
    ) -> Result<ParquetRecordBatchStreamBuilder<ArrowFileReader>, IcebergError> {
        let input = file_io.new_input(path).table(table, || format!("opening {path}"))?;
        let size = match self.0.get(path) {
            Some((size, _)) => *size,
            None => input.metadata().await.table(table, || format!("looking up {path}"))?.size,
        };
        let mut reader = ArrowFileReader::new(
            FileMetadata { size },
            input.reader().await.table(table, || format!("opening {path}"))?,
        );
        let footer = match self.0.get(path) {
            Some((_, footer)) => footer.clone(),
            None => {
                let footer = ArrowReaderMetadata::load_async(&mut reader, Default::default())
                    .await
                    .map_err(|e| IcebergError::State(format!("table {table}: reading {path}: {e}")))?;
                if self.0.len() >= Self::MOST {
                    self.0.clear();
                }
                self.0.insert(path.to_string(), (size, footer.clone()));
                footer
            }
        };
        Ok(ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer))
    }
}

/// The columns `names` of row `pos` of the data file at `path`: one row group's chunks of
/// those columns are read.
pub async fn read_row(
    file_io: &FileIO,
    footers: &mut Footers,
    path: &str,
    pos: i64,
    names: &[&str],
    table: &str,
) -> Result<RecordBatch, IcebergError> {
    let bad = |e: String| IcebergError::State(format!("table {table}: reading row {pos} of {path}: {e}"));
    let builder = footers.builder(file_io, path, table).await?;
    let (mut group, mut first) = (None, 0i64);
    for (i, g) in builder.metadata().row_groups().iter().enumerate() {
        if pos < first + g.num_rows() {
            group = Some(i);
            break;
        }
        first += g.num_rows();
    }
    let group = group.ok_or_else(|| bad("the file has fewer rows".into()))?;
    let mask = projection(&builder, names).map_err(bad)?;
    let selection = RowSelection::from(vec![RowSelector::skip((pos - first) as usize), RowSelector::select(1)]);
    let mut stream = builder
        .with_row_groups(vec![group])
        .with_projection(mask)
        .with_row_selection(selection)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    match stream.next().await {
        Some(batch) => in_order(batch.map_err(|e| bad(e.to_string()))?, names).map_err(bad),
        None => Err(bad("no such row".into())),
    }
}

/// The columns of `batch` in the order of `names`: a projection reads them in the file's
/// order, and a key declared `(b, a)` must not come back as `(a, b)`.
fn in_order(batch: RecordBatch, names: &[&str]) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    let order = names
        .iter()
        .map(|n| schema.index_of(n).map_err(|_| format!("no column {n}")))
        .collect::<Result<Vec<_>, _>>()?;
    batch.project(&order).map_err(|e| e.to_string())
}

/// The top-level columns `names` of the file `builder` reads.
fn projection<T>(builder: &ArrowReaderBuilder<T>, names: &[&str]) -> Result<ProjectionMask, String> {
    let roots: Vec<usize> = names
        .iter()
        .map(|n| builder.schema().index_of(n).map_err(|_| format!("no column {n}")))
        .collect::<Result<_, _>>()?;
    Ok(ProjectionMask::roots(builder.parquet_schema(), roots))
}

/// The (data file, position) pairs of a position-delete file.
pub async fn read_deletes(file_io: &FileIO, path: &str, table: &str) -> Result<Vec<(String, i64)>, IcebergError> {
    let mut out = Vec::new();
    for batch in read_columns(file_io, path, &["file_path", "pos"], table).await? {
        let bad = || IcebergError::State(format!("table {table}: {path} is not a position-delete file"));
        let paths = batch.column(0).as_any().downcast_ref::<StringArray>().ok_or_else(bad)?;
        let positions = batch.column(1).as_any().downcast_ref::<Int64Array>().ok_or_else(bad)?;
        for i in 0..batch.num_rows() {
            out.push((paths.value(i).to_string(), positions.value(i)));
        }
    }
    Ok(out)
}

/// What a snapshot holds: its data files (path, bytes), the positions its position deletes
/// remove from each, and the delete files themselves.
#[derive(Default)]
pub struct Live {
    pub data: Vec<(String, u64)>,
    pub deleted: HashMap<String, HashSet<i64>>,
    pub delete_files: Vec<String>,
}

pub async fn live_files(file_io: &FileIO, snapshot: &Snapshot, table: &str) -> Result<Live, IcebergError> {
    let mut live = Live::default();
    for manifest in manifests(file_io, snapshot, table).await? {
        let manifest = load_manifest(file_io, &manifest, table).await?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            if is_deletes(file) {
                for (path, pos) in read_deletes(file_io, file.file_path(), table).await? {
                    live.deleted.entry(path).or_default().insert(pos);
                }
                live.delete_files.push(file.file_path().to_string());
            } else {
                live.data.push((file.file_path().to_string(), file.file_size_in_bytes()));
            }
        }
    }
    Ok(live)
}

/// Every file a snapshot refers to: its manifest list, manifests, data and delete files.
pub async fn referenced(
    file_io: &FileIO,
    snapshot: &Snapshot,
    table: &str,
    into: &mut HashSet<String>,
) -> Result<(), IcebergError> {
    into.insert(snapshot.manifest_list().to_string());
    for manifest in manifests(file_io, snapshot, table).await? {
        if !into.insert(manifest.manifest_path.clone()) {
            continue;
        }
        let manifest = load_manifest(file_io, &manifest, table).await?;
        for entry in manifest.entries() {
            into.insert(entry.data_file().file_path().to_string());
        }
    }
    Ok(())
}

/// The rows of the data file at `path` (every column), batch by batch.
pub async fn batches(
    file_io: &FileIO,
    path: &str,
    table: &str,
) -> Result<BoxStream<'static, Result<RecordBatch, IcebergError>>, IcebergError> {
    let stream = parquet(file_io, path, table)
        .await?
        .with_batch_size(ROW_GROUP_ROWS)
        .build()
        .map_err(|e| IcebergError::State(format!("table {table}: reading {path}: {e}")))?;
    let (table, path) = (table.to_string(), path.to_string());
    Ok(stream.map(move |b| b.map_err(|e| IcebergError::State(format!("table {table}: reading {path}: {e}")))).boxed())
}

/// A batch read from a file written under an older schema, in the table's current columns:
/// a column added since is NULL, a widened one is cast.
pub fn conform(batch: &RecordBatch, arrow: &Arc<arrow_schema::Schema>) -> Result<RecordBatch, String> {
    let columns = arrow
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => arrow_cast::cast(column, field.data_type()).map_err(|e| e.to_string()),
            None => Ok(arrow_array::new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(arrow.clone(), columns).map_err(|e| e.to_string())
}

/// Whether a manifest entry's file holds rows or deletes.
pub fn is_deletes(file: &DataFile) -> bool {
    file.content_type() != DataContentType::Data
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn columns_come_back_in_the_order_asked() {
        let path = std::env::temp_dir().join(format!("zetl-order-{}.parquet", std::process::id()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![1, 2])), Arc::new(StringArray::from(vec!["x", "y"]))],
        )
        .expect("a batch");
        let file = std::fs::File::create(&path).expect("create");
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let file_io = FileIO::new_with_fs();
        let mut footers = Footers::default();
        let at = path.to_str().expect("utf-8");
        let row = rt.block_on(read_row(&file_io, &mut footers, at, 1, &["b", "a"], "t")).expect("read");
        assert_eq!(row.schema().field(0).name(), "b");
        assert_eq!(row.column(0).as_any().downcast_ref::<StringArray>().map(|s| s.value(0)), Some("y"));
        assert_eq!(row.column(1).as_any().downcast_ref::<Int32Array>().map(|s| s.value(0)), Some(2));
        // Again, from the footer kept: the other row.
        assert_eq!(footers.0.len(), 1);
        let row = rt.block_on(read_row(&file_io, &mut footers, at, 0, &["a"], "t")).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(row.column(0).as_any().downcast_ref::<Int32Array>().map(|s| s.value(0)), Some(1));
    }
}
