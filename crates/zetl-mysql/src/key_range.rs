//! Copies of tables with a single integer primary key, read in key order in ranges, so that
//! an initial copy interrupted by a crash continues after the last row the target committed.
//! Each range's cursor (the key of its last row sent) is stored with the rows, in the form
//! `part from to after` (`-` where open or not begun), and for a fill (`fill.rs`)
//! `columns since` after that ([`FillMark`]).

use crate::catalog::quote_ident;
use crate::position::BinlogPos;
use zetl_core::{CopyCursor, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub part: u32,
    /// Keys from this one (inclusive; `None`: all below)…
    pub from: Option<i128>,
    /// …up to this one (exclusive; `None`: all above).
    pub to: Option<i128>,
    /// The last key sent: the range continues after it.
    pub after: Option<i128>,
    pub fill: Option<FillMark>,
}

/// What a fill (`fill.rs`) stores with its range's cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillMark {
    /// The columns it copies (`TableSchema::columns_fingerprint`): it continues after a
    /// restart only while the table still has them.
    pub columns: String,
    /// Its first chunk's snapshot position: every transaction before it is in the copy.
    pub since: Option<BinlogPos>,
}

impl KeyRange {
    pub fn cursor(&self) -> CopyCursor {
        let show = |k: Option<i128>| k.map_or("-".to_string(), |k| k.to_string());
        let mut token = format!("{} {} {} {}", self.part, show(self.from), show(self.to), show(self.after));
        if let Some(fill) = &self.fill {
            let since = fill.since.as_ref().map_or("-".to_string(), |p| format!("{}:{}", p.file, p.pos));
            token = format!("{token} {} {since}", fill.columns);
        }
        CopyCursor { part: self.part, token }
    }

    pub fn parse(stored: &str) -> Option<KeyRange> {
        let mut f = stored.split(' ');
        let mut key = || -> Option<Option<i128>> {
            match f.next()? {
                "-" => Some(None),
                k => k.parse().ok().map(Some),
            }
        };
        let part = key()??.try_into().ok()?;
        let (from, to, after) = (key()?, key()?, key()?);
        let fill = match (f.next(), f.next()) {
            (None, _) => None,
            (Some(columns), Some("-")) => Some(FillMark { columns: columns.to_string(), since: None }),
            (Some(columns), Some(since)) => {
                Some(FillMark { columns: columns.to_string(), since: Some(BinlogPos::parse(since)?) })
            }
            (Some(_), None) => return None,
        };
        f.next().is_none().then_some(KeyRange { part, from, to, after, fill })
    }

    /// A whole table's single range (part 0), not begun.
    pub fn whole(part: u32) -> KeyRange {
        KeyRange { part, from: None, to: None, after: None, fill: None }
    }

    /// The range's rows still to read, as a WHERE condition on `key` (empty: the whole table).
    pub fn condition(&self, key: &str) -> String {
        let k = quote_ident(key);
        let lower = match (self.after, self.from) {
            (Some(after), _) => Some(format!("{k} > {after}")),
            (None, Some(from)) => Some(format!("{k} >= {from}")),
            (None, None) => None,
        };
        let upper = self.to.map(|to| format!("{k} < {to}"));
        [lower, upper].into_iter().flatten().collect::<Vec<_>>().join(" AND ")
    }
}

/// An integer key value as the copy converted it.
pub fn int_key(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_round_trips_and_continues_after_its_cursor() {
        let r = KeyRange { part: 2, from: Some(-5), to: None, after: Some(18446744073709551615), fill: None };
        assert_eq!(r.cursor().token, "2 -5 - 18446744073709551615");
        assert_eq!(KeyRange::parse(&r.cursor().token), Some(r.clone()));
        assert_eq!(r.condition("id"), "`id` > 18446744073709551615");
        let fresh = KeyRange { after: None, to: Some(10), ..r };
        assert_eq!(fresh.condition("id"), "`id` >= -5 AND `id` < 10");
        assert_eq!(KeyRange::whole(0).condition("id"), "");
        assert_eq!(KeyRange::parse("x 1 2 3"), None);
        assert_eq!(KeyRange::parse("1 2 3"), None);
        let mark = FillMark { columns: "00ff".into(), since: Some(BinlogPos::new("mysql-bin.000002", 4096)) };
        let fill = KeyRange { after: Some(7), fill: Some(mark), ..KeyRange::whole(0) };
        assert_eq!(fill.cursor().token, "0 - - 7 00ff mysql-bin.000002:4096");
        assert_eq!(KeyRange::parse(&fill.cursor().token), Some(fill));
        let begun = KeyRange { fill: Some(FillMark { columns: "00ff".into(), since: None }), ..KeyRange::whole(0) };
        assert_eq!(begun.cursor().token, "0 - - - 00ff -");
        assert_eq!(KeyRange::parse("0 - - - 00ff -"), Some(begun));
        assert_eq!(KeyRange::parse("0 - - 7 00ff"), None);
        assert_eq!(KeyRange::parse("0 - - 7 00ff - extra"), None);
    }
}
