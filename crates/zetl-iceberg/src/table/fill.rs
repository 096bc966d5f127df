//! A column added at the source with a value for the rows that existed (`ADD COLUMN … DEFAULT
//! 7`): Iceberg v2 has no initial default, so every live row of a mirror table is written again
//! with the value, inside the open transaction — rows in data files (committed, or written by
//! this transaction, the buffer's included) are read back, written into new data files with
//! the column set, and position-deleted where they were; the key index follows them. Readers
//! see the column filled from the commit on, as they see any other change.

use super::{LakeTable, Slot};
use crate::error::IcebergError;
use crate::{files, key, types};
use arrow_array::{Array, BooleanArray, RecordBatch};
use futures_util::StreamExt;
use iceberg::io::FileIO;
use std::collections::{HashMap, HashSet};
use zetl_core::Value;

impl LakeTable {
    /// Sets column `column` of every live row to `value`.
    pub async fn fill_column(&mut self, file_io: &FileIO, column: usize, value: &Value) -> Result<(), IcebergError> {
        let name = self.name();
        let failed = |e: String| IcebergError::State(format!("table {name}: filling an added column: {e}"));
        let target = self.source.columns[column].name.clone();
        let at = self.arrow.index_of(&target).map_err(|e| failed(e.to_string()))?;
        let key_at: Vec<usize> = self
            .key_cols
            .iter()
            .map(|&k| self.arrow.index_of(&self.source.columns[k].name))
            .collect::<Result<_, _>>()
            .map_err(|e| failed(e.to_string()))?;
        // Every data file complete and readable, the buffer's rows among them.
        self.flush_buffer(file_io, u64::MAX).await?;
        self.close_file().await?;
        let mut gone: HashMap<String, HashSet<i64>> = match self.metadata.current_snapshot() {
            Some(snapshot) if !self.truncated => files::live_files(file_io, snapshot, &name).await?.deleted,
            _ => HashMap::new(),
        };
        for (number, pos) in &self.deletes {
            if let Some(path) = self.files.get(*number as usize) {
                gone.entry(path.clone()).or_default().insert(*pos);
            }
        }
        for number in 0..self.files.len() as u32 {
            let path = self.files[number as usize].clone();
            let gone = gone.remove(&path).unwrap_or_default();
            let mut batches = files::batches(file_io, &path, &name).await?;
            let mut first = 0i64;
            while let Some(batch) = batches.next().await {
                let batch = files::conform(&batch?, &self.arrow).map_err(failed)?;
                let rows = batch.num_rows() as i64;
                let live: Vec<i64> = (first..first + rows).filter(|p| !gone.contains(p)).collect();
                let keep: BooleanArray = (first..first + rows).map(|p| Some(!gone.contains(&p))).collect();
                first += rows;
                if live.is_empty() {
                    continue;
                }
                let kept =
                    arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| failed(e.to_string()))?;
                let mut columns = kept.columns().to_vec();
                columns[at] = types::constant(self.arrow.field(at).data_type(), value, kept.num_rows())
                    .map_err(|problem| IcebergError::Value { table: name.clone(), column: target.clone(), problem })?;
                let filled = RecordBatch::try_new(self.arrow.clone(), columns).map_err(|e| failed(e.to_string()))?;
                self.deletes.extend(live.iter().map(|&pos| (number, pos)));
                let (file, start) = self.write_batch(file_io, &filled).await?;
                if !key_at.is_empty() {
                    let keys: Vec<&dyn Array> = key_at.iter().map(|&i| filled.column(i).as_ref()).collect();
                    for row in 0..filled.num_rows() {
                        let k = key::from_arrays(&keys, row).map_err(|p| self.value_error(p))?;
                        self.index.insert(k.as_slice().into(), Slot::file(file, start + row as i64));
                    }
                }
                self.roll(self.file_size).await?;
            }
        }
        Ok(())
    }
}
