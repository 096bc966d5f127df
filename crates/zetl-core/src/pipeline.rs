//! The writer half of an integration: takes source events in order, groups whole source
//! transactions into batches, applies them to the target with the checkpoint in the same target
//! transaction, and only then tells the source what it may acknowledge.

use crate::apply::{ApplyPolicy, ResyncMode, TruncatePolicy};
use crate::apply_thread::{ApplyThread, Done, Job};
use crate::batch::Batch;
use crate::channel::EventReceiver;
use crate::config::BatchConfig;
use crate::error::{PipelineError, Retry};
use crate::event::{Checkpoint, CopyCursor, Phase, Position, SourceEvent, TableState};
use crate::model::{ChangeKind, TableId, TableSchema, Value};
use crate::target::Target;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Memory the events in flight between source and writer may hold.
pub const CHANNEL_BYTES: usize = 16 << 20;

/// An initial copy commits every this many `batch.max_bytes` of rows. Its rows are appended
/// to the target as they come, not held, so the interval costs no memory of ours; each commit
/// costs the target time (halving the interval cost DuckDB a third of its copy rate).
const COPY_COMMIT_BATCHES: usize = 4;

/// How often an idle source's position is written to the target.
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

pub use crate::progress::Progress;

/// Looked up for every change: a fast hash, not SipHash (table names are not attacker-chosen
/// keys of an unbounded map).
type TableMap<V> = HashMap<TableId, V, foldhash::fast::RandomState>;

pub struct Writer<T: Target> {
    /// `None` while a batch is away on the apply thread (see [`Writer::target`]).
    target: Option<T>,
    apply_thread: Option<ApplyThread<T>>,
    /// The batch handed to the target and not yet landed: what it reports when it does.
    away: Option<Away>,
    /// A batch's outcome when there is no apply thread (it ran on this one).
    landed: Option<Done<T>>,
    config: BatchConfig,
    schemas: TableMap<TableSchema>,
    batch: Batch,
    /// The batch back from the target, cleared, to gather the one after next.
    spare: Batch,
    acks: watch::Sender<Position>,
    progress: Arc<Progress>,
    /// A target transaction is open, as far as the writer goes: the target's own begins
    /// with the first thing asked of it (`begun`), so that a batch away need not land first.
    open: bool,
    begun: bool,
    /// A source transaction has begun and not yet committed.
    in_source_txn: bool,
    /// Phase and position the next target commit stores.
    phase: Phase,
    position: Option<Position>,
    pending_txns: u64,
    /// Tables between CopyStart and CopyDone.
    copying: usize,
    /// Tables being filled beside the stream (between FillStart and CopyDone), with the rows
    /// their copy holds so far.
    filling: TableMap<u64>,
    /// Tables being filled aside (`apply.resync: replace`): table → the table filled, which
    /// takes the table's changes until it replaces the table (see [`Target::fill_aside`]).
    aside: TableMap<TableId>,
    /// Changes of the source transaction in progress.
    txn_changes: u64,
    pending_commit_time: Option<i64>,
    /// The commit time of the oldest source transaction in the batch being gathered.
    oldest_gathered: Option<i64>,
    /// The newest idle position seen while nothing was pending.
    idle_position: Option<Position>,
    opened_at: Instant,
    last_commit: Instant,
    copied_since_commit: usize,
    apply: ApplyPolicy,
    /// Values of columns the next Schema of a table adds, for the rows before them.
    fills: TableMap<Vec<(String, Value)>>,
}

impl<T: Target> Writer<T> {
    pub fn new(target: T, config: BatchConfig, acks: watch::Sender<Position>, progress: Arc<Progress>) -> Self {
        let changelog = config.changelog;
        Self {
            target: Some(target),
            apply_thread: None,
            away: None,
            landed: None,
            config,
            schemas: TableMap::default(),
            batch: Batch::new(changelog),
            spare: Batch::new(changelog),
            acks,
            progress,
            open: false,
            begun: false,
            in_source_txn: false,
            // Until the initial copy is done (`SnapshotDone`) or a checkpoint says otherwise
            // (`resuming_from`): a commit before then must not store a streaming phase without
            // a position, which no restart could resume from.
            phase: Phase::Snapshotting,
            position: None,
            pending_txns: 0,
            copying: 0,
            filling: TableMap::default(),
            aside: TableMap::default(),
            txn_changes: 0,
            pending_commit_time: None,
            oldest_gathered: None,
            idle_position: None,
            opened_at: Instant::now(),
            last_commit: Instant::now(),
            copied_since_commit: 0,
            apply: ApplyPolicy::default(),
            fills: TableMap::default(),
        }
    }

    /// Per-table settings: source TRUNCATEs of tables with `truncate: ignore` are dropped here
    /// (delete modes are the target's to apply).
    pub fn with_apply_policy(mut self, apply: ApplyPolicy) -> Self {
        self.apply = apply;
        self
    }

    /// Continues from the checkpoint the target holds: tables copied while streaming then
    /// keep the stream's phase and position.
    pub fn resuming_from(mut self, checkpoint: Option<&Checkpoint>) -> Self {
        if let Some(c) = checkpoint.filter(|c| c.phase == Phase::Streaming) {
            self.phase = Phase::Streaming;
            self.position = Some(c.position.clone());
            self.progress.phase.set(Phase::Streaming);
        }
        self
    }

    /// Runs until the source closes the channel. A source transaction left incomplete is
    /// abandoned (it was not acknowledged, so the source sends it again after a restart).
    pub fn run(mut self, events: EventReceiver) -> Result<T, PipelineError> {
        std::thread::scope(|scope| {
            self.apply_thread = Some(ApplyThread::start(scope)?);
            let ran = self.run_on(events);
            // Ends the apply thread (the scope waits for it).
            self.apply_thread = None;
            ran
        })?;
        self.target.take().ok_or_else(target_away)
    }

    fn run_on(&mut self, mut events: EventReceiver) -> Result<(), PipelineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| PipelineError::Protocol(format!("cannot start the writer's timer: {e}")))?;
        let max_wait = Duration::from_millis(self.config.max_wait_ms);
        loop {
            // While events wait, they are gathered beside the batch away; once none does, that
            // batch lands (its commit is acknowledged) before this thread waits for more.
            let event = match events.try_recv() {
                Some(event) => {
                    // Acknowledged as soon as committed, not when the next batch is handed over.
                    self.land_if(false)?;
                    Some(event)
                }
                None => {
                    self.land()?;
                    // A table copied while streaming (new, or resynced) lands in one target
                    // transaction: readers see the old table until the new copy is complete.
                    let copy_in_flight = self.phase == Phase::Streaming && self.copying > 0;
                    if self.open && !self.in_source_txn && !copy_in_flight {
                        let left = max_wait.saturating_sub(self.opened_at.elapsed());
                        match runtime.block_on(async { tokio::time::timeout(left, events.recv()).await }) {
                            Ok(e) => e,
                            Err(_) => {
                                self.commit()?;
                                continue;
                            }
                        }
                    } else {
                        events.blocking_recv()
                    }
                }
            };
            let Some((event, room)) = event else { break };
            // The room an event took is its weight, weighed once by the source.
            self.handle(event, room.num_permits())?;
            drop(room);
        }
        self.land()?;
        if self.open {
            // A source transaction cut off, or a table copy made while streaming cut off:
            // neither may become visible half done.
            if self.in_source_txn || (self.phase == Phase::Streaming && self.copying > 0) {
                if self.begun {
                    self.target()?.rollback().map_err(target_err)?;
                }
                self.open = false;
                self.begun = false;
                self.batch.clear();
            } else {
                self.commit()?;
            }
        }
        self.land()
    }

    fn handle(&mut self, event: SourceEvent, weight: usize) -> Result<(), PipelineError> {
        match event {
            SourceEvent::Schema(schema) => {
                if let Some(col) = schema.reserved_column() {
                    return Err(PipelineError::Schema {
                        table: schema.id.to_string(),
                        problem: format!(
                            "column `{}`: names starting with `{}` are zetl's own at the target; rename the column at the source or exclude the table",
                            col.name,
                            crate::model::RESERVED_PREFIX
                        ),
                    });
                }
                let aside = self.aside.get(&schema.id).map(|a| TableSchema { id: a.clone(), ..schema.clone() });
                let mut needs_commit = self.target()?.alter_needs_commit(&schema).map_err(target_err)?;
                if let Some(aside) = &aside {
                    needs_commit |= self.target()?.alter_needs_commit(aside).map_err(target_err)?;
                }
                if self.open && needs_commit {
                    if self.txn_changes > 0 {
                        tracing::warn!(table = %schema.id, "a source transaction changed the table's columns after changing its rows; its first part is committed separately");
                    }
                    self.commit()?;
                }
                self.ensure_open();
                // Staged changes were captured with the old column list: write them first.
                self.flush()?;
                let fills = self.fills.remove(&schema.id).unwrap_or_default();
                // The table replaced at the end of a fill aside is brought up too: it keeps the
                // shape of the source for whatever its users built on it.
                for schema in std::iter::once(schema).chain(aside) {
                    self.bring_up(&schema, &fills)?;
                    self.schemas.insert(schema.id.clone(), schema);
                }
            }
            SourceEvent::AddedColumnValue { table, column, value } => {
                self.fills.entry(table).or_default().push((column, value));
            }
            SourceEvent::CopyStart(table) => {
                self.ensure_open();
                self.stop_filling(&table, false)?;
                self.phase_for_copy();
                self.target()?.copy_start(&table).map_err(target_err)?;
                self.progress.set_copying(&table, true);
                self.copying += 1;
            }
            SourceEvent::CopyResume { table, rows } => {
                self.ensure_open();
                self.phase_for_copy();
                self.target()?.copy_holds(&table, rows).map_err(target_err)?;
                self.progress.add_copied(&table.to_string(), rows);
                self.progress.set_copying(&table, true);
                self.copying += 1;
            }
            SourceEvent::FillStart { table, resumed } => {
                self.ensure_open();
                // Earlier changes of the table in this batch go before it is emptied.
                self.flush()?;
                let aside = self.start_aside(&table, resumed.is_some())?;
                match resumed {
                    Some(rows) => {
                        self.target()?.copy_holds(&table, rows).map_err(target_err)?;
                        self.progress.add_copied(&table.to_string(), rows);
                    }
                    None if aside => {}
                    None => self.target()?.copy_start(&table).map_err(target_err)?,
                }
                self.progress.set_copying(&table, true);
                self.filling.insert(table, resumed.unwrap_or(0));
            }
            SourceEvent::CopyRows { table, rows, after } if self.filling.contains_key(&table) => {
                self.ensure_open();
                let schema = self
                    .schemas
                    .get(self.place(&table))
                    .ok_or_else(|| PipelineError::Protocol(format!("rows of {table} before its schema")))?;
                let n = rows.len() as u64;
                for row in rows {
                    self.batch.push_copied(schema, row);
                }
                let holds = self.filling.get_mut(&table).map(|h| {
                    *h += n;
                    *h
                });
                self.target()?.copy_holds(&table, holds.unwrap_or(n)).map_err(target_err)?;
                if let Some(after) = after {
                    self.target()?.copy_reached(&table, &after).map_err(target_err)?;
                }
                self.progress.add_copied(&table.to_string(), n);
                if self.batch_full() {
                    self.flush()?;
                }
            }
            SourceEvent::CopyRows { table, rows, after } => {
                self.ensure_open();
                if !rows.is_empty() {
                    self.target()?.copy_rows(&table, &rows).map_err(target_err)?;
                }
                self.copied(&table, rows.len(), after, weight)?;
            }
            SourceEvent::CopyColumns { table, batch, after } => {
                self.ensure_open();
                if !self.filling.contains_key(&table)
                    && self.target()?.copy_columns(&table, &batch).map_err(target_err)?
                {
                    return self.copied(&table, batch.num_rows(), after, weight);
                }
                let rows =
                    self.schemas.get(&table).and_then(|schema| crate::columns::rows_of(schema, &batch)).ok_or_else(
                        || PipelineError::Protocol(format!("copied columns of {table} do not match its schema")),
                    )?;
                self.handle(SourceEvent::CopyRows { table, rows, after }, weight)?;
            }
            SourceEvent::CopyDone { table, rows, copied } => {
                self.ensure_open();
                if !self.stop_filling(&table, true)? {
                    self.copying = self.copying.saturating_sub(1);
                }
                self.target()?.copy_done(&table, rows, &copied).map_err(target_err)?;
                self.progress.set_copying(&table, false);
            }
            SourceEvent::SnapshotStart { position } => {
                // Stored with the phase still `snapshotting`: never acknowledged, only kept.
                self.position = Some(position);
                self.progress.phase.set(Phase::Snapshotting);
            }
            SourceEvent::SnapshotDone { position } => {
                self.ensure_open();
                self.phase = Phase::Streaming;
                self.position = Some(position);
                self.commit()?;
                // Said when it is true: the commit may still be on the apply thread.
                self.land()?;
                tracing::info!("initial copy committed at the target");
            }
            SourceEvent::Begin { time_us } => {
                self.ensure_open();
                self.in_source_txn = true;
                self.txn_changes = 0;
                if let Some(t) = time_us {
                    self.pending_since(t);
                }
            }
            SourceEvent::Changes { table, kinds } => self.changes(&table, kinds.into_iter(), weight)?,
            SourceEvent::Truncate(tables) => {
                for table in tables.iter().filter(|t| self.apply.for_table(t).truncate == TruncatePolicy::Apply) {
                    let place = self.place(table).clone();
                    self.batch.truncate(&place);
                }
            }
            SourceEvent::Commit { position, commit_time_us } => {
                self.in_source_txn = false;
                self.idle_position = None;
                self.batch.source_committed(&position, commit_time_us);
                self.position = Some(position);
                self.pending_txns += 1;
                if let Some(t) = commit_time_us {
                    self.pending_commit_time = Some(t);
                    self.pending_since(t);
                }
                let full = self.batch_full();
                if self.opened_at.elapsed() >= Duration::from_millis(self.config.max_wait_ms)
                    || full && !self.config.commit_by_time_only
                {
                    self.commit()?;
                } else if full {
                    self.flush()?;
                }
            }
            SourceEvent::ResyncRequired { table, reason } => {
                tracing::warn!(table = %table, reason, "the table will be copied again");
                self.ensure_open();
                if self.stop_filling(&table, false)? {
                    self.progress.set_copying(&table, false);
                }
                self.target()?
                    .mark_tables(std::slice::from_ref(&table), TableState::ResyncRequired, Some(&reason))
                    .map_err(target_err)?;
                self.progress.resyncs_required.fetch_add(1, Ordering::Relaxed);
            }
            SourceEvent::Heartbeat { position } => {
                if self.open {
                    self.idle_position = Some(position);
                } else if self.phase == Phase::Streaming && self.last_commit.elapsed() >= IDLE_CHECKPOINT_EVERY {
                    // Store the idle position now and then, so that a quiet source in a busy
                    // cluster does not look lagged in `status` (lag in bytes is measured
                    // from the stored checkpoint).
                    self.position = Some(position);
                    self.ensure_open();
                    self.commit()?;
                } else {
                    // Nothing held here, but a commit may still be away: the source may skip
                    // past it only once it is made.
                    self.land()?;
                    self.acks.send_replace(position);
                }
            }
        }
        Ok(())
    }

    fn phase_for_copy(&mut self) {
        if self.position.is_none() {
            self.phase = Phase::Snapshotting;
            self.progress.phase.set(Phase::Snapshotting);
        }
    }

    /// Opens the writer's transaction; the target's begins with the first call it gets.
    fn ensure_open(&mut self) {
        if !self.open {
            self.open = true;
            self.opened_at = Instant::now();
        }
    }

    /// The batch gathered holds its share of `batch.max_bytes`: half, the other half being
    /// the batch away on the apply thread.
    fn batch_full(&self) -> bool {
        self.batch.weight() >= self.config.max_bytes / 2
    }

    /// The target, back from the apply thread, with its transaction open if the writer's is.
    fn target(&mut self) -> Result<&mut T, PipelineError> {
        self.land()?;
        let begin = self.open && !self.begun;
        let target = self.target.as_mut().ok_or_else(target_away)?;
        if begin {
            target.begin().map_err(target_err)?;
            self.begun = true;
        }
        Ok(target)
    }

    /// `rows` copied rows of `table` are written (not a fill's): where the copy stands after
    /// them is noted, and an initial copy is committed every [`COPY_COMMIT_BATCHES`] ×
    /// `max_bytes`.
    fn copied(
        &mut self,
        table: &TableId,
        rows: usize,
        after: Option<CopyCursor>,
        weight: usize,
    ) -> Result<(), PipelineError> {
        self.copied_since_commit += weight;
        if let Some(after) = after {
            self.target()?.copy_reached(table, &after).map_err(target_err)?;
        }
        self.progress.add_copied(&table.to_string(), rows as u64);
        // An initial copy is not visible as a whole before it completes anyway, so its rows are
        // committed in pieces: this keeps the target's transaction (and memory) small, and is
        // where a resumable copy continues after a crash.
        let every = self.config.max_bytes.saturating_mul(COPY_COMMIT_BATCHES);
        if self.phase == Phase::Snapshotting && self.copied_since_commit >= every {
            self.commit()?;
        }
        Ok(())
    }

    /// Where the changes of `table` go: the table itself, or the table filled aside to
    /// replace it.
    fn place<'a>(&'a self, table: &'a TableId) -> &'a TableId {
        self.aside.get(table).unwrap_or(table)
    }

    /// Creates the table, or brings it up to `schema`; `fills` are the values of the columns it
    /// adds for the rows before them.
    fn bring_up(&mut self, schema: &TableSchema, fills: &[(String, Value)]) -> Result<(), PipelineError> {
        let added = self.target()?.ensure_table(schema).map_err(target_err)?;
        for (column, value) in fills {
            // A column the target had already (a restart replaying the schema change)
            // keeps its values: rows written since may hold others.
            if let (true, Some(i)) = (added.contains(column), schema.column_index(column)) {
                self.target()?.fill_column(schema, i, value).map_err(target_err)?;
                tracing::info!(table = %schema.id, column, "filled the added column of the existing rows");
            }
        }
        Ok(())
    }

    /// A fill of `table` begins (or, `resumed`, continues after a restart): aside, when its
    /// settings ask for that (a resumed fill goes on where it was written) and the target can.
    /// Returns whether it fills aside.
    fn start_aside(&mut self, table: &TableId, resumed: bool) -> Result<bool, PipelineError> {
        let wanted = resumed || self.apply.for_table(table).resync == ResyncMode::Replace;
        let Some(schema) = self.schemas.get(table).filter(|_| wanted) else { return Ok(false) };
        let aside = TableSchema { id: table.fill_aside(), ..schema.clone() };
        if !self.target()?.fill_aside(table, &aside.id, resumed).map_err(target_err)? {
            return Ok(false);
        }
        self.bring_up(&aside, &[])?;
        tracing::info!(table = %table, aside = %aside.id, "filling a table aside; it replaces the table when complete");
        self.aside.insert(table.clone(), aside.id.clone());
        self.schemas.insert(aside.id.clone(), aside);
        Ok(true)
    }

    /// The fill of `table` ends: `complete`, or given up (copied whole instead, or to be
    /// copied again). Its changes batched so far are written first, as those of a table being
    /// filled; a table filled aside then replaces it, or is dropped. Returns whether it was
    /// being filled.
    fn stop_filling(&mut self, table: &TableId, complete: bool) -> Result<bool, PipelineError> {
        if !self.filling.contains_key(table) {
            return Ok(false);
        }
        self.flush()?;
        self.filling.remove(table);
        if let Some(aside) = self.aside.remove(table) {
            self.schemas.remove(&aside);
            if complete {
                let started = Instant::now();
                self.target()?.replace_with_aside(table, &aside).map_err(target_err)?;
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(table = %table, seconds, "the table filled aside replaced the table");
            } else {
                self.target()?.drop_aside(&aside).map_err(target_err)?;
            }
        }
        Ok(true)
    }

    /// Changes to `table` that took `weight` bytes of room in the channel.
    fn changes(
        &mut self,
        table: &TableId,
        kinds: impl ExactSizeIterator<Item = ChangeKind>,
        weight: usize,
    ) -> Result<(), PipelineError> {
        if !self.in_source_txn {
            return Err(PipelineError::Protocol(format!("change to {table} outside a transaction")));
        }
        let schema = self
            .schemas
            .get(self.place(table))
            .ok_or_else(|| PipelineError::Protocol(format!("change to {table} before its schema")))?;
        self.txn_changes += kinds.len() as u64;
        self.batch.push_all(schema, table, kinds, weight);
        if self.batch_full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Lag is measured from the oldest transaction the target does not have: one begun or
    /// committed at the source at `time_us` is now among them.
    fn pending_since(&mut self, time_us: i64) {
        self.oldest_gathered.get_or_insert(time_us);
        let pending = &self.progress.oldest_pending_commit_us;
        let _ = pending.compare_exchange(0, time_us, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Writes the batch gathered into the open target transaction.
    fn flush(&mut self) -> Result<(), PipelineError> {
        self.send(None)
    }

    fn commit(&mut self) -> Result<(), PipelineError> {
        if !self.open {
            return Ok(());
        }
        let position = self.position.clone().unwrap_or_default();
        let streaming = self.phase == Phase::Streaming;
        let committed = Committed {
            txns: std::mem::take(&mut self.pending_txns),
            commit_time_us: self.pending_commit_time.take(),
            ack: streaming.then(|| self.idle_position.take().unwrap_or_else(|| position.clone())),
            streaming,
        };
        self.send(Some((Checkpoint { position, phase: self.phase }, committed)))?;
        self.open = false;
        self.begun = false;
        self.oldest_gathered = None;
        self.last_commit = Instant::now();
        self.copied_since_commit = 0;
        Ok(())
    }

    /// Hands the batch gathered (and the commit, if any) to the target, on the apply thread
    /// when there is one; the batch away before it lands first.
    fn send(&mut self, commit: Option<(Checkpoint, Committed)>) -> Result<(), PipelineError> {
        for table in self.filling.keys() {
            self.batch.mark_filling(self.aside.get(table).unwrap_or(table));
        }
        if self.batch.is_empty() && commit.is_none() {
            self.batch.clear();
            return Ok(());
        }
        self.land()?;
        let target = self.target.take().ok_or_else(target_away)?;
        let batch = std::mem::replace(&mut self.batch, std::mem::take(&mut self.spare));
        let (checkpoint, committed) = commit.unzip();
        let job = Job { target, batch, begin: self.open && !self.begun, commit: checkpoint };
        self.begun |= self.open;
        self.away = Some(Away { committed });
        let unsent = match &self.apply_thread {
            Some(thread) => thread.send(job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            self.landed = Some(job.run());
        }
        Ok(())
    }

    /// Waits for the batch away, if any, and reports it: applied, and committed if it was.
    fn land(&mut self) -> Result<(), PipelineError> {
        self.land_if(true)
    }

    /// Lands the batch away if it is back (`wait`: once it is).
    fn land_if(&mut self, wait: bool) -> Result<(), PipelineError> {
        if self.away.is_none() {
            return Ok(());
        }
        let done = match (self.landed.take(), &self.apply_thread) {
            (Some(done), _) => done,
            (None, Some(thread)) => match thread.outcome(wait)? {
                Some(done) => done,
                None => return Ok(()),
            },
            (None, None) => return Err(target_away()),
        };
        let away = self.away.take().ok_or_else(target_away)?;
        let Done { target, mut batch, result, took } = done;
        let dead_letters = target.dead_letters();
        self.target = Some(target);
        result.map_err(target_err)?;
        let p = &self.progress;
        if !batch.is_empty() {
            p.changes_applied.fetch_add(batch.changes(), Ordering::Relaxed);
            p.add_batch(&batch);
        }
        batch.clear();
        self.spare = batch;
        let Some(c) = away.committed else { return Ok(()) };
        p.transactions_applied.fetch_add(c.txns, Ordering::Relaxed);
        p.batches_committed.fetch_add(1, Ordering::Relaxed);
        p.last_target_commit_us.store(now_us(), Ordering::Relaxed);
        p.dead_letters.store(dead_letters, Ordering::Relaxed);
        p.observe_apply(took.as_secs_f64());
        if let Some(t) = c.commit_time_us {
            p.last_commit_time_us.store(t, Ordering::Relaxed);
        }
        // Lag is now that of the oldest transaction gathered since (none: caught up).
        p.oldest_pending_commit_us.store(self.oldest_gathered.unwrap_or(0), Ordering::Relaxed);
        if c.streaming {
            p.phase.set(Phase::Streaming);
            if let Some(ack) = c.ack {
                self.acks.send_replace(ack);
            }
        }
        Ok(())
    }
}

/// What a batch handed to the target reports when it lands.
struct Away {
    committed: Option<Committed>,
}

/// A commit handed to the target: what it makes durable.
struct Committed {
    txns: u64,
    commit_time_us: Option<i64>,
    /// The position the source may acknowledge once committed (streaming only).
    ack: Option<Position>,
    streaming: bool,
}

fn target_away() -> PipelineError {
    PipelineError::Protocol("the target did not come back from the apply thread".into())
}

fn target_err<E: std::error::Error + Retry + Send + Sync + 'static>(e: E) -> PipelineError {
    PipelineError::Target { transient: e.is_transient(), cause: Box::new(e) }
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CopiedTable, CopyCursor, CopyUnderWay, TableState};
    use crate::model::{ChangeKind, Column, ColumnType, Row, RowIdentity, Value};

    /// Records what the writer asks of a target (our own trait, not a server).
    #[derive(Default)]
    struct Recorder {
        log: Vec<String>,
        alters: bool,
        /// The source commits each changelog batch carried.
        stamps: Vec<Vec<String>>,
        /// Commits fail, after a while.
        failing: bool,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    impl Retry for Never {
        fn is_transient(&self) -> bool {
            false
        }
    }

    impl Target for Recorder {
        type Error = Never;
        fn checkpoint(&mut self) -> Result<Option<Checkpoint>, Never> {
            Ok(None)
        }
        fn copied_tables(&mut self) -> Result<Vec<(TableId, CopiedTable)>, Never> {
            Ok(vec![])
        }
        fn copies_under_way(&mut self) -> Result<Vec<(TableId, CopyUnderWay)>, Never> {
            Ok(vec![])
        }
        fn mark_tables(&mut self, _: &[TableId], _: TableState, _: Option<&str>) -> Result<(), Never> {
            Ok(())
        }
        fn begin(&mut self) -> Result<(), Never> {
            self.log.push("begin".into());
            Ok(())
        }
        fn ensure_table(&mut self, s: &TableSchema) -> Result<Vec<String>, Never> {
            self.log.push(format!("table {}", s.columns.len()));
            Ok(vec![])
        }
        fn fill_column(&mut self, _: &TableSchema, _: usize, _: &Value) -> Result<(), Never> {
            Ok(())
        }
        fn alter_needs_commit(&mut self, _: &TableSchema) -> Result<bool, Never> {
            Ok(self.alters)
        }
        fn copy_start(&mut self, _: &TableId) -> Result<(), Never> {
            Ok(())
        }
        fn copy_rows(&mut self, _: &TableId, rows: &[Row]) -> Result<(), Never> {
            self.log.push(format!("copy {}", rows.len()));
            Ok(())
        }
        fn copy_reached(&mut self, _: &TableId, after: &CopyCursor) -> Result<(), Never> {
            self.log.push(format!("reached {} {}", after.part, after.token));
            Ok(())
        }
        fn copy_holds(&mut self, _: &TableId, rows: u64) -> Result<(), Never> {
            self.log.push(format!("resume {rows}"));
            Ok(())
        }
        fn copy_done(&mut self, _: &TableId, _: u64, _: &CopiedTable) -> Result<(), Never> {
            Ok(())
        }
        fn apply(&mut self, b: &Batch) -> Result<(), Never> {
            self.log.push(format!("apply {}", b.changes()));
            self.stamps.push(b.commits.iter().map(|c| c.position.0.clone()).collect());
            Ok(())
        }
        fn commit(&mut self, c: &Checkpoint) -> Result<(), Never> {
            if self.failing {
                std::thread::sleep(Duration::from_millis(100));
                return Err(Never);
            }
            self.log.push(format!("commit {} {}", c.position, c.phase.as_str()));
            Ok(())
        }
        fn rollback(&mut self) -> Result<(), Never> {
            self.log.push("rollback".into());
            Ok(())
        }
        fn reset(&mut self) -> Result<(), Never> {
            Ok(())
        }
    }

    fn schema(cols: usize) -> TableSchema {
        let columns = (0..cols)
            .map(|i| Column {
                name: format!("c{i}"),
                ty: ColumnType::Int64,
                source_type: "int8".into(),
                nullable: true,
            })
            .collect();
        TableSchema { id: TableId::new("s", "t"), columns, identity: RowIdentity::Key(vec![0]) }
    }

    fn insert(id: i64) -> SourceEvent {
        SourceEvent::Changes {
            table: TableId::new("s", "t"),
            kinds: vec![ChangeKind::Insert { row: vec![Value::Int(id)] }],
        }
    }

    fn commit(pos: &str) -> SourceEvent {
        SourceEvent::Commit { position: Position(pos.into()), commit_time_us: Some(1) }
    }

    /// The stream resumed from a checkpoint at position 0.
    fn run(target: Recorder, events: Vec<SourceEvent>) -> (Vec<String>, Position) {
        let resumed = Checkpoint { position: Position("0".into()), phase: Phase::Streaming };
        run_from(target, events, Some(&resumed))
    }

    fn run_from(target: Recorder, events: Vec<SourceEvent>, from: Option<&Checkpoint>) -> (Vec<String>, Position) {
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for e in events {
            rt.block_on(tx.send(e)).expect("open");
        }
        drop(tx);
        let (acks, acks_rx) = watch::channel(Position::default());
        let config = BatchConfig { max_wait_ms: 60_000, max_bytes: 1 << 20, ..BatchConfig::default() };
        let writer = Writer::new(target, config, acks, Arc::new(Progress::default())).resuming_from(from);
        let target = writer.run(rx).expect("runs");
        let acked = acks_rx.borrow().clone();
        (target.log, acked)
    }

    #[test]
    fn a_changelog_commit_reaches_the_target_even_without_changes_after_a_flush() {
        // Every change fills a batch: the transaction's commit comes alone in the last one,
        // and its position must still reach the target before the target commits.
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for e in
            [SourceEvent::Schema(schema(1)), SourceEvent::Begin { time_us: None }, insert(1), insert(2), commit("7")]
        {
            rt.block_on(tx.send(e)).expect("open");
        }
        drop(tx);
        let (acks, _) = watch::channel(Position::default());
        let config = BatchConfig { max_wait_ms: 60_000, max_bytes: 1, changelog: true, ..BatchConfig::default() };
        let streaming = Checkpoint { position: Position("0".into()), phase: Phase::Streaming };
        let writer = Writer::new(Recorder::default(), config, acks, Arc::new(Progress::default()));
        let target = writer.resuming_from(Some(&streaming)).run(rx).expect("runs");
        assert_eq!(target.stamps, vec![vec![], vec![], vec!["7".to_string()]], "{:?}", target.log);
        assert_eq!(target.log.last().map(String::as_str), Some("commit 7 streaming"), "{:?}", target.log);
    }

    #[test]
    fn a_fresh_start_never_stores_a_streaming_phase_without_a_position() {
        // A commit before the initial copy began (a schema sent, then the timer or the end).
        let (log, _) = run_from(Recorder::default(), vec![SourceEvent::Schema(schema(1))], None);
        assert_eq!(log.last().map(String::as_str), Some("commit  snapshotting"), "{log:?}");
    }

    /// Every transaction is a batch of its own (no wait): each is applied and committed on the
    /// apply thread while the next is gathered, in order, and all are counted and acknowledged.
    #[test]
    fn batches_applied_beside_the_next_keep_their_order() {
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(tx.send(SourceEvent::Schema(schema(1)))).expect("open");
        for i in 1..=50 {
            for e in [SourceEvent::Begin { time_us: None }, insert(i), commit(&i.to_string())] {
                rt.block_on(tx.send(e)).expect("open");
            }
        }
        drop(tx);
        let (acks, acks_rx) = watch::channel(Position::default());
        let config = BatchConfig { max_wait_ms: 0, max_bytes: 1 << 20, ..BatchConfig::default() };
        let progress = Arc::new(Progress::default());
        let streaming = Checkpoint { position: Position("0".into()), phase: Phase::Streaming };
        let writer = Writer::new(Recorder::default(), config, acks, progress.clone()).resuming_from(Some(&streaming));
        let log = writer.run(rx).expect("runs").log;
        let mut expected = vec!["begin".to_string(), "table 1".into(), "apply 1".into(), "commit 1 streaming".into()];
        for i in 2..=50 {
            expected.extend(["begin".to_string(), "apply 1".into(), format!("commit {i} streaming")]);
        }
        assert_eq!(log, expected);
        assert_eq!(*acks_rx.borrow(), Position("50".into()));
        assert_eq!(progress.transactions_applied.load(Ordering::Relaxed), 50);
        assert_eq!(progress.changes_applied.load(Ordering::Relaxed), 50);
        assert_eq!(progress.oldest_pending_commit_us.load(Ordering::Relaxed), 0, "nothing is pending");
    }

    /// A large transaction is applied for seconds before its commit is read: its lag counts
    /// from its begin, not from when the writer reaches its end.
    #[test]
    fn lag_counts_from_a_transactions_begin() {
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (acks, _) = watch::channel(Position::default());
        let progress = Arc::new(Progress::default());
        let streaming = Checkpoint { position: Position("0".into()), phase: Phase::Streaming };
        let writer = Writer::new(Recorder::default(), BatchConfig::default(), acks, progress.clone())
            .resuming_from(Some(&streaming));
        let pending = || progress.oldest_pending_commit_us.load(Ordering::Relaxed);
        std::thread::scope(|s| {
            let running = s.spawn(|| writer.run(rx).map(|_| ()));
            for e in [SourceEvent::Schema(schema(1)), SourceEvent::Begin { time_us: Some(5_000_000) }, insert(1)] {
                rt.block_on(tx.send(e)).expect("open");
            }
            let asked = Instant::now();
            while pending() == 0 && asked.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(pending(), 5_000_000, "the open transaction's lag counts from its begin");
            rt.block_on(tx.send(commit("1"))).expect("open");
            drop(tx);
            assert!(running.join().expect("writer thread").is_ok());
        });
        assert_eq!(pending(), 0, "committed: nothing is pending");
    }

    /// A heartbeat right behind a commit still on the apply thread is not acknowledged before
    /// that commit is made: here it fails, and nothing may be acknowledged.
    #[test]
    fn a_heartbeat_is_not_acknowledged_past_a_commit_not_yet_made() {
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let heartbeat = SourceEvent::Heartbeat { position: Position("9".into()) };
        for e in
            [SourceEvent::Schema(schema(1)), SourceEvent::Begin { time_us: None }, insert(1), commit("1"), heartbeat]
        {
            rt.block_on(tx.send(e)).expect("open");
        }
        drop(tx);
        let (acks, acks_rx) = watch::channel(Position::default());
        let config = BatchConfig { max_wait_ms: 0, max_bytes: 1 << 20, ..BatchConfig::default() };
        let streaming = Checkpoint { position: Position("0".into()), phase: Phase::Streaming };
        let target = Recorder { failing: true, ..Recorder::default() };
        let writer = Writer::new(target, config, acks, Arc::new(Progress::default())).resuming_from(Some(&streaming));
        assert!(writer.run(rx).is_err(), "the commit failed");
        assert_eq!(*acks_rx.borrow(), Position::default());
    }

    #[test]
    fn whole_transactions_share_one_commit_and_are_acked_after_it() {
        let events = vec![
            SourceEvent::Schema(schema(1)),
            SourceEvent::Begin { time_us: None },
            insert(1),
            commit("1"),
            SourceEvent::Begin { time_us: None },
            insert(2),
            commit("2"),
        ];
        let (log, acked) = run(Recorder::default(), events);
        assert_eq!(log, vec!["begin", "table 1", "apply 2", "commit 2 streaming"]);
        assert_eq!(acked, Position("2".into()));
    }

    #[test]
    fn a_transaction_cut_off_by_the_source_is_rolled_back_unacknowledged() {
        let events = vec![
            SourceEvent::Schema(schema(1)),
            SourceEvent::Begin { time_us: None },
            insert(1),
            commit("1"),
            SourceEvent::Begin { time_us: None },
            insert(2),
        ];
        let (log, acked) = run(Recorder::default(), events);
        assert_eq!(log.last().map(String::as_str), Some("rollback"));
        assert!(!log.iter().any(|l| l.starts_with("commit")));
        assert_eq!(acked, Position::default());
    }

    #[test]
    fn schema_change_that_needs_it_commits_what_came_before() {
        let events = vec![
            SourceEvent::Schema(schema(1)),
            SourceEvent::Begin { time_us: None },
            insert(1),
            commit("1"),
            SourceEvent::Begin { time_us: None },
            SourceEvent::Schema(schema(2)),
            insert(2),
            commit("2"),
        ];
        let (log, _) = run(Recorder { alters: true, ..Recorder::default() }, events);
        assert_eq!(
            log,
            vec![
                "begin",
                "table 1",
                "apply 1",
                "commit 1 streaming",
                "begin",
                "table 2",
                "apply 1",
                "commit 2 streaming"
            ]
        );
    }

    #[test]
    fn a_copy_made_while_streaming_and_cut_off_is_rolled_back() {
        let (tx, rx) = crate::channel::channel(1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let copy = vec![
            SourceEvent::Schema(schema(1)),
            SourceEvent::CopyStart(TableId::new("s", "t")),
            SourceEvent::CopyRows { table: TableId::new("s", "t"), rows: vec![vec![Value::Int(1)]], after: None },
        ];
        for e in copy {
            rt.block_on(tx.send(e)).expect("open");
        }
        drop(tx);
        let (acks, _) = watch::channel(Position::default());
        let config = BatchConfig { max_wait_ms: 0, max_bytes: 1 << 20, ..BatchConfig::default() };
        let streaming = Checkpoint { position: Position("5".into()), phase: Phase::Streaming };
        let writer = Writer::new(Recorder::default(), config, acks, Arc::new(Progress::default()));
        let log = writer.resuming_from(Some(&streaming)).run(rx).expect("runs").log;
        assert_eq!(log.last().map(String::as_str), Some("rollback"), "{log:?}");
        assert!(!log.iter().any(|l| l.starts_with("commit")), "{log:?}");
    }

    /// Copied columns reach a target that takes rows as the rows they hold, with their cursor.
    #[test]
    fn copied_columns_reach_a_row_target_as_rows() {
        let mut columns = crate::columns::ColumnsBuilder::for_table(&schema(2), 3);
        for i in 0..3 {
            for c in 0..2 {
                assert!(columns.column(c).expect("column").push(&Value::Int(i)));
            }
            assert!(columns.end_row());
        }
        let after = Some(CopyCursor { part: 0, token: "2".into() });
        let (log, _) = run(
            Recorder::default(),
            vec![
                SourceEvent::Schema(schema(2)),
                SourceEvent::CopyStart(TableId::new("s", "t")),
                SourceEvent::CopyColumns {
                    table: TableId::new("s", "t"),
                    batch: columns.finish().expect("batch"),
                    after,
                },
            ],
        );
        assert!(log.windows(2).any(|w| w == ["copy 3", "reached 0 2"]), "{log:?}");
    }

    #[test]
    fn idle_heartbeat_is_acknowledged_without_a_target_commit() {
        let (log, acked) = run(Recorder::default(), vec![SourceEvent::Heartbeat { position: Position("9".into()) }]);
        assert!(log.is_empty());
        assert_eq!(acked, Position("9".into()));
    }
}
