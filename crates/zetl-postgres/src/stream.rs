//! Following the slot: pgoutput messages become change events, whole transactions in commit
//! order; the position the target has committed is acknowledged back to the server.

use crate::catalog::{self, AddedColumn, TableInfo};
use crate::catalog::{quote_ident, quote_literal, quote_table};
use crate::copy_cut::CopyCut;
use crate::copy_text::parse_value;
use crate::error::{PgError, SqlContext};
use crate::lsn::Lsn;
use crate::pgoutput::{self, Message, OldTuple, Relation, ReplicaIdentity, TupleValue};
use crate::replication::{ReplMessage, ReplicationStream, PG_EPOCH_OFFSET_US};
use crate::spill::Spill;
use crate::types::{map_type, TypeCatalog};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;
use zetl_core::channel::EventSender;
use zetl_core::progress::Progress;
use zetl_core::source::take_ack;
use zetl_core::{ChangeKind, Column, Position, Row, RowIdentity, SourceEvent, TableId, TableSchema, Value};

/// How often the server hears from us even when nothing changes (well inside the default
/// `wal_sender_timeout` of 60 s).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// How many streamed xids a copy's snapshot is checked against: a transaction that stays
/// invisible after its commit was decoded is one a synchronous standby holds, and such waits
/// hold every later commit too.
const RECENT_XIDS: usize = 4096;

struct RelationState {
    schema: TableSchema,
    /// Not a replicated table (yet): its changes are skipped. The message is kept in case the
    /// table is adopted later (`adopt_ignored`).
    ignored: Option<Relation>,
    /// The pipeline has this schema. A Relation message changes nothing at the target by
    /// itself: the schema is sent before the first change that uses it, inside that change's
    /// transaction, so DDL in a transaction that aborts leaves no trace (no phantom column).
    sent: bool,
}

pub struct Streamer<'a> {
    pub sql: &'a Client,
    pub types: TypeCatalog,
    pub tables: HashMap<TableId, TableInfo>,
    /// Tables copied while streaming, with the transactions their copy holds.
    pub copied_at: HashMap<TableId, CopyCut>,
    /// Tables being filled beside the stream (see `fill`).
    pub filling: HashSet<TableId>,
    pub events: EventSender,
    relations: HashMap<u32, RelationState>,
    /// Replicated tables the stream cannot carry on with (seen under another name, so changes
    /// made under that name were skipped; a column type changed, which rewrote the table):
    /// copied again at the next discovery.
    recopy: HashSet<TableId>,
    emitted: HashMap<TableId, TableSchema>,
    /// The schemas the target holds (stored with its checkpoint), for tables resumed after a
    /// restart: what the first Relation message of each is compared with, so that a change
    /// made while zetl was stopped is seen. `emitted` takes over once a schema is sent.
    pub baseline: HashMap<TableId, TableSchema>,
    received: Lsn,
    acked: Lsn,
    in_txn: bool,
    txn_final_lsn: Lsn,
    txn_xid: u32,
    /// The xids of the last transactions streamed, newest last: a copy's snapshot must see
    /// them all (see `copy_cut`).
    recent_xids: VecDeque<u32>,
    /// Inside a Stream Start … Stream Stop block: the streamed transaction's xid.
    stream_xid: Option<u32>,
    spill: Spill,
    pub progress: Arc<Progress>,
    last_status: Instant,
    /// Events sent and messages received: the clock is read every [`CLOCK_EVERY`]th, not for
    /// each (reading it was a few per cent of the stream's time).
    sends: u32,
    received_messages: u32,
    held: Option<Held>,
}

const CLOCK_EVERY: u32 = 64;

/// Consecutive changes to one relation, not sent yet (see `Streamer::hold`).
struct Held {
    oid: u32,
    table: TableId,
    kinds: Vec<ChangeKind>,
    weight: usize,
}

/// At most this many changes, or this much weight, are held before they are sent: about a
/// binlog rows event's worth, small beside the channel's bound.
const HOLD_CHANGES: usize = 256;
const HOLD_WEIGHT: usize = 256 << 10;

/// Why the stream loop returned.
pub enum Pause {
    Stopped,
    /// Time to look for new tables (returned only between transactions).
    Discover,
}

impl<'a> Streamer<'a> {
    pub fn new(
        sql: &'a Client,
        types: TypeCatalog,
        tables: HashMap<TableId, TableInfo>,
        events: EventSender,
        start: Lsn,
        spill: Spill,
    ) -> Self {
        Self {
            stream_xid: None,
            spill,
            progress: Arc::new(Progress::default()),
            last_status: Instant::now(),
            sends: 0,
            received_messages: 0,
            held: None,
            sql,
            types,
            tables,
            copied_at: HashMap::new(),
            filling: HashSet::new(),
            events,
            relations: HashMap::new(),
            recopy: HashSet::new(),
            emitted: HashMap::new(),
            baseline: HashMap::new(),
            received: start,
            acked: start,
            in_txn: false,
            txn_final_lsn: Lsn(0),
            txn_xid: 0,
            recent_xids: VecDeque::new(),
        }
    }

    pub fn acked(&self) -> Lsn {
        self.acked
    }

    /// How far the server has sent the stream (every transaction that committed before it
    /// has been handled once the loop is between transactions).
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// Whether the stream has passed the transaction `xid` already.
    pub fn streamed_recently(&self, xid: u32) -> bool {
        self.recent_xids.contains(&xid)
    }

    /// Tables to copy again, marked since the last call (see `recopy`).
    pub fn take_recopy(&mut self) -> HashSet<TableId> {
        std::mem::take(&mut self.recopy)
    }

    /// Streams until stopped, or until `discover_every` has passed (between transactions).
    pub async fn run(
        &mut self,
        stream: &mut ReplicationStream,
        acks: &mut watch::Receiver<Position>,
        stop: &mut watch::Receiver<bool>,
        discover_every: Duration,
    ) -> Result<Pause, PgError> {
        let mut status = tokio::time::interval(STATUS_INTERVAL);
        let started = Instant::now();
        let discover = tokio::time::sleep_until((started + discover_every).into());
        tokio::pin!(discover);
        loop {
            if !self.in_txn && (*stop.borrow() || started.elapsed() >= discover_every) {
                stream.send_status(self.received, self.acked, false).await?;
                return Ok(if *stop.borrow() { Pause::Stopped } else { Pause::Discover });
            }
            tokio::select! {
                msg = stream.next() => match msg? {
                    ReplMessage::XLogData { wal_start, wal_end, sent_us, data } => {
                        self.received_messages = self.received_messages.wrapping_add(1);
                        if self.received_messages.is_multiple_of(CLOCK_EVERY) {
                            self.progress.source_clock.observe(sent_us, zetl_core::pipeline::now_us());
                        }
                        self.received = self.received.max(wal_end);
                        self.progress.source_log_position.store(self.received.0, Ordering::Relaxed);
                        self.handle(wal_start, &data, stream).await?;
                    }
                    ReplMessage::Keepalive { wal_end, sent_us, reply_requested } => {
                        self.progress.source_clock.observe(sent_us, zetl_core::pipeline::now_us());
                        self.received = self.received.max(wal_end);
                        self.progress.source_log_position.store(self.received.0, Ordering::Relaxed);
                        if !self.in_txn && self.stream_xid.is_none() {
                            // Idle: everything before wal_end has been sent, so once the target
                            // has what came before, wal_end itself may be acknowledged.
                            self.send(SourceEvent::Heartbeat { position: Position(wal_end.to_string()) }, stream).await?;
                        }
                        if reply_requested {
                            stream.send_status(self.received, self.acked, false).await?;
                        }
                    }
                    ReplMessage::End => return Err(PgError::Protocol("the server ended the replication stream".into())),
                },
                changed = acks.changed() => {
                    if changed.is_err() {
                        return Err(PgError::PipelineClosed);
                    }
                    if let Some(lsn) = take_ack::<Lsn>(acks) {
                        self.acked = self.acked.max(lsn);
                        self.progress.target_log_position.store(self.acked.0, Ordering::Relaxed);
                    }
                    stream.send_status(self.received, self.acked, false).await?;
                }
                _ = status.tick() => stream.send_status(self.received, self.acked, false).await?,
                _ = stop.changed() => {}
                _ = &mut discover, if !self.in_txn => {}
            }
        }
    }

    async fn handle(&mut self, wal_start: Lsn, data: &Bytes, stream: &mut ReplicationStream) -> Result<(), PgError> {
        let decode_err = |source| PgError::Decode { lsn: wal_start.to_string(), cause: source };
        let decoded = pgoutput::decode_shared(data, self.stream_xid.is_some()).map_err(decode_err)?;
        match decoded.message {
            Message::StreamStart { xid, .. } => self.stream_xid = Some(xid),
            Message::StreamStop => self.stream_xid = None,
            Message::StreamAbort { xid, subxid } => {
                self.spill.abort(xid, subxid).map_err(|e| self.spill.io_error(e))?
            }
            Message::StreamCommit { xid, commit_lsn, end_lsn, commit_time, .. } => {
                self.begin(Lsn(commit_lsn), xid, commit_time, stream).await?;
                if let Some(mut spilled) = self.spill.take(xid).map_err(|e| self.spill.io_error(e))? {
                    while let Some(raw) = spilled.next_message().map_err(|e| self.spill.io_error(e))? {
                        let raw = Bytes::from(raw);
                        let message = pgoutput::decode_shared(&raw, true).map_err(decode_err)?.message;
                        self.apply(message, stream).await?;
                    }
                }
                self.commit(end_lsn, commit_time, stream).await?;
            }
            message => match self.stream_xid {
                Some(xid) => {
                    // A streamed transaction's Relation messages take effect when it commits
                    // (the replay of its file), as in PostgreSQL's own apply worker: one that
                    // aborts must not change the schema. A relation seen for the first time is
                    // known at once (nothing to undo), and types are reloaded at once.
                    let first_sighting =
                        matches!(&message, Message::Relation(rel) if !self.relations.contains_key(&rel.oid));
                    if first_sighting || matches!(message, Message::Type { .. }) {
                        self.apply(message, stream).await?;
                    }
                    self.spill.append(xid, decoded.xid.unwrap_or(xid), data).map_err(|e| self.spill.io_error(e))?;
                }
                None => self.apply(message, stream).await?,
            },
        }
        Ok(())
    }

    async fn begin(
        &mut self,
        final_lsn: Lsn,
        xid: u32,
        commit_time: i64,
        stream: &mut ReplicationStream,
    ) -> Result<(), PgError> {
        self.in_txn = true;
        self.txn_final_lsn = final_lsn;
        self.txn_xid = xid;
        self.send(SourceEvent::Begin { time_us: Some(commit_time + PG_EPOCH_OFFSET_US) }, stream).await
    }

    async fn commit(&mut self, end_lsn: u64, commit_time: i64, stream: &mut ReplicationStream) -> Result<(), PgError> {
        self.in_txn = false;
        if self.recent_xids.len() == RECENT_XIDS {
            self.recent_xids.pop_front();
        }
        self.recent_xids.push_back(self.txn_xid);
        let at = self.txn_final_lsn;
        self.copied_at.retain(|_, cut| !cut.passed(at));
        let event = SourceEvent::Commit {
            position: Position(Lsn(end_lsn).to_string()),
            commit_time_us: Some(commit_time + PG_EPOCH_OFFSET_US),
        };
        self.send(event, stream).await
    }

    async fn apply(&mut self, message: Message, stream: &mut ReplicationStream) -> Result<(), PgError> {
        match message {
            Message::Begin { final_lsn, xid, commit_time } => {
                self.begin(Lsn(final_lsn), xid, commit_time, stream).await?
            }
            Message::Commit { end_lsn, commit_time, .. } => self.commit(end_lsn, commit_time, stream).await?,
            Message::Relation(rel) => {
                // The relation may now name another table: what is held was read under the old one.
                self.flush(stream).await?;
                self.relation(rel, stream).await?
            }
            Message::Type { .. } => {
                // A type this session has not described yet (e.g. a new enum): reload.
                self.types = catalog::type_catalog(self.sql).await?;
            }
            Message::Insert { oid, new } => {
                if let Some(state) = self.live_with_schema(oid, stream).await? {
                    let row = to_row(&state.schema, &new)?;
                    self.hold(oid, ChangeKind::Insert { row }, stream).await?;
                }
            }
            Message::Update { oid, old, new } => {
                if let Some(state) = self.live_with_schema(oid, stream).await? {
                    let mut row = to_row(&state.schema, &new)?;
                    let old = old.map(|o| to_row(&state.schema, old_values(&o))).transpose()?;
                    if let Some(state) = self.relations.get(&oid).filter(|s| self.filling.contains(&s.schema.id)) {
                        fill_unsent_of_moved(self.sql, &state.schema, old.as_ref(), &new, &mut row).await?;
                    }
                    self.hold(oid, ChangeKind::Update { old, row }, stream).await?;
                }
            }
            Message::Delete { oid, old } => {
                if let Some(state) = self.live_with_schema(oid, stream).await? {
                    let old = to_row(&state.schema, old_values(&old))?;
                    self.hold(oid, ChangeKind::Delete { old }, stream).await?;
                }
            }
            Message::Truncate { oids, .. } => {
                let mut tables = Vec::new();
                for oid in oids {
                    if let Some(state) = self.live_with_schema(oid, stream).await? {
                        tables.push(state.schema.id.clone());
                    }
                }
                if !tables.is_empty() {
                    self.send(SourceEvent::Truncate(tables), stream).await?;
                }
            }
            Message::Origin { .. } | Message::LogicalMessage { .. } => {}
            Message::StreamStart { .. }
            | Message::StreamStop
            | Message::StreamCommit { .. }
            | Message::StreamAbort { .. } => {
                return Err(PgError::Protocol("stream control message inside a streamed transaction".into()));
            }
        }
        Ok(())
    }

    /// [`Streamer::live`], with the relation's schema sent to the pipeline first if it has
    /// not got it yet (see `RelationState::sent`).
    async fn live_with_schema(
        &mut self,
        oid: u32,
        stream: &mut ReplicationStream,
    ) -> Result<Option<&RelationState>, PgError> {
        let unsent = match self.live(oid)? {
            None => return Ok(None),
            Some(state) => (!state.sent).then(|| state.schema.clone()),
        };
        if let Some(schema) = unsent {
            if self.emitted.get(&schema.id) != Some(&schema) {
                if let Some(prev) = self.known_schema(&schema.id).cloned() {
                    self.schema_changed(&prev, &schema, oid, stream).await?;
                }
                self.emitted.insert(schema.id.clone(), schema.clone());
                self.send(SourceEvent::Schema(schema), stream).await?;
            }
            if let Some(state) = self.relations.get_mut(&oid) {
                state.sent = true;
            }
        }
        Ok(self.relations.get(&oid))
    }

    /// The schema the target has for `id`: sent in this run, or stored with the checkpoint.
    pub fn known_schema(&self, id: &TableId) -> Option<&TableSchema> {
        self.emitted.get(id).or_else(|| self.baseline.get(id))
    }

    /// The relation's state if its changes in the current transaction are to be applied.
    fn live(&self, oid: u32) -> Result<Option<&RelationState>, PgError> {
        let state = self
            .relations
            .get(&oid)
            .ok_or_else(|| PgError::Protocol(format!("change for relation {oid} before its Relation message")))?;
        // The name may hold another table now (dropped and created again, swapped by a
        // rename): only the relation that is the replicated table counts.
        let current = self.tables.get(&state.schema.id).is_some_and(|t| t.oid == oid);
        // By table, not by relation: a copy made while streaming (new table, resync) comes
        // after the table's Relation message, which the server does not send again.
        let copied =
            self.copied_at.get(&state.schema.id).is_some_and(|cut| cut.holds(self.txn_final_lsn, self.txn_xid));
        Ok((state.ignored.is_none() && current && !copied).then_some(state))
    }

    async fn relation(&mut self, rel: Relation, stream: &mut ReplicationStream) -> Result<(), PgError> {
        let id = TableId::new(rel.namespace.clone(), rel.name.clone());
        if rel.columns.iter().any(|c| !self.types.names.contains_key(&c.type_oid)) {
            self.types = catalog::type_catalog(self.sql).await?;
        }
        // Tables are known by OID: a replicated table under another name was renamed (its
        // changes under the new name are skipped, so it is copied again), and a name that
        // holds another OID is another table (dropped and created again, swapped by renames).
        if let Some(old) = self.tables.iter().find(|(name, t)| t.oid == rel.oid && **name != id).map(|(n, _)| n.clone())
        {
            let reason = format!("renamed to {id} while streaming; changes under that name are not applied");
            self.require_recopy(&old, reason, stream).await?;
        }
        let replaced = self.tables.get(&id).is_some_and(|t| t.oid != rel.oid);
        if replaced {
            let reason = "the name holds another table now (dropped and created again, or swapped by a rename)".into();
            self.send(SourceEvent::ResyncRequired { table: id.clone(), reason }, stream).await?;
        }
        if replaced || !self.tables.contains_key(&id) {
            // Not a table this integration copied: a partition (its changes arrive as the
            // partitioned table's, `publish_via_partition_root`), a table renamed since, or a
            // new table under a replicated name (table discovery copies those). Its changes are
            // skipped.
            tracing::debug!(relation = %id, "ignoring a relation that is not a replicated table");
            let schema = TableSchema { id, columns: Vec::new(), identity: zetl_core::RowIdentity::None };
            self.relations.insert(rel.oid, RelationState { schema, ignored: Some(rel), sent: false });
            return Ok(());
        }
        let columns: Vec<Column> = rel
            .columns
            .iter()
            .map(|c| {
                let (ty, source_type) = map_type(c.type_oid, c.type_modifier, &self.types);
                Column { name: c.name.clone(), ty, source_type, nullable: true }
            })
            .collect();
        if rel.replica_identity == ReplicaIdentity::Full {
            // REPLICA IDENTITY FULL rows are keyed by the primary key; one added or changed
            // since the table was listed must count from here on, or distinct rows would
            // collapse on the old key.
            let pk = catalog::primary_key(self.sql, rel.oid).await?;
            if let Some(t) = self.tables.get_mut(&id) {
                t.primary_key = pk;
            }
        }
        let primary_key = self.tables.get(&id).map(|t| t.primary_key.as_slice()).unwrap_or_default();
        let identity = identity_of(&rel, primary_key);
        let mut schema = TableSchema { id: id.clone(), columns, identity };
        if let Some(prev) = self.known_schema(&id) {
            // Keep NOT NULL knowledge from the catalog for unchanged columns.
            for c in &mut schema.columns {
                if let Some(p) = prev.columns.iter().find(|p| p.name == c.name && p.ty == c.ty) {
                    c.nullable = p.nullable;
                }
            }
        }
        let sent = self.emitted.get(&id) == Some(&schema);
        self.relations.insert(rel.oid, RelationState { schema, ignored: None, sent });
        Ok(())
    }

    /// What the stream does not carry of a change to a table's columns. A changed type was
    /// made by a table rewrite, which logical decoding does not send: the table is copied
    /// again. An added column's value in the rows that existed before is not sent either: a
    /// constant DEFAULT is in `pg_attribute.attmissingval` (PostgreSQL 11+, no rewrite) and
    /// the target fills it in; any other DEFAULT (volatile: a rewrite) means a copy again.
    async fn schema_changed(
        &mut self,
        prev: &TableSchema,
        now: &TableSchema,
        oid: u32,
        stream: &mut ReplicationStream,
    ) -> Result<(), PgError> {
        let id = &now.id;
        let retyped = now.columns.iter().find(|c| prev.columns.iter().any(|p| p.name == c.name && p.ty != c.ty));
        if let Some(col) = retyped {
            let reason =
                format!("column {} changed its type to {}, which rewrote the table", col.name, col.source_type);
            return self.require_recopy(id, reason, stream).await;
        }
        for col in now.columns.iter().filter(|c| prev.column_index(&c.name).is_none()) {
            match catalog::added_column_value(self.sql, oid, col).await? {
                AddedColumn::Null => {}
                AddedColumn::Value(value) => {
                    let event = SourceEvent::AddedColumnValue { table: id.clone(), column: col.name.clone(), value };
                    self.send(event, stream).await?;
                }
                AddedColumn::Unknown => {
                    let reason = format!("column {} was added with a DEFAULT that is not a constant", col.name);
                    return self.require_recopy(id, reason, stream).await;
                }
            }
        }
        Ok(())
    }

    async fn require_recopy(
        &mut self,
        id: &TableId,
        reason: String,
        stream: &mut ReplicationStream,
    ) -> Result<(), PgError> {
        self.send(SourceEvent::ResyncRequired { table: id.clone(), reason }, stream).await?;
        // A fill under way stops; the copy again begins a new one.
        self.filling.remove(id);
        self.recopy.insert(id.clone());
        Ok(())
    }

    /// Relations skipped so far whose table is now replicated (a renamed table that discovery
    /// just copied under its new name): the server will not describe them again.
    pub async fn adopt_ignored(&mut self, stream: &mut ReplicationStream) -> Result<(), PgError> {
        let adoptable: Vec<Relation> = self
            .relations
            .values()
            .filter_map(|r| r.ignored.clone())
            .filter(|rel| {
                let id = TableId::new(rel.namespace.clone(), rel.name.clone());
                self.tables.get(&id).is_some_and(|t| t.oid == rel.oid)
            })
            .collect();
        for rel in adoptable {
            self.relation(rel, stream).await?;
        }
        Ok(())
    }

    /// Schemas already sent by the snapshot, so the stream does not send them again.
    pub fn remember_schema(&mut self, schema: TableSchema) {
        for state in self.relations.values_mut().filter(|r| r.schema.id == schema.id) {
            state.sent = state.schema == schema;
        }
        self.emitted.insert(schema.id.clone(), schema);
    }

    /// Sends an event from outside the stream loop (table discovery).
    pub async fn send_between_transactions(
        &mut self,
        event: SourceEvent,
        stream: &mut ReplicationStream,
    ) -> Result<(), PgError> {
        self.send(event, stream).await
    }

    /// Queues a change behind the ones to the same relation read just before it: a run of
    /// changes to one table travels as one `Changes` event, which spares the channel and the
    /// writer a round per row. Anything else sent goes after what is held (see `send`), and a
    /// commit is sent, so nothing is held between transactions.
    async fn hold(&mut self, oid: u32, kind: ChangeKind, stream: &mut ReplicationStream) -> Result<(), PgError> {
        if self.held.as_ref().is_some_and(|h| h.oid != oid) {
            self.flush(stream).await?;
        }
        let held = match &mut self.held {
            Some(held) => held,
            None => {
                let table = self.relations.get(&oid).map(|s| s.schema.id.clone());
                let table = table.ok_or_else(|| PgError::Protocol(format!("change for unknown relation {oid}")))?;
                self.held.insert(Held { oid, table, kinds: Vec::new(), weight: 0 })
            }
        };
        held.weight += kind.weight();
        held.kinds.push(kind);
        if held.kinds.len() >= HOLD_CHANGES || held.weight >= HOLD_WEIGHT {
            self.flush(stream).await?;
        }
        Ok(())
    }

    /// Sends the changes held, if any.
    async fn flush(&mut self, stream: &mut ReplicationStream) -> Result<(), PgError> {
        match self.held.take() {
            Some(Held { table, kinds, weight, .. }) => {
                self.send_weighed(SourceEvent::Changes { table, kinds }, weight, stream).await
            }
            None => Ok(()),
        }
    }

    /// Sends an event after the changes held, still answering the server while the pipeline
    /// pushes back.
    async fn send(&mut self, event: SourceEvent, stream: &mut ReplicationStream) -> Result<(), PgError> {
        self.flush(stream).await?;
        let weight = event.weight();
        self.send_weighed(event, weight, stream).await
    }

    async fn send_weighed(
        &mut self,
        event: SourceEvent,
        weight: usize,
        stream: &mut ReplicationStream,
    ) -> Result<(), PgError> {
        // A long replay of a spilled transaction reads no socket: the server must still hear
        // from us within wal_sender_timeout.
        self.sends = self.sends.wrapping_add(1);
        if self.sends.is_multiple_of(CLOCK_EVERY) && self.last_status.elapsed() >= STATUS_INTERVAL {
            stream.send_status(self.received, self.acked, false).await?;
            self.last_status = Instant::now();
        }
        if let Some(slot) = self.events.try_reserve(weight).map_err(|_| PgError::PipelineClosed)? {
            return slot.send(event).map_err(|_| PgError::PipelineClosed);
        }
        loop {
            tokio::select! {
                slot = self.events.reserve(weight) => {
                    return slot.and_then(|s| s.send(event)).map_err(|_| PgError::PipelineClosed);
                }
                _ = tokio::time::sleep(STATUS_INTERVAL) => {
                    stream.send_status(self.received, self.acked, false).await?;
                }
            }
        }
    }
}

/// A key change that left TOASTed columns unsent, in a table being filled: the target would
/// take them from the row under the old key, which it may not hold yet (the fill has not
/// reached it), while the new key may be one the fill has passed. Read them from the source
/// now instead: its row under the new key is this change's or a later one's, and every later
/// change follows in the stream. A row gone by now was deleted or moved by a later change,
/// which the stream also carries.
async fn fill_unsent_of_moved(
    sql: &Client,
    schema: &TableSchema,
    old: Option<&Row>,
    new: &[TupleValue],
    row: &mut Row,
) -> Result<(), PgError> {
    let key = schema.key_columns();
    let unsent: Vec<usize> = (0..row.len()).filter(|&i| matches!(row[i], Value::Unchanged)).collect();
    let moved = old.is_some_and(|old| key.iter().any(|&k| old.get(k) != row.get(k)));
    if unsent.is_empty() || !moved || key.is_empty() {
        return Ok(());
    }
    let mut condition = Vec::with_capacity(key.len());
    for &k in key {
        let text = match new.get(k) {
            Some(TupleValue::Text(bytes)) => std::str::from_utf8(bytes).ok(),
            _ => None,
        };
        let Some(text) = text else { return Ok(()) };
        condition.push(format!("{} = {}", quote_ident(&schema.columns[k].name), quote_literal(text)));
    }
    let cols: Vec<String> = unsent.iter().map(|&i| quote_ident(&schema.columns[i].name)).collect();
    let sql_text =
        format!("SELECT {} FROM {} WHERE {}", cols.join(", "), quote_table(&schema.id), condition.join(" AND "));
    let rows = sql.simple_query(&sql_text).await.ctx(|| format!("reading the moved row of {}", schema.id))?;
    let Some(found) = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    }) else {
        return Ok(());
    };
    for (j, &i) in unsent.iter().enumerate() {
        row[i] = match found.get(j) {
            None => Value::Null,
            Some(text) => parse_value(schema, &schema.columns[i], text.as_bytes())?,
        };
    }
    Ok(())
}

/// The row identity as the Relation message states it (`replica_identity` and the key flags
/// of the columns), preferring the primary key for REPLICA IDENTITY FULL so that changes still
/// collapse per key.
fn identity_of(rel: &Relation, primary_key: &[String]) -> RowIdentity {
    let flagged: Vec<usize> = rel.columns.iter().enumerate().filter(|(_, c)| c.is_key).map(|(i, _)| i).collect();
    match rel.replica_identity {
        ReplicaIdentity::Full => {
            let pk: Option<Vec<usize>> =
                primary_key.iter().map(|n| rel.columns.iter().position(|c| &c.name == n)).collect();
            match pk {
                Some(k) if !k.is_empty() => RowIdentity::Key(k),
                _ => RowIdentity::FullRow,
            }
        }
        ReplicaIdentity::Default | ReplicaIdentity::Index if !flagged.is_empty() => RowIdentity::Key(flagged),
        _ => RowIdentity::None,
    }
}

fn old_values(old: &OldTuple) -> &[TupleValue] {
    match old {
        OldTuple::Key(v) | OldTuple::Full(v) => v,
    }
}

fn to_row(schema: &TableSchema, values: &[TupleValue]) -> Result<Row, PgError> {
    if values.len() != schema.columns.len() {
        return Err(PgError::Protocol(format!(
            "{}: tuple has {} columns, relation has {}",
            schema.id,
            values.len(),
            schema.columns.len()
        )));
    }
    let mut row = Vec::with_capacity(values.len());
    for (col, v) in schema.columns.iter().zip(values) {
        row.push(match v {
            TupleValue::Null => Value::Null,
            TupleValue::Unchanged => Value::Unchanged,
            TupleValue::Text(bytes) | TupleValue::Binary(bytes) => parse_value(schema, col, bytes)?,
        });
    }
    Ok(row)
}
