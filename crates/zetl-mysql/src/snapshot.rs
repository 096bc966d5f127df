//! The initial copy: every table read inside consistent-snapshot transactions that all sit at
//! one binlog position, so the copy and the binlog meet exactly there. Tables with a single
//! integer primary key are read in key order, in key ranges read by several connections at
//! once, each range's cursor stored with its rows so that a crash continues it (`key_range`).

use crate::catalog::{quote_ident, quote_table, TableInfo};
use crate::columns::{MyKind, MyTable};
use crate::conninfo::ConnInfo;
use crate::convert::{convert, Origin};
use crate::error::{MyError, SqlContext};
use crate::flavor::Flavor;
use crate::key_range::KeyRange;
use crate::position::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::{adopt_without_copy, CopyRowsBatcher};
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::progress::Progress;
use zetl_core::{CopiedTable, CopyCursor, Position, SourceEvent, TableId};

/// Attempts at opening extra snapshot connections at the first one's position.
const SNAPSHOT_ATTEMPTS: usize = 5;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Snapshot transactions open at one binlog position.
pub struct Snapshot {
    conns: Vec<Conn>,
    pub position: BinlogPos,
    /// How long a copy's connection may stay silent before it is taken for lost (`read_rows`).
    silence: Option<Duration>,
}

impl Snapshot {
    /// Opens up to `parallelism` snapshot transactions at the same position. Under a busy
    /// write load some may land elsewhere; they are retried a few times and then left out
    /// (the copy is then less parallel, never inconsistent).
    pub async fn open(
        info: &ConnInfo,
        flavor: Flavor,
        parallelism: usize,
        silence: Option<Duration>,
    ) -> Result<Snapshot, MyError> {
        // A server that stops answering while the snapshots open (a cut link; on MySQL, a read
        // lock waiting behind a long query, which holds every writer meanwhile) is a lost
        // connection: retried from the start, never waited on for good.
        let opening = Self::open_within(info, flavor, parallelism, silence);
        silent_for(silence, opening).await.unwrap_or_else(|| {
            Err(MyError::Disconnected(format!(
                "nothing from the server for {} s while opening the snapshot: the connection is taken for lost",
                silence.unwrap_or_default().as_secs()
            )))
        })
    }

    async fn open_within(
        info: &ConnInfo,
        flavor: Flavor,
        parallelism: usize,
        silence: Option<Duration>,
    ) -> Result<Snapshot, MyError> {
        let mut conns = Vec::with_capacity(parallelism);
        for _ in 0..parallelism.max(1) {
            conns.push(info.connect().await?);
        }
        let (position, same) = flavor.open_snapshots(&mut conns).await?;
        let mut kept: Vec<Conn> = Vec::new();
        let mut retry: Vec<Conn> = Vec::new();
        for (conn, same) in conns.into_iter().zip(same) {
            if same {
                kept.push(conn)
            } else {
                retry.push(conn)
            }
        }
        for _ in 0..SNAPSHOT_ATTEMPTS {
            if retry.is_empty() {
                break;
            }
            let mut again = Vec::new();
            for mut conn in retry {
                conn.query_drop("ROLLBACK").await.ctx(|| "restarting a snapshot transaction".into())?;
                let (at, same) = flavor.open_snapshots(std::slice::from_mut(&mut conn)).await?;
                if same[0] && at.file == position.file && at.pos == position.pos {
                    kept.push(conn);
                } else {
                    again.push(conn);
                }
            }
            retry = again;
        }
        if !retry.is_empty() {
            tracing::info!(connections = kept.len(), "busy source: copying with fewer connections");
        }
        Ok(Snapshot { conns: kept, position, silence })
    }

    /// Sends Schema and CopyStart (or CopyResume) for every table, then its rows, then
    /// CopyDone per table. `continuing`: copies of an interrupted initial copy that go on
    /// after their cursors; they take no `consistent_at` (the stream replays every change
    /// since the initial copy's position onto them, which keyed upserts bring to the same end).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        self,
        tables: &[(TableInfo, MyTable)],
        filter: &TableFilter,
        chunk_rows: u64,
        consistent_at: Option<Position>,
        continuing: &HashMap<TableId, Continue>,
        events: &EventSender,
        progress: &Arc<Progress>,
    ) -> Result<u64, MyError> {
        let Snapshot { mut conns, silence, .. } = self;
        let mut jobs = VecDeque::new();
        let mut state = HashMap::new();
        for (info, table) in tables {
            let go_on = continuing.get(&info.id).filter(|_| int_key_column(table).is_some());
            let copied = CopiedTable {
                consistent_at: if go_on.is_some() { None } else { consistent_at.clone() },
                ..CopiedTable::default()
            };
            if filter.snapshot_mode(&info.id) == SnapshotMode::Never {
                adopt_without_copy(events, table.schema(), copied).await?;
                continue;
            }
            events.send(SourceEvent::Schema(table.schema())).await?;
            let table = Arc::new(table.clone());
            let ranges = match go_on {
                Some(c) => {
                    tracing::info!(table = %info.id, rows = c.rows, "the copy continues after the rows committed");
                    events.send(SourceEvent::CopyResume { table: info.id.clone(), rows: c.rows }).await?;
                    c.ranges.iter().cloned().map(Some).collect()
                }
                None => {
                    events.send(SourceEvent::CopyStart(info.id.clone())).await?;
                    split(&mut conns[0], info, &table, chunk_rows).await?
                }
            };
            // Every range's cursor is stored from the start: a range not begun when the copy
            // is cut off is read whole by the next start.
            for range in ranges.iter().flatten() {
                let (table, after) = (info.id.clone(), Some(range.cursor()));
                events.send(SourceEvent::CopyRows { table, rows: Vec::new(), after }).await?;
            }
            state.insert(info.id.clone(), (ranges.len(), go_on.map_or(0, |c| c.rows), Instant::now(), copied));
            for range in ranges {
                jobs.push_back(Job { table: table.clone(), range });
            }
        }
        tracing::info!(tables = tables.len(), jobs = jobs.len(), connections = conns.len(), "initial copy starts");
        let jobs = Arc::new(Mutex::new(jobs));
        let state = Arc::new(Mutex::new(state));
        let mut workers = tokio::task::JoinSet::new();
        for conn in conns {
            let (jobs, state, events, progress) = (jobs.clone(), state.clone(), events.clone(), progress.clone());
            workers.spawn(async move { worker(conn, &jobs, &state, &events, &progress, silence).await });
        }
        let mut total = 0;
        while let Some(done) = workers.join_next().await {
            total += done.map_err(|e| MyError::Protocol(format!("copy worker failed: {e}")))??;
        }
        Ok(total)
    }
}

/// A copy that continues after the cursors it stored, holding `rows` already.
#[derive(Debug, Clone)]
pub struct Continue {
    pub ranges: Vec<KeyRange>,
    pub rows: u64,
}

#[derive(Debug, Clone)]
struct Job {
    table: Arc<MyTable>,
    /// A range of the integer primary key, read in key order; `None` reads the whole table.
    range: Option<KeyRange>,
}

/// The table's single integer primary key column, if it has one.
fn int_key_column(table: &MyTable) -> Option<usize> {
    match table.key.as_slice() {
        [k] if matches!(table.columns[*k].kind, MyKind::Int { .. }) => Some(*k),
        _ => None,
    }
}

/// Key ranges of about `chunk_rows` rows for a table with a single integer primary key.
async fn split(
    conn: &mut Conn,
    info: &TableInfo,
    table: &MyTable,
    chunk_rows: u64,
) -> Result<Vec<Option<KeyRange>>, MyError> {
    let chunks = info.estimated_rows.div_ceil(chunk_rows.max(1));
    let whole = KeyRange::whole;
    let key = match int_key_column(table) {
        Some(k) if chunks > 1 => &table.columns[k].name,
        Some(_) => return Ok(vec![Some(whole(0))]),
        None => return Ok(vec![None]),
    };
    let sql = format!(
        "SELECT CAST(MIN({k}) AS CHAR), CAST(MAX({k}) AS CHAR) FROM {}",
        quote_table(&table.id),
        k = quote_ident(key)
    );
    let bounds: Option<(Option<String>, Option<String>)> =
        conn.query_first(sql).await.ctx(|| format!("reading the key range of {}", table.id))?;
    let parse = |s: Option<String>| s.and_then(|s| s.parse::<i128>().ok());
    let Some((Some(min), Some(max))) = bounds.map(|(a, b)| (parse(a), parse(b))) else {
        return Ok(vec![Some(whole(0))]);
    };
    let step = ((max - min + 1) / chunks as i128).max(1);
    let range = |part: usize, from, to| Some(KeyRange { from, to, ..KeyRange::whole(part as u32) });
    let mut ranges = vec![range(0, None, Some(min + step))];
    let mut from = min + step;
    while from + step <= max {
        ranges.push(range(ranges.len(), Some(from), Some(from + step)));
        from += step;
    }
    // The last range is open: rows past the maximum were there in the snapshot too.
    ranges.push(range(ranges.len(), Some(from), None));
    Ok(ranges)
}

/// Per table: jobs left, rows, when it started, what its CopyDone says.
type TableState = HashMap<TableId, (usize, u64, Instant, CopiedTable)>;

async fn worker(
    mut conn: Conn,
    jobs: &Mutex<VecDeque<Job>>,
    state: &Mutex<TableState>,
    events: &EventSender,
    progress: &Progress,
    silence: Option<Duration>,
) -> Result<u64, MyError> {
    let mut total = 0;
    let mut last_report = Instant::now();
    while let Some(job) = jobs.lock().ok().and_then(|mut j| j.pop_front()) {
        let rows = copy_job(&mut conn, &job, events, silence).await?;
        total += rows;
        let done = {
            let mut s = state.lock().map_err(|_| MyError::Protocol("copy progress poisoned".into()))?;
            s.get_mut(&job.table.id).and_then(|(left, count, started, copied)| {
                *left -= 1;
                *count += rows;
                (*left == 0).then(|| (*count, started.elapsed(), copied.clone()))
            })
        };
        if let Some((rows, took, copied)) = done {
            let rate = rows as f64 / took.as_secs_f64().max(1e-3);
            tracing::info!(table = %job.table.id, rows, seconds = took.as_secs_f64(), rows_per_s = rate as u64, "table copied");
            events.send(SourceEvent::CopyDone { table: job.table.id.clone(), rows, copied: Box::new(copied) }).await?;
        } else if last_report.elapsed() > PROGRESS_EVERY {
            last_report = Instant::now();
            tracing::info!(table = %job.table.id, rows_copied = progress.rows_copied.load(std::sync::atomic::Ordering::Relaxed), "copying");
        }
    }
    conn.query_drop("COMMIT").await.ctx(|| "ending the snapshot transaction".into())?;
    Ok(total)
}

async fn copy_job(conn: &mut Conn, job: &Job, events: &EventSender, silence: Option<Duration>) -> Result<u64, MyError> {
    let t = &job.table;
    let key = job.range.as_ref().and(int_key_column(t));
    let query = match (&job.range, key) {
        (Some(range), Some(k)) => {
            RowQuery { condition: range.condition(&t.columns[k].name), order: vec![k], limit: None, silence }
        }
        _ => RowQuery { condition: String::new(), order: Vec::new(), limit: None, silence },
    };
    // The cursor after an event's rows: the key of its last row.
    let cursor = |last: &[Vec<u8>]| {
        let after = std::str::from_utf8(last.first()?).ok()?.parse().ok()?;
        Some(KeyRange { after: Some(after), ..job.range.clone()? }.cursor())
    };
    Ok(read_rows(conn, t, &query, &cursor, events).await?.0)
}

/// Which rows `read_rows` reads: those `condition` holds for (empty: all), in the order of the
/// key columns `order` (none: as stored), at most `limit`; and how long the connection may
/// stay silent before it is taken for lost (a cut link would otherwise hold the copy for the
/// system's minutes of retransmissions: the driver sets no timeout of its own).
pub(crate) struct RowQuery {
    pub condition: String,
    pub order: Vec<usize>,
    pub limit: Option<u64>,
    pub silence: Option<Duration>,
}

/// Sends `t`'s rows that `query` selects, each batch with the `cursor` made of its last row's
/// `order` columns (as the server's text). Returns the rows read and that text of the last.
pub(crate) async fn read_rows(
    conn: &mut Conn,
    t: &MyTable,
    query: &RowQuery,
    cursor: &(dyn Fn(&[Vec<u8>]) -> Option<CopyCursor> + Sync),
    events: &EventSender,
) -> Result<(u64, Option<Vec<Vec<u8>>>), MyError> {
    let cols: Vec<String> = t.columns.iter().map(select_expr).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), quote_table(&t.id));
    if !query.condition.is_empty() {
        sql.push_str(&format!(" WHERE {}", query.condition));
    }
    if !query.order.is_empty() {
        let order: Vec<String> = query.order.iter().map(|&k| quote_ident(&t.columns[k].name)).collect();
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = query.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut last: Option<Vec<Vec<u8>>> = None;
    let lost = |what: &str| {
        let seconds = query.silence.unwrap_or_default().as_secs();
        MyError::Disconnected(format!(
            "nothing from the server for {seconds} s {what} {}: the connection is taken for lost",
            t.id
        ))
    };
    let started = silent_for(query.silence, conn.query_iter(sql)).await.ok_or_else(|| lost("starting to copy"))?;
    let mut result = match started {
        Ok(r) => r,
        // 1412: created or rebuilt after the snapshot began, so the snapshot cannot read it.
        Err(mysql_async::Error::Server(e)) if e.code == 1412 => {
            return Err(MyError::Table {
                table: t.id.to_string(),
                reason: "was created or altered while the copy ran; run zetl again to start the copy over".into(),
            });
        }
        Err(e) => return Err(e).ctx(|| format!("copying {}", t.id)),
    };
    let mut batcher = CopyRowsBatcher::new(t.id.clone());
    loop {
        let next = silent_for(query.silence, result.next()).await.ok_or_else(|| lost("while copying"))?;
        let Some(row) = next.ctx(|| format!("copying {}", t.id))? else { break };
        let raw = row.unwrap_raw();
        if !query.order.is_empty() {
            // Per row: the buffers of the last key are reused, not allocated again.
            let key = last.get_or_insert_with(|| vec![Vec::new(); query.order.len()]);
            for (text, &k) in key.iter_mut().zip(&query.order) {
                text.clear();
                if let Some(Some(mysql_async::Value::Bytes(b))) = raw.get(k) {
                    text.extend_from_slice(b);
                }
            }
        }
        let mut out = Vec::with_capacity(t.columns.len());
        for (col, value) in t.columns.iter().zip(raw) {
            let value = convert(col, value.unwrap_or(mysql_async::Value::NULL), Origin::Query)
                .map_err(|reason| MyError::Value { table: t.id.to_string(), column: col.name.clone(), reason })?;
            out.push(value);
        }
        if let Some(mut full) = batcher.push(out) {
            full.set_after(last.as_deref().and_then(cursor));
            events.send(full).await?;
        }
    }
    let (rest, count) = batcher.finish();
    if let Some(mut rest) = rest {
        rest.set_after(last.as_deref().and_then(cursor));
        events.send(rest).await?;
    }
    Ok((count, last))
}

/// `f`, or `None` once `limit` passed without it.
async fn silent_for<T>(limit: Option<Duration>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.ok(),
        None => Some(f.await),
    }
}

/// What the copy selects for a column. The text protocol renders a FLOAT with 6 significant
/// digits (1.2345679 arrives as 1.23457), while the binlog carries the float's 4 bytes: as a
/// DOUBLE (`+ 0e0`, exact for every float) the text holds the float's exact value in digits
/// that parse back to it, the same number the binlog gives. DOUBLE text is already exact.
fn select_expr(c: &crate::columns::MyColumn) -> String {
    match c.kind {
        MyKind::Float => format!("({} + 0e0)", quote_ident(&c.name)),
        _ => quote_ident(&c.name),
    }
}
