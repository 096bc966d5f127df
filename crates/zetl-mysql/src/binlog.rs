//! The binlog dump connection: registration as a replica, start by GTID or by file and offset,
//! checksum verification, and MariaDB's own events (which the driver does not decode).

use crate::conninfo::ConnInfo;
use crate::error::{MyError, SqlContext};
use crate::flavor::Flavor;
use crate::position::BinlogPos;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use mysql_common::binlog::consts::BinlogChecksumAlg;
use mysql_common::binlog::events::Event;

/// Event type codes the reader acts on (MySQL's and MariaDB's numbering).
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const INCIDENT: u8 = 26;
    pub const HEARTBEAT: u8 = 27;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const MARIA_GTID: u8 = 162;
    /// LOAD DATA logged as a statement (its file travels in BEGIN_LOAD_QUERY events).
    pub const EXECUTE_LOAD_QUERY: u8 = 18;
    /// Ends an XA transaction's prepared part (see `xa.rs`).
    pub const XA_PREPARE: u8 = 38;
    /// MariaDB's compressed events (`log_bin_compress=ON`), 165 … 171.
    pub const QUERY_COMPRESSED: u8 = 165;
    pub const DELETE_ROWS_COMPRESSED: u8 = 171;

    /// The server's name of a compressed event type (MariaDB `log_event.h`).
    pub fn compressed_name(code: u8) -> &'static str {
        match code {
            165 => "QUERY_COMPRESSED_EVENT",
            166 => "WRITE_ROWS_COMPRESSED_EVENT_V1",
            167 => "UPDATE_ROWS_COMPRESSED_EVENT_V1",
            168 => "DELETE_ROWS_COMPRESSED_EVENT_V1",
            169 => "WRITE_ROWS_COMPRESSED_EVENT",
            170 => "UPDATE_ROWS_COMPRESSED_EVENT",
            171 => "DELETE_ROWS_COMPRESSED_EVENT",
            _ => "a compressed event",
        }
    }
}

/// A MariaDB GTID event: the start of a transaction (or of a standalone DDL statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
    /// No BEGIN follows: the next statement is the whole transaction (DDL).
    pub standalone: bool,
    /// The transaction is the prepared part of an XA transaction (see `xa.rs`).
    pub prepared_xa: bool,
}

/// Layout: seq_no u64, domain_id u32, flags2 u8 (FL_STANDALONE = 1, FL_PREPARED_XA = 64), …
/// (little-endian; MariaDB `log_event.h`, Gtid_log_event).
pub fn parse_maria_gtid(data: &[u8], server: u32) -> Option<MariaGtid> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some(MariaGtid { domain, server, seq, standalone: flags & 1 != 0, prepared_xa: flags & 64 != 0 })
}

pub struct BinlogReader {
    stream: BinlogStream,
    /// The server's `binlog_checksum` is CRC32: the first (fake) ROTATE, sent before the
    /// format description that announces checksums, carries 4 checksum bytes in its name.
    checksums: bool,
}

impl BinlogReader {
    pub async fn open(
        info: &ConnInfo,
        flavor: Flavor,
        server_id: u32,
        start: &BinlogPos,
        heartbeat_secs: u64,
        checksums: bool,
    ) -> Result<BinlogReader, MyError> {
        let mut conn = info.connect().await?;
        let (settings, by_gtid) = flavor.dump_settings(start, heartbeat_secs);
        for sql in &settings {
            conn.query_drop(sql).await.ctx(|| "preparing the binlog connection".into())?;
        }
        let mut request = BinlogStreamRequest::new(server_id);
        if !by_gtid {
            request = request.with_filename(start.file.as_bytes()).with_pos(start.pos);
        }
        let stream = conn.get_binlog_stream(request).await.map_err(|e| dump_error(e, start))?;
        tracing::debug!(from = %start, by_gtid, "binlog dump started");
        Ok(BinlogReader { stream, checksums })
    }

    /// The next event, checksum verified; `None` when the server ended the stream.
    pub async fn next(&mut self, at: &BinlogPos) -> Result<Option<Event>, MyError> {
        let Some(event) = self.stream.next().await else { return Ok(None) };
        let event = event.map_err(|e| dump_error(e, at))?;
        if let Some(sum) = event.checksum() {
            let alg = event.fde().footer().get_checksum_alg().ok().flatten();
            if alg == Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)
                && event.header().event_type_raw() != kind::FORMAT_DESCRIPTION
                && u32::from_le_bytes(sum) != event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)
            {
                return Err(MyError::Checksum { position: at.to_string() });
            }
        }
        Ok(Some(event))
    }

    /// The file a ROTATE event names, without the checksum bytes a fake ROTATE carries.
    pub fn rotate_target(&self, event: &Event) -> Option<(String, u64)> {
        let rotate: mysql_common::binlog::events::RotateEvent<'_> = event.read_event().ok()?;
        let mut name = rotate.name_raw().to_vec();
        let fake = event.header().log_pos() == 0;
        if fake && self.checksums && event.checksum().is_none() && name.len() > 4 {
            name.truncate(name.len() - 4);
        }
        Some((String::from_utf8_lossy(&name).into_owned(), rotate.position()))
    }

    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}

/// Error 1236 is the server saying it cannot serve the requested position: the binlog or GTID
/// is gone (purged, or expired by binlog_expire_logs_seconds).
fn dump_error(e: mysql_async::Error, at: &BinlogPos) -> MyError {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1236 => {
            MyError::BinlogPurged { position: at.to_string(), cause: s.message.clone() }
        }
        _ => MyError::Sql { what: format!("reading the binlog at {at}"), cause: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maria_gtid_events_parse() {
        let mut data = Vec::new();
        data.extend_from_slice(&57u64.to_le_bytes());
        data.extend_from_slice(&3u32.to_le_bytes());
        data.push(1);
        assert_eq!(
            parse_maria_gtid(&data, 9),
            Some(MariaGtid { domain: 3, server: 9, seq: 57, standalone: true, prepared_xa: false })
        );
        data[12] = 64 | 4;
        assert!(parse_maria_gtid(&data, 9).is_some_and(|g| g.prepared_xa && !g.standalone));
        assert_eq!(parse_maria_gtid(&data[..10], 9), None);
    }
}
