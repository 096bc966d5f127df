//! COPY's text format (docs: COPY, "Text Format"): tab-separated fields, newline-terminated
//! rows, `\N` for NULL, backslash escapes.

use crate::error::PgError;
use crate::types::{parse, Parsed};
use std::borrow::Cow;
use zetl_core::columns::{takes_columns, ColumnsBuilder};
use zetl_core::copy_rows::{CopyColumnsBatcher, CopyRowsBatcher};
use zetl_core::{Column, Row, SourceEvent, TableSchema, Value};

/// A copy's rows gathered into events: as columns where the table's types allow, else as rows.
pub enum Gather {
    Rows(CopyRowsBatcher),
    Columns(CopyColumnsBatcher),
}

impl Gather {
    pub fn new(schema: &TableSchema) -> Gather {
        match takes_columns(schema) {
            true => Gather::Columns(CopyColumnsBatcher::new(schema)),
            false => Gather::Rows(CopyRowsBatcher::new(schema.id.clone())),
        }
    }

    /// Decodes one row (without its newline); a full event to send, if one is.
    pub fn push(&mut self, schema: &TableSchema, line: &[u8]) -> Result<Option<SourceEvent>, PgError> {
        match self {
            Gather::Rows(b) => Ok(b.push(decode_row(schema, line)?)),
            Gather::Columns(b) => {
                decode_into(schema, line, b.columns())?;
                b.end_row().map_err(PgError::Protocol)
            }
        }
    }

    /// The rows not yet sent (if any), and how many rows were gathered in all.
    pub fn finish(self) -> Result<(Option<SourceEvent>, u64), PgError> {
        match self {
            Gather::Rows(b) => Ok(b.finish()),
            Gather::Columns(b) => b.finish().map_err(PgError::Protocol),
        }
    }
}

/// Decodes one row (without its newline).
fn decode_row(schema: &TableSchema, line: &[u8]) -> Result<Row, PgError> {
    let mut row = Vec::with_capacity(schema.columns.len());
    for_fields(schema, line, |col, field| {
        row.push(match field {
            None => Value::Null,
            Some(bytes) => parse_value(schema, col, &bytes)?,
        });
        Ok(())
    })?;
    Ok(row)
}

/// Decodes one row (without its newline) into `columns`, each value straight into its
/// column's buffer.
fn decode_into(schema: &TableSchema, line: &[u8], columns: &mut ColumnsBuilder) -> Result<(), PgError> {
    let mut i = 0;
    for_fields(schema, line, |col, field| {
        let column = columns.column(i).ok_or_else(|| value_error(schema, col, "has no column to go in".into()))?;
        i += 1;
        let Some(bytes) = field else {
            column.push_null();
            return Ok(());
        };
        let fits =
            match parse(&col.ty, utf8(schema, col, &bytes)?).map_err(|e| value_error(schema, col, e.to_string()))? {
                Parsed::Value(value) => column.push(&value),
                Parsed::Text(text) => column.text(Some(text)),
            };
        match fits {
            true => Ok(()),
            false => Err(value_error(schema, col, "does not fit its column".into())),
        }
    })
}

/// Calls `each` with every column and its unescaped field (`None` for NULL).
fn for_fields(
    schema: &TableSchema,
    line: &[u8],
    mut each: impl FnMut(&Column, Option<Cow<'_, [u8]>>) -> Result<(), PgError>,
) -> Result<(), PgError> {
    let mut fields = line.split(|&b| b == b'\t');
    for col in &schema.columns {
        let field =
            fields.next().ok_or_else(|| PgError::Protocol(format!("COPY row of {} has too few fields", schema.id)))?;
        each(col, (field != b"\\N").then(|| unescape(field)))?;
    }
    Ok(())
}

/// One column's text form (from COPY or from pgoutput) into a value, errors naming table and
/// column.
pub fn parse_value(schema: &TableSchema, col: &Column, bytes: &[u8]) -> Result<Value, PgError> {
    crate::types::parse_text(&col.ty, utf8(schema, col, bytes)?).map_err(|e| value_error(schema, col, e.to_string()))
}

fn utf8<'a>(schema: &TableSchema, col: &Column, bytes: &'a [u8]) -> Result<&'a str, PgError> {
    std::str::from_utf8(bytes).map_err(|_| value_error(schema, col, "not valid UTF-8".into()))
}

fn value_error(schema: &TableSchema, col: &Column, reason: String) -> PgError {
    PgError::Value { table: schema.id.to_string(), column: col.name.clone(), reason }
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

    /// The columns a copy gathers read back as the very rows the row decoder makes.
    #[test]
    fn columns_hold_the_rows_the_row_decoder_makes() {
        let types = [
            ColumnType::Bool,
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::Decimal { precision: 12, scale: 3 },
            ColumnType::DecimalText,
            ColumnType::Text,
            ColumnType::Bytes,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp,
            ColumnType::TimestampTz,
            ColumnType::Interval,
            ColumnType::Uuid,
            ColumnType::Json,
        ];
        let columns = types
            .iter()
            .enumerate()
            .map(|(i, ty)| Column { name: format!("c{i}"), ty: ty.clone(), source_type: String::new(), nullable: true })
            .collect();
        let schema = TableSchema { id: TableId::new("s", "t"), columns, identity: RowIdentity::Key(vec![2]) };
        let lines: [&[u8]; 3] = [
            b"t\t-32768\t2147483647\t-9223372036854775808\t0.1\t1.7976931348623157e+308\t-123456789.125\tNaN\ta\\tb\\\\c \xc3\xa9\t\\\\x00ff\t2024-02-29\t23:59:59.999999\t2024-01-02 03:04:05.123456\t1999-12-31 23:59:59+00\t1 year 2 mons -3 days 04:05:06.7\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t{\"k\": [1, 2.50]}",
            b"f\t0\t0\t0\t-Infinity\tNaN\t0.000\t0.00001\t\t\\\\x\tinfinity\t00:00:00\t-infinity\t2024-01-02 03:04:05+00\t00:00:00\t00000000-0000-0000-0000-000000000000\tnull",
            b"\\N\t\\N\t1\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
        ];
        let mut gather = Gather::new(&schema);
        assert!(matches!(gather, Gather::Columns(_)));
        for line in lines {
            assert!(gather.push(&schema, line).expect("decoded").is_none());
        }
        let rows: Vec<Row> = lines.iter().map(|line| decode_row(&schema, line).expect("row")).collect();
        let Some(SourceEvent::CopyColumns { batch, .. }) = gather.finish().expect("finished").0 else {
            panic!("expected columns")
        };
        // Compared in Debug form, which is exact (floats print their shortest round-trip
        // digits) and, unlike `==`, takes NaN as itself.
        let back = zetl_core::columns::rows_of(&schema, &batch).expect("the table's columns");
        assert_eq!(format!("{back:?}"), format!("{rows:?}"));
    }
}
