//! The initial copy: every table read with `COPY … TO STDOUT` inside one exported snapshot, so
//! the copy and the stream meet at the slot's consistent point. Big tables are split into
//! ranges of pages (ctid ranges, which PostgreSQL 14+ scans directly) copied by several
//! connections at once. A table with a key is read in key order instead, its cursor stored
//! with the rows (see `key_cursor`), so that a crash in the middle continues it there.

use crate::catalog::{quote_ident, quote_literal, quote_table, TableInfo};
use crate::conninfo::ConnInfo;
use crate::copy_text::Gather;
use crate::error::{PgError, SqlContext};
use crate::key_cursor::{self, KeyPart};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::{adopt_without_copy, ROWS_PER_EVENT};
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::{CopiedTable, Position, SourceEvent, TableId, TableSchema};

#[derive(Debug, Clone)]
struct Job {
    table: TableId,
    schema: Arc<TableSchema>,
    /// Rows of the table sent so far, by all its jobs.
    sent: Arc<AtomicU64>,
    partitioned: bool,
    slice: Slice,
    /// Read at most this many rows (a fill's chunk).
    limit: Option<u64>,
}

/// What of its table a job reads.
#[derive(Debug, Clone)]
enum Slice {
    Whole,
    /// Page range `[from, to)` (a table without a key).
    Pages(i64, Option<i64>),
    /// A part of the key space, in key order (see `key_cursor`).
    Keys(KeyPart),
}

/// A copy that continues after the cursors it stored, holding `rows` already.
#[derive(Debug, Clone)]
pub struct Continue {
    pub parts: Vec<KeyPart>,
    pub rows: u64,
}

struct TableProgress {
    jobs_left: usize,
    rows: u64,
    started: Instant,
    copied: CopiedTable,
    sent: Arc<AtomicU64>,
    /// The planner's estimate (`reltuples`), for the ETA.
    estimated: f64,
}

/// Keys sampled per chunk to place its bounds, and at most in all.
const SAMPLE_PER_CHUNK: f64 = 500.0;
const MAX_SAMPLE: f64 = 200_000.0;

/// How often a long copy reports its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

pub struct SnapshotCopy<'a> {
    pub info: &'a ConnInfo,
    pub snapshot: &'a str,
    pub parallelism: usize,
    pub chunk_rows: u64,
    /// For a copy made while streaming: the position it is consistent at.
    pub consistent_at: Option<Position>,
    /// Its `snapshot` modes: tables set to `never` are not read.
    pub filter: &'a TableFilter,
    /// Copies of an interrupted initial copy that continue where they stand. They hold rows
    /// older and newer than the stream's start, so they take no `consistent_at`: the stream
    /// replays every change since its start onto them, which keyed upserts bring to the same
    /// end.
    pub continuing: &'a HashMap<TableId, Continue>,
}

impl SnapshotCopy<'_> {
    /// Sends Schema and CopyStart for every table, then its rows, then CopyDone per table.
    pub async fn run(&self, tables: &[(TableInfo, TableSchema)], events: &EventSender) -> Result<u64, PgError> {
        let mut jobs = VecDeque::new();
        let mut progress = HashMap::new();
        let mut sampler = None;
        for (info, schema) in tables {
            let continuing = self.continuing.get(&info.id);
            let copied = CopiedTable {
                consistent_at: if continuing.is_some() { None } else { self.consistent_at.clone() },
                source_id: Some(info.source_id()),
                schema: None,
            };
            if self.filter.snapshot_mode(&info.id) == SnapshotMode::Never {
                adopt_without_copy(events, schema.clone(), copied).await?;
                continue;
            }
            events.send(SourceEvent::Schema(schema.clone())).await?;
            let parts: Vec<Slice> = match continuing {
                Some(c) => {
                    tracing::info!(table = %info.id, rows = c.rows, "the copy continues after the rows committed");
                    events.send(SourceEvent::CopyResume { table: info.id.clone(), rows: c.rows }).await?;
                    c.parts.iter().cloned().map(Slice::Keys).collect()
                }
                None if !schema.key_columns().is_empty() => {
                    events.send(SourceEvent::CopyStart(info.id.clone())).await?;
                    self.key_parts(&mut sampler, info, schema).await?.into_iter().map(Slice::Keys).collect()
                }
                None => {
                    events.send(SourceEvent::CopyStart(info.id.clone())).await?;
                    self.split(info)
                }
            };
            // Every part's cursor is stored from the start: a part not begun when the copy
            // is cut off is read whole by the next start.
            for slice in &parts {
                if let Slice::Keys(part) = slice {
                    let (table, after) = (info.id.clone(), Some(part.cursor()));
                    events.send(SourceEvent::CopyRows { table, rows: Vec::new(), after }).await?;
                }
            }
            let schema = Arc::new(schema.clone());
            let sent = Arc::new(AtomicU64::new(continuing.map_or(0, |c| c.rows)));
            progress.insert(
                info.id.clone(),
                TableProgress {
                    jobs_left: parts.len(),
                    rows: continuing.map_or(0, |c| c.rows),
                    started: Instant::now(),
                    copied,
                    sent: sent.clone(),
                    estimated: info.estimated_rows,
                },
            );
            for slice in parts {
                jobs.push_back(Job {
                    table: info.id.clone(),
                    schema: schema.clone(),
                    sent: sent.clone(),
                    partitioned: info.partitioned,
                    slice,
                    limit: None,
                });
            }
        }
        let workers = self.parallelism.min(jobs.len()).max(1);
        tracing::info!(tables = tables.len(), jobs = jobs.len(), workers, "initial copy starts");
        let jobs = Arc::new(Mutex::new(jobs));
        let progress = Arc::new(Mutex::new(progress));
        // A JoinSet aborts every worker when it is dropped: on the first error, and when the
        // caller gives up on the copy.
        let mut workers_set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (info, snapshot, jobs, progress, events) =
                (self.info.clone(), self.snapshot.to_string(), jobs.clone(), progress.clone(), events.clone());
            workers_set.spawn(async move { worker(&info, &snapshot, &jobs, &progress, &events).await });
        }
        let mut reporter = tokio::task::JoinSet::new();
        reporter.spawn(report(progress.clone()));
        let mut total = 0;
        while let Some(done) = workers_set.join_next().await {
            total += done.map_err(|e| PgError::Protocol(format!("copy worker failed: {e}")))??;
        }
        Ok(total)
    }

    /// How many chunks of `chunk_rows` the table makes; 1 when it is not split.
    fn chunks(&self, table: &TableInfo) -> i64 {
        let chunks = (table.estimated_rows / self.chunk_rows.max(1) as f64).ceil() as i64;
        if table.partitioned || table.pages <= 1 {
            return 1;
        }
        chunks.max(1)
    }

    /// A table without a key: ranges of pages.
    fn split(&self, table: &TableInfo) -> Vec<Slice> {
        let chunks = self.chunks(table);
        if chunks <= 1 {
            return vec![Slice::Whole];
        }
        let step = (table.pages + chunks - 1) / chunks;
        let mut parts = Vec::new();
        let mut from = 0;
        while from + step < table.pages {
            parts.push(Slice::Pages(from, Some(from + step)));
            from += step;
        }
        // The last range is open: the table may have grown since its statistics were taken.
        parts.push(Slice::Pages(from, None));
        parts
    }

    /// A table with a key: parts of its key space of about `chunk_rows` each, bounded by keys
    /// from a sample of its pages (any keys split it; the sample only evens the parts out).
    async fn key_parts(
        &self,
        sampler: &mut Option<tokio_postgres::Client>,
        table: &TableInfo,
        schema: &TableSchema,
    ) -> Result<Vec<KeyPart>, PgError> {
        let chunks = self.chunks(table);
        if chunks <= 1 {
            return Ok(key_cursor::split(&table.source_id(), &[], 1));
        }
        let client = match sampler {
            Some(c) => c,
            None => sampler.insert(self.info.connect_sql().await?),
        };
        let wanted = (chunks as f64 * SAMPLE_PER_CHUNK).min(MAX_SAMPLE);
        let percent = (wanted * 100.0 / table.estimated_rows.max(1.0)).clamp(0.001, 100.0);
        let key: Vec<String> = schema.key_columns().iter().map(|&i| quote_ident(&schema.columns[i].name)).collect();
        let sql = format!(
            "SELECT {} FROM ONLY {} TABLESAMPLE SYSTEM ({percent}) ORDER BY {}",
            // Not cast to text in the query: ORDER BY would then take the text output column
            // of the same name. The simple protocol returns every value as its type's text.
            key.join(", "),
            quote_table(&table.id),
            key.join(", ")
        );
        let rows = client.simple_query(&sql).await.ctx(|| format!("sampling the keys of {}", table.id))?;
        let sample: Vec<key_cursor::Key> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    (0..key.len()).map(|i| r.get(i).map(str::to_string)).collect::<Option<Vec<_>>>()
                }
                _ => None,
            })
            .collect();
        Ok(key_cursor::split(&table.source_id(), &sample, chunks as usize))
    }
}

async fn worker(
    info: &ConnInfo,
    snapshot: &str,
    jobs: &Mutex<VecDeque<Job>>,
    progress: &Mutex<HashMap<TableId, TableProgress>>,
    events: &EventSender,
) -> Result<u64, PgError> {
    let client = info.connect_sql().await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot)
        ))
        .await
        .ctx(|| "joining the exported snapshot".into())?;
    // Tables read in key order walk their key's index: sorting a big table first would hold
    // back every row (and spill) until the sort ends.
    client.batch_execute("SET LOCAL enable_sort = off").await.ctx(|| "preparing the copy session".into())?;
    let mut total = 0;
    while let Some(job) = jobs.lock().ok().and_then(|mut j| j.pop_front()) {
        let (rows, _) = copy_job(&client, &job, events).await?;
        total += rows;
        let done = {
            let mut p = progress.lock().map_err(|_| PgError::Protocol("copy progress poisoned".into()))?;
            p.get_mut(&job.table).and_then(|t| {
                t.rows += rows;
                t.jobs_left -= 1;
                (t.jobs_left == 0).then(|| (t.rows, t.started.elapsed(), t.copied.clone()))
            })
        };
        if let Some((rows, took, copied)) = done {
            let rate = rows as f64 / took.as_secs_f64().max(1e-3);
            tracing::info!(table = %job.table, rows, seconds = took.as_secs_f64(), rows_per_s = rate as u64, "table copied");
            events.send(SourceEvent::CopyDone { table: job.table.clone(), rows, copied: Box::new(copied) }).await?;
        }
    }
    client.batch_execute("COMMIT").await.ctx(|| "ending the snapshot transaction".into())?;
    Ok(total)
}

/// Logs rows, rate and an ETA for every table still being copied.
async fn report(progress: Arc<Mutex<HashMap<TableId, TableProgress>>>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Ok(p) = progress.lock() else { return };
        for (table, t) in p.iter().filter(|(_, t)| t.jobs_left > 0) {
            let rows = t.sent.load(Ordering::Relaxed);
            let rate = rows as f64 / t.started.elapsed().as_secs_f64().max(1e-3);
            let eta_s =
                if rate > 0.0 && t.estimated > rows as f64 { ((t.estimated - rows as f64) / rate) as u64 } else { 0 };
            tracing::info!(table = %table, rows, estimated_rows = t.estimated as u64, rows_per_s = rate as u64, eta_s, "copying");
        }
    }
}

/// Reads the next `limit` rows of `part` (after its cursor, in key order) in the snapshot of
/// `client`'s transaction, sent as `CopyRows` with their cursor. Returns how many there were
/// and the key of the last.
pub async fn read_chunk(
    client: &tokio_postgres::Client,
    table: &TableInfo,
    schema: Arc<TableSchema>,
    part: &KeyPart,
    limit: u64,
    events: &EventSender,
) -> Result<(u64, Option<key_cursor::Key>), PgError> {
    let job = Job {
        table: table.id.clone(),
        schema,
        sent: Arc::new(AtomicU64::new(0)),
        partitioned: table.partitioned,
        slice: Slice::Keys(part.clone()),
        limit: Some(limit),
    };
    copy_job(client, &job, events).await
}

/// Copies what `job` reads; returns the rows and, for a part of the key space, the last key.
async fn copy_job(
    client: &tokio_postgres::Client,
    job: &Job,
    events: &EventSender,
) -> Result<(u64, Option<key_cursor::Key>), PgError> {
    let cols: Vec<String> = job.schema.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let key = job.schema.key_columns();
    let (filter, order) = match &job.slice {
        Slice::Whole => (String::new(), String::new()),
        Slice::Pages(from, None) => (format!(" WHERE ctid >= '({from},0)'::tid"), String::new()),
        Slice::Pages(from, Some(to)) => {
            (format!(" WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid"), String::new())
        }
        Slice::Keys(part) => {
            let condition = part.condition(&job.schema);
            let cols: Vec<String> = key.iter().map(|&i| quote_ident(&job.schema.columns[i].name)).collect();
            let filter = if condition.is_empty() { condition } else { format!(" WHERE {condition}") };
            (filter, format!(" ORDER BY {}", cols.join(", ")))
        }
    };
    // ONLY: with (old-style) inheritance, the children are tables of their own. A partitioned
    // table has no rows of its own, so it is read whole.
    let only = if job.partitioned { "" } else { "ONLY " };
    let limit = job.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql = format!(
        "COPY (SELECT {} FROM {only}{}{filter}{order}{limit}) TO STDOUT",
        cols.join(", "),
        quote_table(&job.table)
    );
    // The cursor after an event's rows: the key of its last row.
    let cursor = |line: &[u8]| match &job.slice {
        Slice::Keys(part) => {
            let after = key_cursor::key_of(line, key)?;
            Some(KeyPart { after: Some(after), ..part.clone() }.cursor())
        }
        _ => None,
    };
    let stream = client.copy_out(&sql).await.ctx(|| format!("copying {}", job.table))?;
    futures_util::pin_mut!(stream);
    // The server sends a row per message: rows are decoded where they arrived, and only a
    // row split across messages is put together first.
    let mut partial = BytesMut::new();
    let mut last = Bytes::new();
    let mut gather = Gather::new(&job.schema);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ctx(|| format!("copying {}", job.table))?;
        let data = match partial.is_empty() {
            true => chunk,
            false => {
                partial.extend_from_slice(&chunk);
                partial.split().freeze()
            }
        };
        let mut start = 0;
        while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
            let line = &data[start..start + nl];
            if let Some(mut full) = gather.push(&job.schema, line)? {
                job.sent.fetch_add(ROWS_PER_EVENT as u64, Ordering::Relaxed);
                full.set_after(cursor(line));
                events.send(full).await?;
            }
            last = data.slice(start..start + nl);
            start += nl + 1;
        }
        partial.extend_from_slice(&data[start..]);
    }
    if !partial.is_empty() {
        return Err(PgError::Protocol(format!("COPY of {} ended inside a row", job.table)));
    }
    let (rest, count) = gather.finish()?;
    if let Some(mut rest) = rest {
        rest.set_after(cursor(&last));
        events.send(rest).await?;
    }
    Ok((count, (count > 0).then(|| key_cursor::key_of(&last, key)).flatten()))
}
