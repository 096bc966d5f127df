//! A target with its error type erased: what the binary's registry opens from the
//! configuration and hands to the writer and to the operator's verbs, so that neither is
//! written once per target. Errors keep whether they are transient ([`Failed`]).

use crate::apply::{DeadLetter, Replayed};
use crate::batch::Batch;
use crate::columns::RecordBatch;
use crate::event::{Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, TableState};
use crate::model::{Row, TableId, TableSchema, Value};
use crate::source::Failed;
use crate::target::{Target, TargetAdmin};

/// Any target, as the registry opens it.
pub type AnyTarget = Box<dyn TargetAdmin<Error = Failed>>;

/// `target`, its errors erased.
pub fn erase<T: TargetAdmin + 'static>(target: T) -> AnyTarget {
    Box::new(Erased(target))
}

struct Erased<T>(T);

impl<T: Target> Target for Erased<T> {
    type Error = Failed;

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, Failed> {
        self.0.checkpoint().map_err(Failed::of)
    }
    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, Failed> {
        self.0.copied_tables().map_err(Failed::of)
    }
    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, Failed> {
        self.0.copies_under_way().map_err(Failed::of)
    }
    fn mark_tables(&mut self, tables: &[TableId], state: TableState, reason: Option<&str>) -> Result<(), Failed> {
        self.0.mark_tables(tables, state, reason).map_err(Failed::of)
    }
    fn begin(&mut self) -> Result<(), Failed> {
        self.0.begin().map_err(Failed::of)
    }
    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, Failed> {
        self.0.ensure_table(schema).map_err(Failed::of)
    }
    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), Failed> {
        self.0.fill_column(schema, column, value).map_err(Failed::of)
    }
    fn alter_needs_commit(&mut self, schema: &TableSchema) -> Result<bool, Failed> {
        self.0.alter_needs_commit(schema).map_err(Failed::of)
    }
    fn copy_start(&mut self, table: &TableId) -> Result<(), Failed> {
        self.0.copy_start(table).map_err(Failed::of)
    }
    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), Failed> {
        self.0.copy_rows(table, rows).map_err(Failed::of)
    }
    fn copy_columns(&mut self, table: &TableId, batch: &RecordBatch) -> Result<bool, Failed> {
        self.0.copy_columns(table, batch).map_err(Failed::of)
    }
    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), Failed> {
        self.0.copy_reached(table, after).map_err(Failed::of)
    }
    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), Failed> {
        self.0.copy_holds(table, rows).map_err(Failed::of)
    }
    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), Failed> {
        self.0.copy_done(table, rows, copied).map_err(Failed::of)
    }
    fn fill_aside(&mut self, table: &TableId, aside: &TableId, resumed: bool) -> Result<bool, Failed> {
        self.0.fill_aside(table, aside, resumed).map_err(Failed::of)
    }
    fn replace_with_aside(&mut self, table: &TableId, aside: &TableId) -> Result<(), Failed> {
        self.0.replace_with_aside(table, aside).map_err(Failed::of)
    }
    fn drop_aside(&mut self, aside: &TableId) -> Result<(), Failed> {
        self.0.drop_aside(aside).map_err(Failed::of)
    }
    fn apply(&mut self, batch: &Batch) -> Result<(), Failed> {
        self.0.apply(batch).map_err(Failed::of)
    }
    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), Failed> {
        self.0.commit(checkpoint).map_err(Failed::of)
    }
    fn rollback(&mut self) -> Result<(), Failed> {
        self.0.rollback().map_err(Failed::of)
    }
    fn dead_letters(&self) -> u64 {
        self.0.dead_letters()
    }
    fn reset(&mut self) -> Result<(), Failed> {
        self.0.reset().map_err(Failed::of)
    }
}

impl<T: TargetAdmin> TargetAdmin for Erased<T> {
    fn request_resync(&mut self, table: &TableId) -> Result<bool, Failed> {
        self.0.request_resync(table).map_err(Failed::of)
    }
    fn forget_position(&mut self) -> Result<(), Failed> {
        self.0.forget_position().map_err(Failed::of)
    }
    fn list_dead_letters(&mut self) -> Result<Vec<DeadLetter>, Failed> {
        self.0.list_dead_letters().map_err(Failed::of)
    }
    fn replay_dead_letters(&mut self, ids: &[i64]) -> Result<Replayed, Failed> {
        self.0.replay_dead_letters(ids).map_err(Failed::of)
    }
}

/// The writer takes a target by value: a boxed one forwards.
impl<T: Target + ?Sized> Target for Box<T> {
    type Error = T::Error;

    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, T::Error> {
        (**self).checkpoint()
    }
    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, T::Error> {
        (**self).copied_tables()
    }
    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, T::Error> {
        (**self).copies_under_way()
    }
    fn mark_tables(&mut self, tables: &[TableId], state: TableState, reason: Option<&str>) -> Result<(), T::Error> {
        (**self).mark_tables(tables, state, reason)
    }
    fn begin(&mut self) -> Result<(), T::Error> {
        (**self).begin()
    }
    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, T::Error> {
        (**self).ensure_table(schema)
    }
    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), T::Error> {
        (**self).fill_column(schema, column, value)
    }
    fn alter_needs_commit(&mut self, schema: &TableSchema) -> Result<bool, T::Error> {
        (**self).alter_needs_commit(schema)
    }
    fn copy_start(&mut self, table: &TableId) -> Result<(), T::Error> {
        (**self).copy_start(table)
    }
    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), T::Error> {
        (**self).copy_rows(table, rows)
    }
    fn copy_columns(&mut self, table: &TableId, batch: &RecordBatch) -> Result<bool, T::Error> {
        (**self).copy_columns(table, batch)
    }
    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), T::Error> {
        (**self).copy_reached(table, after)
    }
    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), T::Error> {
        (**self).copy_holds(table, rows)
    }
    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), T::Error> {
        (**self).copy_done(table, rows, copied)
    }
    fn fill_aside(&mut self, table: &TableId, aside: &TableId, resumed: bool) -> Result<bool, T::Error> {
        (**self).fill_aside(table, aside, resumed)
    }
    fn replace_with_aside(&mut self, table: &TableId, aside: &TableId) -> Result<(), T::Error> {
        (**self).replace_with_aside(table, aside)
    }
    fn drop_aside(&mut self, aside: &TableId) -> Result<(), T::Error> {
        (**self).drop_aside(aside)
    }
    fn apply(&mut self, batch: &Batch) -> Result<(), T::Error> {
        (**self).apply(batch)
    }
    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), T::Error> {
        (**self).commit(checkpoint)
    }
    fn rollback(&mut self) -> Result<(), T::Error> {
        (**self).rollback()
    }
    fn dead_letters(&self) -> u64 {
        (**self).dead_letters()
    }
    fn reset(&mut self) -> Result<(), T::Error> {
        (**self).reset()
    }
}
