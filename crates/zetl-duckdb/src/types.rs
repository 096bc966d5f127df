//! Event model → DuckDB: column types, the staging ("wire") form of each value, and the SQL that
//! turns a staged value into the target column's type. See docs/type-mapping.md.
//!
//! The appender casts text into most DuckDB types itself, but not into INTERVAL or LIST, so
//! those are staged as VARCHAR (intervals in PostgreSQL's text form, arrays as JSON) and cast
//! by SQL on the way from staging into the table.

use duckdb::types::Value as Db;
use zetl_core::json::push_string;
use zetl_core::{ColumnType, Value};

pub fn target_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Bool => "BOOLEAN".into(),
        ColumnType::Int16 => "SMALLINT".into(),
        ColumnType::Int32 => "INTEGER".into(),
        ColumnType::Int64 => "BIGINT".into(),
        ColumnType::UInt64 => "UBIGINT".into(),
        ColumnType::Float32 => "REAL".into(),
        ColumnType::Float64 => "DOUBLE".into(),
        ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        ColumnType::DecimalText | ColumnType::Text | ColumnType::Enum { .. } | ColumnType::Other(_) => "VARCHAR".into(),
        ColumnType::Bytes => "BLOB".into(),
        ColumnType::Date => "DATE".into(),
        ColumnType::Time => "TIME".into(),
        ColumnType::Timestamp => "TIMESTAMP".into(),
        ColumnType::TimestampTz => "TIMESTAMPTZ".into(),
        ColumnType::Interval => "INTERVAL".into(),
        ColumnType::Uuid => "UUID".into(),
        ColumnType::Json => "JSON".into(),
        ColumnType::Array(inner) => format!("{}[]", target_type(inner)),
    }
}

/// The type of the column in a staging table.
pub fn wire_type(ty: &ColumnType) -> String {
    if staged_as_text(ty) {
        "VARCHAR".into()
    } else {
        target_type(ty)
    }
}

pub fn staged_as_text(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Interval | ColumnType::Array(_))
}

/// SQL turning staged column `expr` into the target type.
pub fn from_wire(ty: &ColumnType, expr: &str) -> String {
    match ty {
        ColumnType::Interval => format!("CAST({expr} AS INTERVAL)"),
        ColumnType::Array(_) => format!("CAST(CAST({expr} AS JSON) AS {})", target_type(ty)),
        _ => expr.to_string(),
    }
}

/// Like [`from_wire`], NULL instead of an error where the staged text does not parse.
pub fn try_from_wire(ty: &ColumnType, expr: &str) -> String {
    from_wire(ty, expr).replace("CAST(", "TRY_CAST(")
}

/// SQL turning target column `expr` into its staged form (to fill unchanged values).
pub fn to_wire(ty: &ColumnType, expr: &str) -> String {
    match ty {
        ColumnType::Interval => format!("CAST({expr} AS VARCHAR)"),
        ColumnType::Array(_) => format!("CAST(to_json({expr}) AS VARCHAR)"),
        _ => expr.to_string(),
    }
}

/// A value as the appender takes it for a staging column of `ty`.
pub fn to_db(value: &Value, ty: &ColumnType) -> Db {
    if let (Value::Array(_), true) = (value, staged_as_text(ty)) {
        return Db::Text(array_json(value));
    }
    match value {
        Value::Null | Value::Unchanged => Db::Null,
        Value::Bool(b) => Db::Boolean(*b),
        Value::Int(i) => Db::BigInt(*i),
        Value::UInt(u) => Db::UBigInt(*u),
        Value::Float(f) => Db::Double(*f),
        Value::Bytes(b) => Db::Blob(b.clone()),
        Value::Array(_) => Db::Text(array_json(value)),
        text => Db::Text(text.as_text().unwrap_or_default().to_string()),
    }
}

/// Arrays travel as JSON; DuckDB casts JSON into any LIST type.
pub(crate) fn array_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    use std::fmt::Write;
    match value {
        Value::Null | Value::Unchanged => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Float(f) => push_string(out, &f.to_string()),
        Value::Json(s) => out.push_str(s),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(b.len() * 4);
            for byte in b {
                let _ = write!(s, "\\x{byte:02X}");
            }
            push_string(out, &s)
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        text => push_string(out, text.as_text().unwrap_or_default()),
    }
}

pub use zetl_core::sql::{quote_ident as ident, quote_literal as literal};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_become_json_with_escapes() {
        let v = Value::Array(vec![Value::Text("a\"b,c".into()), Value::Null, Value::Text("\\".into())]);
        assert_eq!(array_json(&v), r#"["a\"b,c",null,"\\"]"#);
        let nested = Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Float(1.5)]);
        assert_eq!(array_json(&nested), "[[1],1.5]");
    }

    #[test]
    fn types_map_and_wire_forms() {
        let arr = ColumnType::Array(Box::new(ColumnType::Int32));
        assert_eq!(target_type(&arr), "INTEGER[]");
        assert_eq!(wire_type(&arr), "VARCHAR");
        assert_eq!(target_type(&ColumnType::Decimal { precision: 12, scale: 2 }), "DECIMAL(12,2)");
        assert_eq!(from_wire(&ColumnType::Interval, "x"), "CAST(x AS INTERVAL)");
        assert_eq!(try_from_wire(&arr, "x"), "TRY_CAST(TRY_CAST(x AS JSON) AS INTEGER[])");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
