//! The commit producer: turns a table's open transaction (data files added, position deletes,
//! a truncate, a schema change) into a new snapshot and metadata file. iceberg-rust commits
//! only appends; this writes the row-delta itself on its public manifest, manifest-list,
//! snapshot and metadata builders, so that it can give way to upstream's once that exists.
//! The catalog pointer is moved by the caller, for every table at once.

use crate::error::{IcebergError, TableContext};
use crate::files;
use crate::table::{Branch, LakeTable, FILL_BRANCH};
use iceberg::io::FileIO;
use iceberg::spec::{
    ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention, Summary,
    TableMetadata, TableMetadataBuilder, MAIN_BRANCH,
};
use iceberg::MetadataLocation;
use std::collections::HashMap;
use std::str::FromStr;

pub struct Committed {
    pub metadata: TableMetadata,
    pub location: String,
}

/// Writes the new snapshot and metadata of `table`, if its transaction changed anything;
/// `properties` go into the snapshot's summary (the integration and source position).
pub async fn produce(
    file_io: &FileIO,
    table: &mut LakeTable,
    properties: &HashMap<String, String>,
) -> Result<Option<Committed>, IcebergError> {
    table.flush_buffer(file_io, 0).await?;
    table.close_file().await?;
    let name = table.name();
    let changed_data = table.truncated || !table.written.is_empty() || !table.deletes.is_empty();
    let publish = table.branch == Branch::Publish;
    if !changed_data && !table.metadata_changed && !publish {
        return Ok(None);
    }
    let mut metadata = table.metadata.clone();
    if changed_data {
        let snapshot = snapshot(file_io, table, properties).await?;
        metadata = TableMetadataBuilder::new_from_metadata(metadata, Some(table.location.clone()))
            .set_branch_snapshot(snapshot, table.branch.name())
            .and_then(|b| b.build())
            .table(&name, || "adding the snapshot".into())?
            .metadata;
    }
    if publish {
        metadata = publish_fill(metadata, &table.location, &name)?;
    }
    let current = MetadataLocation::from_str(&table.location).table(&name, || format!("reading {}", table.location))?;
    let next = current.with_next_version().with_new_metadata(&metadata);
    metadata.write_to(file_io, &next).await.table(&name, || format!("writing {next}"))?;
    Ok(Some(Committed { metadata, location: next.to_string() }))
}

async fn snapshot(
    file_io: &FileIO,
    table: &LakeTable,
    properties: &HashMap<String, String>,
) -> Result<Snapshot, IcebergError> {
    let name = table.name();
    let metadata = &table.metadata;
    let snapshot_id = new_snapshot_id(metadata);
    let sequence = metadata.next_sequence_number();
    let parent = table.head().cloned();
    let base = format!("{}/metadata/{}", metadata.location(), uuid::Uuid::new_v4());
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().as_ref().clone();
    let mut manifests = match (&parent, table.truncated) {
        (Some(parent), false) => files::manifests(file_io, parent, &name).await?,
        _ => Vec::new(),
    };
    if !table.written.is_empty() {
        let path = format!("{base}-m0.avro");
        let output = file_io.new_output(&path).table(&name, || format!("creating {path}"))?;
        let mut writer =
            ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), spec.clone()).build_v2_data();
        for file in &table.written {
            writer.add_file(file.clone(), sequence).table(&name, || "listing a data file".into())?;
        }
        manifests.push(writer.write_manifest_file().await.table(&name, || format!("writing {path}"))?);
    }
    let deleted = table.deletes.len();
    if deleted > 0 {
        let path = format!("{}/data/{}-deletes.parquet", metadata.location(), uuid::Uuid::new_v4());
        let spec_id = metadata.default_partition_spec_id();
        let deletes = files::write_deletes(file_io, &path, &table.deletes, table.files(), spec_id, &name).await?;
        let path = format!("{base}-m1.avro");
        let output = file_io.new_output(&path).table(&name, || format!("creating {path}"))?;
        let mut writer = ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), spec).build_v2_deletes();
        writer.add_file(deletes, sequence).table(&name, || "listing the position deletes".into())?;
        manifests.push(writer.write_manifest_file().await.table(&name, || format!("writing {path}"))?);
    }
    let list_path = format!("{}/metadata/snap-{snapshot_id}-1-{}.avro", metadata.location(), uuid::Uuid::new_v4());
    let output = file_io.new_output(&list_path).table(&name, || format!("creating {list_path}"))?;
    let out = output.writer().await.table(&name, || format!("opening {list_path}"))?;
    let mut list = ManifestListWriter::v2(out, snapshot_id, parent.as_ref().map(|p| p.snapshot_id()), sequence);
    list.add_manifests(manifests.into_iter()).table(&name, || "listing the manifests".into())?;
    list.close().await.table(&name, || format!("writing {list_path}"))?;

    let operation = match (table.truncated || deleted > 0, table.written.is_empty()) {
        _ if table.rewrite => Operation::Replace,
        (false, _) => Operation::Append,
        (true, true) => Operation::Delete,
        (true, false) => Operation::Overwrite,
    };
    let mut summary = properties.clone();
    summary.insert("added-data-files".into(), table.written.len().to_string());
    summary.insert("added-records".into(), table.added_rows.to_string());
    summary.insert("added-position-deletes".into(), deleted.to_string());
    // The spec's optional totals: readers learn a table's size without its manifests, and
    // zetl sizes its key index at start. Left out after a parent without them.
    let total = |key: &str| match parent.as_ref() {
        _ if table.truncated || table.rewrite => Some(0),
        None => Some(0),
        Some(p) => p.summary().additional_properties.get(key).and_then(|v| v.parse::<u64>().ok()),
    };
    if let (Some(records), Some(deletes)) = (total("total-records"), total("total-position-deletes")) {
        summary.insert("total-records".into(), (records + table.added_rows).to_string());
        summary.insert("total-position-deletes".into(), (deletes + deleted as u64).to_string());
    }
    Ok(Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.map(|p| p.snapshot_id()))
        .with_sequence_number(sequence)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_schema_id(metadata.current_schema_id())
        .with_summary(Summary { operation, additional_properties: summary })
        .build())
}

/// The fill's branch becomes the table's `main` (readers see the whole copy and its changes
/// at once) and is removed.
fn publish_fill(metadata: TableMetadata, location: &str, name: &str) -> Result<TableMetadata, IcebergError> {
    let head = metadata.snapshot_for_ref(FILL_BRANCH).map(|s| s.snapshot_id()).ok_or_else(|| {
        IcebergError::State(format!("table {name}: the branch {FILL_BRANCH} of its completed copy is missing"))
    })?;
    let main = SnapshotReference::new(head, SnapshotRetention::branch(None, None, None));
    Ok(TableMetadataBuilder::new_from_metadata(metadata, Some(location.to_string()))
        .set_ref(MAIN_BRANCH, main)
        .map(|b| b.remove_ref(FILL_BRANCH))
        .and_then(|b| b.build())
        .table(name, || "making its completed copy the table".into())?
        .metadata)
}

/// A positive snapshot id no snapshot of the table has.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) >> 1) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
