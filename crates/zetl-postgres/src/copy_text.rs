//! COPY's text format (docs: COPY, "Text Format"): tab-separated fields, newline-terminated
//! rows, `\N` for NULL, backslash escapes.

use crate::error::PgError;
use crate::types::parse_text;
use std::borrow::Cow;
use zetl_core::{Column, Row, TableSchema, Value};

/// Decodes one row (without its newline).
pub fn decode_row(schema: &TableSchema, line: &[u8]) -> Result<Row, PgError> {
    let mut row = Vec::with_capacity(schema.columns.len());
    let mut fields = line.split(|&b| b == b'\t');
    for col in &schema.columns {
        let field =
            fields.next().ok_or_else(|| PgError::Protocol(format!("COPY row of {} has too few fields", schema.id)))?;
        if field == b"\\N" {
            row.push(Value::Null);
            continue;
        }
        row.push(parse_value(schema, col, &unescape(field))?);
    }
    Ok(row)
}

/// One column's text form (from COPY or from pgoutput) into a value, errors naming table and
/// column.
pub fn parse_value(schema: &TableSchema, col: &Column, bytes: &[u8]) -> Result<Value, PgError> {
    let err = |reason: String| PgError::Value { table: schema.id.to_string(), column: col.name.clone(), reason };
    let text = std::str::from_utf8(bytes).map_err(|_| err("not valid UTF-8".into()))?;
    parse_text(&col.ty, text).map_err(|e| err(e.to_string()))
}

pub(crate) fn unescape(field: &[u8]) -> Cow<'_, [u8]> {
    if !field.contains(&b'\\') {
        return Cow::Borrowed(field);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = field[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + (field[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::{Column, ColumnType, RowIdentity, TableId};

    #[test]
    fn unescapes_and_nulls() {
        assert_eq!(&*unescape(b"a\\tb\\\\c\\nd"), b"a\tb\\c\nd");
        assert_eq!(&*unescape(b"\\101\\x41"), b"AA");
        let col = |n: &str, ty| Column { name: n.into(), ty, source_type: String::new(), nullable: true };
        let schema = TableSchema {
            id: TableId::new("s", "t"),
            columns: vec![col("a", ColumnType::Int32), col("b", ColumnType::Text), col("c", ColumnType::Text)],
            identity: RowIdentity::None,
        };
        let row = decode_row(&schema, b"1\t\\N\t").expect("row");
        assert_eq!(row, vec![Value::Int(1), Value::Null, Value::Text(String::new())]);
        assert!(decode_row(&schema, b"1").is_err());
    }
}
