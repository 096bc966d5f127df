//! What an integration has done and how far behind it is, shared by the writer, the source,
//! the progress log and the metrics endpoint. Names of the exported metrics are in `metrics`.

use crate::batch::Batch;
use crate::event::Phase;
use crate::source_clock::SourceClock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the apply-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The phase a run is in, shared between threads: `None` while it starts.
#[derive(Debug, Default)]
pub struct PhaseCell(AtomicU8);

impl PhaseCell {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8 + 1, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| *p as u8 + 1 == self.0.load(Ordering::Relaxed))
    }

    pub fn is(&self, phase: Phase) -> bool {
        self.get() == Some(phase)
    }

    /// The phase's name, or `starting`.
    pub fn name(&self) -> &'static str {
        self.get().map_or("starting", Phase::as_str)
    }
}

#[derive(Debug, Default)]
pub struct Progress {
    pub changes_applied: AtomicU64,
    pub transactions_applied: AtomicU64,
    pub rows_copied: AtomicU64,
    pub batches_committed: AtomicU64,
    /// Source commit time (µs since epoch) of the newest transaction committed at the target.
    pub last_commit_time_us: AtomicI64,
    /// When the target last committed (µs since epoch).
    pub last_target_commit_us: AtomicI64,
    /// Source commit time (µs) of the oldest transaction received but not yet committed at
    /// the target; 0 when the target has everything received.
    pub oldest_pending_commit_us: AtomicI64,
    pub phase: PhaseCell,
    /// The source's log position as far as zetl has seen it, and the position committed at the
    /// target, in bytes (PostgreSQL: LSNs).
    pub source_log_position: AtomicU64,
    pub target_log_position: AtomicU64,
    /// Source log the server keeps for this integration (PostgreSQL: WAL retained by the slot).
    pub retained_log_bytes: AtomicU64,
    pub reconnects: AtomicU64,
    /// Tables zetl found it had to copy again by itself (the stream could not carry a change).
    pub resyncs_required: AtomicU64,
    pub errors: AtomicU64,
    /// Changes the target set aside as dead letters (committed).
    pub dead_letters: AtomicU64,
    pub tables: Mutex<BTreeMap<String, TableCounters>>,
    pub apply_latency: Mutex<Histogram>,
    /// Lag is measured on the source's clock (see [`SourceClock`]).
    pub source_clock: SourceClock,
}

#[derive(Debug, Default, Clone)]
pub struct TableCounters {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub truncates: u64,
    pub rows_copied: u64,
    /// The planner's row estimate while copying, for progress.
    pub rows_estimated: u64,
    /// Between the table's CopyStart and CopyDone.
    pub copying: bool,
    /// When this run's copy of the table began, and the rows it had then (a continued copy
    /// starts with the rows committed before): the copy's own rate leaves those out.
    pub copy_began: Option<(std::time::Instant, u64)>,
}

impl TableCounters {
    /// Rows per second of the copy under way, once it has run a second.
    pub fn copy_rate(&self) -> Option<f64> {
        let (at, rows_then) = self.copy_began.filter(|_| self.copying)?;
        let secs = at.elapsed().as_secs_f64();
        (secs >= 1.0).then(|| self.rows_copied.saturating_sub(rows_then) as f64 / secs)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

impl Progress {
    pub fn add_batch(&self, batch: &Batch) {
        if let Ok(mut tables) = self.tables.lock() {
            for (table, c) in &batch.counts {
                let t = tables.entry(table.to_string()).or_default();
                t.inserts += c.inserts;
                t.updates += c.updates;
                t.deletes += c.deletes;
                t.truncates += c.truncates;
            }
        }
    }

    /// Notes the size of a table about to be copied, for progress and ETA.
    pub fn estimate_rows(&self, table: &crate::TableId, rows: u64) {
        if let Ok(mut counters) = self.tables.lock() {
            counters.entry(table.to_string()).or_default().rows_estimated = rows;
        }
    }

    /// A copy of `table` starts (`true`) or is complete.
    pub fn set_copying(&self, table: &crate::TableId, copying: bool) {
        if let Ok(mut tables) = self.tables.lock() {
            let t = tables.entry(table.to_string()).or_default();
            t.copying = copying;
            t.copy_began = copying.then(|| (std::time::Instant::now(), t.rows_copied));
        }
    }

    pub fn add_copied(&self, table: &str, rows: u64) {
        self.rows_copied.fetch_add(rows, Ordering::Relaxed);
        if let Ok(mut tables) = self.tables.lock() {
            tables.entry(table.to_string()).or_default().rows_copied += rows;
        }
    }

    pub fn observe_apply(&self, seconds: f64) {
        if let Ok(mut h) = self.apply_latency.lock() {
            h.observe(seconds);
        }
    }

    /// Seconds between now and the source commit of the oldest change the target does not
    /// have yet; 0 when caught up, so an idle source never looks lagged.
    pub fn lag_seconds(&self, now_us: i64) -> f64 {
        match self.oldest_pending_commit_us.load(Ordering::Relaxed) {
            0 => 0.0,
            t => (now_us + self.source_clock.ahead_us() - t).max(0) as f64 / 1e6,
        }
    }

    /// While a copy holds the stream (nothing is decoded, so no commit time is known): whether
    /// the source's log moved since the last look. Once it has, the lag counts from the last
    /// look that found it still (at most one look early); `quiet_until` keeps that moment.
    pub fn note_held_stream(&self, moved: bool, quiet_until: &mut i64) {
        if moved {
            let _ =
                self.oldest_pending_commit_us.compare_exchange(0, *quiet_until, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            // On the source's clock, as commit times are.
            *quiet_until = crate::pipeline::now_us() + self.source_clock.ahead_us();
        }
    }

    pub fn lag_bytes(&self) -> u64 {
        let source = self.source_log_position.load(Ordering::Relaxed);
        let target = self.target_log_position.load(Ordering::Relaxed);
        source.saturating_sub(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_stream_lags_from_the_last_still_look_once_the_log_moves() {
        let p = Progress::default();
        let mut quiet = 5;
        p.note_held_stream(false, &mut quiet);
        assert!(quiet > 5, "a still look moves the moment on");
        assert_eq!(p.lag_seconds(quiet + 3_000_000), 0.0, "no lag while the log is still");
        let still = quiet;
        p.note_held_stream(true, &mut quiet);
        p.note_held_stream(true, &mut quiet);
        assert_eq!(p.lag_seconds(still + 3_000_000), 3.0);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[5], 2);
        assert_eq!(h.count, 2);
    }

    #[test]
    fn caught_up_means_no_lag() {
        let p = Progress::default();
        assert_eq!(p.lag_seconds(1_000_000_000), 0.0);
        p.oldest_pending_commit_us.store(1_000_000, Ordering::Relaxed);
        assert_eq!(p.lag_seconds(3_000_000), 2.0);
    }
}
