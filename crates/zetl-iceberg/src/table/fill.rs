//! A column added at the source with a value for the rows that existed (`ADD COLUMN … DEFAULT
//! 7`): Iceberg v2 has no initial default, so the rows are written again with the value,
//! inside the open transaction, read back at the Arrow level (rows in committed data files,
//! in files this transaction wrote, and in the buffer); the key index follows them. Readers
//! see the column filled from the commit on, as they see any other change.
//!   - mirror mode: every live row is rewritten and position-deleted where it was;
//!   - changelog mode: the log starts again from the table's current state, as a resync would
//!     log it: a `truncate` row, then each current row as a `copy` row with the value (the
//!     history before stays as it was, without the column).

use super::changelog::{When, LOG_COLUMNS};
use super::{LakeTable, Place, Slot};
use crate::error::IcebergError;
use crate::{files, key, types};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow_schema::DataType;
use futures_util::StreamExt;
use iceberg::io::FileIO;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use zetl_core::{Row, Value};

/// Which rows of a data file are rewritten: all but `Except`, or only `Only`.
enum Pick {
    Except(HashSet<i64>),
    Only(HashSet<i64>),
}

impl Pick {
    fn wants(&self, pos: i64) -> bool {
        match self {
            Pick::Except(gone) => !gone.contains(&pos),
            Pick::Only(chosen) => chosen.contains(&pos),
        }
    }
}

impl LakeTable {
    /// Sets column `column` of every current row to `value` (see the module comment).
    pub async fn fill_column(&mut self, file_io: &FileIO, column: usize, value: &Value) -> Result<(), IcebergError> {
        if self.log.is_some() {
            return self.relog_with(file_io, column, value).await;
        }
        // Every data file complete and readable, the buffer's rows among them.
        self.flush_buffer(file_io, u64::MAX).await?;
        self.close_file().await?;
        let name = self.name();
        let mut gone: HashMap<String, HashSet<i64>> = match self.head() {
            Some(snapshot) if !self.truncated => files::live_files(file_io, snapshot, &name).await?.deleted,
            _ => HashMap::new(),
        };
        for (number, pos) in &self.deletes {
            if let Some(path) = self.files.get(*number as usize) {
                gone.entry(path.clone()).or_default().insert(*pos);
            }
        }
        let picks: Vec<(u32, Pick)> = (0..self.files.len() as u32)
            .map(|n| (n, Pick::Except(gone.remove(&self.files[n as usize]).unwrap_or_default())))
            .collect();
        self.rewrite(file_io, column, value, picks, |_, _| Ok(Vec::new()), true).await
    }

    /// Changelog mode: a `truncate` row, then every current row again as a `copy` row with
    /// `column` set to `value`.
    async fn relog_with(&mut self, file_io: &FileIO, column: usize, value: &Value) -> Result<(), IcebergError> {
        // The file being written becomes readable; buffered rows stay where they are (an
        // open source transaction's wait for its commit) and are read from the buffer.
        self.close_file().await?;
        let (in_files, buffered) =
            if self.key_cols.is_empty() { self.keyless_state(file_io).await? } else { self.keyed_state() };
        self.log_truncate(file_io, When::Copy).await?;
        let picks = in_files.into_iter().map(|(n, chosen)| (n, Pick::Only(chosen))).collect();
        let width = self.source.columns.len();
        self.rewrite(file_io, column, value, picks, |table, rows| table.next_seqs(rows), false).await?;
        for row in buffered {
            let mut row: Row = row.into_iter().take(width).collect();
            row[column] = value.clone();
            self.log_row(file_io, row, "copy", When::Copy).await?;
        }
        Ok(())
    }

    /// Each key's current row: where it is in the files, or its buffered values.
    fn keyed_state(&self) -> (HashMap<u32, HashSet<i64>>, Vec<Row>) {
        let (mut in_files, mut buffered): (HashMap<u32, HashSet<i64>>, Vec<Row>) = Default::default();
        for slot in self.index.values() {
            match slot.place() {
                Place::File(file, pos) => {
                    in_files.entry(file).or_default().insert(pos);
                }
                Place::Buffer(i) => buffered.extend(self.buffer.get(i).cloned().flatten().map(|(_, row)| row)),
            }
        }
        (in_files, buffered)
    }

    /// A keyless (insert-only) table's current rows: its `insert` and `copy` rows logged after
    /// the last `truncate`, in the files and the buffer.
    async fn keyless_state(&self, file_io: &FileIO) -> Result<(HashMap<u32, HashSet<i64>>, Vec<Row>), IcebergError> {
        let name = self.name();
        let (op_at, seq_at) = (self.source.columns.len(), self.source.columns.len() + 1);
        let names = [LOG_COLUMNS[0].0, LOG_COLUMNS[1].0];
        let mut logged: Vec<(u32, i64, i64, bool)> = Vec::new();
        for (number, path) in self.files.iter().enumerate() {
            let mut pos = 0i64;
            for batch in files::read_columns(file_io, path, &names, &name).await? {
                let (Some(ops), Some(seqs)) =
                    (batch.column(0).as_string_opt::<i32>(), batch.column(1).as_primitive_opt::<Int64Type>())
                else {
                    return Err(IcebergError::State(format!("table {name}: {path} lacks the changelog columns")));
                };
                for row in 0..batch.num_rows() {
                    let kept = matches!(ops.value(row), "insert" | "copy");
                    let seq = if ops.value(row) == "truncate" || kept { seqs.value(row) } else { continue };
                    logged.push((number as u32, pos + row as i64, seq, kept));
                }
                pos += batch.num_rows() as i64;
            }
        }
        let in_buffer: Vec<(&Row, i64, bool)> = self
            .buffer
            .iter()
            .flatten()
            .filter_map(|(_, row)| {
                let (Some(Value::Text(op)), Some(Value::Int(seq))) = (row.get(op_at), row.get(seq_at)) else {
                    return None;
                };
                let kept = matches!(op.as_str(), "insert" | "copy");
                (kept || op == "truncate").then_some((row, *seq, kept))
            })
            .collect();
        let truncated = logged
            .iter()
            .filter(|r| !r.3)
            .map(|r| r.2)
            .chain(in_buffer.iter().filter(|r| !r.2).map(|r| r.1))
            .max()
            .unwrap_or(-1);
        let mut in_files: HashMap<u32, HashSet<i64>> = HashMap::new();
        for (number, pos, _, _) in logged.into_iter().filter(|r| r.3 && r.2 > truncated) {
            in_files.entry(number).or_default().insert(pos);
        }
        let buffered = in_buffer.into_iter().filter(|r| r.2 && r.1 > truncated).map(|r| r.0.clone()).collect();
        Ok((in_files, buffered))
    }

    /// The changelog columns of `rows` rewritten rows: `copy`, new sequence numbers, no
    /// position or commit time (as copied rows have).
    fn next_seqs(&mut self, rows: usize) -> Result<Vec<(&'static str, ArrayRef)>, String> {
        let log = self.log();
        let first = log.next_seq;
        log.next_seq += rows as i64;
        let mut columns = vec![
            (LOG_COLUMNS[0].0, types::constant(&DataType::Utf8, &Value::Text("copy".into()), rows)?),
            (LOG_COLUMNS[1].0, Arc::new(Int64Array::from_iter_values(first..first + rows as i64)) as ArrayRef),
        ];
        for (name, _) in &LOG_COLUMNS[2..] {
            let ty = self.arrow.field_with_name(name).map_err(|e| e.to_string())?.data_type();
            columns.push((name, new_null_array(ty, rows)));
        }
        Ok(columns)
    }

    /// Writes the rows `picks` chooses of each data file again, with `column` set to `value`
    /// and the columns `more` gives replaced; `remove`: the old rows are position-deleted.
    async fn rewrite(
        &mut self,
        file_io: &FileIO,
        column: usize,
        value: &Value,
        picks: Vec<(u32, Pick)>,
        mut more: impl FnMut(&mut Self, usize) -> Result<Vec<(&'static str, ArrayRef)>, String>,
        remove: bool,
    ) -> Result<(), IcebergError> {
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
        for (number, pick) in picks {
            let path = self.files[number as usize].clone();
            let mut batches = files::batches(file_io, &path, &name).await?;
            let mut first = 0i64;
            while let Some(batch) = batches.next().await {
                let batch = files::conform(&batch?, &self.arrow).map_err(failed)?;
                let rows = batch.num_rows() as i64;
                let live: Vec<i64> = (first..first + rows).filter(|&p| pick.wants(p)).collect();
                let keep: BooleanArray = (first..first + rows).map(|p| Some(pick.wants(p))).collect();
                first += rows;
                if live.is_empty() {
                    continue;
                }
                let kept =
                    arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| failed(e.to_string()))?;
                let mut columns = kept.columns().to_vec();
                columns[at] = types::constant(self.arrow.field(at).data_type(), value, kept.num_rows())
                    .map_err(|problem| IcebergError::Value { table: name.clone(), column: target.clone(), problem })?;
                for (field, array) in more(self, kept.num_rows()).map_err(failed)? {
                    columns[self.arrow.index_of(field).map_err(|e| failed(e.to_string()))?] = array;
                }
                let filled = RecordBatch::try_new(self.arrow.clone(), columns).map_err(|e| failed(e.to_string()))?;
                if remove {
                    self.deletes.extend(live.iter().map(|&pos| (number, pos)));
                }
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
