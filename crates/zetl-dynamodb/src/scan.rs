//! The seed: a parallel Scan of a table (Segment / TotalSegments), its items sent as copied
//! rows. The stream position is noted before the scan starts; the stream's records, older ones
//! included, are applied after it and converge to the table's state (full images, applied in
//! sequence-number order per item).

use crate::attr;
use crate::client::Clients;
use crate::config::ScanConfig;
use crate::error::{api, DynError};
use crate::table::TableInfo;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use zetl_core::channel::EventSender;
use zetl_core::copy_rows::CopyRowsBatcher;

/// Copies every item of `table` (between CopyStart and CopyDone, sent by the caller); returns
/// how many.
pub async fn seed(
    clients: &Clients,
    table: &Arc<TableInfo>,
    config: &ScanConfig,
    events: &EventSender,
) -> Result<u64, DynError> {
    let segments = config.segments.max(1);
    let budget = Arc::new(Budget::new(config.read_units_per_second));
    let mut tasks = JoinSet::new();
    for segment in 0..segments {
        let job = Segment {
            clients: clients.clone(),
            table: table.clone(),
            segment,
            segments,
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
    segment: u32,
    segments: u32,
    page_items: u32,
    budget: Arc<Budget>,
}

impl Segment {
    async fn run(&self, events: &EventSender) -> Result<u64, DynError> {
        let mut batch = CopyRowsBatcher::new(self.table.id());
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .clients
                .db
                .scan()
                .table_name(&self.table.name)
                .segment(self.segment as i32)
                .total_segments(self.segments as i32)
                .limit(self.page_items as i32)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| api(format!("scanning table {} (segment {})", self.table.name, self.segment), e))?;
            for item in page.items() {
                if let Some(event) = batch.push(self.table.row(&attr::item(item))) {
                    events.send(event).await?;
                }
            }
            if let Some(units) = page.consumed_capacity().and_then(|c| c.capacity_units()) {
                self.budget.spend(units).await;
            }
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        let (rest, rows) = batch.finish();
        if let Some(event) = rest {
            events.send(event).await?;
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
