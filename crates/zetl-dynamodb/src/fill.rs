//! Seeds made while streaming (a table new to the filters, `zetl resync`, `snapshot: resync`):
//! the table's own stream is set aside while its Scan runs beside the other tables' streams,
//! and read again once the seed is complete, from the shards open when it began (so records
//! older than the Scan are applied after it and the table converges, as after the initial
//! seed). The Scan's pages reach the writer through the stream's loop, between two stream
//! pages, so the other tables go on with their normal lag; each page's segment cursors are
//! committed with it, so a restart continues the seed instead of starting over.

use crate::client::Clients;
use crate::config::ScanConfig;
use crate::error::DynError;
use crate::scan;
use crate::scan_cursor::SegmentCursor;
use crate::table::TableInfo;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use zetl_core::channel::{self, EventReceiver, EventSender};
use zetl_core::{CopiedTable, SourceEvent};

/// Memory the Scan pages waiting to be handed on may hold, all seeds together.
const PAGES_BYTES: usize = 8 << 20;

/// A seed cut short by a restart: each segment's cursor and the items already committed.
pub type Continue = (Vec<SegmentCursor>, u64);

pub struct Fills {
    clients: Clients,
    scan: ScanConfig,
    tasks: JoinSet<Result<(), DynError>>,
    tx: EventSender,
    rx: EventReceiver,
    /// The tables (by name) being seeded: their shards are not read until their `CopyDone`.
    seeding: HashSet<String>,
}

impl Fills {
    pub fn new(clients: Clients, scan: ScanConfig) -> Self {
        let (tx, rx) = channel::channel(PAGES_BYTES);
        Self { clients, scan, tasks: JoinSet::new(), tx, rx, seeding: HashSet::new() }
    }

    pub fn seeding(&self, table: &str) -> bool {
        self.seeding.contains(table)
    }

    /// Starts the Scan of `table` (its `FillStart` already sent), or continues its segments.
    /// Its pages, and then its `CopyDone`, come out of [`Fills::next`].
    pub fn spawn(&mut self, table: Arc<TableInfo>, continuing: Option<Continue>) {
        self.seeding.insert(table.name.clone());
        let (clients, config, tx) = (self.clients.clone(), self.scan.clone(), self.tx.clone());
        self.tasks.spawn(async move {
            let (cursors, before) = match continuing {
                Some((cursors, rows)) => (Some(cursors), rows),
                None => (None, 0),
            };
            let rows = before + scan::seed(&clients, &table, &config, &tx, cursors).await?;
            tx.send(SourceEvent::CopyDone { table: table.id(), rows, copied: CopiedTable::default() }).await?;
            tracing::info!(table = %table.name, rows, "table copied while streaming");
            Ok(())
        });
    }

    /// The next event of a seed, to be handed on between two stream pages; a seed's failure.
    /// Cancel-safe. Never ready while no seed runs.
    pub async fn next(&mut self) -> Result<(SourceEvent, OwnedSemaphorePermit), DynError> {
        loop {
            tokio::select! {
                next = self.rx.recv() => return next.ok_or(DynError::Closed),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(DynError::Config(format!("a seed made while streaming failed: {e}"))),
                },
            }
        }
    }

    /// `table`'s seed is complete (its `CopyDone` handed on): its shards may be read.
    pub fn done(&mut self, table: &str) {
        self.seeding.remove(table);
    }
}
