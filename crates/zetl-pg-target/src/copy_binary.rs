//! Values in COPY's binary format: the server stores them without parsing text, and no value
//! needs escaping. Each value is encoded for the column type zetl created; a value this encoder
//! does not take (a BC date, a timestamp with an offset, a multi-dimensional array, a value of
//! an unexpected kind) makes the caller send that batch as text instead, so the server stays
//! the one judge of bad values.

use zetl_core::columns::Cell;
use zetl_core::{ColumnType, Value};

/// `PGCOPY\n\377\r\n\0`, no flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds and days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const DAY_MICROS: i64 = 86_400_000_000;

/// A binary COPY stream under construction.
pub struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub fn new() -> Self {
        Self { buf: HEADER.to_vec() }
    }

    pub fn start_row(&mut self, fields: usize) {
        self.buf.extend_from_slice(&(fields as i16).to_be_bytes());
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn int16(&mut self, v: i16) {
        self.field(&v.to_be_bytes());
    }

    pub fn text(&mut self, v: &str) {
        self.field(v.as_bytes());
    }

    /// Appends `value` for a column of `ty`; `None` when this encoder does not take it.
    pub fn value(&mut self, value: &Value, ty: &ColumnType) -> Option<()> {
        self.encoded(|out| encode(value, ty, out))
    }

    /// Appends a copied column's `cell` for a column of `ty`; `None` when not taken.
    pub fn cell(&mut self, cell: Cell<'_>, ty: &ColumnType) -> Option<()> {
        self.encoded(|out| encode_cell(cell, ty, out))
    }

    /// A field `encode` writes, behind its length (`Some(false)`: NULL).
    fn encoded(&mut self, encode: impl FnOnce(&mut Vec<u8>) -> Option<bool>) -> Option<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        match encode(&mut self.buf) {
            Some(true) => {
                let len = (self.buf.len() - start - 4) as i32;
                self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
                Some(())
            }
            Some(false) => {
                self.buf.truncate(start);
                self.null();
                Some(())
            }
            None => None,
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    fn field(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }
}

/// Writes the value's bytes; `Some(false)` for NULL, `None` when not taken.
fn encode(value: &Value, ty: &ColumnType, out: &mut Vec<u8>) -> Option<bool> {
    match (value, ty) {
        (Value::Array(items), ColumnType::Array(inner)) => array(items, inner, out).map(|()| true),
        (value, ty) => encode_cell(Cell::of(value)?, ty, out),
    }
}

/// Writes the cell's bytes; `Some(false)` for NULL, `None` when not taken.
fn encode_cell(cell: Cell<'_>, ty: &ColumnType, out: &mut Vec<u8>) -> Option<bool> {
    use ColumnType as T;
    match (cell, ty) {
        (Cell::Null, _) => return Some(false),
        (Cell::Bool(b), T::Bool) => out.push(u8::from(b)),
        (Cell::Int(i), T::Int16) => out.extend_from_slice(&i16::try_from(i).ok()?.to_be_bytes()),
        (Cell::Int(i), T::Int32) => out.extend_from_slice(&i32::try_from(i).ok()?.to_be_bytes()),
        (Cell::Int(i), T::Int64) => out.extend_from_slice(&i.to_be_bytes()),
        (Cell::Int(i), T::UInt64 | T::Decimal { .. } | T::DecimalText) => numeric(&i.to_string(), out)?,
        (Cell::UInt(u), T::UInt64 | T::Decimal { .. } | T::DecimalText) => numeric(&u.to_string(), out)?,
        (Cell::Text(d), T::UInt64 | T::Decimal { .. } | T::DecimalText) => numeric(d, out)?,
        (Cell::Float(f), T::Float32) => out.extend_from_slice(&(f as f32).to_be_bytes()),
        (Cell::Float(f), T::Float64) => out.extend_from_slice(&f.to_be_bytes()),
        (Cell::Text(s), T::Text | T::Enum { .. } | T::Other(_)) => out.extend_from_slice(s.as_bytes()),
        (Cell::Bytes(b), T::Bytes) => out.extend_from_slice(b),
        (Cell::Text(d), T::Date) => out.extend_from_slice(&date(d)?.to_be_bytes()),
        (Cell::Text(t), T::Time) => out.extend_from_slice(&time(t)?.to_be_bytes()),
        (Cell::Text(t), T::Timestamp) => out.extend_from_slice(&timestamp(t)?.to_be_bytes()),
        (Cell::Text(t), T::TimestampTz) => {
            let utc = match t {
                "infinity" | "-infinity" => t,
                _ => ["+00", "+00:00", "Z"].iter().find_map(|z| t.strip_suffix(z))?,
            };
            out.extend_from_slice(&timestamp(utc)?.to_be_bytes())
        }
        (Cell::Text(i), T::Interval) => interval(i, out)?,
        (Cell::Text(u), T::Uuid) => uuid(u, out)?,
        (Cell::Text(j), T::Json) => {
            out.push(1); // jsonb's binary format version
            out.extend_from_slice(j.as_bytes());
        }
        _ => return None,
    }
    Some(true)
}

/// A one-dimensional array: dimensions, a NULL flag, the element type's OID, then each element
/// as a field of its own.
fn array(items: &[Value], inner: &ColumnType, out: &mut Vec<u8>) -> Option<()> {
    let oid = element_oid(inner)?;
    let has_null = items.iter().any(|v| matches!(v, Value::Null));
    let dims: i32 = if items.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&dims.to_be_bytes());
    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
    out.extend_from_slice(&oid.to_be_bytes());
    if dims == 1 {
        out.extend_from_slice(&i32::try_from(items.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    }
    for item in items {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        match encode(item, inner, out)? {
            true => {
                let len = i32::try_from(out.len() - start - 4).ok()?;
                out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            }
            false => {
                out.truncate(start);
                out.extend_from_slice(&(-1i32).to_be_bytes());
            }
        }
    }
    Some(())
}

/// The OID of an array element's type, as `pg_type` names it (arrays of arrays: none).
fn element_oid(ty: &ColumnType) -> Option<u32> {
    use ColumnType as T;
    Some(match ty {
        T::Bool => 16,
        T::Int16 => 21,
        T::Int32 => 23,
        T::Int64 => 20,
        T::UInt64 | T::Decimal { .. } | T::DecimalText => 1700,
        T::Float32 => 700,
        T::Float64 => 701,
        T::Text | T::Enum { .. } | T::Other(_) => 25,
        T::Bytes => 17,
        T::Date => 1082,
        T::Time => 1083,
        T::Timestamp => 1114,
        T::TimestampTz => 1184,
        T::Interval => 1186,
        T::Uuid => 2950,
        T::Json => 3802,
        T::Array(_) => return None,
    })
}

/// numeric: base-10000 digits with a weight, sign and display scale.
fn numeric(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let special = match text {
        "NaN" => Some(0xC000u16),
        "Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        for part in [0u16, 0, sign, 0] {
            out.extend_from_slice(&part.to_be_bytes());
        }
        return Some(());
    }
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let group = |digits: &[u8]| digits.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'));
    let mut digits: Vec<i16> = Vec::with_capacity(int.len() / 4 + frac.len() / 4 + 2);
    let lead = int.len() % 4;
    if lead > 0 {
        digits.push(group(&int.as_bytes()[..lead]));
    }
    digits.extend(int.as_bytes()[lead..].chunks(4).map(group));
    let mut weight = digits.len() as i16 - 1;
    for chunk in frac.as_bytes().chunks(4) {
        let pad = 10i16.pow(4 - chunk.len() as u32);
        digits.push(group(chunk) * pad);
    }
    let leading_zeros = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..leading_zeros);
    weight -= leading_zeros as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign: u16 = if negative && !digits.is_empty() { 0x4000 } else { 0 };
    if digits.is_empty() {
        weight = 0;
    }
    let dscale = i16::try_from(frac.len()).ok()?;
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Some(())
}

/// Days since 2000-01-01 for `YYYY-MM-DD` (± infinity as PostgreSQL stores them).
fn date(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let days = civil_days(text)?;
    i32::try_from(days - PG_EPOCH_DAYS).ok()
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (proleptic Gregorian, years 1..9999).
fn civil_days(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (number(&text[0..4])?, number(&text[5..7])?, number(&text[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y == 0 {
        return None;
    }
    // Days from civil, counting years from March so the leap day ends the year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Microseconds since midnight of `HH:MM:SS[.ffffff]`.
fn time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m) = (number(&text[0..2])?, number(&text[3..5])?);
    let (s, frac) = text[6..].split_once('.').unwrap_or((&text[6..], ""));
    if s.len() != 2 || frac.len() > 6 || h > 24 || m > 59 {
        return None;
    }
    let micros = if frac.is_empty() { 0 } else { number(frac)? * 10i64.pow(6 - frac.len() as u32) };
    Some(((h * 60 + m) * 60 + number(s)?) * 1_000_000 + micros)
}

/// Microseconds since 2000-01-01 00:00 of `YYYY-MM-DD HH:MM:SS[.ffffff]`.
fn timestamp(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (day, clock) = text.split_once(' ')?;
    Some((civil_days(day)? - PG_EPOCH_DAYS) * DAY_MICROS + time(clock)?)
}

/// `M months D days U microseconds` → microseconds, days, months.
fn interval(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let mut parts = text.split(' ');
    let mut next = |unit: &str| -> Option<i64> {
        let n = parts.next()?.parse().ok()?;
        (parts.next()? == unit).then_some(n)
    };
    let (months, days, micros) = (next("months")?, next("days")?, next("microseconds")?);
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&i32::try_from(days).ok()?.to_be_bytes());
    out.extend_from_slice(&i32::try_from(months).ok()?.to_be_bytes());
    Some(())
}

fn uuid(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    for pair in hex.chunks(2) {
        out.push(u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?);
    }
    Some(())
}

fn number(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_parts(text: &str) -> Vec<i16> {
        let mut out = Vec::new();
        numeric(text, &mut out).expect("numeric");
        out.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_in_base_10000() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(numeric_parts("0"), vec![0, 0, 0, 0]);
        assert_eq!(numeric_parts("12345.678"), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(numeric_parts("-0.0001"), vec![1, -1, 0x4000, 4, 1]);
        assert_eq!(numeric_parts("0.00001"), vec![1, -2, 0, 5, 1000]);
        assert_eq!(numeric_parts("100000000"), vec![1, 2, 0, 0, 1]);
        assert_eq!(numeric_parts("-0.00"), vec![0, 0, 0, 2]);
        assert_eq!(numeric_parts("NaN"), vec![0, 0, 0xC000u16 as i16, 0]);
        assert!(numeric("1e5", &mut Vec::new()).is_none());
        assert!(numeric("-", &mut Vec::new()).is_none());
    }

    #[test]
    fn dates_and_times_from_the_pg_epoch() {
        assert_eq!(date("2000-01-01"), Some(0));
        assert_eq!(date("1999-12-31"), Some(-1));
        assert_eq!(date("2024-03-01"), Some(8826));
        assert_eq!(date("infinity"), Some(i32::MAX));
        assert_eq!(date("0044-03-15 BC"), None);
        assert_eq!(time("00:00:01.5"), Some(1_500_000));
        assert_eq!(timestamp("2000-01-02 00:00:00.000001"), Some(DAY_MICROS + 1));
        assert_eq!(timestamp("1970-01-01 00:00:00"), Some(-PG_EPOCH_DAYS * DAY_MICROS));
        let mut out = Vec::new();
        interval("-1 months 2 days 3 microseconds", &mut out).expect("interval");
        assert_eq!(out, [3i64.to_be_bytes().as_slice(), &2i32.to_be_bytes(), &(-1i32).to_be_bytes()].concat());
    }

    #[test]
    fn unexpected_values_are_refused_not_guessed() {
        let mut copy = BinaryCopy::new();
        assert!(copy.value(&Value::Int(70_000), &ColumnType::Int16).is_none());
        assert!(copy.value(&Value::Text("x".into()), &ColumnType::Int32).is_none());
        assert!(copy.value(&Value::TimestampTz("2024-01-01 00:00:00+02".into()), &ColumnType::TimestampTz).is_none());
        assert!(copy.value(&Value::Null, &ColumnType::Int32).is_some());
        assert!(copy.value(&Value::TimestampTz("-infinity".into()), &ColumnType::TimestampTz).is_some());
        let nested = Value::Array(vec![Value::Array(vec![Value::Int(1)])]);
        let matrix = ColumnType::Array(Box::new(ColumnType::Array(Box::new(ColumnType::Int32))));
        assert!(copy.value(&nested, &matrix).is_none());
    }

    #[test]
    fn arrays_carry_their_element_type_and_nulls() {
        let mut out = Vec::new();
        let items = [Value::Int(7), Value::Null];
        array(&items, &ColumnType::Int32, &mut out).expect("array");
        let words: Vec<i32> = out.chunks(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        // 1 dimension, has NULLs, int4; 2 elements from 1; (4 bytes: 7); NULL.
        assert_eq!(words, vec![1, 1, 23, 2, 1, 4, 7, -1]);
        let mut empty = Vec::new();
        array(&[], &ColumnType::Text, &mut empty).expect("empty");
        assert_eq!(empty, [0i32.to_be_bytes(), 0i32.to_be_bytes(), 25i32.to_be_bytes()].concat());
    }
}
