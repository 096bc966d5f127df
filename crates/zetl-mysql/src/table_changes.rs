//! What the binlog does not carry as rows, and what the stream does instead (guarantee 8):
//! partition operations and column changes that rewrite rows without row events, tables that
//! go away. The stream marks such a table `resync-required` in the transaction that showed
//! it (so a crash before the copy still copies it at the next start), then copies it at the
//! end of that transaction, while the binlog waits (`Pause::Copy`).

use crate::catalog;
use crate::column_changes::{self, Verdict};
use crate::columns::MyTable;
use crate::ddl::{ColumnDefault, PartitionChange};
use crate::error::MyError;
use crate::position::BinlogPos;
use crate::stream::{event_file_max, Streamer};
use zetl_core::{SourceEvent, TableId};

impl Streamer {
    /// Copies `id` once this transaction ends; its changes until then are in that copy.
    pub(crate) fn copy_at_end(&mut self, id: &TableId) {
        self.known.insert(id.clone());
        self.filling.remove(id);
        self.copied_at.insert(id.clone(), BinlogPos { file: event_file_max(), pos: u64::MAX, gtid: None });
        if let Some(txn) = self.txn.as_mut() {
            txn.to_copy.push(id.clone());
        }
    }

    /// The stream cannot carry what happened to `id`: mark it at the target and copy it again
    /// at the end of this transaction.
    pub(crate) async fn resync(&mut self, id: &TableId, reason: String) -> Result<(), MyError> {
        if !self.replicated(id) || !self.wanted(id) {
            return Ok(());
        }
        tracing::info!(table = %id, reason, "the stream cannot carry this; copying the table again");
        self.emit(SourceEvent::ResyncRequired { table: id.clone(), reason }).await?;
        self.copy_at_end(id);
        Ok(())
    }

    /// A copy gave the target `table`'s columns.
    pub(crate) fn copied_schema(&mut self, table: MyTable) {
        self.sent_columns.entry(table.id.clone()).or_default().extend(table.columns.iter().map(|c| c.name.clone()));
        self.alters.remove(&table.id);
        self.schemas.insert(table.id.clone(), table);
    }

    /// The name no longer holds the table the target has a copy of.
    pub(crate) fn forget(&mut self, id: &TableId) {
        self.schemas.remove(id);
        self.baseline.remove(id);
        self.known.remove(id);
        self.filling.remove(id);
        self.alters.remove(id);
    }

    /// DROP TABLE (or a table turned into a partition of another). Before a copy of the name
    /// it is part of what that copy saw.
    pub(crate) fn dropped(&mut self, id: &TableId) {
        if self.replicated(id) && self.wanted(id) {
            tracing::warn!(table = %id, "table dropped at the source; its copy at the target is kept");
            self.forget(id);
        }
    }

    /// `ALTER TABLE … TRUNCATE / DROP / EXCHANGE / CONVERT PARTITION`, `IMPORT TABLESPACE`.
    pub(crate) async fn partition_changed(
        &mut self,
        id: &TableId,
        change: PartitionChange,
        default_schema: &str,
    ) -> Result<(), MyError> {
        let reason = format!("{} changed its rows without row events", change.describe());
        match &change {
            PartitionChange::Rows(_) => {}
            // Both tables' rows changed; a table converted out of a partition is new and full.
            PartitionChange::Exchange(other) | PartitionChange::ConvertOut(other) => {
                let other = self.resolve(other, default_schema);
                self.resync(&other, reason.clone()).await?;
            }
            PartitionChange::ConvertIn(other) => {
                let other = self.resolve(other, default_schema);
                self.dropped(&other);
            }
        }
        self.resync(id, reason).await
    }

    /// Before `table`'s new schema is sent: fills the columns it adds to existing rows
    /// (`AddedColumnValue`), or marks the table for a copy. `true`: copy it at the end of the
    /// transaction.
    pub(crate) async fn before_schema(&mut self, table: &MyTable) -> Result<bool, MyError> {
        // The last schema sent in this run, or the one the target stored before a restart.
        let prev = match self.schemas.get(&table.id) {
            Some(sent) => sent.schema(),
            None => match self.baseline.get(&table.id) {
                Some(stored) => stored.clone(),
                None => return Ok(false),
            },
        };
        let added = column_changes::added(&prev, table);
        let clauses = self.alters.get(&table.id).cloned().unwrap_or_default();
        let needs_catalog = added.iter().any(|c| {
            clauses
                .iter()
                .rev()
                .find(|a| a.name.eq_ignore_ascii_case(&c.name))
                .is_some_and(|a| matches!(a.default, ColumnDefault::Literal(_)))
        });
        let catalog =
            if needs_catalog { Some(catalog::column_defaults(&mut self.side, &table.id).await?) } else { None };
        let sent = self.sent_columns.get(&table.id).cloned().unwrap_or_default();
        match column_changes::judge(&prev, table, &sent, &clauses, catalog.as_ref()) {
            Verdict::Nothing => Ok(false),
            Verdict::Fill(fills) => {
                for (column, value) in fills {
                    tracing::info!(table = %table.id, column, "added column: its DEFAULT fills the existing rows");
                    self.emit(SourceEvent::AddedColumnValue { table: table.id.clone(), column, value }).await?;
                }
                Ok(false)
            }
            Verdict::Resync(reason) => {
                tracing::info!(table = %table.id, reason, "the stream cannot carry this; copying the table again");
                self.emit(SourceEvent::ResyncRequired { table: table.id.clone(), reason }).await?;
                Ok(true)
            }
        }
    }
}
