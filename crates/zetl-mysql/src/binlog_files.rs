//! The server's binlog files and sizes (`SHOW BINARY LOGS`), to turn positions into bytes
//! for the lag and retained-log metrics.

use crate::position::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering;
use zetl_core::progress::Progress;

#[derive(Debug, Default)]
pub struct BinlogFiles {
    /// (file, size) in order.
    files: Vec<(String, u64)>,
}

impl BinlogFiles {
    /// A failed look-up (no BINLOG MONITOR / REPLICATION CLIENT grant) leaves the metrics as
    /// they were.
    pub async fn refresh(&mut self, conn: &mut Conn) {
        match conn.query::<mysql_async::Row, _>("SHOW BINARY LOGS").await {
            Ok(rows) => {
                self.files =
                    rows.into_iter().filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?))).collect();
            }
            Err(e) => tracing::debug!(error = %e, "cannot list binary logs"),
        }
    }

    /// Bytes from the start of the oldest binlog the server keeps to `pos`.
    fn offset(&self, pos: &BinlogPos) -> Option<u64> {
        let mut before = 0;
        for (file, size) in &self.files {
            if file == &pos.file {
                return Some(before + pos.pos);
            }
            before += size;
        }
        None
    }

    pub fn report(&self, progress: &Progress, read: &BinlogPos, acked: Option<&BinlogPos>) {
        let end: u64 = self.files.iter().map(|(_, s)| s).sum();
        if self.files.is_empty() {
            return;
        }
        let read = self.offset(read).unwrap_or(end);
        progress.source_log_position.store(end.max(read), Ordering::Relaxed);
        if let Some(acked) = acked.and_then(|a| self.offset(a)) {
            progress.target_log_position.store(acked, Ordering::Relaxed);
            progress.retained_log_bytes.store(end.saturating_sub(acked), Ordering::Relaxed);
        }
    }
}
