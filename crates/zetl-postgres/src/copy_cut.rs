//! Where a copy made while streaming meets the stream. The copy reads the table in an ordinary
//! REPEATABLE READ snapshot (`pg_current_snapshot()`), so it waits for no open transaction (a
//! temporary slot would wait for every one, an `idle in transaction` session included). The
//! stream then skips the table's changes in exactly the transactions that snapshot saw, by xid;
//! a transaction it did not see is applied, whatever its place in the WAL (commit order and
//! visibility order differ slightly in PostgreSQL, so an LSN alone cannot draw the line).

use crate::lsn::Lsn;
use std::fmt;

/// A `pg_snapshot`: transactions below `xmin` are finished, from `xmax` on not yet started,
/// and in between those in `xip` were in progress. Full 64-bit transaction ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XSnapshot {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl XSnapshot {
    /// Parses `pg_current_snapshot()`'s text form, `xmin:xmax:xip1,xip2`.
    pub fn parse(text: &str) -> Option<XSnapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list.split(',').map(|x| x.parse().ok()).collect::<Option<Vec<u64>>>()?,
        };
        (xmin <= xmax && xip.iter().all(|x| (xmin..xmax).contains(x))).then_some(XSnapshot { xmin, xmax, xip })
    }

    /// The full id of a 32-bit xid (pgoutput's) that is near this snapshot: within 2³¹ of
    /// `xmax`, as every xid the server still decodes is. `None` for an xid before the first
    /// epoch, which cannot be.
    fn widen(&self, xid: u32) -> Option<u64> {
        const HALF: u64 = 1 << 31;
        let full = (self.xmax & !0xffff_ffff) | u64::from(xid);
        if full > self.xmax + HALF {
            full.checked_sub(1 << 32)
        } else if full + HALF < self.xmax {
            Some(full + (1 << 32))
        } else {
            Some(full)
        }
    }

    /// Whether a committed transaction's changes were visible in this snapshot. When in doubt
    /// not: a change applied twice converges, a change skipped is lost.
    pub fn sees(&self, xid: u32) -> bool {
        self.widen(xid).is_some_and(|full| full < self.xmax && !self.xip.contains(&full))
    }

    /// The oldest transaction still running when the snapshot was taken (or `xmax`).
    pub fn xmin(&self) -> u64 {
        self.xmin
    }

    /// The transactions in progress when the snapshot was taken, as pgoutput names them.
    pub fn in_progress(&self) -> impl Iterator<Item = u32> + '_ {
        self.xip.iter().map(|x| *x as u32)
    }
}

impl fmt::Display for XSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.xip.iter().enumerate() {
            write!(f, "{}{x}", if i == 0 { "" } else { "," })?;
        }
        Ok(())
    }
}

/// What a table's copy holds of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyCut {
    /// Every transaction that committed before the LSN (a temporary slot's consistent point;
    /// what earlier versions stored).
    Before(Lsn),
    /// Every transaction the snapshot saw; all of them committed before `until`.
    Snapshot { snapshot: XSnapshot, until: Lsn },
}

impl CopyCut {
    /// Parses the stored form: `LSN`, or `LSN xmin:xmax:xip`.
    pub fn parse(text: &str) -> Option<CopyCut> {
        match text.trim().split_once(' ') {
            None => Lsn::parse(text).map(CopyCut::Before),
            Some((until, snapshot)) => {
                Some(CopyCut::Snapshot { snapshot: XSnapshot::parse(snapshot)?, until: Lsn::parse(until)? })
            }
        }
    }

    /// Whether the copy holds the transaction `xid` that commits at `commit`.
    pub fn holds(&self, commit: Lsn, xid: u32) -> bool {
        match self {
            CopyCut::Before(lsn) => commit < *lsn,
            CopyCut::Snapshot { snapshot, until } => commit < *until && snapshot.sees(xid),
        }
    }

    /// Whether no transaction from `at` on can be held: the cut can be forgotten.
    pub fn passed(&self, at: Lsn) -> bool {
        match self {
            CopyCut::Before(lsn) | CopyCut::Snapshot { until: lsn, .. } => at >= *lsn,
        }
    }
}

impl fmt::Display for CopyCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyCut::Before(lsn) => write!(f, "{lsn}"),
            CopyCut::Snapshot { snapshot, until } => write!(f, "{until} {snapshot}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_follows_the_snapshot() {
        let s = XSnapshot::parse("745:750:747,748").expect("valid");
        assert!(s.sees(700) && s.sees(745) && s.sees(746) && s.sees(749));
        assert!(!s.sees(747) && !s.sees(748) && !s.sees(750) && !s.sees(900));
        assert_eq!(s.in_progress().collect::<Vec<_>>(), vec![747, 748]);
        assert_eq!(s.to_string(), "745:750:747,748");
        assert_eq!(XSnapshot::parse("10:10:").map(|s| s.to_string()).as_deref(), Some("10:10:"));
        for bad in ["", "1:2", "3:2:", "1:5:7", "1:5:x", "a:b:"] {
            assert!(XSnapshot::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn xids_widen_across_the_epoch() {
        // xmax just past a wrap: 32-bit xids near u32::MAX belong to the epoch before.
        let s = XSnapshot::parse(&format!("{}:{}:", (1u64 << 32) - 10, (1u64 << 32) + 5)).expect("valid");
        assert!(s.sees(u32::MAX - 3) && s.sees(2));
        assert!(!s.sees(5) && !s.sees(6));
        let early = XSnapshot::parse("3:10:").expect("valid");
        assert!(!early.sees(u32::MAX), "an xid far above is not from an earlier epoch below zero");
    }

    #[test]
    fn cuts_round_trip_and_hold() {
        let legacy = CopyCut::parse("0/16B3748").expect("an LSN");
        assert!(legacy.holds(Lsn(0x16B3747), 1) && !legacy.holds(Lsn(0x16B3748), 1));
        let cut = CopyCut::parse("0/200 745:750:747").expect("valid");
        assert_eq!(cut.to_string(), "0/200 745:750:747");
        assert!(cut.holds(Lsn(0x100), 746));
        assert!(!cut.holds(Lsn(0x100), 747), "in progress when the copy read");
        assert!(!cut.holds(Lsn(0x200), 746), "committed after the copy read");
        assert!(cut.passed(Lsn(0x200)) && !cut.passed(Lsn(0x1ff)));
        assert!(CopyCut::parse("0/200 nope").is_none());
    }
}
