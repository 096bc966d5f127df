//! Following the tables' streams: one reader task per shard that may be read (see `shards`),
//! many at once; each page of records becomes one target transaction whose checkpoint holds
//! every shard's last applied sequence number. Pages of one shard arrive in order, and an
//! item's records stay in its shard's lineage, so each item's changes apply in order. A table
//! seeded while streaming (`fill`) has its shards set aside until its Scan is complete; they
//! are then read into the copy being filled, which replaces the table once every open shard
//! has been read past the end of the Scan.

use crate::client::Clients;
use crate::config::DynamodbSourceConfig;
use crate::error::{api, DynError};
use crate::fill::{Continue, FillNext, Fills};
use crate::position::{ShardPos, StreamPos, TablePos};
use crate::reader::{Body, Decoded, Msg, Reader, Readers, PAGES_BYTES};
use crate::shards::{self, Listed};
use crate::table::{self, TableInfo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::adopt_without_copy;
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::progress::Progress;
use zetl_core::source::{SourceContext, SourcePosition};
use zetl_core::{CopiedTable, Position, SourceEvent};

/// How often the streams are described again for new shards (and resync requests served).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// A table whose Scan is complete and whose stream is being read into its copy: the copy is
/// done once every open shard has `passed` the end of the Scan (`scanned_us`).
struct CatchUp {
    rows: u64,
    scanned_us: i64,
    passed: HashSet<String>,
}

pub struct Streamer {
    clients: Clients,
    tables: BTreeMap<String, Arc<TableInfo>>,
    pos: StreamPos,
    events: EventSender,
    filter: TableFilter,
    config: DynamodbSourceConfig,
    fills: Fills,
    /// Per table, how many times its stream was set aside for a seed: pages read before the
    /// last time are dropped (the seed's position reads them again after it).
    epochs: HashMap<String, u64>,
    catching_up: HashMap<String, CatchUp>,
    /// Per table, its open shards at the last listing.
    open_shards: HashMap<String, Vec<String>>,
    /// Per table, the shards whose reader has applied records or reached the head in this run:
    /// their positions are current (a stored one may be trimmed by now).
    live: HashMap<String, HashSet<String>>,
    /// Tables created since the start that match the filters but cannot be replicated (told
    /// once; the next start refuses them).
    refused: HashSet<String>,
}

impl Streamer {
    pub fn new(
        clients: Clients,
        tables: BTreeMap<String, Arc<TableInfo>>,
        pos: StreamPos,
        events: EventSender,
        (filter, config): (TableFilter, DynamodbSourceConfig),
    ) -> Self {
        let fills = Fills::new(clients.clone(), config.scan.clone());
        let (epochs, catching_up, open_shards, live, refused) = Default::default();
        Self { clients, tables, pos, events, filter, config, fills, epochs, catching_up, open_shards, live, refused }
    }

    /// Seeds `seeds` beside the streams (each continuing its cut-off seed where given), then
    /// applies the streams until stopped (between pages) or an error; serves `zetl resync`.
    pub async fn run(&mut self, ctx: &SourceContext, seeds: Vec<(String, Option<Continue>)>) -> Result<(), DynError> {
        let (tx, mut rx) = mpsc::channel::<Msg>(16);
        let room = Arc::new(Semaphore::new(PAGES_BYTES));
        let mut readers = Readers::default();
        for (table, continuing) in seeds {
            self.seed(&table, continuing, &ctx.progress, &mut readers).await?;
        }
        self.start_ready(&tx, &room, &mut readers).await?;
        let mut stop = ctx.stop.clone();
        let mut discover = tokio::time::interval(DISCOVER_EVERY);
        discover.tick().await;
        let mut idle = tokio::time::interval(Duration::from_secs(1));
        let mut busy = false;
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        readers.abort_all();
                        return Ok(());
                    }
                }
                msg = rx.recv() => {
                    let Some(Msg { table, epoch, body }) = msg else { return Err(DynError::Closed) };
                    if self.epochs.get(&table).copied().unwrap_or_default() != epoch {
                        continue;
                    }
                    match body {
                        Body::Page { shard, records, finished, room: _room } => {
                            busy = true;
                            let newest_us = records.last().and_then(|r| r.at_us);
                            self.apply(&table, &shard, records, finished).await?;
                            self.followed(&table, &shard);
                            if let Some(c) = self.catching_up.get_mut(&table) {
                                if newest_us.is_some_and(|at| at >= c.scanned_us) {
                                    c.passed.insert(shard.clone());
                                }
                            }
                            if finished {
                                readers.finished(&table, &shard);
                                self.start_ready(&tx, &room, &mut readers).await?;
                            }
                            self.finish_if_caught_up(&table).await?;
                        }
                        Body::Head { shard } => {
                            self.followed(&table, &shard);
                            if let Some(c) = self.catching_up.get_mut(&table) {
                                c.passed.insert(shard);
                                self.finish_if_caught_up(&table).await?;
                            }
                        }
                        Body::Failed(e) => {
                            readers.abort_all();
                            return Err(e);
                        }
                    }
                }
                next = self.fills.next() => match next? {
                    FillNext::Event(event, _room) => {
                        busy = true;
                        self.events.send(event).await?;
                    }
                    FillNext::Scanned { table, rows } => {
                        tracing::info!(table = %table, rows, "table scanned; its stream catches up before the copy is complete");
                        let scanned_us = zetl_core::pipeline::now_us();
                        self.catching_up.insert(table.clone(), CatchUp { rows, scanned_us, passed: HashSet::new() });
                        self.start_ready(&tx, &room, &mut readers).await?;
                        self.finish_if_caught_up(&table).await?;
                    }
                },
                _ = discover.tick() => {
                    readers.reap();
                    self.discover_tables(&ctx.progress, &mut readers).await?;
                    self.serve_resyncs(ctx, &mut readers).await?;
                    self.start_ready(&tx, &room, &mut readers).await?;
                }
                _ = idle.tick() => {
                    // Nothing arrived for a while: the target's checkpoint and lag catch up.
                    if !std::mem::take(&mut busy) {
                        self.events.send(SourceEvent::Heartbeat { position: self.position() }).await?;
                    }
                }
            }
        }
    }

    /// `shard` of `table` was read in this run: its position is current.
    fn followed(&mut self, table: &str, shard: &str) {
        self.live.entry(table.to_string()).or_default().insert(shard.to_string());
    }

    pub fn position(&self) -> Position {
        self.pos.to_position()
    }

    /// Hands on `CopyDone` for `table` once its stream has caught up since its Scan ended.
    async fn finish_if_caught_up(&mut self, table: &str) -> Result<(), DynError> {
        let (Some(c), Some(info)) = (self.catching_up.get(table), self.tables.get(table)) else { return Ok(()) };
        let open = self.open_shards.get(table).map(Vec::as_slice).unwrap_or_default();
        if !open.iter().all(|s| c.passed.contains(s)) {
            return Ok(());
        }
        let (id, rows) = (info.id(), c.rows);
        self.events.send(SourceEvent::CopyDone { table: id, rows, copied: Box::default() }).await?;
        tracing::info!(table = %table, rows, "table copied while streaming");
        self.catching_up.remove(table);
        self.fills.done(table);
        Ok(())
    }

    /// Tables created since the start that match the filters: seeded beside the streams.
    async fn discover_tables(&mut self, progress: &Progress, readers: &mut Readers) -> Result<(), DynError> {
        for name in table::list(&self.clients, &self.filter).await? {
            if self.tables.contains_key(&name) || self.refused.contains(&name) {
                continue;
            }
            let info = match table::describe(&self.clients, &name, &self.config).await {
                Ok(info) => info,
                Err(e @ DynError::Prerequisite { .. }) => {
                    tracing::warn!(table = %name, "a new table matches the filters but cannot be replicated: {e}");
                    self.refused.insert(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            tracing::info!(table = %name, "a new table matches the filters");
            self.events.send(SourceEvent::Schema(info.schema.clone())).await?;
            self.tables.insert(name.clone(), Arc::new(info));
            self.seed(&name, None, progress, readers).await?;
        }
        Ok(())
    }

    /// Tables the operator asked to copy again (`zetl resync`), seeded beside the streams.
    async fn serve_resyncs(&mut self, ctx: &SourceContext, readers: &mut Readers) -> Result<(), DynError> {
        if !ctx.resync_requested() {
            return Ok(());
        }
        let names: HashMap<_, _> = self.tables.values().map(|t| (t.id(), t.name.clone())).collect();
        for id in ctx.take_resync_requests(|id| names.contains_key(id)) {
            let Some(name) = names.get(&id) else { continue };
            if let Err(e) = self.seed(name, None, &ctx.progress, readers).await {
                // Not begun: asked again for the run that follows this error.
                if let Ok(mut queue) = ctx.resync.lock() {
                    queue.push(id);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sets `table`'s stream aside and starts its seed beside the others (or, `snapshot:
    /// never`, takes it as it is). Once its Scan is complete its stream is read again, into the
    /// copy, from the shards open now (after what this run had applied of them); a seed cut
    /// short by a restart (`continuing`) keeps the position committed with it.
    async fn seed(
        &mut self,
        name: &str,
        continuing: Option<Continue>,
        progress: &Progress,
        readers: &mut Readers,
    ) -> Result<(), DynError> {
        let Some(table) = self.tables.get(name).cloned() else { return Ok(()) };
        if self.fills.seeding(name) {
            tracing::info!(table = %name, "already being copied; its copy under way is new enough");
            return Ok(());
        }
        *self.epochs.entry(name.to_string()).or_default() += 1;
        readers.stop_table(name);
        // Committed with the seed's `FillStart`, the table's position is where the seed began
        // or where its stream has been read to since.
        let continuing = continuing.filter(|_| self.pos.tables.contains_key(name));
        let live = self.live.remove(name).unwrap_or_default();
        if continuing.is_none() {
            let listed = list_shards(&self.clients, &table.stream_arn).await?;
            let began = Some(zetl_core::pipeline::now_us());
            let at_copy = TablePos {
                stream: table.stream_arn.clone(),
                shards: shards::open_at_copy(&listed, self.pos.tables.get(name), &live),
                copy_began_us: began,
            };
            self.pos.tables.insert(name.to_string(), at_copy);
        }
        // The position that reads the table's stream again from the seed's beginning reaches
        // the target in the transaction of its `FillStart`: a restart that finds the seed
        // under way reads from there.
        let never = self.filter.snapshot_mode(&table.id()) == SnapshotMode::Never;
        let resumed = continuing.as_ref().map(|(_, rows)| *rows);
        self.events.send(SourceEvent::Begin { time_us: None }).await?;
        if !never {
            self.events.send(SourceEvent::FillStart { table: table.id(), resumed }).await?;
        }
        self.events.send(SourceEvent::Commit { position: self.position(), commit_time_us: None }).await?;
        if never {
            return Ok(adopt_without_copy(&self.events, table.schema.clone(), CopiedTable::default()).await?);
        }
        progress.estimate_rows(&table.id(), table.item_count.max(0) as u64);
        match resumed {
            Some(rows) => {
                tracing::info!(table = %name, rows, "the copy made while streaming continues after the rows committed")
            }
            None => tracing::info!(table = %name, "copying the table while streaming"),
        }
        self.fills.spawn(table, continuing);
        Ok(())
    }

    /// Describes each table's stream and starts a reader for every shard that may be read.
    async fn start_ready(
        &mut self,
        tx: &mpsc::Sender<Msg>,
        room: &Arc<Semaphore>,
        readers: &mut Readers,
    ) -> Result<(), DynError> {
        for (name, table) in &self.tables {
            let empty = TablePos { stream: table.stream_arn.clone(), shards: BTreeMap::new(), copy_began_us: None };
            if self.fills.seeding(name) && !self.catching_up.contains_key(name) {
                let pos = self.pos.tables.get(name).unwrap_or(&empty);
                shards::check_retention(pos, zetl_core::pipeline::now_us())
                    .map_err(|gap| DynError::Gap(format!("table {name}: {gap}")))?;
                continue;
            }
            let listed = list_shards(&self.clients, &table.stream_arn).await?;
            self.open_shards.insert(name.clone(), listed.iter().filter(|s| s.open).map(|s| s.id.clone()).collect());
            if let Some(pos) = self.pos.tables.get_mut(name) {
                shards::forget_trimmed(pos, &listed);
            }
            let pos = self.pos.tables.get(name).unwrap_or(&empty);
            shards::check_retention(pos, zetl_core::pipeline::now_us())
                .map_err(|gap| DynError::Gap(format!("table {name}: {gap}")))?;
            let ready = shards::ready(&listed, pos, &readers.busy(name))
                .map_err(|gap| DynError::Gap(format!("table {name}: {gap}")))?;
            let epoch = self.epochs.get(name).copied().unwrap_or_default();
            for (shard, start) in ready {
                tracing::debug!(table = %name, shard = %shard, ?start, "reading shard");
                let reader = Reader {
                    clients: self.clients.clone(),
                    table: table.clone(),
                    shard,
                    epoch,
                    tx: tx.clone(),
                    room: room.clone(),
                };
                readers.spawn(reader, start);
            }
        }
        Ok(())
    }

    async fn apply(&mut self, table: &str, shard: &str, records: Vec<Decoded>, finished: bool) -> Result<(), DynError> {
        let Some(info) = self.tables.get(table).cloned() else { return Ok(()) };
        let entry = self.pos.tables.entry(table.to_string()).or_insert_with(|| TablePos {
            stream: info.stream_arn.clone(),
            shards: BTreeMap::new(),
            copy_began_us: None,
        });
        let last = records.last().map(|r| (r.seq.clone(), r.at_us));
        if finished {
            entry.shards.insert(shard.to_string(), ShardPos::Done);
        } else if let Some((seq, _)) = &last {
            entry.shards.insert(shard.to_string(), ShardPos::After(seq.clone()));
        }
        if !entry.shards.values().any(|s| *s == ShardPos::Open) {
            entry.copy_began_us = None;
        }
        if records.is_empty() {
            return Ok(self.events.send(SourceEvent::Heartbeat { position: self.position() }).await?);
        }
        let time_us = records.first().and_then(|r| r.at_us);
        self.events.send(SourceEvent::Begin { time_us }).await?;
        let kinds = records.into_iter().map(|r| r.change.kind).collect();
        self.events.send(SourceEvent::Changes { table: info.id(), kinds }).await?;
        let commit_time_us = last.and_then(|(_, at)| at);
        Ok(self.events.send(SourceEvent::Commit { position: self.position(), commit_time_us }).await?)
    }
}

/// Every shard of a stream (DescribeStream, page by page).
pub async fn list_shards(clients: &Clients, arn: &str) -> Result<Vec<Listed>, DynError> {
    let mut out = Vec::new();
    let (mut start, mut prev): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = clients
            .streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| api(format!("describing stream {arn}"), e))?;
        let Some(desc) = page.stream_description() else { break };
        for s in desc.shards() {
            if let Some(id) = s.shard_id() {
                let open = s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_none();
                out.push(Listed { id: id.to_string(), parent: s.parent_shard_id().map(str::to_string), open });
            }
        }
        // A server that ignores paging would repeat its last shard: stop there.
        match desc.last_evaluated_shard_id() {
            Some(last) if prev.as_deref() != Some(last) => {
                prev = Some(last.to_string());
                start = prev.clone();
            }
            _ => break,
        }
    }
    Ok(out)
}
