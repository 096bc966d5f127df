//! The surface every target writer implements. Calls are blocking: the pipeline runs the
//! target on a thread of its own, so a slow target slows the source through the bounded
//! channel in between (backpressure) instead of filling memory.

use crate::apply::{DeadLetter, Replayed};
use crate::batch::Batch;
use crate::columns::RecordBatch;
use crate::error::Retry;
use crate::event::{Checkpoint, CopiedTable, CopyCursor, CopyUnderWay, TableState};
use crate::model::{Row, TableId, TableSchema, Value};

pub trait Target: Send {
    type Error: std::error::Error + Retry + Send + Sync + 'static;

    /// The checkpoint stored for this integration, if any.
    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, Self::Error>;

    /// Tables whose copy this target has committed and that stream since.
    fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, Self::Error>;

    /// Copies of an initial copy that a restart can continue: tables being copied whose
    /// committed rows carry a cursor (see [`Target::copy_reached`]).
    fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, Self::Error>;

    /// Sets the state of tables the target knows (others are left alone), inside the open
    /// transaction if there is one. Excluded (out of the filters) and resync-required tables
    /// no longer count as copied, so they are copied again instead of resuming a stale copy.
    /// `reason` is shown by `zetl status` until the table's state changes again.
    fn mark_tables(&mut self, tables: &[TableId], state: TableState, reason: Option<&str>) -> Result<(), Self::Error>;

    /// Opens a target transaction; everything until `commit` becomes visible at once.
    fn begin(&mut self) -> Result<(), Self::Error>;

    /// Creates the table from the source schema, or brings an existing one up to it (added
    /// columns are added; dropped ones stay, nullable; a column whose type changed takes the
    /// new type, its values cast where they can be). Returns the columns it added to an
    /// existing table.
    fn ensure_table(&mut self, schema: &TableSchema) -> Result<Vec<String>, Self::Error>;

    /// Sets column `column` of every row to `value` (a column just added, whose rows existed
    /// before it), inside the open transaction.
    fn fill_column(&mut self, schema: &TableSchema, column: usize, value: &Value) -> Result<(), Self::Error>;

    /// Whether `ensure_table` must alter an existing table in a way this target can only do at
    /// the start of a transaction (DuckDB cannot alter a table it deleted from in the same
    /// transaction). The pipeline then commits what it holds first.
    fn alter_needs_commit(&mut self, _schema: &TableSchema) -> Result<bool, Self::Error> {
        Ok(false)
    }

    /// An initial copy of the table starts: empty it and mark it as being copied.
    fn copy_start(&mut self, table: &TableId) -> Result<(), Self::Error>;
    fn copy_rows(&mut self, table: &TableId, rows: &[Row]) -> Result<(), Self::Error>;
    /// Copied rows as columns ([`crate::columns`]): true if the target appended them, false if
    /// it takes them as rows instead (the default), which the pipeline then sends to
    /// `copy_rows`.
    fn copy_columns(&mut self, _table: &TableId, _batch: &RecordBatch) -> Result<bool, Self::Error> {
        Ok(false)
    }
    /// A part of the copy of `table` stands at the source's cursor `after` with the rows
    /// written so far: stored with them at the next commit.
    fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) -> Result<(), Self::Error>;
    /// The copy of `table` holds `rows` rows so far (a copy continued after a restart, or a
    /// fill, whose rows are applied as changes): stored with its cursor at the next commit.
    fn copy_holds(&mut self, table: &TableId, rows: u64) -> Result<(), Self::Error>;
    fn copy_done(&mut self, table: &TableId, rows: u64, copied: &CopiedTable) -> Result<(), Self::Error>;

    /// A copy made beside the stream (see [`SourceEvent::FillStart`](crate::SourceEvent::FillStart))
    /// of `table` is to go into `aside` ([`TableId::fill_aside`]), a table of its own that
    /// replaces `table` when complete, so that readers see `table` as it was until then. A new
    /// fill (`resumed` false) marks `table` as being copied, without emptying it, and removes
    /// whatever an earlier fill left in `aside`; the pipeline then creates `aside` with
    /// `ensure_table`. A fill resumed after a restart asks whether `aside` holds its rows.
    /// Returns false where this target fills in place only (or `aside` is not there): nothing
    /// was changed then.
    fn fill_aside(&mut self, _table: &TableId, _aside: &TableId, _resumed: bool) -> Result<bool, Self::Error> {
        Ok(false)
    }

    /// The fill of `table` in `aside` is complete: in the open transaction, `table` takes the
    /// rows of `aside` in place of its own (keeping what the target's users gave it: views,
    /// grants, column types), and `aside` is dropped. Called only after `fill_aside` said yes.
    fn replace_with_aside(&mut self, _table: &TableId, _aside: &TableId) -> Result<(), Self::Error> {
        Ok(())
    }

    /// A fill in `aside` was given up (the table is copied whole instead, or again later).
    fn drop_aside(&mut self, _aside: &TableId) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Applies collapsed changes inside the open transaction.
    fn apply(&mut self, batch: &Batch) -> Result<(), Self::Error>;

    /// Stores the checkpoint and commits the open transaction.
    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), Self::Error>;

    /// Abandons the open transaction.
    fn rollback(&mut self) -> Result<(), Self::Error>;

    /// Changes this target has set aside as dead letters and committed, since it was opened.
    fn dead_letters(&self) -> u64 {
        0
    }

    /// Forgets the stored state of this integration and empties its tables, before a fresh
    /// initial copy.
    fn reset(&mut self) -> Result<(), Self::Error>;
}

/// What the operator's verbs ask of a target while `zetl run` is stopped.
pub trait TargetAdmin: Target {
    /// `zetl resync TABLE`: marks the table to be copied again at the next start; false when
    /// this target never copied it.
    fn request_resync(&mut self, table: &TableId) -> Result<bool, Self::Error>;

    /// `zetl resync --all`: drops the stored checkpoint, so the next start makes a fresh
    /// initial copy.
    fn forget_position(&mut self) -> Result<(), Self::Error>;

    /// The changes set aside as dead letters (`apply.on_error: dead_letter`).
    fn list_dead_letters(&mut self) -> Result<Vec<DeadLetter>, Self::Error>;

    /// Applies the dead letters not yet replayed (all, or `ids`); returns how many were
    /// applied and (id, error) of those that failed again.
    fn replay_dead_letters(&mut self, ids: &[i64]) -> Result<Replayed, Self::Error>;
}
