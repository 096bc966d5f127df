//! A live progress line at the bottom of a terminal during the initial copy: per table its
//! rows, rate and ETA. Log lines keep scrolling above it — the log writer erases the line,
//! writes the record and draws the line again. Without a terminal (a file, a pipe, a
//! container's log) nothing of this is written: the periodic log lines carry the same facts.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;
use zetl_core::progress::Progress;
use zetl_core::Phase;

/// The line as drawn now; empty when none is shown.
static LINE: OnceLock<Mutex<String>> = OnceLock::new();

fn line() -> &'static Mutex<String> {
    LINE.get_or_init(|| Mutex::new(String::new()))
}

/// Set when text logs go to a terminal: only then is the line drawn.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether stderr is a terminal that can carry the line.
pub fn terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

pub fn activate() {
    ACTIVE.store(true, Ordering::Relaxed);
}

pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Replaces the line (empty text removes it).
fn draw(text: String) {
    let Ok(mut current) = line().lock() else { return };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
    *current = text;
}

/// Removes the line, if one is shown.
pub fn clear() {
    if line().lock().is_ok_and(|l| !l.is_empty()) {
        draw(String::new());
    }
}

/// Log records for a terminal: each one is written whole above the progress line.
pub struct TtyWriter;

pub struct Record(Vec<u8>);

impl Write for Record {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let current = line().lock().map(|l| l.clone()).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        if current.is_empty() {
            let _ = err.write_all(&self.0);
        } else {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.write_all(&self.0);
            let _ = write!(err, "{current}");
        }
        let _ = err.flush();
    }
}

impl<'a> MakeWriter<'a> for TtyWriter {
    type Writer = Record;
    fn make_writer(&'a self) -> Record {
        Record(Vec::with_capacity(256))
    }
}

/// Redraws the line every second while the initial copy runs; removes it after.
pub async fn show_copy_progress(progress: Arc<Progress>) {
    let mut last: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !progress.phase.is(Phase::Snapshotting) {
            clear();
            continue;
        }
        let tables = match progress.tables.lock() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let mut parts = Vec::new();
        for (name, t) in tables.iter().filter(|(_, t)| t.copying) {
            let (before, at) = last.get(name).copied().unwrap_or((t.rows_copied, Instant::now()));
            let rate = (t.rows_copied.saturating_sub(before)) as f64 / at.elapsed().as_secs_f64().max(1e-3);
            last.insert(name.clone(), (t.rows_copied, Instant::now()));
            parts.push(describe(name, t.rows_copied, t.rows_estimated, rate));
        }
        let width = terminal_width();
        let mut text = format!("copying {}", parts.join(" · "));
        if parts.is_empty() {
            text = "copying…".into();
        }
        if text.chars().count() > width {
            text = text.chars().take(width.saturating_sub(1)).collect::<String>() + "…";
        }
        draw(text);
    }
}

/// With no estimate (a table never analysed, and empty when listed), rows and rate only.
fn describe(table: &str, rows: u64, estimated: u64, rate: f64) -> String {
    if estimated == 0 {
        return format!("{table} {} rows {}/s", short(rows as f64), short(rate));
    }
    let pct = (rows as f64 * 100.0 / estimated as f64).min(100.0);
    let eta = if rate > 0.0 { format!("{:.0}s", (estimated.saturating_sub(rows)) as f64 / rate) } else { "?".into() };
    format!("{table} {pct:.0}% {} rows {}/s ETA {eta}", short(rows as f64), short(rate))
}

/// 1234567 → `1.2M`.
fn short(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.1}G", n / 1e9),
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e3 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|&w: &usize| w >= 40).unwrap_or(120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_like_a_person_would_write_it() {
        assert_eq!(
            describe("shop.orders", 1_500_000, 3_000_000, 250_000.0),
            "shop.orders 50% 1.5M rows 250.0k/s ETA 6s"
        );
        assert_eq!(describe("t", 10, 1, 0.0), "t 100% 10 rows 0/s ETA ?");
        assert_eq!(describe("t", 6_000_000, 0, 500_000.0), "t 6.0M rows 500.0k/s");
        assert_eq!(short(999.0), "999");
    }
}
