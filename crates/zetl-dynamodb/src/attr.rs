//! DynamoDB attribute values, from either SDK (the Streams SDK has its own copy of the type),
//! written as JSON — DynamoDB's typed form or plain — and as typed column values.
//! Numbers stay the exact decimal text DynamoDB sends (up to 38 digits).

use crate::config::{AttributeType, ItemFormat};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use zetl_core::json::push_string;
use zetl_core::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    S(String),
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(BTreeMap<String, Attr>),
    L(Vec<Attr>),
    Ss(Vec<String>),
    Ns(Vec<String>),
    Bs(Vec<Vec<u8>>),
}

pub type Item = BTreeMap<String, Attr>;

/// Both SDKs' `AttributeValue` have the same variants under different types.
macro_rules! from_sdk {
    ($ty:ty) => {
        impl From<&$ty> for Attr {
            fn from(v: &$ty) -> Self {
                type A = $ty;
                match v {
                    A::S(s) => Attr::S(s.clone()),
                    A::N(n) => Attr::N(n.clone()),
                    A::B(b) => Attr::B(b.as_ref().to_vec()),
                    A::Bool(b) => Attr::Bool(*b),
                    A::M(m) => Attr::M(m.iter().map(|(k, v)| (k.clone(), Attr::from(v))).collect()),
                    A::L(l) => Attr::L(l.iter().map(Attr::from).collect()),
                    A::Ss(s) => Attr::Ss(s.clone()),
                    A::Ns(n) => Attr::Ns(n.clone()),
                    A::Bs(b) => Attr::Bs(b.iter().map(|b| b.as_ref().to_vec()).collect()),
                    // `Null(true)`, and variants a newer service may add (kept as null).
                    _ => Attr::Null,
                }
            }
        }
    };
}

from_sdk!(aws_sdk_dynamodb::types::AttributeValue);
from_sdk!(aws_sdk_dynamodbstreams::types::AttributeValue);

/// An item from either SDK's map.
pub fn item<'a, V: 'a>(map: impl IntoIterator<Item = (&'a String, &'a V)>) -> Item
where
    Attr: From<&'a V>,
{
    map.into_iter().map(|(k, v)| (k.clone(), Attr::from(v))).collect()
}

/// The whole item as JSON in the chosen format.
pub fn item_json(item: &Item, format: ItemFormat) -> String {
    let mut out = String::new();
    write_map(item, format, &mut out);
    out
}

fn write_map(map: &BTreeMap<String, Attr>, format: ItemFormat, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, k);
        out.push(':');
        write(v, format, out);
    }
    out.push('}');
}

fn write(v: &Attr, format: ItemFormat, out: &mut String) {
    if format == ItemFormat::Dynamodb {
        let tag = match v {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null => "NULL",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
        };
        let _ = write!(out, "{{\"{tag}\":");
        match v {
            Attr::N(n) => push_string(out, n),
            Attr::Ns(ns) => list(ns, out, |n, out| push_string(out, n)),
            Attr::Null => out.push_str("true"),
            Attr::M(m) => write_map(m, format, out),
            Attr::L(l) => list(l, out, |v, out| write(v, format, out)),
            // Strings, binary, booleans and their sets look the same in both forms.
            other => write(other, ItemFormat::Plain, out),
        }
        out.push('}');
        return;
    }
    match v {
        Attr::S(s) => push_string(out, s),
        Attr::N(n) => number(n, out),
        Attr::B(b) => push_string(out, &base64(b)),
        Attr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Attr::Null => out.push_str("null"),
        Attr::M(m) => write_map(m, format, out),
        Attr::L(l) => list(l, out, |v, out| write(v, format, out)),
        Attr::Ss(s) => list(s, out, |s, out| push_string(out, s)),
        Attr::Ns(n) => list(n, out, |n, out| number(n, out)),
        Attr::Bs(b) => list(b, out, |b, out| push_string(out, &base64(b))),
    }
}

fn list<T>(items: &[T], out: &mut String, each: impl Fn(&T, &mut String)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(item, out);
    }
    out.push(']');
}

/// A DynamoDB number as a JSON number, exactly as sent; as a string if JSON would not take it.
fn number(n: &str, out: &mut String) {
    if is_json_number(n) {
        out.push_str(n);
    } else {
        push_string(out, n);
    }
}

fn is_json_number(n: &str) -> bool {
    let b = n.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let int_start = i;
    if !digits(&mut i) || (b[int_start] == b'0' && i - int_start > 1) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// Standard base64 with padding, as DynamoDB's JSON writes binary.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A key attribute as its column value (S → text, N → exact number, B → bytes).
pub fn key_value(v: &Attr) -> Value {
    match v {
        Attr::S(s) => Value::Text(s.clone()),
        Attr::N(n) => Value::Decimal(n.clone()),
        Attr::B(b) => Value::Bytes(b.clone()),
        _ => Value::Null,
    }
}

/// A declared attribute as a value of its column's type; NULL when the item's attribute is
/// missing or of another kind (the `item` column still holds it).
pub fn typed_value(v: Option<&Attr>, ty: AttributeType) -> Value {
    let Some(v) = v else { return Value::Null };
    match (ty, v) {
        (_, Attr::Null) => Value::Null,
        (AttributeType::Text, Attr::S(s) | Attr::N(s)) => Value::Text(s.clone()),
        (AttributeType::Text, Attr::Bool(b)) => Value::Text(b.to_string()),
        (AttributeType::Number, Attr::N(n)) => Value::Decimal(n.clone()),
        (AttributeType::Integer, Attr::N(n)) => n.parse().map(Value::Int).unwrap_or(Value::Null),
        (AttributeType::Float, Attr::N(n)) => n.parse().map(Value::Float).unwrap_or(Value::Null),
        (AttributeType::Bool, Attr::Bool(b)) => Value::Bool(*b),
        (AttributeType::Bytes, Attr::B(b)) => Value::Bytes(b.clone()),
        (AttributeType::Json, v) => Value::Json(item_json_value(v)),
        _ => Value::Null,
    }
}

fn item_json_value(v: &Attr) -> String {
    let mut out = String::new();
    write(v, ItemFormat::Plain, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Item {
        let mut m = BTreeMap::new();
        m.insert("n".to_string(), Attr::N("12345678901234567890123456789012345678".into()));
        m.insert("s".to_string(), Attr::S("a\"b\n".into()));
        m.insert("b".to_string(), Attr::B(vec![0, 255, 7]));
        m.insert("ok".to_string(), Attr::Bool(true));
        m.insert("nil".to_string(), Attr::Null);
        m.insert("ss".to_string(), Attr::Ss(vec!["x".into(), "y".into()]));
        m.insert("ns".to_string(), Attr::Ns(vec!["1.5".into(), "-2".into()]));
        m.insert("bs".to_string(), Attr::Bs(vec![vec![1], vec![2, 3]]));
        m.insert("l".to_string(), Attr::L(vec![Attr::N("1".into()), Attr::M(BTreeMap::new())]));
        m
    }

    #[test]
    fn typed_json_keeps_every_type() {
        assert_eq!(
            item_json(&sample(), ItemFormat::Dynamodb),
            r#"{"b":{"B":"AP8H"},"bs":{"BS":["AQ==","AgM="]},"l":{"L":[{"N":"1"},{"M":{}}]},"n":{"N":"12345678901234567890123456789012345678"},"nil":{"NULL":true},"ns":{"NS":["1.5","-2"]},"ok":{"BOOL":true},"s":{"S":"a\"b\n"},"ss":{"SS":["x","y"]}}"#
        );
    }

    #[test]
    fn plain_json_keeps_numbers_exact() {
        assert_eq!(
            item_json(&sample(), ItemFormat::Plain),
            r#"{"b":"AP8H","bs":["AQ==","AgM="],"l":[1,{}],"n":12345678901234567890123456789012345678,"nil":null,"ns":[1.5,-2],"ok":true,"s":"a\"b\n","ss":["x","y"]}"#
        );
        assert!(is_json_number("-0.5") && is_json_number("1E+2") && !is_json_number("01") && !is_json_number(".5"));
    }

    #[test]
    fn declared_columns_take_what_fits() {
        let n = Attr::N("42".into());
        assert_eq!(typed_value(Some(&n), AttributeType::Integer), Value::Int(42));
        assert_eq!(typed_value(Some(&n), AttributeType::Number), Value::Decimal("42".into()));
        assert_eq!(typed_value(Some(&Attr::S("x".into())), AttributeType::Integer), Value::Null);
        assert_eq!(typed_value(None, AttributeType::Text), Value::Null);
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
