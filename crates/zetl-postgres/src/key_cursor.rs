//! Copies read in key order, so that an initial copy interrupted by a crash continues after
//! the last row the target committed instead of starting the table over.
//!
//! A table's key space is split into parts (bounds taken from a sample of its keys), each read
//! in key order by one worker; a part's cursor is the key of its last row sent. Keys travel as
//! the text PostgreSQL writes for them: it reads them back through the type's input and
//! compares in the key's own order and collation, so zetl never orders key values itself. The
//! stored form also holds the table's identity (its OID): a table dropped and created again
//! meanwhile is copied over.

use crate::catalog::{quote_ident, quote_literal};
use crate::copy_text::unescape;
use serde::{Deserialize, Serialize};
use zetl_core::{CopyCursor, TableSchema};

/// A key: the key columns' values in their text form.
pub type Key = Vec<String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPart {
    /// The table's identity (`TableInfo::source_id`).
    pub table: String,
    pub part: u32,
    /// Keys above this one (all when `None`)…
    pub from: Option<Key>,
    /// …up to and including this one (all when `None`).
    pub to: Option<Key>,
    /// The last key sent: the part continues after it.
    pub after: Option<Key>,
    /// A fill's: the columns it copies (see `TableSchema::columns_fingerprint`); it continues only while the
    /// table still has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<String>,
}

impl KeyPart {
    /// The cursor as the target stores it (JSON on one line).
    pub fn cursor(&self) -> CopyCursor {
        CopyCursor { part: self.part, token: serde_json::to_string(self).unwrap_or_default() }
    }

    pub fn parse(stored: &str) -> Option<KeyPart> {
        serde_json::from_str(stored).ok()
    }

    /// Whether this part can continue a copy of the table as it is now: the same table, keys
    /// of as many columns.
    pub fn fits(&self, source_id: &str, schema: &TableSchema) -> bool {
        let n = schema.key_columns().len();
        self.table == source_id
            && n > 0
            && [&self.from, &self.to, &self.after].iter().all(|k| k.as_ref().is_none_or(|k| k.len() == n))
    }

    /// The part's rows still to read, as a WHERE condition (empty: the whole table). The
    /// literals take the key columns' types, as in any comparison with a column.
    pub fn condition(&self, schema: &TableSchema) -> String {
        let cols: Vec<String> = schema.key_columns().iter().map(|&i| quote_ident(&schema.columns[i].name)).collect();
        let cols = cols.join(", ");
        let values = |k: &Key| k.iter().map(|v| quote_literal(v)).collect::<Vec<_>>().join(", ");
        let mut terms = Vec::new();
        if let Some(lower) = self.after.as_ref().or(self.from.as_ref()) {
            terms.push(format!("({cols}) > ({})", values(lower)));
        }
        if let Some(upper) = &self.to {
            terms.push(format!("({cols}) <= ({})", values(upper)));
        }
        terms.join(" AND ")
    }
}

/// The key of the row `line` (COPY text, without its newline); `None` when a key field is
/// NULL or not text (not a usable key).
pub fn key_of(line: &[u8], key_columns: &[usize]) -> Option<Key> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    key_columns
        .iter()
        .map(|&i| {
            let field = *fields.get(i)?;
            (field != b"\\N").then(|| String::from_utf8(unescape(field).into_owned()).ok())?
        })
        .collect()
}

/// Parts of the key space from a sorted sample of keys: `parts` ranges of about as many
/// sampled keys each, the first open below and the last open above.
pub fn split(table: &str, sample: &[Key], parts: usize) -> Vec<KeyPart> {
    let parts = parts.clamp(1, sample.len().max(1));
    let mut bounds: Vec<&Key> = (1..parts).map(|i| &sample[i * sample.len() / parts]).collect();
    bounds.dedup();
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut from = None;
    for (i, to) in bounds.into_iter().map(Some).chain([None]).enumerate() {
        let to = to.cloned();
        out.push(KeyPart {
            table: table.to_string(),
            part: i as u32,
            from,
            to: to.clone(),
            after: None,
            columns: None,
        });
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::{Column, ColumnType, RowIdentity, TableId};

    fn schema() -> TableSchema {
        let col = |n: &str, ty| Column { name: n.into(), ty, source_type: String::new(), nullable: false };
        TableSchema {
            id: TableId::new("s", "t"),
            columns: vec![col("v", ColumnType::Text), col("b", ColumnType::Text), col("a", ColumnType::Int32)],
            identity: RowIdentity::Key(vec![2, 1]),
        }
    }

    fn key(a: &str, b: &str) -> Key {
        vec![a.to_string(), b.to_string()]
    }

    #[test]
    fn keys_are_read_unescaped_and_a_part_round_trips() {
        assert_eq!(key_of(b"x\tit's\\ta\t42", &[2, 1]), Some(key("42", "it's\ta")));
        assert_eq!(key_of(b"x\t\\N\t1", &[2, 1]), None);
        assert_eq!(key_of(b"x", &[2]), None);
        let part = KeyPart {
            table: "16384".into(),
            part: 1,
            from: Some(key("1", "a")),
            to: None,
            after: Some(key("42", "it's\n")),
            columns: None,
        };
        let cursor = part.cursor();
        assert!(!cursor.token.contains('\n'), "one line: {}", cursor.token);
        assert_eq!(KeyPart::parse(&cursor.token), Some(part.clone()));
        assert!(part.fits("16384", &schema()));
        assert!(!part.fits("16385", &schema()), "another table under the same name");
        let short = KeyPart { after: Some(vec!["42".into()]), ..part.clone() };
        assert!(!short.fits("16384", &schema()), "the key has two columns now");
        assert_eq!(part.condition(&schema()), "(\"a\", \"b\") > ('42', 'it''s\n')", "after the cursor, not the bound");
    }

    #[test]
    fn a_sample_splits_the_key_space_into_adjacent_parts() {
        let sample: Vec<Key> = (10..20).map(|i| vec![i.to_string()]).collect();
        let parts = split("1", &sample, 3);
        let bounds: Vec<_> = parts.iter().map(|p| (p.from.clone(), p.to.clone())).collect();
        let k = |s: &str| Some(vec![s.to_string()]);
        assert_eq!(bounds, vec![(None, k("13")), (k("13"), k("16")), (k("16"), None)]);
        assert_eq!(parts.iter().map(|p| p.part).collect::<Vec<_>>(), vec![0, 1, 2]);
        let mut one_col = schema();
        one_col.identity = RowIdentity::Key(vec![2]);
        assert_eq!(parts[1].condition(&one_col), "(\"a\") > ('13') AND (\"a\") <= ('16')");
        assert_eq!(parts[0].condition(&one_col), "(\"a\") <= ('13')");
        assert_eq!(split("1", &[], 4).len(), 1, "no sample: one part, the whole table");
        assert_eq!(split("1", &sample, 1)[0].condition(&one_col), "");
    }
}
