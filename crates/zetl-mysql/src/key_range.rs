//! Copies of tables with a single integer primary key, read in key order in ranges, so that
//! an initial copy interrupted by a crash continues after the last row the target committed.
//! Each range's cursor (the key of its last row sent) is stored with the rows, in the form
//! `part from to after` (`-` where open or not begun).

use crate::catalog::quote_ident;
use zetl_core::CopyCursor;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub part: u32,
    /// Keys from this one (inclusive; `None`: all below)…
    pub from: Option<i128>,
    /// …up to this one (exclusive; `None`: all above).
    pub to: Option<i128>,
    /// The last key sent: the range continues after it.
    pub after: Option<i128>,
}

impl KeyRange {
    pub fn cursor(&self) -> CopyCursor {
        let show = |k: Option<i128>| k.map_or("-".to_string(), |k| k.to_string());
        CopyCursor {
            part: self.part,
            token: format!("{} {} {} {}", self.part, show(self.from), show(self.to), show(self.after)),
        }
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
        Some(KeyRange { part, from: key()?, to: key()?, after: key()? })
    }

    /// A whole table's single range, not begun.
    pub fn whole(part: u32) -> KeyRange {
        KeyRange { part, from: None, to: None, after: None }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_round_trips_and_continues_after_its_cursor() {
        let r = KeyRange { part: 2, from: Some(-5), to: None, after: Some(18446744073709551615) };
        assert_eq!(r.cursor().token, "2 -5 - 18446744073709551615");
        assert_eq!(KeyRange::parse(&r.cursor().token), Some(r.clone()));
        assert_eq!(r.condition("id"), "`id` > 18446744073709551615");
        let fresh = KeyRange { after: None, to: Some(10), ..r };
        assert_eq!(fresh.condition("id"), "`id` >= -5 AND `id` < 10");
        assert_eq!(KeyRange::whole(0).condition("id"), "");
        assert_eq!(KeyRange::parse("x 1 2 3"), None);
        assert_eq!(KeyRange::parse("1 2 3"), None);
    }
}
