//! What flows from a source to the pipeline, and what flows back.

use crate::model::{ChangeKind, Row, TableId, TableSchema, Value};
use std::fmt;

/// A source position, opaque to everything but the source that made it (an LSN, a GTID set,
/// per-shard sequence numbers). Stored in the target with the data it covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Position(pub String);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an integration is in its life, as stored in the target's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The initial copy is under way; a restart starts it again from scratch.
    Snapshotting,
    /// The initial copy is complete; a restart resumes the stream at the position.
    Streaming,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Snapshotting, Phase::Streaming];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
        }
    }

    /// A phase as stored; the error names what was found.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| format!("unknown phase `{s}`"))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the target stores, atomically with the data, for one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: Position,
    pub phase: Phase,
}

/// A table's state in the target's `_zetl.tables`, one encoding for every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// A copy is under way (initial, or again); not committed as a whole yet.
    Copying,
    /// Copied; its changes stream (the managed services' "synced").
    Streaming,
    /// An operator asked for a new copy (`zetl resync`), made at the next start.
    ResyncRequested,
    /// The stream cannot carry what happened to the table (renamed away and back, …): zetl
    /// copies it again by itself, at the next table discovery or the next start.
    ResyncRequired,
    /// The table left the integration's filters; coming back copies it again.
    Excluded,
}

impl TableState {
    pub const ALL: [TableState; 5] = [
        TableState::Copying,
        TableState::Streaming,
        TableState::ResyncRequested,
        TableState::ResyncRequired,
        TableState::Excluded,
    ];

    /// A table state as stored; the error names what was found.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown table state `{s}`"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TableState::Copying => "copying",
            TableState::Streaming => "streaming",
            TableState::ResyncRequested => "resync-requested",
            TableState::ResyncRequired => "resync-required",
            TableState::Excluded => "excluded",
        }
    }
}

impl fmt::Display for TableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the target keeps about a table's committed copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopiedTable {
    /// Set for a table copied while streaming: the copy holds every transaction that committed
    /// before this position, so the stream skips the table's changes in those.
    pub consistent_at: Option<Position>,
    /// The source's own identity of the table the copy was made from (PostgreSQL: its OID).
    /// A name whose identity changed since (dropped and created again, swapped by renames)
    /// holds another table now, which has to be copied again.
    pub source_id: Option<String>,
    /// The source schema the target holds for the table as of its checkpoint (stored with
    /// every change of it). A restarted stream compares the first schema it sees with this
    /// one, so a column added with a DEFAULT or retyped while zetl was stopped is filled or
    /// copied again. Filled by targets; sources leave it `None`.
    pub schema: Option<TableSchema>,
}

/// Where one part of a copy read in key order stands, in the source's own encoding (one line:
/// parts are stored together, a line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCursor {
    pub part: u32,
    pub token: String,
}

/// A copy under way that a restart can continue: stored at the target with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyUnderWay {
    /// The source's cursor of each part after the last row committed (see
    /// [`SourceEvent::CopyRows`]), in part order.
    pub parts: Vec<String>,
    pub rows: u64,
}

/// One event from a source, in source order.
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// The schema of a table, sent before its first rows and again whenever it changes.
    Schema(TableSchema),
    /// The next `Schema` of `table` adds `column`, which holds `value` in every row that
    /// existed before (PostgreSQL 11+ adds a column with a constant DEFAULT without writing a
    /// row change). The target fills it in when that Schema makes it add the column.
    AddedColumnValue {
        table: TableId,
        column: String,
        value: Value,
    },
    /// An initial (or re-) copy of a table begins: the target empties it.
    CopyStart(TableId),
    CopyRows {
        table: TableId,
        rows: Vec<Row>,
        /// A copy read in key order: where its part stands after these rows. Stored with
        /// them, so that a restart continues after them (see [`SourceEvent::CopyResume`]).
        after: Option<CopyCursor>,
    },
    /// Copied rows as columns (see [`crate::columns`]), in the table's schema order; otherwise
    /// as `CopyRows`.
    CopyColumns {
        table: TableId,
        batch: crate::columns::RecordBatch,
        after: Option<CopyCursor>,
    },
    /// A copy interrupted by a restart continues after the cursor stored with its rows (the
    /// source reads from there): the `rows` already committed stay.
    CopyResume {
        table: TableId,
        rows: u64,
    },
    /// A copy made beside the stream begins (PostgreSQL's copies while streaming): the table
    /// is filled in place, chunk by chunk, while the stream goes on. The target empties it
    /// (or, `resumed`, keeps the rows a copy interrupted by a restart committed); its
    /// `CopyRows` are written over whatever the stream put under the same keys first, and are
    /// committed with the changes around them instead of holding the stream's commits back.
    FillStart {
        table: TableId,
        resumed: Option<u64>,
    },
    /// The copy is complete. (`copied` is boxed: every event in the channel takes the size
    /// of the largest variant.)
    CopyDone {
        table: TableId,
        rows: u64,
        copied: Box<CopiedTable>,
    },
    /// An initial copy that can be resumed begins; the stream starts at `position` once it is
    /// complete. Stored with the copied rows, so that a restart keeps the copies committed.
    SnapshotStart {
        position: Position,
    },
    /// The initial copy of all tables is complete and consistent at `position`.
    SnapshotDone {
        position: Position,
    },
    /// A source transaction begins. `time_us` is the source's time for it in microseconds since
    /// the Unix epoch, when known (PostgreSQL: its commit time; MySQL/MariaDB: its GTID event's,
    /// the start of the statement that committed it; DynamoDB: its first record's): lag counts
    /// from it while the transaction is read and applied, not only once its commit is reached.
    Begin {
        time_us: Option<i64>,
    },
    /// Changes to one table, in order, that the source read together (a binlog rows event, a
    /// page of stream records, a run of pgoutput changes to one relation): one event spares
    /// the channel and the writer a round per row.
    Changes {
        table: TableId,
        kinds: Vec<ChangeKind>,
    },
    Truncate(Vec<TableId>),
    /// A source transaction committed at `position`; `commit_time_us` is its commit time in
    /// microseconds since the Unix epoch, when the source knows it.
    Commit {
        position: Position,
        commit_time_us: Option<i64>,
    },
    /// The stream cannot carry what happened to the table: its copy stops counting, in the
    /// target transaction of the source transaction that showed it, so that a restart copies
    /// it again even when the source does not get to it before then.
    ResyncRequired {
        table: TableId,
        reason: String,
    },
    /// The source is idle at `position`: nothing before it remains to be applied.
    Heartbeat {
        position: Position,
    },
}

impl SourceEvent {
    /// For `CopyRows` and `CopyColumns`: where the copy stands after its rows (see [`SourceEvent::CopyRows`]).
    pub fn set_after(&mut self, cursor: Option<CopyCursor>) {
        if let SourceEvent::CopyRows { after, .. } | SourceEvent::CopyColumns { after, .. } = self {
            *after = cursor;
        }
    }

    /// An estimate of the memory the event holds, for batch sizing.
    pub fn weight(&self) -> usize {
        match self {
            SourceEvent::Changes { kinds, .. } => kinds.iter().map(ChangeKind::weight).sum(),
            SourceEvent::CopyRows { rows, .. } => rows.iter().map(crate::copy_rows::row_weight).sum(),
            SourceEvent::CopyColumns { batch, .. } => batch.get_array_memory_size(),
            // A position can be large (DynamoDB's holds every shard's sequence number).
            SourceEvent::Commit { position, .. }
            | SourceEvent::Heartbeat { position }
            | SourceEvent::SnapshotStart { position }
            | SourceEvent::SnapshotDone { position } => 64 + position.0.len(),
            _ => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_small() {
        // The channel to the writer holds tens of thousands of events, each as large as the
        // largest variant: a big one is boxed (`CopyDone`'s `copied`).
        assert!(std::mem::size_of::<SourceEvent>() <= 128, "{} bytes", std::mem::size_of::<SourceEvent>());
    }
}
