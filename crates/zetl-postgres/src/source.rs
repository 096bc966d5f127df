//! The PostgreSQL source end to end: prerequisites, publications and slot, the initial copy in
//! the slot's exported snapshot, then the stream; new tables picked up while streaming.

use crate::catalog::{self, quote_ident, TableInfo};
use crate::config::PostgresSourceConfig;
use crate::conninfo::ConnInfo;
use crate::copy_cut::{CopyCut, XSnapshot};
use crate::error::{PgError, SqlContext};
use crate::fill::Fills;
use crate::key_cursor::KeyPart;
use crate::lsn::Lsn;
use crate::partitions;
use crate::publication::{self, append_name};
use crate::replication::{ReplicationConn, ReplicationStream};
use crate::snapshot::{Continue, SnapshotCopy};
use crate::spill::Spill;
use crate::stream::{Pause, Streamer};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use zetl_core::check::Verdict;
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::progress::Progress;
use zetl_core::source::{CheckEnv, Holdings, Source, SourceContext, SourcePosition, StartState};
use zetl_core::{CopiedTable, CopyUnderWay, Position, RowIdentity, SourceEvent, TableId, TableSchema};

pub struct PgSource {
    pub integration: String,
    pub config: PostgresSourceConfig,
    pub filter: TableFilter,
    info: ConnInfo,
}

impl PgSource {
    pub fn new(integration: &str, config: PostgresSourceConfig, filter: TableFilter) -> Result<Self, PgError> {
        let info = ConnInfo::from_url(config.url.expose())?;
        Ok(Self { integration: integration.to_string(), config, filter, info })
    }

    pub fn slot_name(&self) -> String {
        self.config.slot.clone().unwrap_or_else(|| default_name(&self.integration))
    }

    pub fn publication_name(&self) -> String {
        self.config.publication.clone().unwrap_or_else(|| default_name(&self.integration))
    }

    pub fn conn_info(&self) -> &ConnInfo {
        &self.info
    }
}

impl Source for PgSource {
    type Position = Lsn;
    type Error = PgError;

    /// Prepare (prerequisites, publications), initial copy or resume, then follow the slot.
    async fn run(&self, start: StartState<Lsn>, ctx: SourceContext) -> Result<(), PgError> {
        let sql = self.info.connect_sql().await?;
        catalog::check_wal_level(&sql).await?;
        let types = catalog::type_catalog(&sql).await?;
        let tables = self.matching_tables(&sql).await?;
        warn_without_identity(&tables);
        let slot = self.slot_name();
        let publication = self.publication_name();
        // Read before the sync adds them back: a copied table missing from the publication
        // lost changes meanwhile.
        let published = publication::published_oids(&sql, &publication).await?;
        let added = publication::sync_publications(&sql, &publication, &tables).await?;

        let mut repl = ReplicationConn::connect(&self.info).await?;
        // `described`: the schemas the initial copy sent (none when resuming), the baseline the
        // stream's Relation messages are compared with.
        // Set when an interrupted initial copy continues: the copies that go on after their
        // cursor.
        let mut continuing = None;
        let (start_lsn, copied, described) = match (start.resume_from, start.snapshot_from) {
            (Some(lsn), _) => {
                self.check_slot(&sql, &slot, lsn).await?;
                let (mut valid, stale) = still_valid_copies(&start.copied, &tables, &published);
                // `snapshot: resync`: copied again at every start (below, as a missing copy).
                valid.retain(|t, _| !self.filter.copy_again_at_start(t));
                for (table, reason) in stale {
                    ctx.send(SourceEvent::ResyncRequired { table, reason }).await?;
                }
                (lsn, valid, Vec::new())
            }
            (None, Some(lsn)) if self.slot_still_at(&sql, &slot, lsn).await? => {
                // Copies of tables that are no longer the ones copied are made again whole.
                let (valid, _) = still_valid_copies(&start.copied, &tables, &published);
                let copies = continuable(&start.under_way);
                tracing::info!(
                    copied = valid.len(),
                    to_continue = copies.len(),
                    "the interrupted initial copy continues"
                );
                ctx.send(SourceEvent::SnapshotStart { position: lsn.to_position() }).await?;
                continuing = Some(copies);
                (lsn, valid, Vec::new())
            }
            (None, _) => {
                let copied = self.initial_copy(&sql, &mut repl, &slot, &types, &tables, &ctx).await?;
                let Some((lsn, with_schemas)) = copied else { return Ok(()) };
                (lsn, tables.iter().map(|t| (t.id.clone(), CopiedTable::default())).collect(), with_schemas)
            }
        };

        // A private directory with a random name; one process per integration (the slot allows
        // one reader), so a crashed process's files are cleared by the next start.
        let spill = Spill::create(&std::env::temp_dir(), &self.integration)?;
        let tables_by_id = tables.iter().map(|t| (t.id.clone(), t.clone())).collect();
        let mut streamer = Streamer::new(&sql, types, tables_by_id, ctx.events.clone(), start_lsn, spill);
        streamer.progress = ctx.progress.clone();
        for (_, schema) in described {
            streamer.remember_schema(schema);
        }
        streamer.baseline = copied.iter().filter_map(|(t, c)| Some((t.clone(), c.schema.clone()?))).collect();
        // Copies made while streaming hold the transactions before their position: the
        // replay from the checkpoint skips those again.
        for (table, copy) in &copied {
            let cut = copy.consistent_at.as_ref().and_then(|at| CopyCut::parse(&at.0));
            if let Some(cut) = cut.filter(|cut| !cut.passed(start_lsn)) {
                streamer.copied_at.insert(table.clone(), cut);
            }
        }
        // Tables in the publication whose copy never completed (a crash during a copy made
        // while streaming): copy them again now. When each joined the publication is not
        // known here, so every transaction open now must end first (see `publication_joined`).
        // The tables of an interrupted initial copy joined before the slot was made (which
        // waited for every transaction open then), unless this start added them.
        let missing: Vec<TableInfo> = tables.iter().filter(|t| !copied.contains_key(&t.id)).cloned().collect();
        let mut fills = Fills::default();
        if !missing.is_empty() {
            let joined = if continuing.is_some() && !added { None } else { Some(next_xid(&sql).await?) };
            let rest = match continuing {
                Some(_) => missing,
                // While streaming: copies made then, cut off, are filled again (on from their
                // cursor) once the stream runs.
                None => self.begin_fills(&sql, &mut streamer, &mut fills, missing, joined, &start.under_way).await?,
            };
            if !rest.is_empty() {
                let copy = self.copy_new_tables(&sql, &mut streamer, &rest, joined, continuing.as_ref());
                if ctx.unless_stopped(copy).await.transpose()?.is_none() {
                    return Ok(());
                }
            }
        }
        if continuing.is_some() {
            ctx.send(SourceEvent::SnapshotDone { position: start_lsn.to_position() }).await?;
            tracing::info!("initial copy complete");
        }
        let start_sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start_lsn} (proto_version '2', streaming 'on', publication_names {})",
            quote_ident(&slot),
            // An identifier list: quoted, or the server folds the names to lower case.
            catalog::quote_literal(&format!(
                "{},{}",
                quote_ident(&publication),
                quote_ident(&append_name(&publication))
            )),
        );
        let mut stream = repl.start_replication(&start_sql).await?;
        tracing::info!(slot, from = %start_lsn, "streaming");
        let every = Duration::from_secs(self.config.table_discovery_secs.max(1));
        let (mut acks, mut stop) = (ctx.acks.clone(), ctx.stop.clone());
        let (mut next_discovery, mut next_chunk) = (Instant::now() + every, Instant::now());
        loop {
            // Each has its own turn: a chunk that takes longer than the discovery interval
            // must not leave every pause to discovery (that stalled the fill for good).
            let next = if fills.is_empty() { next_discovery } else { next_discovery.min(next_chunk) };
            let wait = next.saturating_duration_since(Instant::now());
            if matches!(streamer.run(&mut stream, &mut acks, &mut stop, wait).await?, Pause::Stopped) {
                return Ok(());
            }
            if Instant::now() >= next_discovery {
                self.discover(&sql, &mut streamer, &mut stream, &mut fills, &slot, &publication, &ctx).await?;
                next_discovery = Instant::now() + every;
            }
            if !fills.is_empty() && Instant::now() >= next_chunk {
                if let Some((table, joined)) = self.fill_step(&mut fills, &mut streamer, &mut stream).await? {
                    if !self.copy_holding_stream(&sql, &mut streamer, &mut stream, &[table], joined, &ctx).await? {
                        return Ok(());
                    }
                }
                next_chunk = Instant::now() + fills.gap();
            }
        }
    }

    async fn check(&self, env: &CheckEnv) -> Vec<Verdict> {
        self.verdicts(&env.reserved_in_file).await
    }

    async fn current_position(&self) -> Result<String, PgError> {
        self.wal_position().await
    }

    fn bytes_between(&self, from: &Lsn, to: &Lsn) -> Option<u64> {
        Some(to.0.saturating_sub(from.0))
    }

    fn reserved_names(&self) -> Vec<String> {
        vec![self.slot_name()]
    }

    async fn holdings(&self) -> Result<Holdings, PgError> {
        self.retirement().await
    }

    async fn release(&self, holdings: &Holdings) -> Result<(), PgError> {
        self.retire(holdings).await
    }
}

impl PgSource {
    /// No initial copy was completed: a fresh slot, and every table copied at the snapshot it
    /// exports. Returns the slot's consistent point and the schemas the copy sent; `None` when
    /// stopped before the copy was complete.
    async fn initial_copy(
        &self,
        sql: &Client,
        repl: &mut ReplicationConn,
        slot: &str,
        types: &crate::types::TypeCatalog,
        tables: &[TableInfo],
        ctx: &SourceContext,
    ) -> Result<Option<(Lsn, Vec<(TableInfo, TableSchema)>)>, PgError> {
        // No initial copy to continue: start it over with a fresh slot.
        publication::drop_slot(sql, slot).await?;
        let row = repl
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                quote_ident(slot)
            ))
            .await?;
        let (lsn, snapshot) = match row.first().map(|r| (r.get(1).cloned().flatten(), r.get(2).cloned().flatten())) {
            Some((Some(lsn), Some(snap))) => (lsn, snap),
            _ => return Err(PgError::Protocol("CREATE_REPLICATION_SLOT returned no snapshot".into())),
        };
        let lsn = Lsn::parse(&lsn).ok_or_else(|| PgError::Protocol(format!("bad consistent point {lsn}")))?;
        tracing::info!(slot, consistent_point = %lsn, "created replication slot");
        let mut sized = tables.to_vec();
        catalog::size_up(sql, &mut sized).await?;
        let with_schemas = self.schemas(sql, types, &sized).await?;
        for t in &sized {
            ctx.progress.estimate_rows(&t.id, t.estimated_rows.max(0.0) as u64);
        }
        let copy = SnapshotCopy {
            info: &self.info,
            snapshot: &snapshot,
            parallelism: self.config.snapshot.parallelism,
            chunk_rows: self.config.snapshot.chunk_rows,
            consistent_at: None,
            filter: &self.filter,
            continuing: &HashMap::new(),
        };
        ctx.send(SourceEvent::SnapshotStart { position: lsn.to_position() }).await?;
        let Some(rows) = ctx.unless_stopped(copy.run(&with_schemas, &ctx.events)).await.transpose()? else {
            tracing::info!("stopped during the initial copy; the next start continues it");
            return Ok(None);
        };
        tracing::info!(rows, tables = tables.len(), "initial copy complete");
        ctx.send(SourceEvent::SnapshotDone { position: lsn.to_position() }).await?;
        Ok(Some((lsn, with_schemas)))
    }

    /// Every `table_discovery_secs`, between transactions: tables that appeared, came back or
    /// hold another table now are copied (with `zetl resync` requests), publications synced.
    #[allow(clippy::too_many_arguments)]
    async fn discover(
        &self,
        sql: &Client,
        streamer: &mut Streamer<'_>,
        stream: &mut ReplicationStream,
        fills: &mut Fills,
        slot: &str,
        publication: &str,
        ctx: &SourceContext,
    ) -> Result<(), PgError> {
        self.note_retained_wal(sql, slot, &ctx.progress).await;
        let now = self.matching_tables(sql).await?;
        let published = publication::published_oids(sql, publication).await?;
        let (mut new, stale) = reconcile(streamer, &now, &published);
        for (table, reason) in stale {
            streamer.send_between_transactions(SourceEvent::ResyncRequired { table, reason }, stream).await?;
        }
        warn_without_identity(&new);
        let joined = publication_joined(sql, publication, &now).await?;
        // Tables the operator asked to copy again (`zetl resync`) take the same path.
        for id in ctx.take_resync_requests(|id| now.iter().any(|t| &t.id == id)) {
            if let Some(t) = now.iter().find(|t| t.id == id).filter(|_| !new.iter().any(|n| n.id == id)) {
                tracing::info!(table = %id, "resync: copying the table again");
                new.push(t.clone());
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let whole = self.begin_fills(sql, streamer, fills, new, joined, &HashMap::new()).await?;
        if !whole.is_empty() && !self.copy_holding_stream(sql, streamer, stream, &whole, joined, ctx).await? {
            // The stream loop sees the stop next; the writer drops the copy cut off.
            return Ok(());
        }
        streamer.adopt_ignored(stream).await
    }

    /// Starts filling the tables that can be filled in chunks beside the stream (see `fill`),
    /// continuing a fill a restart cut off where `under_way` holds its cursor. Returns the
    /// others (no key, `snapshot: never`), to be copied in one piece.
    async fn begin_fills(
        &self,
        sql: &Client,
        streamer: &mut Streamer<'_>,
        fills: &mut Fills,
        tables: Vec<TableInfo>,
        joined: Option<u64>,
        under_way: &HashMap<TableId, CopyUnderWay>,
    ) -> Result<Vec<TableInfo>, PgError> {
        streamer.types = catalog::type_catalog(sql).await?;
        let mut whole = Vec::new();
        for t in tables {
            let schema = catalog::table_schema(sql, &t, &streamer.types).await?;
            if schema.key_columns().is_empty() || self.filter.snapshot_mode(&t.id) == SnapshotMode::Never {
                whole.push(t);
                continue;
            }
            let columns = Some(schema.columns_fingerprint());
            let resumed = under_way.get(&t.id).and_then(|copy| match copy.parts.as_slice() {
                [one] => KeyPart::parse(one)
                    .filter(|p| p.fits(&t.source_id(), &schema) && p.columns == columns)
                    .map(|p| (p, copy.rows)),
                _ => None,
            });
            // Once a chunk is in, the transactions `joined` waits for have ended.
            let read = resumed.as_ref().is_some_and(|(p, _)| p.after.is_some());
            let joined = if read { None } else { joined };
            fills.begin(streamer, t, schema, joined, resumed).await?;
        }
        Ok(whole)
    }

    /// The next step of the fills (see `Fills::step`), answering the server meanwhile: a chunk
    /// behind a slow target can take longer than `wal_sender_timeout`.
    async fn fill_step(
        &self,
        fills: &mut Fills,
        streamer: &mut Streamer<'_>,
        stream: &mut ReplicationStream,
    ) -> Result<Option<(TableInfo, Option<u64>)>, PgError> {
        let (received, acked) = (streamer.received(), streamer.acked());
        let step = fills.step(&self.info, streamer);
        tokio::pin!(step);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(10), Duration::from_secs(10));
        loop {
            tokio::select! {
                r = &mut step => return r,
                _ = tick.tick() => stream.send_status(received, acked, false).await?,
            }
        }
    }

    /// Copies `tables` whole in one snapshot while the stream waits (status updates keep it
    /// alive, and the WAL written meanwhile counts as lag). `false`: stopped meanwhile.
    async fn copy_holding_stream(
        &self,
        sql: &Client,
        streamer: &mut Streamer<'_>,
        stream: &mut ReplicationStream,
        tables: &[TableInfo],
        joined: Option<u64>,
        ctx: &SourceContext,
    ) -> Result<bool, PgError> {
        let acked = streamer.acked();
        let progress = streamer.progress.clone();
        let copy_alive = async {
            let copy = self.copy_new_tables(sql, streamer, tables, joined, None);
            tokio::pin!(copy);
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            let mut look = tokio::time::interval(Duration::from_secs(1));
            let mut quiet_until = zetl_core::pipeline::now_us();
            loop {
                tokio::select! {
                    r = &mut copy => return r,
                    _ = tick.tick() => stream.send_status(acked, acked, false).await?,
                    _ = look.tick() => note_unread_wal(sql, &progress, &mut quiet_until).await,
                }
            }
        };
        Ok(ctx.unless_stopped(copy_alive).await.transpose()?.is_some())
    }

    /// WAL the slot holds, for the `zetl_source_retained_bytes` metric. A failed look-up only
    /// leaves the metric as it was.
    async fn note_retained_wal(&self, sql: &Client, slot: &str, progress: &Progress) {
        let q = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1";
        if let Ok(Some(row)) = sql.query_opt(q, &[&slot]).await {
            let bytes = row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64;
            progress.retained_log_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    async fn matching_tables(&self, sql: &Client) -> Result<Vec<TableInfo>, PgError> {
        catalog::list_tables(sql, &self.filter).await
    }

    async fn schemas(
        &self,
        sql: &Client,
        types: &crate::types::TypeCatalog,
        tables: &[TableInfo],
    ) -> Result<Vec<(TableInfo, TableSchema)>, PgError> {
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            out.push((t.clone(), catalog::table_schema(sql, t, types).await?));
        }
        Ok(out)
    }

    /// Copies tables that joined while streaming, in an ordinary snapshot (see `copy_cut`):
    /// the stream then skips those tables' changes in the transactions the copy saw.
    /// `joined`: see [`publication_joined`]. `initial`: the rest of an interrupted initial
    /// copy, with the copies that continue where they stand (they skip nothing).
    async fn copy_new_tables(
        &self,
        sql: &Client,
        streamer: &mut Streamer<'_>,
        tables: &[TableInfo],
        joined: Option<u64>,
        initial: Option<&HashMap<TableId, Continue>>,
    ) -> Result<(), PgError> {
        let reader = self.info.connect_sql().await?;
        let (cut, snapshot) = copy_snapshot(&reader, streamer, joined).await?;
        let types = catalog::type_catalog(sql).await?;
        let mut sized = tables.to_vec();
        catalog::size_up(sql, &mut sized).await?;
        for t in &sized {
            streamer.progress.estimate_rows(&t.id, t.estimated_rows.max(0.0) as u64);
        }
        let with_schemas = self.schemas(sql, &types, &sized).await?;
        // A copy continues only where its cursor fits the table as it is now.
        let continuing: HashMap<TableId, Continue> = with_schemas
            .iter()
            .filter_map(|(t, schema)| {
                let c = initial?.get(&t.id).filter(|c| c.parts.iter().all(|p| p.fits(&t.source_id(), schema)))?;
                Some((t.id.clone(), c.clone()))
            })
            .collect();
        let (parallelism, chunk_rows) = match initial {
            Some(_) => (self.config.snapshot.parallelism, self.config.snapshot.chunk_rows),
            None => (1, u64::MAX),
        };
        let copy = SnapshotCopy {
            info: &self.info,
            snapshot: &snapshot,
            parallelism,
            chunk_rows,
            consistent_at: Some(Position(cut.to_string())),
            filter: &self.filter,
            continuing: &continuing,
        };
        copy.run(&with_schemas, &streamer.events).await?;
        for (t, schema) in with_schemas {
            if !continuing.contains_key(&t.id) {
                tracing::info!(table = %t.id, consistent_at = %cut, "table copied while streaming");
                streamer.copied_at.insert(t.id.clone(), cut.clone());
            }
            streamer.remember_schema(schema);
        }
        streamer.types = types;
        // Ends the exported snapshot.
        reader.batch_execute("COMMIT").await.ctx(|| "ending the copy's snapshot".into())?;
        Ok(())
    }

    /// Whether the slot of an interrupted initial copy still stands at its consistent point
    /// `at` (it is never acknowledged before the copy completes); if not, the copy starts over.
    async fn slot_still_at(&self, sql: &Client, slot: &str, at: Lsn) -> Result<bool, PgError> {
        let state = publication::slot_state(sql, slot).await?;
        let still = state.as_ref().is_some_and(|s| !s.lost && s.confirmed_flush.is_none_or(|c| c <= at));
        if !still {
            tracing::warn!(slot, consistent_point = %at, "the interrupted initial copy cannot continue: its slot is gone or moved; it starts over");
        }
        Ok(still)
    }

    async fn check_slot(&self, sql: &Client, slot: &str, stored: Lsn) -> Result<(), PgError> {
        let fix =
            format!("copy everything again: `zetl resync -c FILE -i {} --all`, then `zetl run`", self.integration);
        match publication::slot_state(sql, slot).await? {
            None => Err(PgError::Prerequisite(format!(
                "replication slot `{slot}` is gone, so changes since {stored} cannot be read; {fix}"
            ))),
            Some(state) if state.lost => Err(PgError::Prerequisite(format!(
                "replication slot `{slot}` was invalidated by the server (it fell more than \
                 max_slot_wal_keep_size behind), so changes since {stored} cannot be read; {fix}"
            ))),
            Some(state) => {
                if let Some(confirmed) = state.confirmed_flush {
                    if confirmed > stored {
                        // The slot was acknowledged past the checkpoint only through idle
                        // heartbeats: nothing applicable lies in between.
                        tracing::debug!(%confirmed, %stored, "slot is ahead of the checkpoint");
                    }
                }
                Ok(())
            }
        }
    }
}

/// While the stream waits for a copy: WAL written since it was last read is lag (see
/// [`Progress::note_held_stream`]). A failed look-up leaves the metrics as they were.
async fn note_unread_wal(sql: &Client, progress: &Progress, quiet_until: &mut i64) {
    let Ok(row) = sql.query_one("SELECT pg_current_wal_lsn()::text", &[]).await else { return };
    let Some(wal) = Lsn::parse(row.get(0)) else { return };
    let moved = wal.0 > progress.source_log_position.load(Ordering::Relaxed);
    if moved {
        progress.source_log_position.store(wal.0, Ordering::Relaxed);
    }
    progress.note_held_stream(moved, quiet_until);
}

/// The copies of an interrupted initial copy with a cursor zetl can read (whether it fits the
/// table as it is now is decided when its schema is read).
fn continuable(under_way: &HashMap<TableId, CopyUnderWay>) -> HashMap<TableId, Continue> {
    under_way
        .iter()
        .filter_map(|(t, copy)| {
            let parts = copy.parts.iter().map(|p| KeyPart::parse(p)).collect::<Option<Vec<_>>>()?;
            Some((t.clone(), Continue { parts, rows: copy.rows }))
        })
        .filter(|(_, c)| !c.parts.is_empty())
        .collect()
}

/// Brings the publications in line with `tables`. When that added a table: the next xid at
/// that moment. A transaction open across it had its earlier changes to the table left out of
/// the stream (pgoutput decides per change), so a copy of it must wait for every transaction
/// older than that to end, as PostgreSQL's own table synchronisation does.
async fn publication_joined(sql: &Client, publication: &str, tables: &[TableInfo]) -> Result<Option<u64>, PgError> {
    if !publication::sync_publications(sql, publication, tables).await? {
        return Ok(None);
    }
    next_xid(sql).await.map(Some)
}

/// The transaction id the next transaction will get.
async fn next_xid(sql: &Client) -> Result<u64, PgError> {
    let row = sql
        .query_one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", &[])
        .await
        .ctx(|| "reading the next transaction id".into())?;
    let next: String = row.get(0);
    next.parse().map_err(|_| PgError::Protocol(format!("unexpected transaction id `{next}`")))
}

/// A snapshot for a copy made while streaming, exported for the copy's connections, and the
/// cut it makes in the stream. It is taken again until it is usable (see [`try_copy_snapshot`]).
async fn copy_snapshot(
    reader: &Client,
    streamer: &Streamer<'_>,
    joined: Option<u64>,
) -> Result<(CopyCut, String), PgError> {
    let mut attempt = 0u64;
    loop {
        match try_copy_snapshot(reader, streamer, joined, &[]).await? {
            Ok(taken) => return Ok(taken),
            Err(wait) if attempt.is_multiple_of(100) => wait.log(),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        attempt += 1;
    }
}

/// Why a copy's snapshot cannot be used yet.
pub(crate) enum SnapshotWait {
    /// A transaction the stream has passed is not visible yet.
    Unseen(u32),
    /// A transaction open when its table joined the publication has not ended.
    Older(u32),
}

impl SnapshotWait {
    pub(crate) fn log(&self) {
        match *self {
            SnapshotWait::Unseen(xid) => tracing::info!(xid, "waiting to copy: a transaction the stream has passed is not visible yet (held by a synchronous standby?)"),
            SnapshotWait::Older(xid) => tracing::info!(xid, "waiting to copy a table that joined the publication: transaction {xid} was open then, and its earlier changes to the table were not published; it must end first (see pg_stat_activity.backend_xid)"),
        }
    }
}

/// Opens a REPEATABLE READ transaction on `reader` and takes a snapshot for a copy made while
/// streaming, exported, with the cut it makes in the stream. It must see every transaction the
/// stream has passed (one committed in the WAL may not be visible yet: a synchronous standby
/// holds it; `unseen` are such transactions found before, which the stream may have passed
/// long ago), and, when tables were added to the publication (`joined`), come after every
/// transaction older than that. When it does not, the transaction is rolled back.
pub(crate) async fn try_copy_snapshot(
    reader: &Client,
    streamer: &Streamer<'_>,
    joined: Option<u64>,
    unseen: &[u32],
) -> Result<Result<(CopyCut, String), SnapshotWait>, PgError> {
    const TAKE: &str = "SELECT pg_current_snapshot()::text, pg_export_snapshot(), pg_current_wal_insert_lsn()::text";
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .ctx(|| "starting the copy's snapshot".into())?;
    let row = reader.query_one(TAKE, &[]).await.ctx(|| "taking the copy's snapshot".into())?;
    let (snapshot, exported, until): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let bad = || PgError::Protocol(format!("unexpected snapshot `{snapshot}` at `{until}`"));
    let snapshot = XSnapshot::parse(&snapshot).ok_or_else(bad)?;
    let until = Lsn::parse(&until).ok_or_else(bad)?;
    let passed = snapshot.in_progress().find(|x| streamer.streamed_recently(*x) || unseen.contains(x));
    // As pg_stat_activity.backend_xid shows it: the low 32 bits.
    let older = joined.filter(|next| snapshot.xmin() < *next).map(|_| snapshot.xmin() as u32);
    let wait = match (passed, older) {
        (None, None) => return Ok(Ok((CopyCut::Snapshot { snapshot, until }, exported))),
        (Some(xid), _) => SnapshotWait::Unseen(xid),
        (None, Some(xid)) => SnapshotWait::Older(xid),
    };
    reader.batch_execute("ROLLBACK").await.ctx(|| "dropping the copy's snapshot".into())?;
    Ok(Err(wait))
}

/// The target's copies that still hold the table the name stands for now. A copy is made again
/// when the name holds another table than the one copied (dropped and created again, or
/// swapped by renames, while zetl was stopped: a stored OID that differs), or when the table
/// was not in the publication (its changes since were never sent).
fn still_valid_copies(
    copied: &HashMap<TableId, CopiedTable>,
    tables: &[TableInfo],
    published: &HashSet<u32>,
) -> (HashMap<TableId, CopiedTable>, Vec<(TableId, String)>) {
    let (mut valid, mut stale) = (HashMap::new(), Vec::new());
    for t in tables {
        let Some(copy) = copied.get(&t.id) else { continue };
        let stored = copy.source_id.as_deref();
        let why = if stored.is_some_and(|id| partitions::root_oid(id) != Some(t.oid)) {
            Some(REPLACED.to_string())
        } else if !published.contains(&t.oid) {
            Some(UNPUBLISHED.to_string())
        } else if t.has_identity() && copy.schema.as_ref().is_some_and(|s| s.identity == RowIdentity::None) {
            // While zetl was stopped; `reconcile` sees it happen while streaming.
            Some(GAINED_IDENTITY.to_string())
        } else {
            stored.and_then(|id| partitions::unstreamed_change(id, &t.leaves))
        };
        match why {
            Some(why) => stale.push((t.id.clone(), why)),
            None => {
                valid.insert(t.id.clone(), copy.clone());
            }
        }
    }
    (valid, stale)
}

const REPLACED: &str =
    "the name holds another table than the one copied (dropped and created again, or swapped by a rename)";
const UNPUBLISHED: &str = "the table had left the publication, so its changes were not sent";
const GAINED_IDENTITY: &str =
    "the table has a primary key or replica identity now; its updates and deletes before were not published";

/// Brings the stream's tables in line with the catalog now; returns the tables to copy: new
/// names, names that hold another table than the one copied (a new OID: dropped and created
/// again, swapped by renames), tables the stream saw renamed (their changes under the other
/// name were not applied), and tables missing from the publication. Names gone from the
/// catalog or the filters are forgotten; their target tables are kept as they are.
fn reconcile(
    streamer: &mut Streamer<'_>,
    now: &[TableInfo],
    published: &HashSet<u32>,
) -> (Vec<TableInfo>, Vec<(TableId, String)>) {
    let recopy = streamer.take_recopy();
    let (mut copy, mut stale) = (Vec::new(), Vec::new());
    for t in now {
        let why = match streamer.tables.get(&t.id) {
            None => {
                tracing::info!(table = %t.id, "new table matches the filters; copying it");
                copy.push(t.clone());
                None
            }
            Some(known) if known.oid != t.oid => Some(REPLACED.to_string()),
            // Marked by the stream already.
            Some(_) if recopy.contains(&t.id) => {
                copy.push(t.clone());
                None
            }
            Some(_) if !published.contains(&t.oid) => Some(UNPUBLISHED.to_string()),
            // Until now it was published for inserts only (see `publication`).
            Some(known) if t.has_identity() && !known.has_identity() => Some(GAINED_IDENTITY.to_string()),
            Some(known) => partitions::unstreamed_change(&known.source_id(), &t.leaves),
        };
        if let Some(why) = why {
            stale.push((t.id.clone(), why));
            copy.push(t.clone());
        }
        streamer.tables.insert(t.id.clone(), t.clone());
    }
    let gone: Vec<TableId> = streamer.tables.keys().filter(|id| !now.iter().any(|t| &t.id == *id)).cloned().collect();
    for id in gone {
        streamer.tables.remove(&id);
        tracing::warn!(table = %id, "the table is no longer at the source under this name (dropped, renamed, or out of the filters): its target table is kept as it was and no longer updated");
    }
    (copy, stale)
}

fn warn_without_identity(tables: &[TableInfo]) {
    for t in tables.iter().filter(|t| !t.has_identity()) {
        tracing::warn!(
            table = %t.id,
            "table has no primary key or replica identity: only its inserts are replicated; to replicate updates and deletes run `ALTER TABLE {} REPLICA IDENTITY FULL` or add a primary key",
            catalog::quote_table(&t.id)
        );
    }
}

fn default_name(integration: &str) -> String {
    format!("zetl_{}", integration.replace('-', "_"))
}
