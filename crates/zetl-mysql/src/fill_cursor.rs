//! Where a fill (`fill.rs`) stands, stored with its rows as
//! `fill <columns> <since> <key>`: the fingerprint of the columns it copies, its first chunk's
//! snapshot position (`-` before it), and the last key sent (`-` before any), each key value
//! as the hex of the text the server returned for it, comma-separated.
//!
//! The next chunk reads the rows after that key in key order, compared by the server itself
//! (a text key in its column's collation), so the rows of a chunk and the order they are read
//! in agree whatever the key's type.

use crate::catalog::quote_ident;
use crate::columns::{MyKind, MyTable};
use crate::position::BinlogPos;
use zetl_core::{hex, CopyCursor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillCursor {
    /// `TableSchema::columns_fingerprint`: a restart continues only while the table has them.
    pub columns: String,
    /// The first chunk's snapshot position: every transaction before it is in the copy.
    pub since: Option<BinlogPos>,
    /// The last key sent, as the server's text of each key column.
    pub after: Option<Vec<Vec<u8>>>,
}

const TAG: &str = "fill";

impl FillCursor {
    pub fn cursor(&self) -> CopyCursor {
        let since = self.since.as_ref().map_or("-".to_string(), |p| format!("{}:{}", p.file, p.pos));
        let after = match &self.after {
            Some(key) => key.iter().map(|v| hex::encode(v)).collect::<Vec<_>>().join(","),
            None => "-".into(),
        };
        CopyCursor { part: 0, token: format!("{TAG} {} {since} {after}", self.columns) }
    }

    pub fn parse(stored: &str) -> Option<FillCursor> {
        let mut f = stored.split(' ');
        if f.next()? != TAG {
            return None;
        }
        let columns = f.next()?.to_string();
        let since = match f.next()? {
            "-" => None,
            at => Some(BinlogPos::parse(at)?),
        };
        let after = match f.next()? {
            "-" => None,
            key => Some(key.split(',').map(hex::decode).collect::<Option<Vec<_>>>()?),
        };
        f.next().is_none().then_some(FillCursor { columns, since, after })
    }

    /// The rows after the cursor, as a WHERE condition on `table`'s key (empty: all):
    /// `k1 > v1 OR (k1 = v1 AND k2 > v2) …`, which the server reads as ranges of the key's
    /// index. `None` when the stored key does not fit the table's.
    pub fn condition(&self, table: &MyTable) -> Option<String> {
        let Some(after) = &self.after else { return Some(String::new()) };
        if after.len() != table.key.len() {
            return None;
        }
        // Per key column: `= v`, and what comes after v in key order.
        let mut parts = Vec::with_capacity(after.len());
        for (&k, value) in table.key.iter().zip(after) {
            let (column, kind) = (quote_ident(&table.columns[k].name), &table.columns[k].kind);
            let equal = format!("{column} = {}", literal(kind, value)?);
            let later = match kind {
                MyKind::Enum(labels) => enum_after(&column, labels, value),
                MyKind::Set(labels) => set_after(&column, labels, value)?,
                _ => format!("{column} > {}", literal(kind, value)?),
            };
            parts.push((equal, later));
        }
        let mut ors = Vec::with_capacity(parts.len());
        for i in 0..parts.len() {
            let mut ands: Vec<&str> = parts[..i].iter().map(|(equal, _)| equal.as_str()).collect();
            ands.push(&parts[i].1);
            ors.push(format!("({})", ands.join(" AND ")));
        }
        Some(ors.join(" OR "))
    }
}

/// An ENUM sorts by its labels' order of declaration but compares as text: the labels after
/// `value` are named instead (`IN`, which the server reads as ranges of the index too). A
/// value that is no label (the empty string of an invalid value, index 0) comes before all.
fn enum_after(column: &str, labels: &[String], value: &[u8]) -> String {
    let from = labels.iter().position(|l| l.as_bytes() == value).map_or(0, |i| i + 1);
    let later: Vec<String> =
        labels[from..].iter().map(|l| format!("_utf8mb4 X'{}'", hex::encode(l.as_bytes()))).collect();
    if later.is_empty() {
        "FALSE".into()
    } else {
        format!("{column} IN ({})", later.join(", "))
    }
}

/// A SET sorts by its bits but compares as text, so the values after the cursor's are named
/// (`IN`, read as ranges of the index; `k > n` would scan the index from its start for every
/// chunk). Up to this many labels (4095 values at most) they are; a SET with more is copied
/// in one piece.
pub const SET_LABELS_MAX: usize = 12;

/// The values after `value` (the server's text of a SET: its labels in declaration order,
/// comma-separated) in the order a SET sorts, by its bits; `None` if the text names a label
/// the SET does not have.
fn set_after(column: &str, labels: &[String], value: &[u8]) -> Option<String> {
    let from = set_bits(labels, value)?;
    let all = 1u64.checked_shl(u32::try_from(labels.len()).ok()?)?;
    let later: Vec<String> = (from + 1..all).map(|bits| bits.to_string()).collect();
    Some(if later.is_empty() { "FALSE".into() } else { format!("{column} IN ({})", later.join(", ")) })
}

/// A SET's text as its bits (the number a SET compares as with a number).
fn set_bits(labels: &[String], value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return Some(0);
    }
    let mut bits = 0u64;
    for label in value.split(|&b| b == b',') {
        let i = labels.iter().position(|l| l.as_bytes() == label)?;
        bits |= 1u64.checked_shl(u32::try_from(i).ok()?)?;
    }
    Some(bits)
}

/// Whether a fill can read `table` in key order and compare its keys as the server orders
/// them: a primary key of numbers (floats read as their exact double, `snapshot::select_expr`),
/// strings, binary strings, ENUMs, SETs of up to `SET_LABELS_MAX` labels, BITs, dates, times,
/// datetimes, timestamps (read and written back in the session's UTC, so a literal names the
/// same instant) and years.
pub fn key_fits(table: &MyTable) -> bool {
    !table.key.is_empty()
        && table.key.iter().all(|&k| match &table.columns[k].kind {
            MyKind::Set(labels) => labels.len() <= SET_LABELS_MAX,
            kind => matches!(
                kind,
                MyKind::Int { .. }
                    | MyKind::Float
                    | MyKind::Double
                    | MyKind::Decimal { .. }
                    | MyKind::Text { .. }
                    | MyKind::Bytes { .. }
                    | MyKind::Enum(_)
                    | MyKind::Bit { .. }
                    | MyKind::Date
                    | MyKind::Time
                    | MyKind::DateTime
                    | MyKind::Timestamp
                    | MyKind::Year
            ),
        })
}

/// A key value in SQL, from the text the server returned for it; `None` if that text is not
/// what the column's kind gives.
fn literal(kind: &MyKind, raw: &[u8]) -> Option<String> {
    let plain = |allowed: &dyn Fn(u8) -> bool| {
        (!raw.is_empty() && raw.iter().all(|&b| allowed(b))).then(|| String::from_utf8_lossy(raw).into_owned())
    };
    match kind {
        MyKind::Int { .. } | MyKind::Decimal { .. } | MyKind::Year => {
            plain(&|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        }
        // A double literal (`e`): without one, the server reads `1.1` as a DECIMAL.
        MyKind::Float | MyKind::Double => plain(&|b| b.is_ascii_digit() || b"-+.eE".contains(&b)).map(|t| {
            if t.contains(['e', 'E']) {
                t
            } else {
                format!("{t}e0")
            }
        }),
        // The column's bits, big-endian, compared as the number they make.
        MyKind::Bit { .. } if raw.len() <= 8 => {
            Some(raw.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)).to_string())
        }
        MyKind::Set(labels) => set_bits(labels, raw).map(|bits| bits.to_string()),
        MyKind::Date | MyKind::Time | MyKind::DateTime | MyKind::Timestamp => {
            plain(&|b| b.is_ascii_digit() || b"-: .".contains(&b)).map(|t| format!("'{t}'"))
        }
        // A literal (coercible), so the comparison takes the column's own collation.
        MyKind::Text { .. } | MyKind::Enum(_) => Some(format!("_utf8mb4 X'{}'", hex::encode(raw))),
        MyKind::Bytes { .. } => Some(format!("X'{}'", hex::encode(raw))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::MyColumn;
    use zetl_core::TableId;

    fn table(kinds: &[(&str, MyKind)]) -> MyTable {
        let column = |(name, kind): &(&str, MyKind)| MyColumn {
            name: name.to_string(),
            kind: kind.clone(),
            nullable: false,
            source_type: String::new(),
        };
        let columns = kinds.iter().map(column).collect();
        MyTable { id: TableId::new("shop", "t"), columns, key: (0..kinds.len()).collect() }
    }

    #[test]
    fn a_cursor_round_trips_its_position_and_key() {
        let c = FillCursor {
            columns: "00ff".into(),
            since: Some(BinlogPos::new("mysql-bin.000002", 4096)),
            after: Some(vec![b"north".to_vec(), b"42".to_vec()]),
        };
        assert_eq!(c.cursor().token, "fill 00ff mysql-bin.000002:4096 6e6f727468,3432");
        assert_eq!(FillCursor::parse(&c.cursor().token), Some(c));
        let begun = FillCursor { columns: "00ff".into(), since: None, after: None };
        assert_eq!(begun.cursor().token, "fill 00ff - -");
        assert_eq!(FillCursor::parse("fill 00ff - -"), Some(begun));
        assert_eq!(FillCursor::parse("0 - - 7"), None, "an initial copy's range is not a fill's");
        assert_eq!(FillCursor::parse("fill 00ff - 6e6"), None);
        assert_eq!(FillCursor::parse("fill 00ff - - extra"), None);
    }

    #[test]
    fn the_condition_continues_after_the_key_in_key_order() {
        let t = table(&[("region", MyKind::Text { latin1: false }), ("id", MyKind::Int { bytes: 8, unsigned: false })]);
        let mut c = FillCursor { columns: String::new(), since: None, after: None };
        assert_eq!(c.condition(&t).as_deref(), Some(""));
        c.after = Some(vec![b"it's".to_vec(), b"-7".to_vec()]);
        assert_eq!(
            c.condition(&t).as_deref(),
            Some("(`region` > _utf8mb4 X'69742773') OR (`region` = _utf8mb4 X'69742773' AND `id` > -7)")
        );
        c.after = Some(vec![b"x".to_vec(), b"1; DROP TABLE t".to_vec()]);
        assert_eq!(c.condition(&t), None, "not a number's text");
        c.after = Some(vec![b"x".to_vec()]);
        assert_eq!(c.condition(&t), None, "another key");
        let d = table(&[("day", MyKind::DateTime), ("b", MyKind::Bytes { pad_to: 2 })]);
        let c = FillCursor { after: Some(vec![b"2024-01-02 03:04:05.5".to_vec(), vec![0, 255]]), ..c };
        assert_eq!(
            c.condition(&d).as_deref(),
            Some("(`day` > '2024-01-02 03:04:05.5') OR (`day` = '2024-01-02 03:04:05.5' AND `b` > X'00ff')")
        );
    }

    #[test]
    fn an_enum_key_continues_with_the_labels_declared_after() {
        let labels = vec!["gold".to_string(), "silver".into(), "bronze".into()];
        let t = table(&[("tier", MyKind::Enum(labels)), ("id", MyKind::Int { bytes: 4, unsigned: false })]);
        let c = FillCursor { columns: String::new(), since: None, after: Some(vec![b"gold".to_vec(), b"7".to_vec()]) };
        assert_eq!(
            c.condition(&t).as_deref(),
            Some(
                "(`tier` IN (_utf8mb4 X'73696c766572', _utf8mb4 X'62726f6e7a65')) \
                 OR (`tier` = _utf8mb4 X'676f6c64' AND `id` > 7)"
            )
        );
        let last = FillCursor { after: Some(vec![b"bronze".to_vec(), b"7".to_vec()]), ..c };
        assert!(last.condition(&t).is_some_and(|w| w.starts_with("(FALSE) OR")));
    }

    #[test]
    fn a_set_key_continues_with_the_values_of_higher_bits() {
        let labels = vec!["b".to_string(), "a".into(), "c".into()];
        let t = table(&[("s", MyKind::Set(labels)), ("id", MyKind::Int { bytes: 4, unsigned: false })]);
        let c = FillCursor { columns: String::new(), since: None, after: Some(vec![b"b,a".to_vec(), b"2".to_vec()]) };
        assert_eq!(c.condition(&t).as_deref(), Some("(`s` IN (4, 5, 6, 7)) OR (`s` = 3 AND `id` > 2)"));
        let empty = FillCursor { after: Some(vec![Vec::new(), b"2".to_vec()]), ..c.clone() };
        assert!(empty.condition(&t).is_some_and(|w| w.starts_with("(`s` IN (1, 2, 3, 4, 5, 6, 7)) OR (`s` = 0 AND")));
        let last = FillCursor { after: Some(vec![b"b,a,c".to_vec(), b"2".to_vec()]), ..c.clone() };
        assert!(last.condition(&t).is_some_and(|w| w.starts_with("(FALSE) OR (`s` = 7 AND")));
        let stranger = FillCursor { after: Some(vec![b"b,z".to_vec(), b"2".to_vec()]), ..c };
        assert_eq!(stranger.condition(&t), None, "no such label");
    }

    #[test]
    fn float_and_bit_keys_compare_as_their_exact_numbers() {
        let t = table(&[("f", MyKind::Float), ("d", MyKind::Double), ("b", MyKind::Bit { bits: 12 })]);
        let after = vec![b"1.100000023841858".to_vec(), b"-1.0000000031710769e-30".to_vec(), vec![0x08, 0x01]];
        let c = FillCursor { columns: String::new(), since: None, after: Some(after) };
        assert_eq!(
            c.condition(&t).as_deref(),
            Some(
                "(`f` > 1.100000023841858e0) \
                 OR (`f` = 1.100000023841858e0 AND `d` > -1.0000000031710769e-30) \
                 OR (`f` = 1.100000023841858e0 AND `d` = -1.0000000031710769e-30 AND `b` > 2049)"
            )
        );
        let bad = FillCursor { after: Some(vec![b"1; x".to_vec(), b"0".to_vec(), vec![0]]), ..c };
        assert_eq!(bad.condition(&t), None, "not a number's text");
    }

    #[test]
    fn keys_that_sort_otherwise_than_they_compare_are_not_filled() {
        assert!(key_fits(&table(&[("w", MyKind::Text { latin1: true })])));
        assert!(key_fits(&table(&[("e", MyKind::Enum(vec!["b".into(), "a".into()]))])));
        assert!(key_fits(&table(&[("s", MyKind::Set(vec!["b".into(), "a".into()]))])));
        let many: Vec<String> = (0..=SET_LABELS_MAX).map(|i| format!("l{i}")).collect();
        assert!(!key_fits(&table(&[("s", MyKind::Set(many))])), "too many values to name");
        assert!(key_fits(&table(&[("f", MyKind::Float), ("b", MyKind::Bit { bits: 64 }), ("y", MyKind::Year)])));
        assert!(key_fits(&table(&[("at", MyKind::Timestamp), ("t", MyKind::Time)])));
        assert!(!key_fits(&table(&[("g", MyKind::Geometry)])));
        assert!(!key_fits(&table(&[])));
    }
}
