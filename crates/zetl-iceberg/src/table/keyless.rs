//! Tables without a key in mirror mode. A removed row (a delete, or the old image of an
//! update, which replica identity full sends whole) takes one identical row of the table, as
//! at the other targets: first from the open transaction's buffered rows, else by reading the
//! table's live files. That read is a scan of the table per batch that removes rows, the same
//! cost as the other targets' join of the removed rows with the table.

use super::{key_types, LakeTable};
use crate::error::IcebergError;
use crate::{files, key};
use arrow_array::Array;
use futures_util::StreamExt;
use iceberg::io::FileIO;
use std::collections::{HashMap, HashSet};
use zetl_core::batch::net_unkeyed;
use zetl_core::{ChangeKind, Row, Value};

impl LakeTable {
    /// Applies a keyless table's changes, in source order, as their net removals and additions.
    pub(super) async fn apply_keyless(&mut self, file_io: &FileIO, changes: &[ChangeKind]) -> Result<(), IcebergError> {
        let (removed, added) = net_unkeyed(changes);
        if !removed.is_empty() {
            self.remove_identical(file_io, &removed).await?;
        }
        for row in added {
            if self.admit(row, &[], "insert")? {
                self.append(file_io, None, row.clone()).await?;
            }
        }
        Ok(())
    }

    /// Removes one row identical to each of `rows`.
    async fn remove_identical(&mut self, file_io: &FileIO, rows: &[&Row]) -> Result<(), IcebergError> {
        let all: Vec<usize> = (0..self.source.columns.len()).collect();
        let types = key_types(&self.source, &all, &self.arrow)?;
        let whole = |row: &Row| {
            let values: Vec<&Value> = all.iter().map(|&i| row.get(i).unwrap_or(&Value::Null)).collect();
            key::from_values(&types, &values)
        };
        let mut wanted = Wanted::default();
        for row in rows {
            *wanted.counts.entry(whole(row).map_err(|p| self.value_error(p))?).or_default() += 1;
        }
        wanted.missing = rows.len();
        let name = self.name();
        for entry in self.buffer.iter_mut() {
            let Some((_, row)) = entry else { continue };
            let k = whole(row).map_err(|problem| IcebergError::Value {
                table: name.clone(),
                column: "(row)".into(),
                problem,
            })?;
            if wanted.take(&k) {
                *entry = None;
            }
        }
        if wanted.missing > 0 {
            // The file still being written is read like the others.
            self.close_file().await?;
            let committed = match self.head() {
                Some(snapshot) => files::live_files(file_io, snapshot, &name).await?.deleted,
                None => HashMap::new(),
            };
            let mut ours: HashSet<(u32, i64)> = self.deletes.iter().copied().collect();
            let columns: Vec<usize> = self
                .source
                .columns
                .iter()
                .filter_map(|c| self.arrow.fields().iter().position(|f| f.name() == &c.name))
                .collect();
            for number in 0..self.files.len() as u32 {
                let path = self.files[number as usize].clone();
                let gone = committed.get(&path);
                let mut pos = 0i64;
                let mut batches = files::batches(file_io, &path, &name).await?;
                while let Some(batch) = batches.next().await {
                    let batch = files::conform(&batch?, &self.arrow)
                        .map_err(|e| IcebergError::State(format!("table {name}: reading {path}: {e}")))?;
                    let arrays: Vec<&dyn Array> = columns.iter().map(|&i| batch.column(i).as_ref()).collect();
                    for row in 0..batch.num_rows() {
                        let at = (number, pos);
                        pos += 1;
                        if gone.is_some_and(|g| g.contains(&at.1)) || ours.contains(&at) {
                            continue;
                        }
                        if wanted.take(&key::from_arrays(&arrays, row).map_err(|p| self.value_error(p))?) {
                            ours.insert(at);
                            self.deletes.push(at);
                        }
                    }
                    if wanted.missing == 0 {
                        return Ok(());
                    }
                }
            }
        }
        if wanted.missing > 0 {
            tracing::warn!(table = %self.source.id, missing = wanted.missing, "rows to delete not found at the target");
        }
        Ok(())
    }
}

/// The removed rows still to find, by content.
#[derive(Default)]
struct Wanted {
    counts: HashMap<Vec<u8>, usize>,
    missing: usize,
}

impl Wanted {
    /// Whether a row with content `k` is still to be removed (then counted as found).
    fn take(&mut self, k: &[u8]) -> bool {
        match self.counts.get_mut(k).filter(|n| **n > 0) {
            Some(n) => {
                *n -= 1;
                self.missing -= 1;
                true
            }
            None => false,
        }
    }
}
