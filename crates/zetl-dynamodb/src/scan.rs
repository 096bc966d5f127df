//! The seed: a parallel Scan of a table (Segment / TotalSegments), its items sent as copied
//! rows. The stream position is noted before the scan starts; the stream's records, older ones
//! included, are applied after it and converge to the table's state (full images, applied in
//! sequence-number order per item).

use crate::attr;
use crate::client::Clients;
use crate::config::ScanConfig;
use crate::error::{api, DynError};
use crate::scan_cursor::SegmentCursor;
use crate::table::TableInfo;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::CopyRowsBatcher;
use zetl_core::SourceEvent;

/// Copies the items of `table` (between CopyStart or CopyResume and CopyDone, sent by the
/// caller); returns how many. `continuing`: the segments of a seed cut short, each read on
/// after its cursor; otherwise every segment from its start. Each page's rows travel with the
/// segment's cursor after them, so that what the target commits can be continued.
pub async fn seed(
    clients: &Clients,
    table: &Arc<TableInfo>,
    config: &ScanConfig,
    events: &EventSender,
    continuing: Option<Vec<SegmentCursor>>,
) -> Result<u64, DynError> {
    let cursors = continuing.unwrap_or_else(|| {
        let segments = config.segments.max(1);
        (0..segments).map(|s| SegmentCursor::start(s, segments)).collect()
    });
    // Every segment's cursor is stored from the start (a continued seed's too: the target
    // keeps the cursors of this run): the next start continues only a seed it knows every
    // segment of.
    for c in &cursors {
        events.send(SourceEvent::CopyRows { table: table.id(), rows: Vec::new(), after: c.to_cursor() }).await?;
    }
    let budget = Arc::new(Budget::new(config.read_units_per_second));
    let mut tasks = JoinSet::new();
    for cursor in cursors.into_iter().filter(|c| !c.done) {
        let job = Segment {
            clients: clients.clone(),
            table: table.clone(),
            cursor,
            page_items: config.page_items.max(1),
            budget: budget.clone(),
        };
        let events = events.clone();
        tasks.spawn(async move { job.run(&events).await });
    }
    let mut rows = 0;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(n)) => rows += n,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(DynError::Config(format!("a scan task of {} failed: {e}", table.name))),
        }
    }
    Ok(rows)
}

struct Segment {
    clients: Clients,
    table: Arc<TableInfo>,
    cursor: SegmentCursor,
    page_items: u32,
    budget: Arc<Budget>,
}

impl Segment {
    async fn run(mut self, events: &EventSender) -> Result<u64, DynError> {
        let mut rows = 0;
        let segment = self.cursor.segment;
        while !self.cursor.done {
            let page = self
                .clients
                .db
                .scan()
                .table_name(&self.table.name)
                .segment(segment as i32)
                .total_segments(self.cursor.segments as i32)
                .limit(self.page_items as i32)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(self.cursor.start_key())
                .send()
                .await
                .map_err(|e| api(format!("scanning table {} (segment {segment})", self.table.name), e))?;
            let mut batch = CopyRowsBatcher::new(self.table.id());
            for item in page.items() {
                if let Some(event) = batch.push(self.table.row(&attr::item(item))) {
                    events.send(event).await?;
                }
            }
            self.cursor = self.cursor.after_page(page.last_evaluated_key()).ok_or_else(|| {
                DynError::Config(format!("table {}: a Scan page ended on a key of an unknown type", self.table.name))
            })?;
            let (rest, gathered) = batch.finish();
            let mut last =
                rest.unwrap_or_else(|| SourceEvent::CopyRows { table: self.table.id(), rows: Vec::new(), after: None });
            last.set_after(self.cursor.to_cursor());
            events.send(last).await?;
            rows += gathered;
            if let Some(units) = page.consumed_capacity().and_then(|c| c.capacity_units()) {
                self.budget.spend(units).await;
            }
        }
        Ok(rows)
    }
}

/// Read capacity the seed may consume per second, shared by a table's segments: each page's
/// consumed units push the earliest time of the next page out.
struct Budget {
    per_second: f64,
    start: Instant,
    used: Mutex<f64>,
}

impl Budget {
    fn new(per_second: u32) -> Self {
        Self { per_second: f64::from(per_second), start: Instant::now(), used: Mutex::new(0.0) }
    }

    async fn spend(&self, units: f64) {
        if self.per_second <= 0.0 {
            return;
        }
        let used = match self.used.lock() {
            Ok(mut used) => {
                *used += units;
                *used
            }
            Err(_) => return,
        };
        let due = self.start + Duration::from_secs_f64(used / self.per_second);
        tokio::time::sleep_until(due.into()).await;
    }
}
