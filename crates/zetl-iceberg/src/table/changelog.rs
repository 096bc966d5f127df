//! Changelog mode: every change is appended as a row of its own, with what happened
//! (`_zetl_op`), its order (`_zetl_seq`) and where and when its source transaction committed
//! (`_zetl_position`, `_zetl_commit_time`). Nothing is ever deleted from the table; the key
//! index points at each key's latest version, for the values an update leaves unsent.

use super::{LakeTable, Place, Slot};
use crate::error::IcebergError;
use crate::files;
use crate::key;
use crate::key::IndexKey;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use iceberg::io::FileIO;
use std::collections::HashMap;
use zetl_core::batch::{LoggedOp, SourceCommit, TableBatch};
use zetl_core::{ChangeKind, Column, ColumnType, Row, RowIdentity, TableSchema, Value};

const OP: &str = "_zetl_op";
const SEQ: &str = "_zetl_seq";

/// The columns a changelog row has after the source's, in this order.
pub(super) const LOG_COLUMNS: [(&str, ColumnType); 4] = [
    (OP, ColumnType::Text),
    (SEQ, ColumnType::Int64),
    ("_zetl_position", ColumnType::Text),
    ("_zetl_commit_time", ColumnType::TimestampTz),
];

/// The columns of the lake's rows: the source's, then in changelog mode the log columns, with
/// no identifier fields (a key appears once per change).
pub fn layout(source: &TableSchema, changelog: bool) -> Result<TableSchema, IcebergError> {
    if !changelog {
        return Ok(source.clone());
    }
    if let Some(taken) = source.reserved_column() {
        return Err(IcebergError::Unsupported(format!(
            "table {}, column {}: names starting with _zetl_ are zetl's own in a changelog table; rename the column",
            source.id, taken.name
        )));
    }
    let mut layout = source.clone();
    layout.identity = RowIdentity::None;
    layout.columns.extend(LOG_COLUMNS.iter().map(|(name, ty)| Column {
        name: (*name).to_string(),
        ty: ty.clone(),
        source_type: "zetl".into(),
        nullable: true,
    }));
    Ok(layout)
}

/// What a changelog table's writer keeps between changes.
#[derive(Default)]
pub struct LogState {
    pub(super) next_seq: i64,
    /// Buffered rows of the source transaction still open: its commit comes in a later batch.
    unstamped: Vec<usize>,
}

/// When the change of a log row committed at the source.
#[derive(Clone, Copy)]
pub enum When<'a> {
    Committed(&'a SourceCommit),
    /// In the source transaction still open: stamped by [`LakeTable::stamp`].
    Open,
    /// A copied row (or the empty table a copy starts from): no source transaction.
    Copy,
}

impl LakeTable {
    pub(super) fn log(&mut self) -> &mut LogState {
        self.log.get_or_insert_with(LogState::default)
    }

    /// Buffered rows wait for the commit of their source transaction.
    pub fn has_unstamped(&self) -> bool {
        self.log.as_ref().is_some_and(|l| !l.unstamped.is_empty())
    }

    /// The open source transaction committed: its rows take its position and commit time.
    pub fn stamp(&mut self, commit: &SourceCommit) {
        let at = self.source.columns.len() + 2;
        let pending = std::mem::take(&mut self.log().unstamped);
        for i in pending {
            if let Some(Some((_, row))) = self.buffer.get_mut(i) {
                row[at] = Value::Text(commit.position.0.clone());
                row[at + 1] = commit_time(commit);
            }
        }
    }

    /// Appends one table's changes of a changelog batch, in source order.
    pub async fn apply_log(
        &mut self,
        file_io: &FileIO,
        changes: &TableBatch,
        commits: &[SourceCommit],
    ) -> Result<(), IcebergError> {
        for entry in &changes.log {
            let when = commits.get(entry.txn).map_or(When::Open, When::Committed);
            match &entry.what {
                LoggedOp::Truncate => self.log_truncate(file_io, when).await?,
                LoggedOp::Copied(row) => self.log_row(file_io, row.clone(), "copy", When::Copy).await?,
                LoggedOp::Change(ChangeKind::Insert { row }) => {
                    self.log_row(file_io, row.clone(), "insert", when).await?
                }
                LoggedOp::Change(ChangeKind::Update { old, row }) => {
                    self.log_update(file_io, old.as_ref(), row.clone(), when, changes.filling).await?
                }
                LoggedOp::Change(ChangeKind::Delete { old }) => self.log_gone(file_io, old, "delete", when).await?,
                LoggedOp::Change(ChangeKind::Expire { old }) => self.log_gone(file_io, old, "expire", when).await?,
            }
        }
        Ok(())
    }

    async fn log_update(
        &mut self,
        file_io: &FileIO,
        old: Option<&Row>,
        mut row: Row,
        when: When<'_>,
        filling: bool,
    ) -> Result<(), IcebergError> {
        let unchanged: Vec<usize> = (0..row.len()).filter(|&i| matches!(row[i], Value::Unchanged)).collect();
        if self.key_cols.is_empty() {
            // The whole old row (replica identity full) holds the unsent values.
            if let Some(old) = old {
                super::fill_from(&mut row, &unchanged, old);
            }
            return self.log_row(file_io, row, "update", when).await;
        }
        let moved = match old {
            Some(old) if self.key_of(old)? != self.key_of(&row)? => Some(old),
            _ => None,
        };
        if !unchanged.is_empty() {
            // Unsent values are the key's previous version's (the old key's, for a key change).
            let previous = self.key_of(moved.unwrap_or(&row))?;
            let prev = match self.index.get(previous.as_slice()).copied().map(Slot::place) {
                Some(Place::Buffer(i)) => self.buffer.get(i).cloned().flatten().map(|(_, r)| r),
                Some(Place::File(file, pos)) => Some(self.read_back(file_io, file, pos, &unchanged).await?),
                None => None,
            };
            match prev {
                Some(prev) => super::fill_from(&mut row, &unchanged, &prev),
                // A fill's update for a key its copy has not reached: the copy brings the row.
                None if filling => return Ok(()),
                None => return Err(self.no_row_for_unsent(&row)),
            }
        }
        if let Some(old) = moved {
            self.log_gone(file_io, old, "delete", when).await?;
        }
        self.log_row(file_io, row, "update", when).await
    }

    /// A row that is gone (deleted, expired, or moved to another key): its image as the
    /// source sent it (the key, or the whole row where the source sends old rows whole).
    async fn log_gone(&mut self, file_io: &FileIO, old: &Row, op: &str, when: When<'_>) -> Result<(), IcebergError> {
        if !self.key_cols.is_empty() {
            let k = self.key_of(old)?;
            self.index.remove(k.as_slice());
        }
        let image = old.iter().map(|v| if matches!(v, Value::Unchanged) { Value::Null } else { v.clone() }).collect();
        let row = self.log_columns(image, op, when);
        self.push_log(file_io, None, row, when).await
    }

    pub(super) async fn log_truncate(&mut self, file_io: &FileIO, when: When<'_>) -> Result<(), IcebergError> {
        self.index.clear();
        let row = self.log_columns(vec![Value::Null; self.source.columns.len()], "truncate", when);
        self.push_log(file_io, None, row, when).await
    }

    /// A copy starts: rows logged before it no longer count (see the current-state query).
    pub async fn log_copy_start(&mut self, file_io: &FileIO) -> Result<(), IcebergError> {
        self.log_truncate(file_io, When::Copy).await
    }

    /// An inserted, updated or copied row: the key's latest version from now on.
    pub async fn log_row(&mut self, file_io: &FileIO, row: Row, op: &str, when: When<'_>) -> Result<(), IcebergError> {
        let k = if self.key_cols.is_empty() { None } else { Some(self.key_of(&row)?) };
        let row = self.log_columns(row, op, when);
        self.push_log(file_io, k, row, when).await
    }

    async fn push_log(
        &mut self,
        file_io: &FileIO,
        k: Option<Vec<u8>>,
        row: Row,
        when: When<'_>,
    ) -> Result<(), IcebergError> {
        // A changelog sets nothing aside (see the registry): a row it cannot store stops the run.
        if !self.admit(&row, &[], "log")? {
            return Ok(());
        }
        if matches!(when, When::Open) {
            let at = self.buffer.len();
            self.log().unstamped.push(at);
        }
        self.append(file_io, k, row).await
    }

    fn log_columns(&mut self, mut row: Row, op: &str, when: When<'_>) -> Row {
        let log = self.log();
        let seq = log.next_seq;
        log.next_seq += 1;
        let (position, time) = match when {
            When::Committed(c) => (Value::Text(c.position.0.clone()), commit_time(c)),
            When::Open | When::Copy => (Value::Null, Value::Null),
        };
        row.extend([Value::Text(op.to_string()), Value::Int(seq), position, time]);
        row
    }

    /// The index of a changelog table: each key's latest version, unless it is a delete or
    /// older than the last truncate; and the next sequence number.
    pub(super) async fn rebuild_log_index(&mut self, file_io: &FileIO, data: Vec<String>) -> Result<(), IcebergError> {
        let name = self.name();
        let mut names: Vec<&str> = self.key_cols.iter().map(|&i| self.source.columns[i].name.as_str()).collect();
        let keys = names.len();
        names.extend([SEQ, OP]);
        let mut latest: HashMap<IndexKey, (i64, Slot, bool)> = HashMap::new();
        let (mut max_seq, mut truncated_at) = (-1i64, -1i64);
        for path in data {
            let number = self.files.len() as u32;
            self.files.push(path.clone());
            let mut pos = 0i64;
            for batch in files::read_columns(file_io, &path, &names, &name).await? {
                let columns: Vec<&dyn Array> = batch.columns().iter().map(|c| c.as_ref()).collect();
                let seqs = columns[keys].as_primitive_opt::<Int64Type>();
                let ops = columns[keys + 1].as_string_opt::<i32>();
                let (Some(seqs), Some(ops)) = (seqs, ops) else {
                    return Err(IcebergError::State(format!("table {name}: {path} lacks the changelog columns")));
                };
                for row in 0..batch.num_rows() {
                    let (seq, op) = (seqs.value(row), ops.value(row));
                    max_seq = max_seq.max(seq);
                    if op == "truncate" {
                        truncated_at = truncated_at.max(seq);
                    } else if keys > 0 {
                        let k = key::from_arrays(&columns[..keys], row).map_err(|p| self.value_error(p))?;
                        let live = !matches!(op, "delete" | "expire");
                        let slot = self.slot_in(number, pos)?;
                        let entry = latest.entry(k.as_slice().into()).or_insert((-1, slot, false));
                        if seq > entry.0 {
                            *entry = (seq, slot, live);
                        }
                    }
                    pos += 1;
                }
            }
        }
        self.index = latest
            .into_iter()
            .filter(|(_, (seq, _, live))| *live && *seq > truncated_at)
            .map(|(k, (_, slot, _))| (k, slot))
            .collect();
        self.log().next_seq = max_seq + 1;
        Ok(())
    }
}

fn commit_time(commit: &SourceCommit) -> Value {
    commit
        .commit_time_us
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map_or(Value::Null, |t| Value::TimestampTz(t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::{Position, TableId};

    #[test]
    fn a_changelog_layout_adds_the_log_columns_and_no_key() {
        let col =
            |n: &str| Column { name: n.into(), ty: ColumnType::Int64, source_type: "int8".into(), nullable: false };
        let source = TableSchema {
            id: TableId::new("s", "t"),
            columns: vec![col("id"), col("v")],
            identity: RowIdentity::Key(vec![0]),
        };
        let log = layout(&source, true).expect("a layout");
        let names: Vec<&str> = log.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "v", "_zetl_op", "_zetl_seq", "_zetl_position", "_zetl_commit_time"]);
        assert_eq!(log.identity, RowIdentity::None);
        assert_eq!(layout(&source, false).expect("a layout"), source);
        let mut taken = source.clone();
        taken.columns.push(col("_zetl_op"));
        assert!(layout(&taken, true).is_err());
    }

    #[test]
    fn commit_times_are_utc_micros() {
        let c = SourceCommit { position: Position("0/1".into()), commit_time_us: Some(1_700_000_000_123_456) };
        assert_eq!(commit_time(&c), Value::TimestampTz("2023-11-14 22:13:20.123456+00".into()));
        assert_eq!(commit_time(&SourceCommit { commit_time_us: None, ..c }), Value::Null);
    }
}
