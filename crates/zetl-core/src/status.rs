//! What `zetl status` reads from any target's `_zetl` schema.

use crate::event::{Phase, TableState};

#[derive(Debug)]
pub struct TableStatus {
    pub schema: String,
    pub name: String,
    pub state: TableState,
    pub rows_copied: i64,
    pub updated_at: String,
    /// Why the table waits for a copy (resync-required, excluded), when zetl said.
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
pub struct TargetStatus {
    pub phase: Option<Phase>,
    pub position: Option<String>,
    pub updated_at: Option<String>,
    pub tables: Vec<TableStatus>,
}
