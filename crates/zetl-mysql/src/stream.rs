//! Binlog events → source events: whole transactions between GTID/BEGIN and XID/COMMIT, rows
//! decoded with the columns their own TABLE_MAP event describes (the binlog's schema history),
//! table DDL followed from QUERY events.

use crate::binlog::{kind, parse_maria_gtid, BinlogReader};
use crate::catalog;
use crate::columns::{self, Collations, MyKind, MyTable};
use crate::conninfo::ConnInfo;
use crate::ddl::{self, AddedColumn, Ddl, TableRef};
use crate::error::MyError;
use crate::flavor::Flavor;
use crate::position::{BinlogPos, MariaGtidState, StoredPos};
use crate::xa::{self, XaStatement};
use mysql_async::Conn;
use mysql_common::binlog::events::{Event, ExecuteLoadQueryEvent, QueryEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::sleep_until;
use zetl_core::channel::EventSender;
use zetl_core::filter::TableFilter;
use zetl_core::source::{CopiedAt, SourcePosition};
use zetl_core::{Position, SourceEvent, TableId, TableSchema};

/// Why `Streamer::run` returned.
#[derive(Debug)]
pub enum Pause {
    Stopped,
    /// Time for periodic work (metrics, resync requests); at a transaction boundary.
    Tick,
    /// These tables must be copied (renamed into the filters); at a transaction boundary.
    Copy(Vec<TableId>),
}

/// How often, at most, an idle or filtered-out stretch of binlog is reported as a heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

pub struct Streamer {
    pub info: ConnInfo,
    pub flavor: Flavor,
    pub server_id: u32,
    pub heartbeat_secs: u64,
    pub checksums: bool,
    pub filter: TableFilter,
    pub collations: Collations,
    pub events: EventSender,
    /// A connection for catalog look-ups when DDL arrives.
    pub side: Conn,
    /// The last transaction boundary: where a reopened stream resumes.
    pub position: BinlogPos,
    /// How far the stream has read at its last transaction boundary, events outside any
    /// transaction (heartbeats, rotations) included: what a fill's snapshot must have seen.
    pub passed: BinlogPos,
    gtid: MariaGtidState,
    /// Tables copied while streaming: their changes in transactions that began before the
    /// copy's position are in the copy already.
    pub copied_at: CopiedAt<BinlogPos>,
    /// The schema last sent per table.
    pub schemas: HashMap<TableId, MyTable>,
    /// The schemas the target holds (stored with its checkpoint), for tables resumed after a
    /// restart: the first TABLE_MAP of each is judged against it (`before_schema`), so that
    /// a column added or retyped while zetl was stopped is seen. `schemas` takes over.
    pub baseline: HashMap<TableId, TableSchema>,
    /// Tables the target has a copy of (made before or while streaming, or created empty in
    /// the stream). Rows of any other replicated table mean a table zetl has not copied.
    pub known: HashSet<TableId>,
    /// Tables being filled beside the stream (`fill.rs`); a copy, a drop or a rename of one
    /// ends its fill.
    pub filling: HashSet<TableId>,
    /// MariaDB's JSON columns per table (the binlog shows them as LONGTEXT).
    pub(crate) json_columns: HashMap<TableId, Vec<String>>,
    /// Every column sent to the target per table in this run: the target keeps them all.
    pub(crate) sent_columns: HashMap<TableId, HashSet<String>>,
    /// The ADD COLUMN clauses of ALTER statements read since the table's last schema was sent.
    pub(crate) alters: HashMap<TableId, Vec<AddedColumn>>,
    /// Decoded TABLE_MAP events by table id, with the raw event they came from; `None` for
    /// tables outside the filters.
    pub(crate) table_maps: HashMap<u64, (Vec<u8>, Option<Arc<MyTable>>)>,
    /// How the row images of each replicated table map are read (see `row_image`).
    pub(crate) layouts: HashMap<u64, Arc<crate::row_image::Layout>>,
    pub(crate) reader: Option<BinlogReader>,
    pub(crate) txn: Option<Txn>,
    /// XA transactions prepared in the stream, waiting for their XA COMMIT or ROLLBACK.
    prepared: xa::Prepared,
    /// Set when a restart reads the binlog again from where a waiting XA transaction began
    /// (`xa.rs`): up to this stored position everything else is applied already.
    pub recover_until: Option<BinlogPos>,
    /// The current event lies before `recover_until`: only XA transactions are collected;
    /// nothing is sent.
    pub(crate) recovering: bool,
    /// The time (seconds since the epoch) on the first event of the transaction being read: its
    /// GTID event, which the server stamps with the start of the statement that committed it
    /// (the later events keep the times their statements started, which for a transaction
    /// left open a while are long before its commit).
    txn_time: u32,
    last_heartbeat: Instant,
}

pub(crate) struct Txn {
    /// Where the transaction's first event starts.
    pub(crate) begin: BinlogPos,
    /// A BEGIN was seen: the transaction ends at XID or COMMIT, not after one statement.
    pub(crate) explicit: bool,
    gtid: Option<(u32, u32, u64)>,
    /// A Begin was sent: some of its changes concern replicated tables.
    sent_begin: bool,
    /// Tables renamed into the filters by this transaction: copied once it ends.
    pub(crate) to_copy: Vec<TableId>,
    /// An XA transaction: its events are kept here until it is prepared, then until its XA
    /// COMMIT (see `xa.rs`), instead of being sent.
    pub(crate) xa: Option<Vec<SourceEvent>>,
}

impl Txn {
    pub(crate) fn new(begin: BinlogPos, explicit: bool, gtid: Option<(u32, u32, u64)>) -> Txn {
        Txn { begin, explicit, gtid, sent_begin: false, to_copy: Vec::new(), xa: None }
    }
}

impl Streamer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        info: ConnInfo,
        flavor: Flavor,
        server_id: u32,
        heartbeat_secs: u64,
        checksums: bool,
        filter: TableFilter,
        collations: Collations,
        events: EventSender,
        side: Conn,
        position: BinlogPos,
    ) -> Self {
        let gtid = position.gtid.as_deref().and_then(MariaGtidState::parse).unwrap_or_default();
        Streamer {
            info,
            flavor,
            server_id,
            heartbeat_secs,
            checksums,
            filter,
            collations,
            events,
            side,
            passed: position.clone(),
            position,
            gtid,
            copied_at: CopiedAt::default(),
            schemas: HashMap::new(),
            baseline: HashMap::new(),
            known: HashSet::new(),
            filling: HashSet::new(),
            json_columns: HashMap::new(),
            sent_columns: HashMap::new(),
            alters: HashMap::new(),
            table_maps: HashMap::new(),
            layouts: HashMap::new(),
            reader: None,
            txn: None,
            prepared: xa::Prepared::default(),
            recover_until: None,
            recovering: false,
            txn_time: 0,
            last_heartbeat: Instant::now(),
        }
    }

    pub fn set_json_columns(&mut self, table: TableId, columns: Vec<String>) {
        self.json_columns.insert(table, columns);
    }

    /// The JSON columns of a table as the catalog described it.
    pub fn remember_json_columns(&mut self, table: &MyTable) {
        let json =
            table.columns.iter().filter(|c| matches!(c.kind, MyKind::Json { .. })).map(|c| c.name.clone()).collect();
        self.json_columns.insert(table.id.clone(), json);
    }

    /// Closes the dump connection (before a copy); the next `run` reopens it at `position`.
    pub async fn close(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.close().await;
        }
        self.table_maps.clear();
        self.layouts.clear();
    }

    /// Reads until `stop` turns true, `every` passes, or tables need copying — each at a
    /// transaction boundary.
    pub async fn run(&mut self, stop: &mut watch::Receiver<bool>, every: Duration) -> Result<Pause, MyError> {
        if self.reader.is_none() {
            self.reader = Some(
                BinlogReader::open(
                    &self.info,
                    self.flavor,
                    self.server_id,
                    &self.position,
                    self.heartbeat_secs,
                    self.checksums,
                )
                .await?,
            );
            // File and offset are learnt from the stream's first (fake) ROTATE.
            self.txn = None;
        }
        let deadline = tokio::time::Instant::now() + every;
        let mut at = self.position.clone();
        // Time away from the socket (a copy, a slow target) is not silence.
        let mut heard = tokio::time::Instant::now();
        let silence = silence_limit(self.heartbeat_secs);
        let limit = silence.unwrap_or_default();
        // Two timers for the whole loop, not two per event: the silence timer is moved on
        // only when it fires early.
        let (until_deadline, until_silent) = (sleep_until(deadline), sleep_until(heard + limit));
        tokio::pin!(until_deadline, until_silent);
        loop {
            if self.txn.is_none() {
                if *stop.borrow() {
                    return Ok(Pause::Stopped);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Pause::Tick);
                }
            }
            let reader =
                self.reader.as_mut().ok_or_else(|| MyError::Disconnected("the binlog connection is closed".into()))?;
            let event = tokio::select! {
                e = reader.next(&at) => e?,
                _ = &mut until_deadline, if self.txn.is_none() => return Ok(Pause::Tick),
                _ = stop.changed(), if self.txn.is_none() => return Ok(Pause::Stopped),
                _ = &mut until_silent, if silence.is_some() => {
                    if heard.elapsed() < limit {
                        until_silent.as_mut().reset(heard + limit);
                        continue;
                    }
                    return Err(MyError::Disconnected(format!(
                        "no event or heartbeat from the server for {} s (heartbeats are due every {} s): \
                         the binlog connection is taken for lost",
                        limit.as_secs(),
                        self.heartbeat_secs
                    )));
                }
            };
            let Some(event) = event else {
                return Err(MyError::Disconnected("the server closed the binlog connection".into()));
            };
            let pause = self.handle(&event, &mut at).await?;
            if self.txn.is_none() {
                self.passed.clone_from(&at);
            }
            if let Some(pause) = pause {
                return Ok(pause);
            }
            heard = tokio::time::Instant::now();
        }
    }

    async fn handle(&mut self, event: &Event, at: &mut BinlogPos) -> Result<Option<Pause>, MyError> {
        let header = event.header();
        if self.txn.is_none() {
            self.txn_time = header.timestamp();
        }
        let event_start =
            BinlogPos::new(at.file.clone(), u64::from(header.log_pos()).saturating_sub(u64::from(header.event_size())));
        if header.log_pos() != 0 {
            at.pos = u64::from(header.log_pos());
        }
        self.recovering = match &self.recover_until {
            Some(until) if event_start.partial_cmp(until) == Some(std::cmp::Ordering::Less) => true,
            Some(until) => {
                tracing::info!(at = %until, waiting = self.prepared.len(), "collected the XA transactions prepared before the checkpoint; streaming");
                self.recover_until = None;
                false
            }
            None => false,
        };
        let in_xa = self.txn.as_ref().is_some_and(|t| t.xa.is_some());
        match header.event_type_raw() {
            kind::ROTATE => {
                if let Some((file, pos)) = self.reader.as_ref().and_then(|r| r.rotate_target(event)) {
                    at.file = file;
                    at.pos = pos;
                    if self.txn.is_none() {
                        self.position.file = at.file.clone();
                        self.position.pos = at.pos;
                    }
                }
            }
            kind::MARIA_GTID => {
                let gtid = parse_maria_gtid(event.data(), header.server_id())
                    .ok_or_else(|| MyError::Protocol(format!("malformed GTID event at {event_start}")))?;
                let mut txn = Txn::new(event_start, !gtid.standalone, Some((gtid.domain, gtid.server, gtid.seq)));
                if gtid.prepared_xa {
                    txn.xa = Some(Vec::new());
                }
                self.txn = Some(txn);
            }
            kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID => {
                self.txn = Some(Txn::new(event_start, false, None));
            }
            kind::QUERY => {
                let q: QueryEvent<'_> =
                    event.read_event().map_err(|e| MyError::Protocol(format!("bad QUERY event at {event_start}: {e}")))?;
                let sql = q.query();
                let trimmed = sql.trim();
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    let txn = self.txn.get_or_insert_with(|| Txn::new(event_start, true, None));
                    txn.explicit = true;
                } else if trimmed.eq_ignore_ascii_case("COMMIT") || trimmed.eq_ignore_ascii_case("ROLLBACK") {
                    return self.commit(at, header.timestamp()).await;
                } else if let Some(statement) = xa::statement(trimmed) {
                    return self.xa_statement(statement, &event_start, at, header.timestamp()).await;
                } else {
                    let ddl = ddl::parse(trimmed);
                    let ends = statement_ends_transaction(&mut self.txn, &ddl, &event_start);
                    if !self.recovering {
                        self.statement(&q.schema(), trimmed, ddl, &event_start, at).await?;
                    }
                    if ends {
                        return self.commit(at, header.timestamp()).await;
                    }
                }
            }
            kind::XID => return self.commit(at, header.timestamp()).await,
            kind::XA_PREPARE => return self.xa_prepared(event.data(), &event_start, at, header.timestamp()).await,
            kind::EXECUTE_LOAD_QUERY if self.recovering => {}
            kind::EXECUTE_LOAD_QUERY => {
                let q: ExecuteLoadQueryEvent<'_> = event
                    .read_event()
                    .map_err(|e| MyError::Protocol(format!("bad EXECUTE_LOAD_QUERY event at {event_start}: {e}")))?;
                self.statement_dml(&q.schema(), &q.query(), &event_start)?;
            }
            kind::QUERY_COMPRESSED..=kind::DELETE_ROWS_COMPRESSED => {
                return Err(MyError::CompressedEvent {
                    event_type: kind::compressed_name(header.event_type_raw()).to_string(),
                    position: event_start.to_string(),
                })
            }
            kind::TABLE_MAP => {
                open_for_rows(&mut self.txn, &event_start);
                if in_xa || !self.recovering {
                    self.table_map(event).await?
                }
            }
            kind::WRITE_ROWS
            | kind::UPDATE_ROWS
            | kind::DELETE_ROWS
            | kind::WRITE_ROWS_V1
            | kind::UPDATE_ROWS_V1
            | kind::DELETE_ROWS_V1
            | kind::PARTIAL_UPDATE_ROWS => {
                open_for_rows(&mut self.txn, &event_start);
                if in_xa || !self.recovering {
                    self.rows(event, &event_start).await?
                }
            }
            kind::HEARTBEAT if self.txn.is_none() => self.heartbeat(true).await?,
            kind::INCIDENT => {
                return Err(MyError::Protocol(format!(
                    "the server logged an incident at {event_start}: changes may be missing from the binlog; resync the integration"
                )))
            }
            _ => {}
        }
        Ok(None)
    }

    pub(crate) async fn begin(&mut self) -> Result<(), MyError> {
        if let Some(txn) = self.txn.as_mut() {
            if !txn.sent_begin && txn.xa.is_none() {
                txn.sent_begin = true;
                let time_us = Some(i64::from(self.txn_time) * 1_000_000);
                self.events.send(SourceEvent::Begin { time_us }).await?;
            }
        }
        Ok(())
    }

    /// Whether a change to `table` belongs in the stream: it is replicated and not already in
    /// a copy made after this transaction began.
    pub(crate) fn wanted(&self, table: &TableId) -> bool {
        self.txn.as_ref().is_none_or(|t| !self.copied_at.holds(table, &t.begin))
    }

    async fn commit(&mut self, at: &BinlogPos, timestamp: u32) -> Result<Option<Pause>, MyError> {
        let Some(txn) = self.txn.take() else { return Ok(None) };
        if let Some((d, s, n)) = txn.gtid {
            self.gtid.set(d, s, n);
        }
        self.position = BinlogPos {
            file: at.file.clone(),
            pos: at.pos,
            gtid: (!self.gtid.is_empty()).then(|| self.gtid.to_string()),
        };
        if self.recovering {
            // Applied before the checkpoint (an XA transaction is only collected).
            return Ok(None);
        }
        if txn.sent_begin {
            self.events
                .send(SourceEvent::Commit {
                    position: self.stored_position(),
                    commit_time_us: Some(i64::from(timestamp) * 1_000_000),
                })
                .await?;
        } else {
            self.heartbeat(false).await?;
        }
        if !txn.to_copy.is_empty() {
            return Ok(Some(Pause::Copy(txn.to_copy)));
        }
        Ok(None)
    }

    /// Tells the pipeline nothing before `position` is left to apply, so the checkpoint and
    /// the lag follow a source whose changes are all filtered out (or that is idle).
    async fn heartbeat(&mut self, idle: bool) -> Result<(), MyError> {
        // While recovering, the position is behind the checkpoint.
        if self.recover_until.is_none() && (idle || self.last_heartbeat.elapsed() >= HEARTBEAT_EVERY) {
            self.last_heartbeat = Instant::now();
            self.events.send(SourceEvent::Heartbeat { position: self.stored_position() }).await?;
        }
        Ok(())
    }

    /// The position as the target stores it: with where the oldest XA transaction still
    /// waiting for its commit began, so that a restart finds its rows.
    fn stored_position(&self) -> Position {
        StoredPos { at: self.position.clone(), xa_from: self.prepared.oldest().cloned() }.to_position()
    }

    pub(crate) fn resolve(&self, r: &TableRef, default_schema: &str) -> TableId {
        TableId::new(r.schema.clone().unwrap_or_else(|| default_schema.to_string()), r.name.clone())
    }

    pub(crate) fn replicated(&self, id: &TableId) -> bool {
        !catalog::is_system(&id.schema) && self.filter.matches(id)
    }

    /// Sends an event of the current transaction, or keeps it while the transaction is XA.
    pub(crate) async fn emit(&mut self, event: SourceEvent) -> Result<(), MyError> {
        if let Some(kept) = self.txn.as_mut().and_then(|t| t.xa.as_mut()) {
            kept.push(event);
            return Ok(());
        }
        self.begin().await?;
        Ok(self.events.send(event).await?)
    }

    async fn xa_statement(
        &mut self,
        statement: XaStatement,
        event_start: &BinlogPos,
        at: &BinlogPos,
        timestamp: u32,
    ) -> Result<Option<Pause>, MyError> {
        match statement {
            XaStatement::Start => {
                // MySQL: the QUERY follows the transaction's GTID event.
                let txn = self.txn.get_or_insert_with(|| Txn::new(event_start.clone(), true, None));
                txn.explicit = true;
                txn.xa.get_or_insert_with(Vec::new);
                Ok(None)
            }
            XaStatement::End => Ok(None),
            XaStatement::Rollback(xid) => {
                let dropped = self.prepared.take(&xid).map_or(0, |e| e.len());
                tracing::info!(xid = %xid, position = %event_start, events = dropped, "XA transaction rolled back; its rows are not applied");
                if let Some(txn) = self.txn.as_mut() {
                    txn.xa = None;
                }
                self.commit(at, timestamp).await
            }
            XaStatement::Commit(xid) => {
                let kept = self.prepared.take(&xid);
                let txn = self.txn.get_or_insert_with(|| Txn::new(event_start.clone(), false, None));
                txn.xa = None;
                if !self.recovering {
                    // Applied before the checkpoint when recovering.
                    let kept =
                        kept.ok_or_else(|| MyError::XaUnknown { xid: xid.clone(), position: event_start.to_string() })?;
                    tracing::debug!(xid = %xid, position = %event_start, "XA transaction committed");
                    self.replay(kept).await?;
                }
                self.commit(at, timestamp).await
            }
        }
    }

    /// The XA_PREPARE event ends the prepared transaction's part of the binlog: its events wait
    /// for the XA COMMIT (or, for MySQL's one-phase commit, count at once).
    async fn xa_prepared(
        &mut self,
        data: &[u8],
        event_start: &BinlogPos,
        at: &BinlogPos,
        timestamp: u32,
    ) -> Result<Option<Pause>, MyError> {
        let (one_phase, xid) = xa::parse_prepare(data)
            .ok_or_else(|| MyError::Protocol(format!("malformed XA_PREPARE event at {event_start}")))?;
        let kept = self.txn.as_mut().and_then(|t| t.xa.take()).unwrap_or_default();
        if one_phase {
            if !self.recovering {
                self.replay(kept).await?;
            }
        } else {
            tracing::debug!(xid = %xid, position = %event_start, events = kept.len(), "XA transaction prepared; waiting for its XA COMMIT");
            // The boundary before the transaction (`position` moves past it at `commit`).
            self.prepared.insert(xid, self.position.clone(), kept);
        }
        self.commit(at, timestamp).await
    }

    /// Sends the kept events of a committed XA transaction as part of the current one. Their
    /// tables are judged at the commit: a table copied after the prepare does not hold them.
    async fn replay(&mut self, kept: Vec<SourceEvent>) -> Result<(), MyError> {
        for event in kept {
            // A kept Schema is sent as it is; `schemas` keeps the last one sent outside XA, so
            // the next TABLE_MAP at worst sends the same schema again.
            if matches!(&event, SourceEvent::Changes { table, .. } if !self.wanted(table)) {
                continue;
            }
            self.begin().await?;
            self.events.send(event).await?;
        }
        Ok(())
    }

    async fn table_map(&mut self, event: &Event) -> Result<(), MyError> {
        let tme: mysql_common::binlog::events::TableMapEvent<'_> =
            event.read_event().map_err(|e| MyError::Protocol(format!("bad TABLE_MAP event: {e}")))?;
        let table_id = tme.table_id();
        if self.table_maps.get(&table_id).is_some_and(|(raw, _)| raw.as_slice() == event.data()) {
            return self.send_schema_if_changed(table_id).await;
        }
        let id = TableId::new(tme.database_name(), tme.table_name());
        if self.replicated(&id) && !self.known.contains(&id) && self.wanted(&id) {
            // A table the target has no copy of (created before the snapshot and missed, or
            // renamed in without a statement zetl understood): copy it once this transaction
            // ends; until then its changes are in that copy.
            tracing::info!(table = %id, "rows of a table without a copy; copying it");
            self.copy_at_end(&id);
        }
        let decoded = if self.replicated(&id) {
            let json = self.json_columns.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            let bad = |e: &dyn std::fmt::Display| MyError::Table { table: id.to_string(), reason: e.to_string() };
            let table = columns::from_table_map(&tme, &self.collations, json).map_err(|e| bad(&e))?;
            self.layouts.insert(table_id, Arc::new(crate::row_image::Layout::of(&tme).map_err(|e| bad(&e))?));
            Some(Arc::new(table))
        } else {
            self.layouts.remove(&table_id);
            None
        };
        self.table_maps.insert(table_id, (event.data().to_vec(), decoded));
        self.send_schema_if_changed(table_id).await
    }

    async fn send_schema_if_changed(&mut self, table_id: u64) -> Result<(), MyError> {
        let Some((_, Some(table))) = self.table_maps.get(&table_id) else { return Ok(()) };
        let table = table.clone();
        let xa = self.txn.as_ref().is_some_and(|t| t.xa.is_some());
        if (!xa && !self.wanted(&table.id)) || self.schemas.get(&table.id) == Some(&*table) {
            return Ok(());
        }
        let resync = self.before_schema(&table).await?;
        self.emit(SourceEvent::Schema(table.schema())).await?;
        self.sent_columns.entry(table.id.clone()).or_default().extend(table.columns.iter().map(|c| c.name.clone()));
        self.alters.remove(&table.id);
        if !xa {
            // An XA transaction's schema counts once it commits (`replay`).
            self.schemas.insert(table.id.clone(), (*table).clone());
        }
        if resync {
            // The rest of this transaction's changes to it are in the copy made at its end.
            self.copy_at_end(&table.id);
        }
        Ok(())
    }
}

/// A file name after every real one, for "skip until copied" placeholders.
pub(crate) fn event_file_max() -> String {
    format!("~.{}", u64::MAX)
}

/// A QUERY event other than BEGIN, COMMIT or XA: whether the transaction ends with it. DDL is
/// a transaction of its own, except MySQL 8's atomic `CREATE TABLE … SELECT`, logged as
/// `CREATE TABLE … START TRANSACTION` followed by its rows and an XID in the same GTID group.
pub(crate) fn statement_ends_transaction(txn: &mut Option<Txn>, ddl: &Ddl, event_start: &BinlogPos) -> bool {
    let txn = txn.get_or_insert_with(|| Txn::new(event_start.clone(), false, None));
    if matches!(ddl, Ddl::Create { start_transaction: true, .. }) {
        txn.explicit = true;
    }
    !txn.explicit
}

/// Row events belong to a transaction even when no BEGIN opened one: MySQL 8 logs an atomic
/// `CREATE TABLE … SELECT` as a GTID, the CREATE, then rows and an XID. Such a transaction
/// ends at its XID or COMMIT, so the group is applied whole.
pub(crate) fn open_for_rows(txn: &mut Option<Txn>, event_start: &BinlogPos) {
    match txn {
        Some(t) => t.explicit = true,
        None => *txn = Some(Txn::new(event_start.clone(), true, None)),
    }
}

/// How long the binlog connection may stay silent before it is taken for lost: an idle server
/// sends a heartbeat every `heartbeat_secs` (5 s by default: 30 s of silence), so six missed mean the
/// peer vanished (a cut link, a blackholing firewall), which TCP alone would notice only after
/// minutes. Generous, because one very large event on a slow link also arrives as silence.
/// No limit when heartbeats are off.
pub(crate) fn silence_limit(heartbeat_secs: u64) -> Option<Duration> {
    (heartbeat_secs > 0).then(|| Duration::from_secs((heartbeat_secs * 6).max(6)))
}

#[cfg(test)]
mod tests {
    //! The transaction boundaries `handle` draws, on synthetic event sequences (there is no
    //! MySQL 8 server in the test harness).
    use super::*;

    fn at(pos: u64) -> BinlogPos {
        BinlogPos::new("binlog.000001", pos)
    }

    #[test]
    fn mysql_atomic_create_select_is_one_transaction() {
        // GTID, QUERY `CREATE TABLE … START TRANSACTION`, TABLE_MAP, WRITE_ROWS, XID.
        let mut txn = Some(Txn::new(at(100), false, None));
        let create = ddl::parse("CREATE TABLE `t2` (`id` int NOT NULL) START TRANSACTION");
        assert!(!statement_ends_transaction(&mut txn, &create, &at(180)), "the CREATE must not end the group");
        open_for_rows(&mut txn, &at(300));
        open_for_rows(&mut txn, &at(360));
        let t = txn.take().expect("still open at the XID");
        assert_eq!(t.begin, at(100), "one transaction from the GTID event on");
        assert!(t.explicit, "ends at the XID");
    }

    #[test]
    fn rows_without_begin_open_a_transaction_that_ends_at_xid() {
        // MySQL before 8.0.21: GTID, CREATE (a transaction of its own), then rows without a
        // BEGIN, then XID.
        let mut txn = Some(Txn::new(at(100), false, None));
        let create = ddl::parse("CREATE TABLE t2 (id int)");
        assert!(statement_ends_transaction(&mut txn, &create, &at(180)));
        txn = None; // committed after the CREATE
        open_for_rows(&mut txn, &at(300));
        open_for_rows(&mut txn, &at(360));
        let t = txn.as_ref().expect("rows open a transaction");
        assert_eq!(t.begin, at(300));
        assert!(t.explicit, "it ends at the XID, not after one event");
        // A DDL statement on its own still ends its transaction.
        let mut txn = None;
        assert!(statement_ends_transaction(&mut txn, &ddl::parse("DROP TABLE x"), &at(400)));
    }
}
