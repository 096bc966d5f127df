//! MySQL values → event-model values. The binlog and a snapshot query deliver some types in
//! different shapes (ENUM as an index or as its label, TIMESTAMP as epoch seconds or as a
//! date, SET as a bitmask or as text): `Origin` says which one arrived.

use crate::columns::{MyColumn, MyKind};
use mysql_common::value::Value as My;
use zetl_core::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Binlog,
    Query,
}

/// Converts one value; `Err` says what is wrong with it (the caller names table and column).
pub fn convert(col: &MyColumn, value: My, origin: Origin) -> Result<Value, String> {
    if matches!(value, My::NULL) {
        return Ok(Value::Null);
    }
    let unexpected = |v: &My| format!("unexpected value {v:?} for a {} column", col.source_type);
    Ok(match (&col.kind, value) {
        (MyKind::Int { bytes, unsigned }, v) => int(*bytes, *unsigned, v)?,
        (MyKind::Float, My::Float(f)) => Value::Float(f as f64),
        (MyKind::Float | MyKind::Double, My::Double(f)) => Value::Float(f),
        (MyKind::Float | MyKind::Double, My::Bytes(b)) => Value::Float(text(&b)?.parse().map_err(|e| format!("{e}"))?),
        (MyKind::Decimal { .. }, My::Bytes(b)) => Value::Decimal(text(&b)?.to_string()),
        (MyKind::Text { latin1 }, My::Bytes(b)) => {
            if *latin1 && origin == Origin::Binlog {
                Value::Text(latin1_text(&b))
            } else {
                Value::Text(
                    String::from_utf8(b).map_err(|_| "not valid UTF-8 (unsupported column charset)".to_string())?,
                )
            }
        }
        (MyKind::Bytes { pad_to }, My::Bytes(mut b)) => {
            if b.len() < *pad_to as usize {
                b.resize(*pad_to as usize, 0);
            }
            Value::Bytes(b)
        }
        (MyKind::Geometry, My::Bytes(b)) => Value::Bytes(b),
        (MyKind::Json { binary }, My::Bytes(b)) => {
            let text = String::from_utf8(b).map_err(|_| "JSON is not valid UTF-8")?;
            if *binary {
                // MySQL renders a JSON value in a query its own way (`{"a": [100.0, "x"], "b":
                // 1.5}`) and sends binary JSON to the binlog: both become the same compact text.
                let parsed: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("the server sent invalid JSON: {e}"))?;
                Value::Json(json_text(&parsed))
            } else {
                // MariaDB: the document's own text, in the copy and in the binlog alike.
                Value::Json(text)
            }
        }
        (MyKind::Date, My::Date(y, m, d, ..)) => date(y, m, d).map_or(Value::Null, Value::Date),
        (MyKind::Date, My::Bytes(b)) => parse_date_text(text(&b)?).map_or(Value::Null, Value::Date),
        (MyKind::DateTime, My::Date(y, mo, d, h, mi, s, us)) => {
            datetime(y, mo, d, h, mi, s, us).map_or(Value::Null, Value::Timestamp)
        }
        (MyKind::DateTime, My::Bytes(b)) => datetime_text(text(&b)?).map_or(Value::Null, Value::Timestamp),
        (MyKind::Timestamp, My::Date(y, mo, d, h, mi, s, us)) => {
            datetime(y, mo, d, h, mi, s, us).map_or(Value::Null, |t| Value::TimestampTz(format!("{t}+00")))
        }
        (MyKind::Timestamp, My::Int(secs)) => epoch(secs, 0),
        (MyKind::Timestamp, My::Bytes(b)) => {
            let t = text(&b)?;
            if t.contains('-') {
                datetime_text(t).map_or(Value::Null, |t| Value::TimestampTz(format!("{t}+00")))
            } else {
                let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
                let us = format!("{frac:0<6}").get(..6).and_then(|f| f.parse().ok()).unwrap_or(0);
                epoch(secs.parse().map_err(|_| unexpected(&My::Bytes(b.clone())))?, us)
            }
        }
        (MyKind::Time, My::Time(neg, days, h, m, s, us)) => {
            let micros = ((days as i64 * 24 + h as i64) * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + us as i64;
            Value::Interval(format!("0 months 0 days {} microseconds", if neg { -micros } else { micros }))
        }
        (MyKind::Time, My::Bytes(b)) => time_text(text(&b)?).ok_or_else(|| unexpected(&My::Bytes(b.clone())))?,
        (MyKind::Year, My::Int(y)) => Value::Int(year(y)),
        (MyKind::Year, My::UInt(y)) => Value::Int(year(y as i64)),
        (MyKind::Year, My::Bytes(b)) => Value::Int(year(text(&b)?.parse().map_err(|e| format!("{e}"))?)),
        (MyKind::Bit { bits }, My::Bytes(b)) => {
            let n = b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
            if *bits == 1 {
                Value::Bool(n != 0)
            } else {
                Value::UInt(n)
            }
        }
        (MyKind::Enum(labels), My::Int(i)) => Value::Text(label(labels, i)),
        (MyKind::Enum(labels), My::UInt(i)) => Value::Text(label(labels, i as i64)),
        (MyKind::Enum(_), My::Bytes(b)) => Value::Text(String::from_utf8(b).map_err(|_| "enum label is not UTF-8")?),
        (MyKind::Set(labels), My::Bytes(b)) if origin == Origin::Binlog => {
            let mask = b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64);
            let picked: Vec<&str> =
                labels.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, l)| l.as_str()).collect();
            Value::Text(picked.join(","))
        }
        (MyKind::Set(_), My::Bytes(b)) => Value::Text(String::from_utf8(b).map_err(|_| "set value is not UTF-8")?),
        (_, v) => return Err(unexpected(&v)),
    })
}

/// A MySQL JSON document's text at the target: compact, keys in order, numbers as serde_json
/// prints them. The copy's rendering and the binlog's binary JSON both end here.
pub fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// MySQL's `latin1` is Windows-1252, not ISO-8859-1: bytes 0x80–0x9F are € ‚ ƒ „ … † ‡ ˆ ‰ Š
/// ‹ Œ Ž ‘ ’ “ ” • – — ˜ ™ š › œ ž Ÿ, and the five bytes cp1252 leaves undefined map to the
/// control characters of the same number (MySQL Reference Manual, "West European Character
/// Sets"; `strings/ctype-latin1.c`). The copy reads through the server's own conversion, so
/// the binlog must decode the same way.
pub fn latin1_text(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
        '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
        '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    bytes.iter().map(|&b| if (0x80..0xA0).contains(&b) { HIGH[usize::from(b - 0x80)] } else { char::from(b) }).collect()
}

fn text(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "not valid UTF-8".to_string())
}

/// Integers arrive signed or unsigned depending on how the reader saw the column: the column's
/// own width and signedness decide.
fn int(bytes: u8, unsigned: bool, v: My) -> Result<Value, String> {
    let raw: u64 = match v {
        My::Int(i) => i as u64,
        My::UInt(u) => u,
        My::Bytes(b) => {
            let t = text(&b)?;
            return if unsigned && bytes == 8 {
                t.parse::<u64>().map(Value::UInt).map_err(|e| format!("{e}"))
            } else {
                t.parse::<i64>().map(Value::Int).map_err(|e| format!("{e}"))
            };
        }
        other => return Err(format!("unexpected integer value {other:?}")),
    };
    let shift = 64 - 8 * u32::from(bytes.clamp(1, 8));
    Ok(match (unsigned, bytes) {
        (true, 8) => Value::UInt(raw),
        (true, _) => Value::Int(((raw << shift) >> shift) as i64),
        (false, _) => Value::Int(((raw << shift) as i64) >> shift),
    })
}

fn year(y: i64) -> i64 {
    // The binlog reader renders YEAR 0000 as 1900, a year the type cannot hold.
    if y == 1900 {
        0
    } else {
        y
    }
}

fn label(labels: &[String], index: i64) -> String {
    // Index 0 is the "invalid value" MySQL stores in non-strict mode: an empty label.
    usize::try_from(index).ok().and_then(|i| i.checked_sub(1)).and_then(|i| labels.get(i)).cloned().unwrap_or_default()
}

/// `None` for MySQL's zero dates (`0000-00-00`, or a zero month or day), which no target
/// date type holds: they become NULL (docs/type-mapping.md).
fn date(y: u16, m: u8, d: u8) -> Option<String> {
    (y != 0 && m != 0 && d != 0).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

#[allow(clippy::too_many_arguments)]
fn datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Option<String> {
    let day = date(y, mo, d)?;
    Some(if us == 0 { format!("{day} {h:02}:{mi:02}:{s:02}") } else { format!("{day} {h:02}:{mi:02}:{s:02}.{us:06}") })
}

fn parse_date_text(t: &str) -> Option<String> {
    let mut it = t.splitn(3, '-').map(|p| p.parse::<u16>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    date(y, m as u8, d as u8)
}

fn datetime_text(t: &str) -> Option<String> {
    let (day, clock) = t.split_once(' ').unwrap_or((t, "00:00:00"));
    let mut d = day.splitn(3, '-').map(|p| p.parse::<u16>().ok());
    let (y, mo, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut c = hms.split(':').map(|p| p.parse::<u8>().ok());
    let (h, mi, s) = (c.next()??, c.next()??, c.next()??);
    let us = if frac.is_empty() { 0 } else { format!("{frac:0<6}").get(..6)?.parse().ok()? };
    datetime(y, mo as u8, dd as u8, h, mi, s, us)
}

fn time_text(t: &str) -> Option<Value> {
    let (neg, t) = t.strip_prefix('-').map_or((false, t), |r| (true, r));
    let (clock, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut it = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (it.next()??, it.next()??, it.next()??);
    let us: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").get(..6)?.parse().ok()? };
    let micros = (h * 3600 + m * 60 + s) * 1_000_000 + us;
    Some(Value::Interval(format!("0 months 0 days {} microseconds", if neg { -micros } else { micros })))
}

/// A TIMESTAMP's epoch seconds as UTC text; 0 is MySQL's zero timestamp, kept as NULL.
fn epoch(secs: i64, us: u32) -> Value {
    if secs == 0 && us == 0 {
        return Value::Null;
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let clock = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    Value::TimestampTz(if us == 0 {
        format!("{y:04}-{m:02}-{d:02} {clock}+00")
    } else {
        format!("{y:04}-{m:02}-{d:02} {clock}.{us:06}+00")
    })
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: MyKind) -> MyColumn {
        MyColumn { name: "c".into(), kind, nullable: true, source_type: "t".into() }
    }

    #[test]
    fn integers_follow_the_column_not_the_reader() {
        let tiny_u = col(MyKind::Int { bytes: 1, unsigned: true });
        assert_eq!(convert(&tiny_u, My::Int(-1), Origin::Binlog), Ok(Value::Int(255)));
        let med = col(MyKind::Int { bytes: 3, unsigned: false });
        assert_eq!(convert(&med, My::UInt(0xFF_FFFF), Origin::Binlog), Ok(Value::Int(-1)));
        let big_u = col(MyKind::Int { bytes: 8, unsigned: true });
        assert_eq!(convert(&big_u, My::Int(-1), Origin::Binlog), Ok(Value::UInt(u64::MAX)));
        assert_eq!(
            convert(&big_u, My::Bytes(b"18446744073709551615".to_vec()), Origin::Query),
            Ok(Value::UInt(u64::MAX))
        );
    }

    #[test]
    fn temporal_values_and_zero_dates() {
        let ts = col(MyKind::Timestamp);
        assert_eq!(
            convert(&ts, My::Bytes(b"1700000000.5".to_vec()), Origin::Binlog),
            Ok(Value::TimestampTz("2023-11-14 22:13:20.500000+00".into()))
        );
        assert_eq!(convert(&ts, My::Bytes(b"0".to_vec()), Origin::Binlog), Ok(Value::Null));
        let d = col(MyKind::Date);
        assert_eq!(convert(&d, My::Date(0, 0, 0, 0, 0, 0, 0), Origin::Binlog), Ok(Value::Null));
        assert_eq!(convert(&d, My::Bytes(b"2024-02-29".to_vec()), Origin::Query), Ok(Value::Date("2024-02-29".into())));
        let dt = col(MyKind::DateTime);
        assert_eq!(
            convert(&dt, My::Bytes(b"2024-01-02 03:04:05.120000".to_vec()), Origin::Query),
            Ok(Value::Timestamp("2024-01-02 03:04:05.120000".into()))
        );
        let t = col(MyKind::Time);
        assert_eq!(
            convert(&t, My::Bytes(b"-838:59:59.5".to_vec()), Origin::Query),
            Ok(Value::Interval("0 months 0 days -3020399500000 microseconds".into()))
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn enums_sets_bits_and_binary() {
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(
            convert(&col(MyKind::Enum(labels.clone())), My::Int(2), Origin::Binlog),
            Ok(Value::Text("b".into()))
        );
        assert_eq!(
            convert(&col(MyKind::Set(labels)), My::Bytes(vec![0b101]), Origin::Binlog),
            Ok(Value::Text("a,c".into()))
        );
        assert_eq!(
            convert(&col(MyKind::Bit { bits: 10 }), My::Bytes(vec![1, 2]), Origin::Binlog),
            Ok(Value::UInt(258))
        );
        assert_eq!(
            convert(&col(MyKind::Bytes { pad_to: 3 }), My::Bytes(vec![7]), Origin::Binlog),
            Ok(Value::Bytes(vec![7, 0, 0]))
        );
        assert_eq!(
            convert(&col(MyKind::Text { latin1: true }), My::Bytes(vec![0xE9]), Origin::Binlog),
            Ok(Value::Text("é".into()))
        );
    }

    #[test]
    fn json_is_the_same_text_from_the_copy_and_the_binlog() {
        // MySQL: the query renders `{"b": 1.50, "a": [1e2, "x"]}` as below, the binlog
        // carries binary JSON that decodes to the same document.
        let from_binlog = json_text(&serde_json::json!({"b": 1.5, "a": [100.0, "x"]}));
        let mysql = col(MyKind::Json { binary: true });
        let copied = convert(&mysql, My::Bytes(br#"{"a": [100.0, "x"], "b": 1.5}"#.to_vec()), Origin::Query);
        assert_eq!(copied, Ok(Value::Json(from_binlog.clone())));
        assert_eq!(from_binlog, r#"{"a":[100.0,"x"],"b":1.5}"#);
        // MariaDB: the text as written, whichever way it came.
        let maria = col(MyKind::Json { binary: false });
        let raw = r#"{"b": 1.50, "a": [1e2, "x"]}"#;
        assert_eq!(convert(&maria, My::Bytes(raw.into()), Origin::Query), Ok(Value::Json(raw.into())));
        assert_eq!(convert(&maria, My::Bytes(raw.into()), Origin::Binlog), Ok(Value::Json(raw.into())));
    }

    #[test]
    fn latin1_is_cp1252() {
        // '€ “quoted” – ™' as a latin1 column holds it.
        let bytes = [0x80, b' ', 0x93, b'q', 0x94, b' ', 0x96, b' ', 0x99, 0x81, 0xA0, 0xFF];
        assert_eq!(latin1_text(&bytes), "€ “q” – ™\u{81}\u{A0}ÿ");
    }

    #[test]
    fn a_float_reads_the_same_from_the_copy_and_the_binlog() {
        // The copy selects FLOAT columns as `c + 0e0`: the float's exact value as a double.
        let f = col(MyKind::Float);
        for x in [1.234_567_9_f32, f32::MAX, -1.175_494_4e-38, 0.1, 16_777_216.0] {
            let exact = format!("{:?}", f64::from(x));
            assert_eq!(
                convert(&f, My::Bytes(exact.into_bytes()), Origin::Query),
                convert(&f, My::Float(x), Origin::Binlog),
                "{x}"
            );
        }
    }
}
