//! Binlog positions: a file and an offset, plus the GTID state where the server keeps one.
//! Stored in the target as text: `mysql-bin.000003:1234` or `mysql-bin.000003:1234 gtid=0-1-57`,
//! followed by ` xa_from=<position>` while XA transactions prepared before it wait for their
//! commit (see `xa.rs`): a restart reads the binlog again from there to find their rows.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinlogPos {
    pub file: String,
    /// Offset of the next event in `file`.
    pub pos: u64,
    /// The server's GTID state at this position (MariaDB `domain-server-seq,...`;
    /// MySQL `uuid:1-n,...`), when known.
    pub gtid: Option<String>,
}

impl BinlogPos {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        Self { file: file.into(), pos, gtid: None }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.split_once(XA_FROM).map_or(text, |(applied, _)| applied);
        let (coords, gtid) = match text.split_once(" gtid=") {
            Some((c, g)) => (c, Some(g.to_string())),
            None => (text, None),
        };
        let (file, pos) = coords.rsplit_once(':')?;
        if file.is_empty() {
            return None;
        }
        Some(Self { file: file.to_string(), pos: pos.parse().ok()?, gtid })
    }

    /// The numeric suffix of the file name (`mysql-bin.000003` → 3): binlog files are
    /// numbered in order.
    pub fn file_seq(&self) -> u64 {
        file_seq(&self.file)
    }
}

const XA_FROM: &str = " xa_from=";

/// A position as the target stores it: where the stream resumes, and where the oldest XA
/// transaction still prepared there began (its rows are read again from there, see xa.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPos {
    pub at: BinlogPos,
    pub xa_from: Option<BinlogPos>,
}

impl fmt::Display for StoredPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.xa_from {
            Some(from) => write!(f, "{}{XA_FROM}{from}", self.at),
            None => write!(f, "{}", self.at),
        }
    }
}

impl From<BinlogPos> for StoredPos {
    fn from(at: BinlogPos) -> Self {
        StoredPos { at, xa_from: None }
    }
}

impl zetl_core::source::SourcePosition for StoredPos {
    const KIND: &'static str = "a binlog position";

    fn parse(text: &str) -> Result<Self, String> {
        let at = BinlogPos::parse(text).ok_or("expected file:offset, as in mysql-bin.000003:1234")?;
        let xa_from = match text.split_once(XA_FROM) {
            Some((_, from)) => Some(BinlogPos::parse(from).ok_or("its xa_from part is not file:offset")?),
            None => None,
        };
        Ok(StoredPos { at, xa_from })
    }
}

pub fn file_seq(file: &str) -> u64 {
    file.rsplit('.').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if let Some(g) = &self.gtid {
            write!(f, " gtid={g}")?;
        }
        Ok(())
    }
}

/// Order in the binlog (the GTID state does not take part).
impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((self.file_seq(), self.pos).cmp(&(other.file_seq(), other.pos)))
    }
}

/// MariaDB GTID state: the last `server-seq` per replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaGtidState {
    domains: Vec<(u32, u32, u64)>,
}

impl MariaGtidState {
    pub fn parse(text: &str) -> Option<Self> {
        let mut state = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (d, s, n) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
            if it.next().is_some() {
                return None;
            }
            state.set(d, s, n);
        }
        Some(state)
    }

    pub fn set(&mut self, domain: u32, server: u32, seq: u64) {
        match self.domains.iter_mut().find(|(d, _, _)| *d == domain) {
            Some(entry) => *entry = (domain, server, seq),
            None => {
                self.domains.push((domain, server, seq));
                self.domains.sort_unstable();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl fmt::Display for MariaGtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, s, n)) in self.domains.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::source::SourcePosition;

    #[test]
    fn positions_round_trip_and_order_by_file_then_offset() {
        let a = BinlogPos::parse("mysql-bin.000009:900").unwrap();
        let b = BinlogPos::parse("mysql-bin.000010:4 gtid=0-1-5,1-2-7").unwrap();
        assert_eq!(b.gtid.as_deref(), Some("0-1-5,1-2-7"));
        assert_eq!(BinlogPos::parse(&b.to_string()), Some(b.clone()));
        assert!(a < b);
        assert!(BinlogPos::parse("nofile").is_none());
        assert!(BinlogPos::parse(":5").is_none());
    }

    #[test]
    fn a_stored_position_names_where_a_waiting_xa_transaction_began() {
        let applied = BinlogPos::parse("mysql-bin.000010:4 gtid=0-1-5").unwrap();
        let began = BinlogPos::parse("mysql-bin.000009:900 gtid=0-1-3").unwrap();
        let stored = StoredPos { at: applied.clone(), xa_from: Some(began.clone()) }.to_string();
        assert_eq!(BinlogPos::parse(&stored), Some(applied.clone()));
        assert_eq!(StoredPos::parse(&stored).map(|p| p.xa_from), Ok(Some(began)));
        assert_eq!(StoredPos { at: applied.clone(), xa_from: None }.to_string(), applied.to_string());
        assert_eq!(StoredPos::parse(&applied.to_string()).map(|p| p.xa_from), Ok(None));
    }

    #[test]
    fn gtid_state_keeps_the_last_per_domain() {
        let mut s = MariaGtidState::parse("1-1-3, 0-1-10").unwrap();
        s.set(0, 2, 11);
        s.set(5, 1, 1);
        assert_eq!(s.to_string(), "0-2-11,1-1-3,5-1-1");
        assert!(MariaGtidState::parse("0-1").is_none());
        assert!(MariaGtidState::parse("").unwrap().is_empty());
    }
}
