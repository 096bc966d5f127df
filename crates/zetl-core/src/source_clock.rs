//! How far the source's clock is from this machine's. Lag compares source commit times with
//! now, so a source whose clock runs ahead would look lagged all the time (and fail
//! `/readyz`), and one whose clock runs behind would hide real lag. Sources that stamp their
//! messages with their own clock report each one here, and lag is measured on the source's
//! clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// The estimate is the largest sample of the last few minutes: a sample is the source's
/// offset less the time its message travelled (and waited in buffers), so the largest is the
/// closest, and a minute-long window lets a clock that was stepped be followed.
const BUCKET_US: i64 = 60_000_000;
const BUCKETS: usize = 5;

/// A difference worth a log line: below it, lag is shown to a tenth of a second anyway.
const NOTEWORTHY_US: i64 = 1_000_000;

/// Samples closer together than this tell nothing new: the rest are skipped without the lock
/// (PostgreSQL stamps every replication message, thousands a second under load).
const SAMPLE_EVERY_US: i64 = 100_000;

#[derive(Debug, Default)]
pub struct SourceClock {
    ahead_us: AtomicI64,
    last_sample_us: AtomicI64,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// (minute, largest sample in it), by minute modulo the bucket count.
    buckets: [Option<(i64, i64)>; BUCKETS],
    /// The estimate last logged.
    told_us: i64,
}

impl SourceClock {
    /// A message the source stamped `sent_us` (its clock, µs since the Unix epoch) arrived at
    /// `received_us` (this machine's clock).
    pub fn observe(&self, sent_us: i64, received_us: i64) {
        let last = self.last_sample_us.load(Ordering::Relaxed);
        if (received_us - last).abs() < SAMPLE_EVERY_US {
            return;
        }
        self.last_sample_us.store(received_us, Ordering::Relaxed);
        let Ok(mut w) = self.window.lock() else { return };
        let sample = sent_us - received_us;
        let minute = received_us.div_euclid(BUCKET_US);
        let slot = &mut w.buckets[minute.rem_euclid(BUCKETS as i64) as usize];
        *slot = match *slot {
            Some((m, best)) if m == minute => Some((m, best.max(sample))),
            _ => Some((minute, sample)),
        };
        let recent = w.buckets.iter().flatten().filter(|(m, _)| minute - m < BUCKETS as i64);
        let ahead = recent.map(|&(_, s)| s).max().unwrap_or(sample);
        self.ahead_us.store(ahead, Ordering::Relaxed);
        if (ahead - w.told_us).abs() >= NOTEWORTHY_US {
            w.told_us = ahead;
            tracing::warn!(
                source_ahead_s = ahead as f64 / 1e6,
                "the source's clock and this machine's differ; lag is measured on the source's clock (keep both in sync with NTP)"
            );
        }
    }

    /// How far the source's clock is ahead of this machine's (negative: behind), in µs.
    pub fn ahead_us(&self) -> i64 {
        self.ahead_us.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_sample_of_the_last_minutes_counts() {
        let c = SourceClock::default();
        let t = 1_800_000_000_000_000;
        // 30 s ahead; messages that travelled 5 ms and 2 s.
        c.observe(t + 30_000_000 - 5_000, t);
        c.observe(t + 30_000_000 - 2_000_000, t + SAMPLE_EVERY_US);
        assert_eq!(c.ahead_us(), 29_995_000);
        // The clock is set right: the old samples age out after the window.
        let later = t + BUCKET_US * BUCKETS as i64;
        c.observe(later - 1_000, later);
        assert_eq!(c.ahead_us(), -1_000);
        // Behind.
        c.observe(later - 45_000_000, later + SAMPLE_EVERY_US);
        assert_eq!(c.ahead_us(), -1_000, "a larger sample of the same minute wins");
        let c = SourceClock::default();
        c.observe(t - 45_000_000, t);
        assert_eq!(c.ahead_us(), -45_000_000);
    }
}
