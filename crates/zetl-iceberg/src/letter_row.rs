//! A dead letter's row as JSON text: each column by name, each value as `[kind, text]` with
//! the value's exact text (numbers as their digits, floats as the shortest text that reads
//! back to the same bits, bytes as hex), so that a replay rebuilds the very values set aside
//! and a person reading `zetl_dead_letters` sees them as the source sent them.

use serde_json::{json, Map, Value as Json};
use zetl_core::{Row, Value};

/// `row`'s columns, named by `names`, as JSON text.
pub fn encode(names: &[String], row: &Row) -> String {
    let map: Map<String, Json> = names.iter().zip(row).map(|(name, v)| (name.clone(), value(v))).collect();
    Json::Object(map).to_string()
}

fn value(v: &Value) -> Json {
    let tagged = |kind: &str, text: String| json!([kind, text]);
    match v {
        Value::Null => Json::Null,
        Value::Unchanged => json!(["unchanged"]),
        Value::Bool(b) => tagged("bool", b.to_string()),
        Value::Int(i) => tagged("int", i.to_string()),
        Value::UInt(u) => tagged("uint", u.to_string()),
        Value::Float(f) => tagged("float", format!("{f:?}")),
        Value::Decimal(s) => tagged("decimal", s.clone()),
        Value::Text(s) => tagged("text", s.clone()),
        Value::Bytes(b) => tagged("bytes", zetl_core::hex::encode(b)),
        Value::Date(s) => tagged("date", s.clone()),
        Value::Time(s) => tagged("time", s.clone()),
        Value::Timestamp(s) => tagged("timestamp", s.clone()),
        Value::TimestampTz(s) => tagged("timestamptz", s.clone()),
        Value::Interval(s) => tagged("interval", s.clone()),
        Value::Uuid(s) => tagged("uuid", s.clone()),
        Value::Json(s) => tagged("json", s.clone()),
        Value::Array(items) => json!(["array", items.iter().map(value).collect::<Vec<_>>()]),
    }
}

/// The columns of a letter's row, by name.
pub fn decode(text: &str) -> Result<Vec<(String, Value)>, String> {
    let Json::Object(map) = serde_json::from_str(text).map_err(|e| format!("its row is not JSON: {e}"))? else {
        return Err("its row is not a JSON object".into());
    };
    map.into_iter()
        .map(|(name, v)| {
            let v = from_json(&v).map_err(|problem| format!("column {name}: {problem}"))?;
            Ok((name, v))
        })
        .collect()
}

fn from_json(v: &Json) -> Result<Value, String> {
    let bad = || format!("unreadable value {v}");
    let parts = match v {
        Json::Null => return Ok(Value::Null),
        Json::Array(parts) => parts,
        _ => return Err(bad()),
    };
    let kind = parts.first().and_then(Json::as_str).ok_or_else(bad)?;
    if kind == "unchanged" {
        return Ok(Value::Unchanged);
    }
    if kind == "array" {
        let items = parts.get(1).and_then(Json::as_array).ok_or_else(bad)?;
        return items.iter().map(from_json).collect::<Result<_, _>>().map(Value::Array);
    }
    let text = parts.get(1).and_then(Json::as_str).ok_or_else(bad)?.to_string();
    let parsed = match kind {
        "bool" => text.parse().ok().map(Value::Bool),
        "int" => text.parse().ok().map(Value::Int),
        "uint" => text.parse().ok().map(Value::UInt),
        "float" => text.parse().ok().map(Value::Float),
        "bytes" => zetl_core::hex::decode(&text).map(Value::Bytes),
        "decimal" => Some(Value::Decimal(text)),
        "text" => Some(Value::Text(text)),
        "date" => Some(Value::Date(text)),
        "time" => Some(Value::Time(text)),
        "timestamp" => Some(Value::Timestamp(text)),
        "timestamptz" => Some(Value::TimestampTz(text)),
        "interval" => Some(Value::Interval(text)),
        "uuid" => Some(Value::Uuid(text)),
        "json" => Some(Value::Json(text)),
        _ => None,
    };
    parsed.ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_reads_back_exactly() {
        let row: Row = vec![
            Value::Null,
            Value::Unchanged,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Float(0.1 + 0.2),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Decimal("NaN".into()),
            Value::Text("a \"quoted\"\nline é".into()),
            Value::Bytes(vec![0, 255, 16]),
            Value::Date("infinity".into()),
            Value::Time("23:59:59.999999".into()),
            Value::Timestamp("-infinity".into()),
            Value::TimestampTz("2024-01-01 00:00:00+00".into()),
            Value::Interval("1 months 2 days 3 microseconds".into()),
            Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::Json(r#"{"a": [1, 2.50]}"#.into()),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Array(vec![Value::Text("x".into())])]),
        ];
        let names: Vec<String> = (0..row.len()).map(|i| format!("c{i}")).collect();
        let back = decode(&encode(&names, &row)).expect("decodes");
        assert_eq!(back.len(), row.len());
        for (i, (name, v)) in back.iter().enumerate() {
            let at = names.iter().position(|n| n == name).expect("named");
            match (&row[at], v) {
                (Value::Float(a), Value::Float(b)) => assert_eq!(a.to_bits(), b.to_bits(), "column {i}"),
                (a, b) => assert_eq!(a, b, "column {name}"),
            }
        }
    }

    #[test]
    fn a_damaged_row_is_named() {
        assert!(decode("[1]").unwrap_err().contains("not a JSON object"));
        assert!(decode(r#"{"id": ["int", "x"]}"#).unwrap_err().contains("column id"));
        assert!(decode(r#"{"b": ["bytes", "0g"]}"#).unwrap_err().contains("column b"));
    }
}
