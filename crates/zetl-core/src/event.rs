//! What flows from a source to the pipeline, and what flows back.

use crate::model::{Change, Row, TableId, TableSchema};
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
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "snapshotting" => Some(Phase::Snapshotting),
            "streaming" => Some(Phase::Streaming),
            _ => None,
        }
    }
}

/// What the target stores, atomically with the data, for one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: Position,
    pub phase: Phase,
}

/// One event from a source, in source order.
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// The schema of a table, sent before its first rows and again whenever it changes.
    Schema(TableSchema),
    /// An initial (or re-) copy of a table begins: the target empties it.
    CopyStart(TableId),
    CopyRows {
        table: TableId,
        rows: Vec<Row>,
    },
    /// The copy is complete. `consistent_at` is set for a table copied while streaming: the
    /// copy holds every transaction that committed before that position.
    CopyDone {
        table: TableId,
        rows: u64,
        consistent_at: Option<Position>,
    },
    /// The initial copy of all tables is complete and consistent at `position`.
    SnapshotDone {
        position: Position,
    },
    Begin,
    Change(Change),
    Truncate(Vec<TableId>),
    /// A source transaction committed at `position`; `commit_time_us` is its commit time in
    /// microseconds since the Unix epoch, when the source knows it.
    Commit {
        position: Position,
        commit_time_us: Option<i64>,
    },
    /// The source is idle at `position`: nothing before it remains to be applied.
    Heartbeat {
        position: Position,
    },
}

impl SourceEvent {
    /// An estimate of the memory the event holds, for batch sizing.
    pub fn weight(&self) -> usize {
        match self {
            SourceEvent::Change(c) => c.weight(),
            SourceEvent::CopyRows { rows, .. } => {
                rows.iter().map(|r| 24 + r.iter().map(|v| v.weight()).sum::<usize>()).sum()
            }
            _ => 64,
        }
    }
}
