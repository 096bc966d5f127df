//! Copied rows travel in events of a fixed number of rows: large enough to amortise the
//! channel, small enough to bound memory. Every source's copy gathers them the same way.

use crate::event::SourceEvent;
use crate::model::{Row, TableId};

/// Rows per `CopyRows` event.
pub const ROWS_PER_EVENT: usize = 4096;

pub struct CopyRowsBatcher {
    table: TableId,
    rows: Vec<Row>,
    gathered: u64,
}

impl CopyRowsBatcher {
    pub fn new(table: TableId) -> Self {
        Self { table, rows: Vec::with_capacity(ROWS_PER_EVENT), gathered: 0 }
    }

    /// Adds a row; a full event to send once [`ROWS_PER_EVENT`] rows are gathered.
    pub fn push(&mut self, row: Row) -> Option<SourceEvent> {
        self.rows.push(row);
        self.gathered += 1;
        (self.rows.len() == ROWS_PER_EVENT).then(|| self.take())
    }

    /// The rows not yet sent (if any), and how many rows were gathered in all.
    pub fn finish(mut self) -> (Option<SourceEvent>, u64) {
        let rest = (!self.rows.is_empty()).then(|| self.take());
        (rest, self.gathered)
    }

    fn take(&mut self) -> SourceEvent {
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(ROWS_PER_EVENT));
        SourceEvent::CopyRows { table: self.table.clone(), rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
