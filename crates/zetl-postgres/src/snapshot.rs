//! The initial copy: every table read with `COPY … TO STDOUT` inside one exported snapshot, so
//! the copy and the stream meet at the slot's consistent point. Big tables are split into
//! ranges of pages (ctid ranges, which PostgreSQL 14+ scans directly) copied by several
//! connections at once.

use crate::catalog::{quote_ident, quote_literal, quote_table, TableInfo};
use crate::conninfo::ConnInfo;
use crate::copy_text::decode_row;
use crate::error::{PgError, SqlContext};
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::{adopt_without_copy, CopyRowsBatcher, ROWS_PER_EVENT};
use zetl_core::filter::{SnapshotMode, TableFilter};
use zetl_core::{CopiedTable, Position, SourceEvent, TableId, TableSchema};

#[derive(Debug, Clone)]
struct Job {
    table: TableId,
    schema: Arc<TableSchema>,
    /// Rows of the table sent so far, by all its jobs.
    sent: Arc<AtomicU64>,
    partitioned: bool,
    /// Page range `[from, to)`; `None` copies the whole table.
    pages: Option<(i64, Option<i64>)>,
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
}

impl SnapshotCopy<'_> {
    /// Sends Schema and CopyStart for every table, then its rows, then CopyDone per table.
    pub async fn run(&self, tables: &[(TableInfo, TableSchema)], events: &EventSender) -> Result<u64, PgError> {
        let mut jobs = VecDeque::new();
        let mut progress = HashMap::new();
        for (info, schema) in tables {
            let copied = CopiedTable {
                consistent_at: self.consistent_at.clone(),
                source_id: Some(info.source_id()),
                schema: None,
            };
            if self.filter.snapshot_mode(&info.id) == SnapshotMode::Never {
                adopt_without_copy(events, schema.clone(), copied).await?;
                continue;
            }
            events.send(SourceEvent::Schema(schema.clone())).await?;
            events.send(SourceEvent::CopyStart(info.id.clone())).await?;
            let schema = Arc::new(schema.clone());
            let parts = self.split(info);
            let sent = Arc::new(AtomicU64::new(0));
            progress.insert(
                info.id.clone(),
                TableProgress {
                    jobs_left: parts.len(),
                    rows: 0,
                    started: Instant::now(),
                    copied,
                    sent: sent.clone(),
                    estimated: info.estimated_rows,
                },
            );
            for pages in parts {
                jobs.push_back(Job {
                    table: info.id.clone(),
                    schema: schema.clone(),
                    sent: sent.clone(),
                    partitioned: info.partitioned,
                    pages,
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

    fn split(&self, table: &TableInfo) -> Vec<Option<(i64, Option<i64>)>> {
        let chunks = (table.estimated_rows / self.chunk_rows.max(1) as f64).ceil() as i64;
        if table.partitioned || chunks <= 1 || table.pages <= 1 {
            return vec![None];
        }
        let step = (table.pages + chunks - 1) / chunks;
        let mut parts = Vec::new();
        let mut from = 0;
        while from + step < table.pages {
            parts.push(Some((from, Some(from + step))));
            from += step;
        }
        // The last range is open: the table may have grown since its statistics were taken.
        parts.push(Some((from, None)));
        parts
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
    let mut total = 0;
    while let Some(job) = jobs.lock().ok().and_then(|mut j| j.pop_front()) {
        let rows = copy_job(&client, &job, events).await?;
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
            events.send(SourceEvent::CopyDone { table: job.table.clone(), rows, copied }).await?;
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

async fn copy_job(client: &tokio_postgres::Client, job: &Job, events: &EventSender) -> Result<u64, PgError> {
    let cols: Vec<String> = job.schema.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let filter = match job.pages {
        None => String::new(),
        Some((from, None)) => format!(" WHERE ctid >= '({from},0)'::tid"),
        Some((from, Some(to))) => {
            format!(" WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid")
        }
    };
    // ONLY: with (old-style) inheritance, the children are tables of their own. A partitioned
    // table has no rows of its own, so it is read whole.
    let only = if job.partitioned { "" } else { "ONLY " };
    let sql = format!("COPY (SELECT {} FROM {only}{}{filter}) TO STDOUT", cols.join(", "), quote_table(&job.table));
    let stream = client.copy_out(&sql).await.ctx(|| format!("copying {}", job.table))?;
    futures_util::pin_mut!(stream);
    let mut buf = BytesMut::new();
    let mut batcher = CopyRowsBatcher::new(job.table.clone());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ctx(|| format!("copying {}", job.table))?;
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(nl + 1);
            if let Some(full) = batcher.push(decode_row(&job.schema, &line[..nl])?) {
                job.sent.fetch_add(ROWS_PER_EVENT as u64, Ordering::Relaxed);
                events.send(full).await?;
            }
        }
        if buf.is_empty() {
            buf.clear();
        } else if buf.capacity() > (1 << 22) {
            let rest = buf.split();
            buf = BytesMut::from(rest.chunk());
        }
    }
    if !buf.is_empty() {
        return Err(PgError::Protocol(format!("COPY of {} ended inside a row", job.table)));
    }
    let (rest, count) = batcher.finish();
    if let Some(rest) = rest {
        events.send(rest).await?;
    }
    Ok(count)
}
