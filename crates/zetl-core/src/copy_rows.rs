//! Copied rows travel in events of at most a number of rows and of bytes: large enough to
//! amortise the channel, small enough to bound memory also for wide rows (a 1 MB `bytea` per
//! row would make 4096 rows 4 GB). Every source's copy gathers them the same way.

use crate::channel::{Closed, EventSender};
use crate::columns::ColumnsBuilder;
use crate::event::{CopiedTable, SourceEvent};
use crate::model::{Row, TableId, TableSchema};

/// Rows per `CopyRows` event, at most.
pub const ROWS_PER_EVENT: usize = 4096;
/// Estimated bytes (`Value::weight`) per `CopyRows` event, at most (a single larger row travels
/// alone).
pub const BYTES_PER_EVENT: usize = 4 << 20;

pub struct CopyRowsBatcher {
    table: TableId,
    rows: Vec<Row>,
    bytes: usize,
    gathered: u64,
}

impl CopyRowsBatcher {
    pub fn new(table: TableId) -> Self {
        Self { table, rows: Vec::with_capacity(ROWS_PER_EVENT), bytes: 0, gathered: 0 }
    }

    /// Adds a row; a full event to send once [`ROWS_PER_EVENT`] rows or [`BYTES_PER_EVENT`]
    /// bytes are gathered.
    pub fn push(&mut self, row: Row) -> Option<SourceEvent> {
        self.bytes += row_weight(&row);
        self.rows.push(row);
        self.gathered += 1;
        (self.rows.len() == ROWS_PER_EVENT || self.bytes >= BYTES_PER_EVENT).then(|| self.take())
    }

    /// The rows not yet sent (if any), and how many rows were gathered in all.
    pub fn finish(mut self) -> (Option<SourceEvent>, u64) {
        let rest = (!self.rows.is_empty()).then(|| self.take());
        (rest, self.gathered)
    }

    fn take(&mut self) -> SourceEvent {
        self.bytes = 0;
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(ROWS_PER_EVENT));
        SourceEvent::CopyRows { table: self.table.clone(), rows, after: None }
    }
}

/// A copy's rows gathered as columns ([`crate::columns`]) into `CopyColumns` events, bounded
/// as `CopyRows` events are.
pub struct CopyColumnsBatcher {
    table: TableId,
    columns: ColumnsBuilder,
    gathered: u64,
}

impl CopyColumnsBatcher {
    pub fn new(schema: &TableSchema) -> Self {
        Self { table: schema.id.clone(), columns: ColumnsBuilder::for_table(schema, ROWS_PER_EVENT), gathered: 0 }
    }

    /// The columns to write the next row's values into.
    pub fn columns(&mut self) -> &mut ColumnsBuilder {
        &mut self.columns
    }

    /// The row written is complete: `Err` if a column was left out or written twice (a
    /// decoder's mistake), else a full event to send once [`ROWS_PER_EVENT`] rows or
    /// [`BYTES_PER_EVENT`] bytes are gathered.
    pub fn end_row(&mut self) -> Result<Option<SourceEvent>, String> {
        if !self.columns.end_row() {
            return Err(format!("a copied row of {} does not fill its columns", self.table));
        }
        self.gathered += 1;
        let full = self.columns.rows() == ROWS_PER_EVENT || self.columns.bytes() >= BYTES_PER_EVENT;
        full.then(|| self.take()).transpose()
    }

    /// The rows not yet sent (if any), and how many rows were gathered in all.
    pub fn finish(mut self) -> Result<(Option<SourceEvent>, u64), String> {
        let rest = (self.columns.rows() > 0).then(|| self.take()).transpose()?;
        Ok((rest, self.gathered))
    }

    fn take(&mut self) -> Result<SourceEvent, String> {
        let batch = self.columns.finish().map_err(|e| format!("the copied rows of {}: {e}", self.table))?;
        Ok(SourceEvent::CopyColumns { table: self.table.clone(), batch, after: None })
    }
}

/// The estimated memory of one row, as `SourceEvent::weight` counts it.
pub fn row_weight(row: &Row) -> usize {
    24 + row.iter().map(|v| v.weight()).sum::<usize>()
}

/// A table with `snapshot: never` where a copy would be made: its schema and a copy of no
/// rows, without emptying it first, so the target keeps what it holds and applies the table's
/// changes from here on.
pub async fn adopt_without_copy(events: &EventSender, schema: TableSchema, copied: CopiedTable) -> Result<(), Closed> {
    let table = schema.id.clone();
    tracing::info!(table = %table, "snapshot: never, so not copied; its changes apply from here on");
    events.send(SourceEvent::Schema(schema)).await?;
    events.send(SourceEvent::CopyDone { table, rows: 0, copied: Box::new(copied) }).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    #[test]
    fn wide_rows_make_smaller_events() {
        let mut b = CopyRowsBatcher::new(TableId::new("s", "t"));
        let wide = || vec![Value::Bytes(vec![0; 1 << 20])];
        let sizes: Vec<usize> = (0..10)
            .filter_map(|_| b.push(wide()))
            .map(|e| match e {
                SourceEvent::CopyRows { rows, .. } => rows.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![4, 4], "1 MiB rows travel four to an event");
    }

    #[test]
    fn full_events_then_the_rest() {
        let mut b = CopyRowsBatcher::new(TableId::new("s", "t"));
        let full: Vec<_> = (0..ROWS_PER_EVENT + 3).filter_map(|_| b.push(Vec::new())).collect();
        assert_eq!(full.len(), 1);
        let (rest, n) = b.finish();
        assert!(matches!(rest, Some(SourceEvent::CopyRows { rows, .. }) if rows.len() == 3));
        assert_eq!(n, ROWS_PER_EVENT as u64 + 3);
        assert!(CopyRowsBatcher::new(TableId::new("s", "t")).finish().0.is_none());
    }
}
