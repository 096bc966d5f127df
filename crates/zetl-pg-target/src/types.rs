//! Event model → PostgreSQL: column types, and values in COPY's text format.

use std::fmt::Write as _;
use zetl_core::{ColumnType, Value};

pub fn pg_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Bool => "boolean".into(),
        ColumnType::Int16 => "smallint".into(),
        ColumnType::Int32 => "integer".into(),
        ColumnType::Int64 => "bigint".into(),
        // PostgreSQL has no unsigned 64-bit integer: numeric holds every value exactly.
        ColumnType::UInt64 => "numeric(20,0)".into(),
        ColumnType::Float32 => "real".into(),
        ColumnType::Float64 => "double precision".into(),
        ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        ColumnType::DecimalText => "numeric".into(),
        ColumnType::Text | ColumnType::Enum { .. } | ColumnType::Other(_) => "text".into(),
        ColumnType::Bytes => "bytea".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamptz".into(),
        ColumnType::Interval => "interval".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Json => "jsonb".into(),
        ColumnType::Array(inner) => format!("{}[]", pg_type(inner)),
    }
}

pub use zetl_core::sql::quote_ident as ident;

/// Appends one value as a COPY text field (without the separator).
pub fn copy_field(out: &mut String, value: &Value) {
    match value {
        Value::Null | Value::Unchanged => out.push_str("\\N"),
        Value::Bytes(b) => {
            // `\x…` for bytea, with COPY's own backslash doubled.
            out.push_str("\\\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        other => escape_into(out, &literal(other)),
    }
}

/// A value as PostgreSQL's input syntax for its type.
pub(crate) fn literal(value: &Value) -> String {
    match value {
        Value::Null | Value::Unchanged => "NULL".into(),
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::Float(f) => format!("{f:?}"),
        Value::Bytes(b) => {
            let mut s = String::from("\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    Value::Null => "NULL".to_string(),
                    v => format!("\"{}\"", literal(v).replace('\\', "\\\\").replace('"', "\\\"")),
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.as_text().unwrap_or_default().to_string(),
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> String {
        let mut s = String::new();
        copy_field(&mut s, &v);
        s
    }

    #[test]
    fn copy_text_fields() {
        assert_eq!(field(Value::Null), "\\N");
        assert_eq!(field(Value::Text("a\tb\\c\nd".into())), "a\\tb\\\\c\\nd");
        assert_eq!(field(Value::Bytes(vec![0, 255])), "\\\\x00ff");
        assert_eq!(field(Value::Float(f64::NAN)), "NaN");
        assert_eq!(
            field(Value::Array(vec![Value::Text("x,\"y".into()), Value::Null, Value::Int(3)])),
            "{\"x,\\\\\"y\",NULL,\"3\"}"
        );
        assert_eq!(
            pg_type(&ColumnType::Array(Box::new(ColumnType::Decimal { precision: 12, scale: 2 }))),
            "numeric(12,2)[]"
        );
    }
}
