//! Source column types as Iceberg types, and rows as Arrow arrays (see docs/type-mapping.md).

use crate::error::IcebergError;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray, Float32Array, Float64Array, Int32Array,
    Int64Array, LargeBinaryArray, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Schema as ArrowSchema, TimeUnit};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use std::sync::Arc;
use zetl_core::{ColumnType, Row, TableSchema, Value};

/// The Iceberg type a column of the event model is stored as.
pub fn iceberg_type(ty: &ColumnType) -> PrimitiveType {
    match ty {
        ColumnType::Bool => PrimitiveType::Boolean,
        ColumnType::Int16 | ColumnType::Int32 => PrimitiveType::Int,
        ColumnType::Int64 => PrimitiveType::Long,
        // Up to 18 446 744 073 709 551 615: 20 digits.
        ColumnType::UInt64 => PrimitiveType::Decimal { precision: 20, scale: 0 },
        ColumnType::Float32 => PrimitiveType::Float,
        ColumnType::Float64 => PrimitiveType::Double,
        ColumnType::Decimal { precision, scale } => {
            PrimitiveType::Decimal { precision: u32::from(*precision).max(1), scale: u32::from(*scale) }
        }
        ColumnType::Bytes => PrimitiveType::Binary,
        ColumnType::Date => PrimitiveType::Date,
        ColumnType::Time => PrimitiveType::Time,
        ColumnType::Timestamp => PrimitiveType::Timestamp,
        ColumnType::TimestampTz => PrimitiveType::Timestamptz,
        ColumnType::Uuid => PrimitiveType::Uuid,
        ColumnType::DecimalText
        | ColumnType::Text
        | ColumnType::Interval
        | ColumnType::Json
        | ColumnType::Enum { .. }
        | ColumnType::Array(_)
        | ColumnType::Other(_) => PrimitiveType::String,
    }
}

/// Whether Iceberg's schema evolution takes a column from `old` to `new` in place.
fn widens(old: &PrimitiveType, new: &PrimitiveType) -> bool {
    use PrimitiveType as P;
    match (old, new) {
        (P::Int, P::Long) | (P::Float, P::Double) => true,
        (P::Decimal { precision: p0, scale: s0 }, P::Decimal { precision: p1, scale: s1 }) => s0 == s1 && p1 >= p0,
        _ => old == new,
    }
}

/// The Iceberg schema for `source`, keeping the field ids of `current` (a table that exists):
/// a column found by name keeps its id; a new one takes the next; a column the source no
/// longer has stays, optional. Key columns are required and are the identifier fields.
pub fn lake_schema(source: &TableSchema, current: Option<&Schema>, schema_id: i32) -> Result<Schema, IcebergError> {
    let mut next_id = current.map_or(0, |s| s.highest_field_id());
    let keys = source.key_columns();
    let mut fields = Vec::new();
    let mut identifiers = Vec::new();
    for (i, column) in source.columns.iter().enumerate() {
        let ty = iceberg_type(&column.ty);
        let id = match current.and_then(|s| s.field_by_name(&column.name)) {
            Some(field) => {
                let old = field.field_type.as_primitive_type().cloned().unwrap_or(PrimitiveType::String);
                if !widens(&old, &ty) {
                    return Err(IcebergError::Unsupported(format!(
                        "table {}, column {}: the source changed its type to {} ({}), which Iceberg cannot take in place from {old}; resync the table after dropping it at the target",
                        source.id, column.name, column.source_type, ty
                    )));
                }
                field.id
            }
            None => {
                next_id += 1;
                next_id
            }
        };
        let key = keys.contains(&i);
        let field = if key {
            NestedField::required(id, &column.name, Type::Primitive(ty))
        } else {
            NestedField::optional(id, &column.name, Type::Primitive(ty))
        };
        if key {
            identifiers.push(id);
        }
        fields.push(Arc::new(field));
    }
    if let Some(current) = current {
        for field in current.as_struct().fields() {
            if source.column_index(&field.name).is_none() {
                let mut kept = (**field).clone();
                kept.required = false;
                fields.push(Arc::new(kept));
            }
        }
    }
    Schema::builder()
        .with_schema_id(schema_id)
        .with_identifier_field_ids(identifiers)
        .with_fields(fields)
        .build()
        .map_err(|e| IcebergError::Unsupported(format!("table {}: cannot make its Iceberg schema: {e}", source.id)))
}

/// The rows as one Arrow batch of `arrow` (the table's schema with field ids): each field
/// takes the source column of its name, or nulls (a column the source dropped).
pub fn record_batch(
    arrow: &Arc<ArrowSchema>,
    source: &TableSchema,
    rows: &[&Row],
) -> Result<RecordBatch, IcebergError> {
    let mut columns = Vec::with_capacity(arrow.fields().len());
    for field in arrow.fields() {
        let index = source.column_index(field.name());
        let values = rows.iter().map(|r| index.and_then(|i| r.get(i)).unwrap_or(&Value::Null));
        let at = |problem: String| IcebergError::Value {
            table: source.id.to_string(),
            column: field.name().clone(),
            problem,
        };
        columns.push(array(field.data_type(), values).map_err(at)?);
    }
    RecordBatch::try_new(arrow.clone(), columns).map_err(|e| IcebergError::Value {
        table: source.id.to_string(),
        column: "-".into(),
        problem: e.to_string(),
    })
}

/// A column of `rows` copies of `value`, of Arrow type `ty`.
pub fn constant(ty: &DataType, value: &Value, rows: usize) -> Result<arrow_array::ArrayRef, String> {
    array(ty, std::iter::repeat_n(value, rows))
}

/// One value as the lake stores it.
enum Cell {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    I128(i128),
    Uuid([u8; 16]),
    Bytes(Vec<u8>),
    Text(String),
}

/// `v` as a value of an Arrow column of type `ty`.
fn cell(ty: &DataType, v: &Value) -> Result<Cell, String> {
    let found = match (ty, v) {
        (_, Value::Null) => return Ok(Cell::Null),
        (_, Value::Unchanged) => return Err("an unchanged (TOASTed) value reached a new data file".into()),
        (DataType::Boolean, Value::Bool(b)) => Some(Cell::Bool(*b)),
        (DataType::Int32, Value::Int(i)) => i32::try_from(*i).ok().map(Cell::I32),
        (DataType::Int64, Value::Int(i)) => Some(Cell::I64(*i)),
        (DataType::Float32, Value::Float(f)) => Some(Cell::F32(*f as f32)),
        (DataType::Float64, Value::Float(f)) => Some(Cell::F64(*f)),
        (DataType::Decimal128(precision, scale), v) => {
            decimal(v, *scale).filter(|n| fits_precision(*n, *precision)).map(Cell::I128)
        }
        (DataType::Date32, Value::Date(d)) => days(d).map(Cell::I32),
        (DataType::Time64(TimeUnit::Microsecond), Value::Time(t)) => time_micros(t).map(Cell::I64),
        (DataType::Timestamp(TimeUnit::Microsecond, _), Value::Timestamp(t) | Value::TimestampTz(t)) => {
            timestamp_micros(t).map(Cell::I64)
        }
        (DataType::FixedSizeBinary(16), Value::Uuid(u)) => {
            uuid::Uuid::parse_str(u).ok().map(|u| Cell::Uuid(*u.as_bytes()))
        }
        (DataType::LargeBinary, Value::Bytes(b)) => Some(Cell::Bytes(b.clone())),
        (DataType::Utf8, v) => text(v).map(Cell::Text),
        _ => None,
    };
    found.ok_or_else(|| {
        let shown = match v {
            Value::Int(i) => i.to_string(),
            v => v.as_text().map_or_else(|| format!("{v:?}"), str::to_string),
        };
        format!("value {shown} cannot be stored in an Iceberg {} column", lake_type_name(ty))
    })
}

/// The Iceberg name of the type a column of Arrow type `ty` holds.
fn lake_type_name(ty: &DataType) -> String {
    match ty {
        DataType::Int32 => "int".into(),
        DataType::Decimal128(p, s) => format!("decimal({p}, {s})"),
        DataType::Date32 => "date".into(),
        DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::FixedSizeBinary(16) => "uuid".into(),
        other => other.to_string(),
    }
}

/// The columns of rows laid out as `layout` that can refuse a value of the right type (a
/// date or timestamp out of Iceberg's range: `infinity`; a decimal that is `NaN` or has more
/// digits than its column): (index in the row, index in `arrow`).
pub fn refusing_columns(arrow: &ArrowSchema, layout: &TableSchema) -> Vec<(usize, usize)> {
    let refuses = |ty: &DataType| {
        matches!(
            ty,
            DataType::Int32
                | DataType::Decimal128(..)
                | DataType::Date32
                | DataType::Time64(_)
                | DataType::Timestamp(..)
                | DataType::FixedSizeBinary(_)
        )
    };
    arrow
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| refuses(f.data_type()))
        .filter_map(|(at, f)| Some((layout.column_index(f.name())?, at)))
        .collect()
}

/// The first of the `refusing` columns (see `refusing_columns`) whose value in `row` the lake
/// cannot store: its name, and why. Unsent (TOASTed) values are taken from the stored row later.
pub fn misfit(arrow: &ArrowSchema, refusing: &[(usize, usize)], row: &Row) -> Option<(String, String)> {
    for &(i, at) in refusing {
        let Some(v) = row.get(i).filter(|v| !matches!(v, Value::Unchanged)) else { continue };
        let field = arrow.field(at);
        if let Err(problem) = cell(field.data_type(), v) {
            return Some((field.name().clone(), problem));
        }
    }
    None
}

fn fits_precision(n: i128, precision: u8) -> bool {
    10i128.checked_pow(u32::from(precision)).is_none_or(|limit| n.unsigned_abs() < limit.unsigned_abs())
}

/// The bytes a key column's value is compared by (see `key`); `None` for null.
pub fn storage(ty: &DataType, v: &Value) -> Result<Option<Vec<u8>>, String> {
    Ok(Some(match cell(ty, v)? {
        Cell::Null => return Ok(None),
        Cell::Bool(b) => vec![u8::from(b)],
        // Ints as longs, so that `int` → `long` (Iceberg's widening) keeps every key.
        Cell::I32(i) => i64::from(i).to_le_bytes().to_vec(),
        Cell::I64(i) => i.to_le_bytes().to_vec(),
        Cell::F32(f) => f.to_bits().to_le_bytes().to_vec(),
        Cell::F64(f) => f.to_bits().to_le_bytes().to_vec(),
        Cell::I128(i) => i.to_le_bytes().to_vec(),
        Cell::Uuid(u) => u.to_vec(),
        Cell::Bytes(b) => b,
        Cell::Text(t) => t.into_bytes(),
    }))
}

fn array<'a>(ty: &DataType, values: impl Iterator<Item = &'a Value>) -> Result<ArrayRef, String> {
    let cells = values.map(|v| cell(ty, v)).collect::<Result<Vec<_>, _>>()?;
    macro_rules! build {
        ($array:ty, $variant:ident) => {
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::$variant(x) => Some(x),
                    _ => None,
                })
                .collect::<$array>()
        };
    }
    Ok(match ty {
        DataType::Boolean => Arc::new(build!(BooleanArray, Bool)),
        DataType::Int32 => Arc::new(build!(Int32Array, I32)),
        DataType::Int64 => Arc::new(build!(Int64Array, I64)),
        DataType::Float32 => Arc::new(build!(Float32Array, F32)),
        DataType::Float64 => Arc::new(build!(Float64Array, F64)),
        DataType::Decimal128(precision, scale) => Arc::new(
            build!(Decimal128Array, I128).with_precision_and_scale(*precision, *scale).map_err(|e| e.to_string())?,
        ),
        DataType::Date32 => Arc::new(build!(Date32Array, I32)),
        DataType::Time64(_) => Arc::new(build!(Time64MicrosecondArray, I64)),
        DataType::Timestamp(_, zone) => {
            let micros = build!(TimestampMicrosecondArray, I64);
            Arc::new(match zone {
                Some(zone) => micros.with_timezone(zone.clone()),
                None => micros,
            })
        }
        DataType::FixedSizeBinary(size) => {
            let uuids = cells.into_iter().map(|c| match c {
                Cell::Uuid(u) => Some(u),
                _ => None,
            });
            Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(uuids, *size).map_err(|e| e.to_string())?)
        }
        DataType::LargeBinary => Arc::new(build!(LargeBinaryArray, Bytes)),
        DataType::Utf8 => Arc::new(build!(StringArray, Text)),
        other => return Err(format!("zetl writes no Arrow {other} values")),
    })
}

/// The value of a one-row column as read back from a data file, for the column kinds whose
/// values the source may leave unsent (text, bytes, decimals: PostgreSQL's TOASTed types);
/// written again, it stores the same.
pub fn stored_value(column: &dyn arrow_array::Array) -> Result<Value, String> {
    use arrow_array::cast::AsArray;
    if column.is_null(0) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Utf8 => Value::Text(column.as_string::<i32>().value(0).to_string()),
        DataType::LargeBinary => Value::Bytes(column.as_binary::<i64>().value(0).to_vec()),
        DataType::Decimal128(_, scale) => {
            let n = column.as_primitive::<arrow_array::types::Decimal128Type>().value(0);
            Value::Decimal(decimal_text(n, *scale))
        }
        other => return Err(format!("an unsent value of an Arrow {other} column cannot be read back")),
    })
}

fn decimal_text(n: i128, scale: i8) -> String {
    let digits = n.unsigned_abs().to_string();
    let scale = usize::try_from(scale).unwrap_or(0);
    let sign = if n < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) => Some(json_array(items)),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        v => v.as_text().map(str::to_string),
    }
}

/// An array as JSON text (Iceberg lists are not written yet).
fn json_array(items: &[Value]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null | Value::Unchanged => out.push_str("null"),
            Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_) => {
                out.push_str(&text(item).unwrap_or_default())
            }
            Value::Array(inner) => out.push_str(&json_array(inner)),
            Value::Json(j) => out.push_str(j),
            other => zetl_core::json::push_string(&mut out, &text(other).unwrap_or_default()),
        }
    }
    out.push(']');
    out
}

/// A decimal's digits scaled to `scale` (exact: a value with more fractional digits than
/// the column's scale does not fit).
fn decimal(v: &Value, scale: i8) -> Option<i128> {
    let owned;
    let digits = match v {
        Value::Decimal(d) => d.as_str(),
        Value::Int(i) => {
            owned = i.to_string();
            &owned
        }
        Value::UInt(u) => {
            owned = u.to_string();
            &owned
        }
        _ => return None,
    };
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits.strip_prefix('+').unwrap_or(digits)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    let kept = fraction.trim_end_matches('0');
    if kept.len() > scale || whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let padded = format!("{whole}{kept:0<scale$}");
    let n: i128 = padded.parse().ok()?;
    Some(if negative { -n } else { n })
}

fn days(d: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

fn time_micros(t: &str) -> Option<i64> {
    let time = NaiveTime::parse_from_str(t, "%H:%M:%S%.f").ok()?;
    Some(i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1000))
}

fn timestamp_micros(t: &str) -> Option<i64> {
    // TimestampTz values are UTC with a `+00` suffix.
    let t = t.strip_suffix("+00").unwrap_or(t);
    let at = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(at.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_scale_exactly() {
        let d = |s: &str| decimal(&Value::Decimal(s.into()), 2);
        assert_eq!(d("12.5"), Some(1250));
        assert_eq!(d("-0.01"), Some(-1));
        assert_eq!(d("7"), Some(700));
        assert_eq!(d("1.230"), Some(123));
        assert_eq!(d("1.234"), None, "a digit beyond the scale would be lost");
        assert_eq!(d("NaN"), None);
        assert_eq!(decimal(&Value::UInt(u64::MAX), 0), Some(i128::from(u64::MAX)));
    }

    #[test]
    fn decimals_read_back_as_the_digits_stored() {
        assert_eq!(decimal_text(1250, 2), "12.50");
        assert_eq!(decimal_text(-1, 2), "-0.01");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(decimal(&Value::Decimal(decimal_text(-123_456, 3)), 3), Some(-123_456));
    }

    #[test]
    fn temporal_texts_become_micros_and_days() {
        assert_eq!(days("1970-01-02"), Some(1));
        assert_eq!(days("1969-12-31"), Some(-1));
        assert_eq!(days("infinity"), None);
        assert_eq!(time_micros("00:00:01.5"), Some(1_500_000));
        assert_eq!(timestamp_micros("1970-01-01 00:00:00.000001+00"), Some(1));
        assert_eq!(timestamp_micros("2000-01-01 00:00:00"), Some(946_684_800_000_000));
    }

    #[test]
    fn arrays_are_json_text() {
        let a = Value::Array(vec![Value::Int(1), Value::Null, Value::Text("a\"b".into())]);
        assert_eq!(text(&a).as_deref(), Some(r#"[1,null,"a\"b"]"#));
    }
}
