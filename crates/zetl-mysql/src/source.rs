//! The MySQL / MariaDB source end to end: prerequisites, the initial copy at one binlog
//! position, then the binlog; tables that join later are copied while the stream waits.

use crate::binlog_files::BinlogFiles;
use crate::catalog::{self, TableInfo};
use crate::columns::{Collations, MyTable};
use crate::config::MysqlSourceConfig;
use crate::conninfo::ConnInfo;
use crate::error::MyError;
use crate::fill::Fills;
use crate::fill_cursor::FillCursor;
use crate::flavor::Flavor;
use crate::key_range::KeyRange;
use crate::position::{BinlogPos, StoredPos};
use crate::signal::SignalTable;
use crate::snapshot::{Continue, Snapshot};
use crate::stream::{silence_limit, Pause, Streamer};
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zetl_core::check::Verdict;
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::progress::Progress;
use zetl_core::source::{CheckEnv, Held, Holdings, Source, SourceContext, SourcePosition, StartState};
use zetl_core::{CopyUnderWay, SourceEvent, TableId};

/// How often metrics are refreshed and resync requests looked at.
const TICK: Duration = Duration::from_secs(10);

pub struct MySource {
    pub integration: String,
    pub config: MysqlSourceConfig,
    pub filter: TableFilter,
    info: ConnInfo,
    /// `source.signal_table`, which fences the snapshots of copies made while streaming.
    signal: Option<SignalTable>,
}

impl MySource {
    pub fn new(integration: &str, config: MysqlSourceConfig, filter: TableFilter) -> Result<Self, MyError> {
        let info = ConnInfo::from_url(config.url.expose())?;
        let signal = config.signal_table().map(|id| SignalTable::new(id, integration));
        // zetl's own writes there are not the user's data.
        let filter = match &signal {
            Some(s) => filter.without(s.id.clone()),
            None => filter,
        };
        Ok(Self { integration: integration.to_string(), config, filter, info, signal })
    }

    pub(crate) fn signal(&self) -> Option<&SignalTable> {
        self.signal.as_ref()
    }

    pub fn conn_info(&self) -> &ConnInfo {
        &self.info
    }

    /// How long a copy's connection may stay silent: as long as the binlog's (six heartbeats).
    fn silence(&self) -> Option<Duration> {
        silence_limit(self.config.heartbeat_secs)
    }

    /// The replica id zetl registers with: configured, or derived from the integration name
    /// (stable across restarts, distinct between integrations).
    pub fn server_id(&self) -> u32 {
        self.config.server_id.unwrap_or_else(|| {
            let hash =
                self.integration.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
            // Clear of the small ids people give their servers.
            0x4000_0000 | (hash & 0x3fff_ffff)
        })
    }
}

impl Source for MySource {
    type Position = StoredPos;
    type Error = MyError;

    /// Prepare (prerequisites), initial copy or resume, then follow the binlog.
    async fn run(&self, start: StartState<StoredPos>, ctx: SourceContext) -> Result<(), MyError> {
        let (mut side, server, collations) = self.prepare().await?;
        // `described`: the tables whose columns the initial copy read (none when resuming).
        // Set when an interrupted initial copy continues: the copies that go on after their
        // cursors.
        let mut continuing = None;
        let (position, copied, tables, described) = match (&start.resume_from, &start.snapshot_from) {
            (Some(stored), _) => {
                let copied = start
                    .copied
                    .keys()
                    // `snapshot: resync` tables are copied again, as missing copies.
                    .filter(|t| !self.filter.copy_again_at_start(t))
                    .map(|t| (t.clone(), start.consistent_at(t).map(|c: StoredPos| c.at)))
                    .collect::<HashMap<_, _>>();
                (stored.at.clone(), copied, catalog::list_tables(&mut side, &self.filter).await?, Vec::new())
            }
            (None, Some(stored)) if binlog_kept(&mut side, &stored.at).await? => {
                let copied = start
                    .copied
                    .keys()
                    .map(|t| (t.clone(), start.consistent_at(t).map(|c: StoredPos| c.at)))
                    .collect::<HashMap<_, _>>();
                let copies = continuable(&start.under_way);
                tracing::info!(
                    copied = copied.len(),
                    to_continue = copies.len(),
                    "the interrupted initial copy continues"
                );
                ctx.send(SourceEvent::SnapshotStart { position: stored.to_position() }).await?;
                continuing = Some(copies);
                (stored.at.clone(), copied, catalog::list_tables(&mut side, &self.filter).await?, Vec::new())
            }
            (None, _) => {
                let copied = self.initial_copy(&mut side, server.flavor, &ctx).await?;
                let Some((position, tables, with_columns)) = copied else { return Ok(()) };
                let copied = tables.iter().map(|t| (t.id.clone(), None)).collect();
                (position, copied, tables, with_columns)
            }
        };
        // XA transactions prepared before the checkpoint and not yet committed: their rows
        // are read again from where the oldest began (see xa.rs).
        let xa_from = start.resume_from.as_ref().and_then(|stored| stored.xa_from.clone());
        let mut streamer = Streamer::new(
            self.info.clone(),
            server.flavor,
            self.server_id(),
            self.config.heartbeat_secs,
            server.binlog_checksum == "CRC32",
            self.filter.clone(),
            collations,
            ctx.events.clone(),
            side,
            xa_from.clone().unwrap_or_else(|| position.clone()),
        );
        if let Some(from) = &xa_from {
            tracing::info!(from = %from, until = %position, "reading the binlog again from where an XA transaction still prepared at the checkpoint began");
            streamer.recover_until = Some(position.clone());
        }
        for (_, table) in &described {
            streamer.remember_json_columns(table);
            // What the target has now: the stream compares the next TABLE_MAP with it.
            streamer.copied_schema(table.clone());
        }
        if described.is_empty() {
            for t in &tables {
                let json = catalog::json_columns(&mut streamer.side, &t.id).await?;
                streamer.set_json_columns(t.id.clone(), json);
            }
        }
        streamer.baseline = start.copied.iter().filter_map(|(t, c)| Some((t.clone(), c.schema.clone()?))).collect();
        for (table, at) in &copied {
            streamer.known.insert(table.clone());
            if let Some(at) = at.as_ref().filter(|at| *at > &position) {
                streamer.copied_at.insert(table.clone(), at.clone());
            }
        }
        // Tables that match but were never copied (the filters changed, or a copy made while
        // streaming did not complete): copy them now.
        let missing: Vec<TableId> =
            tables.iter().filter(|t| !copied.contains_key(&t.id)).map(|t| t.id.clone()).collect();
        let mut fills = Fills::new(self.signal.clone());
        if !missing.is_empty() {
            let rest = match continuing {
                Some(_) => missing,
                // While streaming: copies made then, cut off, are filled again (on from their
                // cursor) once the stream runs.
                None => self.begin_fills(&mut streamer, &mut fills, &missing, &ctx.progress, &start.under_way).await?,
            };
            if !rest.is_empty() {
                let copy = self.copy_while_streaming(&mut streamer, &rest, &ctx.progress, continuing.as_ref());
                if ctx.unless_stopped(copy).await.transpose()?.is_none() {
                    return Ok(());
                }
            }
        }
        if continuing.is_some() {
            ctx.send(SourceEvent::SnapshotDone { position: StoredPos::from(position.clone()).to_position() }).await?;
            tracing::info!("initial copy complete");
        }
        tracing::info!(from = %position, server_id = self.server_id(), "streaming the binlog");
        self.follow(&mut streamer, &mut fills, &ctx).await
    }

    async fn check(&self, env: &CheckEnv) -> Vec<Verdict> {
        crate::check::check(self, env.stored_position.as_deref()).await
    }

    async fn current_position(&self) -> Result<String, MyError> {
        self.binlog_position().await
    }

    async fn holdings(&self) -> Result<Holdings, MyError> {
        // Binlogs expire by the server's own retention whether anyone reads them or not.
        let why = "it reads the binlog as a replica, and no signal table is set";
        let Some(signal) = &self.signal else { return Ok(Holdings::NothingByDesign(why)) };
        let mut conn = self.info.connect().await?;
        let items = match signal.exists(&mut conn).await? {
            // Its row for this integration; the table too once no integration has one.
            true => vec![Held { kind: "signal table", name: signal.id.to_string(), in_use_by: None }],
            false => Vec::new(),
        };
        Ok(Holdings::Held { place: self.info.addr.clone(), items })
    }

    async fn release(&self, holdings: &Holdings) -> Result<(), MyError> {
        match (&self.signal, holdings) {
            (Some(signal), Holdings::Held { items, .. }) if !items.is_empty() => {
                signal.release(&mut self.info.connect().await?).await
            }
            _ => Ok(()),
        }
    }
}

impl MySource {
    /// A connection to the server, once its settings and grants allow replication.
    async fn prepare(&self) -> Result<(Conn, catalog::ServerInfo, Collations), MyError> {
        let mut side = self.info.connect().await?;
        let server = catalog::server_info(&mut side).await?;
        let mut problems = server.problems();
        // An unreadable grant list is no proof of a problem: the binlog dump then tells.
        if let Ok(missing) = catalog::missing_grants(&mut side).await {
            if !missing.is_empty() {
                problems.push(catalog::grant_fix(&missing));
            }
        }
        if !problems.is_empty() {
            return Err(MyError::Prerequisite(problems.join("; ")));
        }
        let collations = catalog::collations(&mut side).await?;
        match &self.signal {
            Some(signal) => {
                signal.require_fence_holds(&mut side, server.flavor).await?;
                signal.create(&mut side).await?;
            }
            None if server.flavor != Flavor::MariaDb => tracing::info!(
                "no source.signal_table: tables copied while streaming are copied in one piece while the binlog waits"
            ),
            None => {}
        }
        Ok((side, server, collations))
    }

    /// Reads the binlog until stopped, pausing for copies, chunks of fills and the periodic
    /// tick, each with its own turn.
    async fn follow(&self, streamer: &mut Streamer, fills: &mut Fills, ctx: &SourceContext) -> Result<(), MyError> {
        let mut files = BinlogFiles::default();
        let mut stop = ctx.stop.clone();
        let (mut next_tick, mut next_chunk) = (Instant::now() + TICK, Instant::now());
        observe_clock(&mut streamer.side, &ctx.progress).await;
        loop {
            let next = if fills.is_empty() { next_tick } else { next_tick.min(next_chunk) };
            match streamer.run(&mut stop, next.saturating_duration_since(Instant::now())).await? {
                Pause::Stopped => {
                    streamer.close().await;
                    return Ok(());
                }
                Pause::Copy(mut tables) => {
                    tables.sort();
                    tables.dedup();
                    self.copy_or_fill(streamer, fills, &tables, &ctx.progress).await?
                }
                Pause::Tick => {}
            }
            if Instant::now() >= next_tick {
                self.tick(streamer, fills, &mut files, ctx).await?;
                next_tick = Instant::now() + TICK;
            }
            if !fills.is_empty() && Instant::now() >= next_chunk {
                if let Some(table) = fills.step(&self.info, streamer).await? {
                    self.copy_while_streaming(streamer, &[table], &ctx.progress, None).await?;
                }
                next_chunk = Instant::now() + fills.gap();
            }
        }
    }

    /// No initial copy was completed: every table copied at one consistent snapshot. Returns
    /// the binlog position it is consistent at, the tables, and the columns the copy read;
    /// `None` when stopped before the copy was complete.
    async fn initial_copy(
        &self,
        side: &mut Conn,
        flavor: Flavor,
        ctx: &SourceContext,
    ) -> Result<Option<(BinlogPos, Vec<TableInfo>, Vec<(TableInfo, MyTable)>)>, MyError> {
        let snapshot = Snapshot::open(&self.info, flavor, self.config.snapshot.parallelism, self.silence()).await?;
        let position = snapshot.position.clone();
        tracing::info!(position = %position, "snapshot opened");
        // Listed after the snapshot opened: a table created or renamed before that
        // moment is in the list, anything later is in the binlog after the position.
        let tables = catalog::list_tables(side, &self.filter).await?;
        let with_columns = self.describe(side, &tables, &ctx.progress).await?;
        let none = HashMap::new();
        let copy = snapshot.copy(
            &with_columns,
            &self.filter,
            self.config.snapshot.chunk_rows,
            None,
            &none,
            &ctx.events,
            &ctx.progress,
        );
        ctx.send(SourceEvent::SnapshotStart { position: StoredPos::from(position.clone()).to_position() }).await?;
        let Some(rows) = ctx.unless_stopped(copy).await.transpose()? else {
            tracing::info!("stopped during the initial copy; the next start continues it");
            return Ok(None);
        };
        tracing::info!(rows, tables = tables.len(), "initial copy complete");
        ctx.send(SourceEvent::SnapshotDone { position: StoredPos::from(position.clone()).to_position() }).await?;
        Ok(Some((position, tables, with_columns)))
    }

    /// Now and then while streaming: the binlog files' sizes for the retention metric, and the
    /// tables the operator asked to copy again (`zetl resync`).
    async fn tick(
        &self,
        streamer: &mut Streamer,
        fills: &mut Fills,
        files: &mut BinlogFiles,
        ctx: &SourceContext,
    ) -> Result<(), MyError> {
        files.refresh(&mut streamer.side).await;
        observe_clock(&mut streamer.side, &ctx.progress).await;
        let acked = ctx.acknowledged::<StoredPos>().map(|stored| stored.at);
        files.report(&ctx.progress, &streamer.position, acked.as_ref());
        if !ctx.resync_requested() {
            return Ok(());
        }
        let now = catalog::list_tables(&mut streamer.side, &self.filter).await?;
        let known = ctx.take_resync_requests(|id| now.iter().any(|t| &t.id == id));
        if !known.is_empty() {
            self.copy_or_fill(streamer, fills, &known, &ctx.progress).await?;
        }
        Ok(())
    }

    /// Copies `ids` while streaming: filled beside the stream where they can be (see `fill`),
    /// the others whole while the stream waits.
    async fn copy_or_fill(
        &self,
        streamer: &mut Streamer,
        fills: &mut Fills,
        ids: &[TableId],
        progress: &Arc<Progress>,
    ) -> Result<(), MyError> {
        let whole = self.begin_fills(streamer, fills, ids, progress, &HashMap::new()).await?;
        if !whole.is_empty() {
            self.copy_while_streaming(streamer, &whole, progress, None).await?;
        }
        Ok(())
    }

    /// Starts filling the tables that can be filled in chunks beside the stream, continuing a
    /// fill a restart cut off where `under_way` holds its cursor. Returns the others (no key a
    /// fill can follow, `snapshot: never`, gone, or a MySQL server without a signal table),
    /// to be copied whole.
    async fn begin_fills(
        &self,
        streamer: &mut Streamer,
        fills: &mut Fills,
        ids: &[TableId],
        progress: &Arc<Progress>,
        under_way: &HashMap<TableId, CopyUnderWay>,
    ) -> Result<Vec<TableId>, MyError> {
        if !fills.can_fill_on(streamer.flavor) {
            return Ok(ids.to_vec());
        }
        // Listed for their row estimates (progress and ETA).
        let listed = catalog::list_tables(&mut streamer.side, &self.filter).await?;
        let infos: Vec<TableInfo> = listed.into_iter().filter(|t| ids.contains(&t.id)).collect();
        let described = self.describe(&mut streamer.side, &infos, progress).await?;
        let mut whole: Vec<TableId> =
            ids.iter().filter(|id| !described.iter().any(|(t, _)| &t.id == *id)).cloned().collect();
        for (info, table) in described {
            if !fills.can_fill(streamer.flavor, &table) || self.filter.snapshot_mode(&info.id) == SnapshotMode::Never {
                whole.push(info.id);
                continue;
            }
            let columns = table.schema().columns_fingerprint();
            let resumed = under_way.get(&info.id).and_then(|copy| match copy.parts.as_slice() {
                [one] => {
                    FillCursor::parse(one).filter(|c| c.columns == columns && c.since.is_some()).map(|c| (c, copy.rows))
                }
                _ => None,
            });
            fills.begin(streamer, table, resumed).await?;
        }
        Ok(whole)
    }

    async fn describe(
        &self,
        conn: &mut Conn,
        tables: &[TableInfo],
        progress: &Progress,
    ) -> Result<Vec<(TableInfo, MyTable)>, MyError> {
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let Some(table) = catalog::table(conn, &t.id).await? else { continue };
            if table.key.is_empty() {
                tracing::warn!(table = %t.id, "table has no primary key: updates and deletes match on the whole row");
            }
            progress.estimate_rows(&t.id, t.estimated_rows);
            out.push((t.clone(), table));
        }
        Ok(out)
    }

    /// Copies tables at a fresh snapshot while the stream waits at a transaction boundary;
    /// the stream then skips their changes in transactions that began before the snapshot.
    /// `initial`: the rest of an interrupted initial copy, with the copies that continue where
    /// they stand (they skip nothing).
    async fn copy_while_streaming(
        &self,
        streamer: &mut Streamer,
        ids: &[TableId],
        progress: &Arc<Progress>,
        initial: Option<&HashMap<TableId, Continue>>,
    ) -> Result<(), MyError> {
        streamer.close().await;
        let mut infos: Vec<TableInfo> = ids.iter().map(|id| TableInfo { id: id.clone(), estimated_rows: 0 }).collect();
        let (parallelism, chunk_rows) = match initial {
            Some(_) => {
                // Sized like the initial copy, to be split like it.
                let listed = catalog::list_tables(&mut streamer.side, &self.filter).await?;
                infos = listed.into_iter().filter(|t| ids.contains(&t.id)).collect();
                (self.config.snapshot.parallelism, self.config.snapshot.chunk_rows)
            }
            None => (1, u64::MAX),
        };
        let with_columns = self.describe(&mut streamer.side, &infos, progress).await?;
        let snapshot = Snapshot::open(&self.info, streamer.flavor, parallelism, self.silence()).await?;
        let at = BinlogPos { gtid: None, ..snapshot.position.clone() };
        let none = HashMap::new();
        let continuing = initial.unwrap_or(&none);
        let flavor = streamer.flavor;
        {
            let copy = snapshot.copy(
                &with_columns,
                &self.filter,
                chunk_rows,
                Some(StoredPos::from(at.clone()).to_position()),
                continuing,
                &streamer.events,
                progress,
            );
            tokio::pin!(copy);
            // The binlog is not read meanwhile: what the server logs meanwhile is lag.
            let mut watcher = self.info.connect().await?;
            let mut look = tokio::time::interval(Duration::from_secs(1));
            let mut last = (at.file.clone(), at.pos);
            let mut quiet_until = zetl_core::pipeline::now_us();
            loop {
                tokio::select! {
                    copied = &mut copy => {
                        copied?;
                        break;
                    }
                    _ = look.tick() => {
                        if let Ok(now) = flavor.binlog_end(&mut watcher).await {
                            progress.note_held_stream(now != last, &mut quiet_until);
                            last = now;
                        }
                    }
                }
            }
        }
        for id in ids.iter().filter(|id| !with_columns.iter().any(|(info, _)| &info.id == *id)) {
            // Gone by now (dropped or renamed away further on in the binlog): nothing to copy,
            // and nothing it did before the snapshot matters any more.
            tracing::warn!(table = %id, at = %at, "table to copy no longer exists; its copy at the target is kept");
            streamer.copied_at.insert(id.clone(), at.clone());
            streamer.forget(id);
        }
        for (info, table) in with_columns {
            if !continuing.contains_key(&info.id) {
                tracing::info!(table = %info.id, consistent_at = %at, "table copied while streaming");
                streamer.copied_at.insert(info.id.clone(), at.clone());
            }
            streamer.known.insert(info.id.clone());
            streamer.remember_json_columns(&table);
            streamer.copied_schema(table);
        }
        Ok(())
    }
}

/// Tells `progress` the server's clock, so that lag is measured on it (binlog commit times
/// are the server's). The binlog carries no clock of its own: heartbeats have none, and an
/// event's time is when its statement began. A failed look is skipped.
async fn observe_clock(conn: &mut Conn, progress: &Progress) {
    use mysql_async::prelude::Queryable;
    let before = zetl_core::pipeline::now_us();
    let sql = "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)";
    if let Ok(Some(server_us)) = conn.query_first::<i64, _>(sql).await {
        let after = zetl_core::pipeline::now_us();
        // The server read its clock somewhere within the round trip: say halfway.
        progress.source_clock.observe(server_us, before + (after - before) / 2);
    }
}

impl MySource {
    /// The server's binlog position now (file:offset and GTID state), for `zetl status`.
    async fn binlog_position(&self) -> Result<String, MyError> {
        use crate::error::SqlContext;
        use mysql_async::prelude::Queryable;
        let mut conn = self.info.connect().await?;
        let version: Option<String> =
            conn.query_first("SELECT @@version").await.ctx(|| "reading the server version".into())?;
        let flavor = crate::flavor::Flavor::of(version.as_deref().unwrap_or_default());
        let (file, offset) = flavor.binlog_end(&mut conn).await?;
        let mut pos = BinlogPos::new(file, offset);
        let gtid: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await.ok().flatten();
        pos.gtid = gtid.filter(|g| !g.is_empty());
        Ok(pos.to_string())
    }
}

/// The copies of an interrupted initial copy with cursors zetl can read.
fn continuable(under_way: &HashMap<TableId, CopyUnderWay>) -> HashMap<TableId, Continue> {
    under_way
        .iter()
        .filter_map(|(t, copy)| {
            let ranges = copy.parts.iter().map(|p| KeyRange::parse(p)).collect::<Option<Vec<_>>>()?;
            (!ranges.is_empty()).then(|| (t.clone(), Continue { ranges, rows: copy.rows }))
        })
        .collect()
}

/// Whether the server still has the binlog file of an interrupted initial copy's position;
/// if not, the copy starts over.
async fn binlog_kept(conn: &mut Conn, at: &BinlogPos) -> Result<bool, MyError> {
    use crate::error::SqlContext;
    use mysql_async::prelude::Queryable;
    let files: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.ctx(|| "listing the binlog files".into())?;
    let kept = files.iter().any(|r| r.get::<String, _>(0).as_deref() == Some(at.file.as_str()));
    if !kept {
        tracing::warn!(position = %at, "the interrupted initial copy cannot continue: its binlog file is gone; it starts over");
    }
    Ok(kept)
}
