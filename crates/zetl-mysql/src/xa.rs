//! XA transactions in the binlog. Their rows are written when the transaction is prepared, and
//! whether they count is decided later, by an `XA COMMIT` or `XA ROLLBACK` of their own, with
//! other transactions in between. What MariaDB 10.11 writes (seen with `mariadb-binlog`):
//!
//! ```text
//! GTID 0-1-3 (flag PREPARED_XA)   XA START X'61',X'',1
//! TABLE_MAP, WRITE_ROWS …
//! QUERY  XA END X'61',X'',1
//! XA_PREPARE (event 38)           XA PREPARE X'61',X'',1
//! …other transactions…
//! GTID 0-1-4 (flag COMPLETED_XA)
//! QUERY  XA COMMIT X'61',X'',1     (or XA ROLLBACK X'61',X'',1)
//! ```
//!
//! MySQL writes a QUERY `XA START …` instead of the GTID flag, and logs `XA COMMIT … ONE PHASE`
//! as an XA_PREPARE event with its one-phase flag set; MariaDB logs a one-phase commit as an
//! ordinary transaction. The reader keeps a prepared transaction's events aside and sends them
//! only at its `XA COMMIT`, as a transaction of that position.
//!
//! The kept events live in memory, and the checkpoint moves on past the prepare. So that a
//! restart between a prepare and its commit loses nothing, every stored position also names
//! where the oldest waiting transaction began (`xa_from`); a restart reads the binlog again
//! from there, up to the stored position, only to collect the transactions still prepared
//! (everything else there is applied already: `Streamer::recovering`).

use crate::position::BinlogPos;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use zetl_core::SourceEvent;

/// An XA statement logged as a QUERY event; the xid as the server writes it (`X'61',X'',1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XaStatement {
    Start,
    End,
    Commit(String),
    Rollback(String),
}

/// `XA START|BEGIN|END|COMMIT|ROLLBACK xid`; `None` for anything else (and for a one-phase
/// commit, which the binlog shows as an ordinary transaction or an XA_PREPARE event).
pub fn statement(sql: &str) -> Option<XaStatement> {
    let mut words = sql.trim_start().splitn(3, char::is_whitespace);
    if !words.next()?.eq_ignore_ascii_case("XA") {
        return None;
    }
    let verb = words.next()?.to_ascii_uppercase();
    let xid = || normalize(words.clone().next().unwrap_or_default());
    match verb.as_str() {
        "START" | "BEGIN" => Some(XaStatement::Start),
        "END" => Some(XaStatement::End),
        "COMMIT" => Some(XaStatement::Commit(xid())),
        "ROLLBACK" => Some(XaStatement::Rollback(xid())),
        _ => None,
    }
}

/// The xid's canonical text: the server writes `X'hex',X'hex',format`; only letter case may
/// differ between the events that carry it.
fn normalize(xid: &str) -> String {
    let xid = xid.trim().trim_end_matches(';').trim();
    let xid = xid.strip_suffix("ONE PHASE").map(str::trim_end).unwrap_or(xid);
    xid.to_ascii_uppercase()
}

/// An XA_PREPARE event's body: one_phase u8, formatID u32, gtrid_length u32, bqual_length u32,
/// then gtrid and bqual (little-endian). Returns whether it is a one-phase commit, and the xid
/// in the form of the QUERY events.
pub fn parse_prepare(data: &[u8]) -> Option<(bool, String)> {
    let u32_at = |at: usize| data.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let one_phase = *data.first()? != 0;
    let format = u32_at(1)? as i32;
    let (gtrid, bqual) = (u32_at(5)? as usize, u32_at(9)? as usize);
    let ids = data.get(13..13 + gtrid + bqual)?;
    let hex = |b: &[u8]| {
        b.iter().fold(String::new(), |mut s, x| {
            let _ = write!(s, "{x:02X}");
            s
        })
    };
    Some((one_phase, format!("X'{}',X'{}',{format}", hex(&ids[..gtrid]), hex(&ids[gtrid..]))))
}

/// Prepared XA transactions waiting for their `XA COMMIT` / `XA ROLLBACK`, by xid, with the
/// transaction boundary before each began.
#[derive(Default)]
pub struct Prepared {
    waiting: HashMap<String, (BinlogPos, Vec<SourceEvent>)>,
}

impl Prepared {
    pub fn insert(&mut self, xid: String, began: BinlogPos, events: Vec<SourceEvent>) {
        self.waiting.insert(xid, (began, events));
    }

    /// The events of `xid`; `None` when this reader did not see it prepared.
    pub fn take(&mut self, xid: &str) -> Option<Vec<SourceEvent>> {
        self.waiting.remove(xid).map(|(_, events)| events)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Where the oldest waiting transaction began: a restart reads the binlog from there.
    pub fn oldest(&self) -> Option<&BinlogPos> {
        self.waiting.values().map(|(began, _)| began).min_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xa_statements_as_mariadb_logs_them() {
        assert_eq!(statement("XA END X'61',X'',1"), Some(XaStatement::End));
        assert_eq!(statement("XA COMMIT X'62',X'',1"), Some(XaStatement::Commit("X'62',X'',1".into())));
        assert_eq!(statement("xa rollback X'7a',X'',1"), Some(XaStatement::Rollback("X'7A',X'',1".into())));
        assert_eq!(statement("XA START X'61',X'',1"), Some(XaStatement::Start));
        assert_eq!(statement("INSERT INTO xa VALUES (1)"), None);
    }

    #[test]
    fn prepare_events_carry_the_xid() {
        // Captured from MariaDB 10.11: XA PREPARE 'a' (gtrid "a", no bqual, format 1).
        let data = [0u8, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x61];
        assert_eq!(parse_prepare(&data), Some((false, "X'61',X'',1".into())));
        let mut one_phase = data.to_vec();
        one_phase[0] = 1;
        assert_eq!(parse_prepare(&one_phase).map(|p| p.0), Some(true));
        assert_eq!(parse_prepare(&data[..10]), None);
    }
}
