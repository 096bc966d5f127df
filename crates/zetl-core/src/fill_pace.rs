//! How a fill (a copy made while streaming, read in chunks between stretches of the stream:
//! `SourceEvent::FillStart`) shares its source's one task with the stream: the stream runs
//! about as long as the last chunk took, longer while it is far behind, but never holds the
//! next chunk back past `MAX_YIELD`. The same for every source that fills.

use std::time::{Duration, Instant};

/// Rows per chunk: the longest the stream waits is the time to read and hand on this many.
pub const CHUNK_ROWS: u64 = 50_000;
/// Unread log (WAL, binlog) beyond which the stream goes first…
const MAX_BEHIND_BYTES: u64 = 16 << 20;
/// …unless the fill has waited this long (a stream that never catches up must not stop it).
const MAX_YIELD: Duration = Duration::from_secs(5);
/// The least the stream runs between two chunks.
const MIN_GAP: Duration = Duration::from_millis(20);
/// How long the stream runs before a chunk that had to wait is tried again.
const WAIT_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct Pace {
    gap: Duration,
    last_chunk: Option<Instant>,
}

impl Pace {
    /// A fill begins: its wait for the stream counts from now.
    pub fn begin(&mut self) {
        self.last_chunk.get_or_insert_with(Instant::now);
    }

    /// How long the stream runs before the next chunk.
    pub fn gap(&self) -> Duration {
        self.gap.max(MIN_GAP)
    }

    /// No chunk could be read this time: try again shortly.
    pub fn wait(&mut self) {
        self.gap = WAIT_GAP;
    }

    /// A chunk begun at `started` was read: the stream gets as long.
    pub fn read(&mut self, started: Instant) {
        self.gap = started.elapsed();
        self.last_chunk = Some(Instant::now());
    }

    /// Whether the stream, `behind` bytes short of the source's log end (when known), runs
    /// before the next chunk.
    pub fn stream_first(&self, behind: Option<u64>) -> bool {
        self.last_chunk.is_none_or(|t| t.elapsed() < MAX_YIELD) && behind.is_some_and(|b| b > MAX_BEHIND_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_goes_first_while_far_behind_until_the_fill_has_waited_enough() {
        let mut pace = Pace::default();
        pace.begin();
        assert!(pace.stream_first(Some(MAX_BEHIND_BYTES + 1)));
        assert!(!pace.stream_first(Some(MAX_BEHIND_BYTES)));
        assert!(!pace.stream_first(None));
        pace.last_chunk = Instant::now().checked_sub(MAX_YIELD);
        assert!(!pace.stream_first(Some(u64::MAX)), "a fill held back this long reads anyway");
        pace.wait();
        assert_eq!(pace.gap(), WAIT_GAP);
        pace.read(Instant::now());
        assert_eq!(pace.gap(), MIN_GAP, "never less than the least gap");
    }
}
