//! Seeds made while streaming (a table new to the filters, `zetl resync`, `snapshot: resync`):
//! the table's own stream is set aside while its Scan runs beside the other tables' streams.
//! Once the Scan is complete the table's stream is read again, from the shards open when the
//! seed began (after what this run had applied of them), into the copy that is still being
//! filled (aside, by default): records older than the Scan are applied after it and the copy converges, as after the initial seed, and
//! the copy replaces the table only once its stream has caught up (see `stream`), so readers
//! never see it go back to older values. The Scan's pages reach the writer through the stream's
//! loop, between two stream pages, so the other tables go on with their normal lag; each
//! page's segment cursors are committed with it, so a restart continues the seed.

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
use zetl_core::SourceEvent;

/// Memory the Scan pages waiting to be handed on may hold, all seeds together.
const PAGES_BYTES: usize = 8 << 20;

/// A seed cut short by a restart: each segment's cursor and the items already committed.
pub type Continue = (Vec<SegmentCursor>, u64);

/// What a seed has for the stream's loop.
pub enum FillNext {
    /// To be handed on to the writer.
    Event(SourceEvent, OwnedSemaphorePermit),
    /// Every item of `table` is handed on: `rows` in all.
    Scanned { table: String, rows: u64 },
}

pub struct Fills {
    clients: Clients,
    scan: ScanConfig,
    tasks: JoinSet<Result<(String, u64), DynError>>,
    tx: EventSender,
    rx: EventReceiver,
    /// Scans complete whose last pages may still be in the channel.
    scanned: Vec<(String, u64)>,
    /// The tables (by name) being seeded, until their `CopyDone`.
    seeding: HashSet<String>,
}

impl Fills {
    pub fn new(clients: Clients, scan: ScanConfig) -> Self {
        let (tx, rx) = channel::channel(PAGES_BYTES);
        Self { clients, scan, tasks: JoinSet::new(), tx, rx, scanned: Vec::new(), seeding: HashSet::new() }
    }

    pub fn seeding(&self, table: &str) -> bool {
        self.seeding.contains(table)
    }

    /// Starts the Scan of `table` (its `FillStart` already sent), or continues its segments.
    /// Its pages, then that it is scanned, come out of [`Fills::next`].
    pub fn spawn(&mut self, table: Arc<TableInfo>, continuing: Option<Continue>) {
        self.seeding.insert(table.name.clone());
        let (clients, config, tx) = (self.clients.clone(), self.scan.clone(), self.tx.clone());
        self.tasks.spawn(async move {
            let (cursors, before) = match continuing {
                Some((cursors, rows)) => (Some(cursors), rows),
                None => (None, 0),
            };
            let rows = before + scan::seed(&clients, &table, &config, &tx, cursors).await?;
            Ok((table.name.clone(), rows))
        });
    }

    /// The next page of a seed, or a Scan that is complete (once all its pages are out); a
    /// seed's failure. Cancel-safe. Never ready while no seed runs.
    pub async fn next(&mut self) -> Result<FillNext, DynError> {
        loop {
            if let Some((table, rows)) = self.scanned.pop() {
                // The task sent its pages before it ended: once none waits, all are out.
                if let Some((event, room)) = self.rx.try_recv() {
                    self.scanned.push((table, rows));
                    return Ok(FillNext::Event(event, room));
                }
                return Ok(FillNext::Scanned { table, rows });
            }
            tokio::select! {
                biased;
                next = self.rx.recv() => {
                    let (event, room) = next.ok_or(DynError::Closed)?;
                    return Ok(FillNext::Event(event, room));
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(Ok(scanned)) => self.scanned.push(scanned),
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(DynError::Config(format!("a seed made while streaming failed: {e}"))),
                },
            }
        }
    }

    /// `table`'s copy is complete (its `CopyDone` handed on).
    pub fn done(&mut self, table: &str) {
        self.seeding.remove(table);
    }
}
