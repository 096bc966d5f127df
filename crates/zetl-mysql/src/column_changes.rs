//! What a TABLE_MAP with other columns than the last one means for the rows that exist
//! already. The binlog carries no row events for them: MariaDB adds a column with a DEFAULT
//! instantly, and a column type change rebuilds the table. A literal DEFAULT is filled in at
//! the target; anything zetl cannot be sure of copies the table again.

use crate::columns::{column_type, MyColumn, MyKind, MyTable};
use crate::convert::{convert, Origin};
use crate::ddl::{AddedColumn, ColumnDefault};
use mysql_common::value::Value as My;
use std::collections::{HashMap, HashSet};
use zetl_core::{TableSchema, Value};

/// A column as information_schema.COLUMNS shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    pub kind: MyKind,
    /// `COLUMN_DEFAULT`: MariaDB 10.2.7+ quotes string literals and shows expressions as
    /// text (`current_timestamp()`), `NULL` for DEFAULT NULL; `None` without a default.
    pub default: Option<String>,
    /// `EXTRA`: `auto_increment`, `VIRTUAL GENERATED`, `STORED GENERATED`, …
    pub extra: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The new columns are NULL in the existing rows, or none was added.
    Nothing,
    /// Fill these columns of the existing rows.
    Fill(Vec<(String, Value)>),
    /// The existing rows changed in a way the stream does not show: copy the table again.
    Resync(String),
}

/// The columns `new` has and `prev` had not.
pub fn added<'a>(prev: &TableSchema, new: &'a MyTable) -> Vec<&'a MyColumn> {
    new.columns.iter().filter(|c| !prev.columns.iter().any(|p| p.name == c.name)).collect()
}

/// Decides what the change from `prev` to `new` needs. `sent`: every column of the table the
/// target was given in this run (a column it has already is not added again, so not filled);
/// `clauses`: the ADD COLUMN clauses of the ALTER statements read since `prev`; `catalog`:
/// the table's columns now, when some clause has a literal default.
pub fn judge(
    prev: &TableSchema,
    new: &MyTable,
    sent: &HashSet<String>,
    clauses: &[AddedColumn],
    catalog: Option<&HashMap<String, CatalogColumn>>,
) -> Verdict {
    for c in &new.columns {
        if let Some(p) = prev.columns.iter().find(|p| p.name == c.name) {
            if p.ty != column_type(&c.kind) {
                return Verdict::Resync(format!(
                    "column {} changed type ({} to {}): the table was rebuilt without row events",
                    c.name, p.source_type, c.source_type
                ));
            }
        }
    }
    let mut fills = Vec::new();
    for c in added(prev, new) {
        if sent.contains(&c.name) {
            return Verdict::Resync(format!(
                "column {} was added again, and the target still has the old one's values",
                c.name
            ));
        }
        // The last ADD of the name counts (an earlier one may have been dropped since).
        let Some(clause) = clauses.iter().rev().find(|a| a.name.eq_ignore_ascii_case(&c.name)) else {
            return Verdict::Resync(format!("column {} appeared without an ADD COLUMN zetl could read", c.name));
        };
        if clause.computed {
            return Verdict::Resync(format!("column {} was added as generated or AUTO_INCREMENT", c.name));
        }
        match &clause.default {
            ColumnDefault::None if clause.not_null => {
                return Verdict::Resync(format!(
                    "column {} was added NOT NULL without a DEFAULT (the rows got the type's implicit default)",
                    c.name
                ))
            }
            ColumnDefault::None | ColumnDefault::Null => {}
            ColumnDefault::Expression => {
                return Verdict::Resync(format!("column {} was added with a DEFAULT that is not a constant", c.name))
            }
            ColumnDefault::Literal(text) => match fill_value(c, text, catalog.and_then(|cat| cat.get(&c.name))) {
                Ok(value) => fills.push((c.name.clone(), value)),
                Err(why) => return Verdict::Resync(format!("column {} was added with DEFAULT {text}: {why}", c.name)),
            },
        }
    }
    if fills.is_empty() {
        Verdict::Nothing
    } else {
        Verdict::Fill(fills)
    }
}

/// The value of a literal DEFAULT as the server stored it. The catalog is read now and the
/// binlog may lag: the statement's literal and the catalog's must agree, or the column's
/// default has changed since (or the column is another one by now).
fn fill_value(col: &MyColumn, statement: &str, now: Option<&CatalogColumn>) -> Result<Value, String> {
    let now = now.ok_or("the column is no longer in the catalog")?;
    if column_type(&now.kind) != column_type(&col.kind) {
        return Err("the column has another type by now".into());
    }
    if !now.extra.is_empty() && !now.extra.eq_ignore_ascii_case("INVISIBLE") {
        return Err(format!("the column is {} by now", now.extra));
    }
    let catalog = now.default.as_deref().and_then(catalog_literal).ok_or("the catalog shows another default by now")?;
    let stored = literal_value(col, &catalog)?;
    let written = literal_value(col, statement)?;
    if same(&stored, &written) {
        Ok(stored)
    } else {
        Err(format!("the catalog shows DEFAULT {catalog} by now"))
    }
}

/// A `COLUMN_DEFAULT` that is a plain literal, unquoted; `None` for NULL and expressions.
pub fn catalog_literal(default: &str) -> Option<String> {
    if let Some(inner) = default.strip_prefix('\'').and_then(|d| d.strip_suffix('\'')) {
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push('\'');
                }
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some(n) => out.push(n),
                    None => {}
                },
                c => out.push(c),
            }
        }
        return Some(out);
    }
    let numeric = default.strip_prefix('-').unwrap_or(default);
    (!numeric.is_empty()
        && numeric.chars().all(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
    .then(|| default.to_string())
}

/// A literal as the copy would read the column's value: the same conversion as copied rows.
fn literal_value(col: &MyColumn, text: &str) -> Result<Value, String> {
    match col.kind {
        // Zone-dependent, bit strings and binary JSON: not worth a guess.
        MyKind::Timestamp | MyKind::Bit { .. } | MyKind::Geometry | MyKind::Json { binary: true } => {
            Err(format!("zetl does not fill {} defaults", col.source_type))
        }
        _ => convert(col, My::Bytes(text.as_bytes().to_vec()), Origin::Query),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Decimal(x), Value::Decimal(y)) => decimal_digits(x) == decimal_digits(y),
        _ => a == b,
    }
}

fn decimal_digits(d: &str) -> String {
    let d = if d.contains('.') { d.trim_end_matches('0').trim_end_matches('.') } else { d };
    let (sign, digits) = d.strip_prefix('-').map_or(("", d), |r| ("-", r));
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() || digits.starts_with('.') { format!("0{digits}") } else { digits.to_string() };
    if digits == "0" {
        digits
    } else {
        format!("{sign}{digits}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::TableId;

    fn col(name: &str, kind: MyKind) -> MyColumn {
        MyColumn { name: name.into(), kind, nullable: true, source_type: "t".into() }
    }

    fn table(cols: Vec<MyColumn>) -> MyTable {
        MyTable { id: TableId::new("s", "t"), columns: cols, key: vec![0] }
    }

    fn clause(name: &str, default: ColumnDefault) -> AddedColumn {
        AddedColumn { name: name.into(), default, computed: false, not_null: false }
    }

    fn now(kind: MyKind, default: &str) -> HashMap<String, CatalogColumn> {
        HashMap::from([("n".into(), CatalogColumn { kind, default: Some(default.into()), extra: String::new() })])
    }

    const INT: MyKind = MyKind::Int { bytes: 4, unsigned: false };

    #[test]
    fn a_literal_default_that_the_catalog_confirms_is_filled() {
        let prev = table(vec![col("id", INT)]);
        let new = table(vec![col("id", INT), col("n", INT)]);
        let sent = HashSet::from(["id".to_string()]);
        let lit = [clause("n", ColumnDefault::Literal("7".into()))];
        assert_eq!(
            judge(&prev.schema(), &new, &sent, &lit, Some(&now(INT, "7"))),
            Verdict::Fill(vec![("n".into(), Value::Int(7))])
        );
        // The default changed after the ALTER the stream is at: copy instead.
        assert!(matches!(judge(&prev.schema(), &new, &sent, &lit, Some(&now(INT, "8"))), Verdict::Resync(_)));
        // Gone from the catalog.
        assert!(matches!(judge(&prev.schema(), &new, &sent, &lit, Some(&HashMap::new())), Verdict::Resync(_)));
        // Added before in this run: the target keeps its old values, so no fill would happen.
        let again = HashSet::from(["id".to_string(), "n".to_string()]);
        assert!(matches!(judge(&prev.schema(), &new, &again, &lit, Some(&now(INT, "7"))), Verdict::Resync(_)));
        // No default, nullable: NULL is right. NOT NULL: the implicit 0 is not in the stream.
        assert_eq!(judge(&prev.schema(), &new, &sent, &[clause("n", ColumnDefault::None)], None), Verdict::Nothing);
        let not_null = AddedColumn { not_null: true, ..clause("n", ColumnDefault::None) };
        assert!(matches!(judge(&prev.schema(), &new, &sent, &[not_null], None), Verdict::Resync(_)));
        assert!(matches!(
            judge(&prev.schema(), &new, &sent, &[clause("n", ColumnDefault::Expression)], None),
            Verdict::Resync(_)
        ));
        assert!(matches!(judge(&prev.schema(), &new, &sent, &[], None), Verdict::Resync(_)));
    }

    #[test]
    fn strings_decimals_and_dates_compare_as_values() {
        let text = col("n", MyKind::Text { latin1: false });
        assert_eq!(catalog_literal("'it''s'"), Some("it's".into()));
        assert_eq!(catalog_literal("current_timestamp()"), None);
        assert_eq!(catalog_literal("NULL"), None);
        assert_eq!(catalog_literal("-1.50"), Some("-1.50".into()));
        let cat = |kind: MyKind, d: &str| CatalogColumn { kind, default: Some(d.into()), extra: String::new() };
        assert_eq!(fill_value(&text, "it's", Some(&cat(text.kind.clone(), "'it''s'"))), Ok(Value::Text("it's".into())));
        let dec = col("n", MyKind::Decimal { precision: 10, scale: 2 });
        assert_eq!(fill_value(&dec, "-1.5", Some(&cat(dec.kind.clone(), "-1.50"))), Ok(Value::Decimal("-1.50".into())));
        assert!(fill_value(&dec, "1.5", Some(&cat(dec.kind.clone(), "-1.50"))).is_err());
        let dt = col("n", MyKind::DateTime);
        assert_eq!(
            fill_value(&dt, "2024-01-02", Some(&cat(MyKind::DateTime, "'2024-01-02 00:00:00'"))),
            Ok(Value::Timestamp("2024-01-02 00:00:00".into()))
        );
        let ts = col("n", MyKind::Timestamp);
        assert!(fill_value(&ts, "2024-01-02", Some(&cat(MyKind::Timestamp, "'2024-01-02 00:00:00'"))).is_err());
    }

    #[test]
    fn a_type_change_copies_the_table_but_enum_labels_do_not() {
        let prev = table(vec![col("id", INT), col("e", MyKind::Enum(vec!["a".into()]))]);
        let labels = table(vec![col("id", INT), col("e", MyKind::Enum(vec!["a".into(), "b".into()]))]);
        assert_eq!(judge(&prev.schema(), &labels, &HashSet::new(), &[], None), Verdict::Nothing);
        let wider = table(vec![col("id", MyKind::Int { bytes: 8, unsigned: false }), col("e", MyKind::Double)]);
        assert!(matches!(judge(&prev.schema(), &wider, &HashSet::new(), &[], None), Verdict::Resync(_)));
    }
}
