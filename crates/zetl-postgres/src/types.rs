//! PostgreSQL column types → [`ColumnType`], and pgoutput text-format values → [`Value`].
//!
//! Values are parsed from the type's text output as the server sends it in pgoutput's `t`
//! columns, under the session settings zetl's replication connection pins: DateStyle=ISO,
//! IntervalStyle=postgres, TimeZone=UTC, extra_float_digits=3, bytea_output=hex.
//! Temporal, decimal, JSON and UUID values keep their text (the event model's canonical forms
//! match PostgreSQL's ISO output); the parser only checks the shape so that a misconfigured
//! session fails loudly instead of replicating wrong values.

use std::collections::HashMap;

use thiserror::Error;
use zetl_core::model::{ColumnType, Value};

/// What zetl learned from `pg_type`/`pg_enum` about types that have no fixed OID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeCatalog {
    /// Enum type oid → (type name, labels in `enumsortorder`).
    pub enums: HashMap<u32, (String, Vec<String>)>,
    /// Array type oid → element type oid, for user-defined array types (`typelem`).
    pub arrays: HashMap<u32, u32>,
    /// Any other type oid → name, used to name [`ColumnType::Other`].
    pub names: HashMap<u32, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("invalid {ty} value {text:?}: {reason}")]
    Invalid { ty: String, text: String, reason: String },
    #[error("unsupported {ty} value {text:?}: {reason}")]
    Unsupported { ty: String, text: String, reason: String },
}

/// Built-in types by their fixed OIDs (`pg_type.dat`): (oid, its array type's oid, type, name).
/// `oid` is unsigned 32-bit, so it needs Int64.
#[rustfmt::skip]
static BUILTINS: [(u32, u32, ColumnType, &str); 22] = {
    use ColumnType::*;
    [
        (16, 1000, Bool, "bool"),           (17, 1001, Bytes, "bytea"),
        (18, 1002, Text, "char"),           (19, 1003, Text, "name"),
        (20, 1016, Int64, "int8"),          (21, 1005, Int16, "int2"),
        (23, 1007, Int32, "int4"),          (25, 1009, Text, "text"),
        (26, 1028, Int64, "oid"),           (114, 199, Json, "json"),
        (700, 1021, Float32, "float4"),     (701, 1022, Float64, "float8"),
        (1042, 1014, Text, "bpchar"),       (1043, 1015, Text, "varchar"),
        (1082, 1182, Date, "date"),         (1083, 1183, Time, "time"),
        (1114, 1115, Timestamp, "timestamp"), (1184, 1185, TimestampTz, "timestamptz"),
        (1186, 1187, Interval, "interval"), (1700, 1231, DecimalText, "numeric"),
        (2950, 2951, Uuid, "uuid"),         (3802, 3807, Json, "jsonb"),
    ]
};

/// Maps a column's type OID and `atttypmod` (as in the pgoutput Relation message) to the
/// event model's type and the source type's name, e.g. `numeric(12,2)`, `int4[]`, `mood`.
/// An array column's typmod is its element's, so `numeric(12,2)[]` maps to an array of Decimal.
/// Arrays whose element type has no mapping are [`ColumnType::Other`] as a whole, since their
/// element delimiter and quoting are not known.
pub fn map_type(type_oid: u32, type_modifier: i32, catalog: &TypeCatalog) -> (ColumnType, String) {
    if let Some(mapped) = map_scalar(type_oid, type_modifier, catalog) {
        return mapped;
    }
    let element = match BUILTINS.iter().find(|b| b.1 == type_oid) {
        Some(b) => Some(b.0),
        None => catalog.arrays.get(&type_oid).copied(),
    };
    if let Some((ty, name)) = element.and_then(|e| map_scalar(e, type_modifier, catalog)) {
        return (ColumnType::Array(Box::new(ty)), format!("{name}[]"));
    }
    let name = match catalog.names.get(&type_oid) {
        Some(name) => name.clone(),
        None => format!("oid:{type_oid}"),
    };
    (ColumnType::Other(name.clone()), name)
}

fn map_scalar(oid: u32, typmod: i32, catalog: &TypeCatalog) -> Option<(ColumnType, String)> {
    if let Some((name, labels)) = catalog.enums.get(&oid) {
        let ty = ColumnType::Enum { name: name.clone(), labels: labels.clone() };
        return Some((ty, name.clone()));
    }
    let (_, _, ty, name) = BUILTINS.iter().find(|b| b.0 == oid)?;
    let (ty, name) = (ty.clone(), *name);
    Some(match (oid, typmod) {
        (_, m) if m < 0 => (ty, name.to_owned()),
        (1700, m) => numeric(m),
        // varchar/bpchar typmod is the length plus VARHDRSZ (4).
        (1042 | 1043, m) if m >= 4 => (ty, format!("{name}({})", m - 4)),
        // time/timestamp/timestamptz typmod is the fractional-seconds precision.
        (1083 | 1114 | 1184, m) => (ty, format!("{name}({m})")),
        // interval typmod packs a field range and a precision (0xffff = unspecified).
        (1186, m) if m & 0xffff != 0xffff => (ty, format!("{name}({})", m & 0xffff)),
        _ => (ty, name.to_owned()),
    })
}

/// Decodes numeric's typmod the way PostgreSQL 15's `numeric.c` does: `typmod - VARHDRSZ`
/// holds the precision in the high 16 bits and the scale in the low 11 bits, sign-extended
/// because PG15 allows scales from -1000 to 1000 (also scale > precision).
fn numeric(typmod: i32) -> (ColumnType, String) {
    if typmod < 4 {
        return (ColumnType::DecimalText, "numeric".to_owned());
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    let name = format!("numeric({precision},{scale})");
    match (u8::try_from(precision), u8::try_from(scale)) {
        (Ok(p), Ok(s)) if (1..=38).contains(&p) && s <= p => (ColumnType::Decimal { precision: p, scale: s }, name),
        _ => (ColumnType::DecimalText, name),
    }
}

/// A value parsed from its type's text output form. A value carried as text borrows it, as
/// it already is its canonical text: a copy writes it into its column without a copy of its own.
pub enum Parsed<'a> {
    Value(Value),
    Text(&'a str),
}

/// Parses one value in the type's text output form (see the module comment for the session
/// settings this assumes).
pub fn parse_text(ty: &ColumnType, text: &str) -> Result<Value, ValueError> {
    match parse(ty, text)? {
        Parsed::Value(value) => Ok(value),
        Parsed::Text(canonical) => {
            Value::of_text(ty, canonical.to_owned()).ok_or_else(|| invalid(ty, text, "not a type carried as text"))
        }
    }
}

/// [`parse_text`], borrowing the text of the values carried as text.
pub fn parse<'a>(ty: &ColumnType, text: &'a str) -> Result<Parsed<'a>, ValueError> {
    let bad = |reason: &str| invalid(ty, text, reason);
    Ok(Parsed::Value(match ty {
        ColumnType::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad("expected 't' or 'f'")),
        },
        ColumnType::Int16 => Value::Int(number::<i16>(ty, text)?.into()),
        ColumnType::Int32 => Value::Int(number::<i32>(ty, text)?.into()),
        ColumnType::Int64 => Value::Int(number(ty, text)?),
        ColumnType::UInt64 => Value::UInt(number(ty, text)?),
        // float4 is parsed as f32 and widened exactly, so a target storing it as f32 gets the
        // source's value back without double rounding.
        ColumnType::Float32 => match special_float(text) {
            Some(f) => Value::Float(f),
            None => Value::Float(number::<f32>(ty, text)?.into()),
        },
        ColumnType::Float64 => Value::Float(match special_float(text) {
            Some(f) => f,
            None => number(ty, text)?,
        }),
        ColumnType::Decimal { .. } | ColumnType::DecimalText => {
            check_decimal(text).map_err(bad)?;
            return Ok(Parsed::Text(text));
        }
        // Enum labels are not checked against the catalog: ALTER TYPE ... ADD VALUE can add
        // one before zetl reloads the catalog, and the target decides what to do with it.
        ColumnType::Text | ColumnType::Enum { .. } | ColumnType::Other(_) | ColumnType::Json => {
            return Ok(Parsed::Text(text))
        }
        ColumnType::Bytes => Value::Bytes(parse_bytea(text).map_err(bad)?),
        ColumnType::Date => {
            check_temporal(ty, text, check_date)?;
            return Ok(Parsed::Text(text));
        }
        ColumnType::Time => {
            check_time(text).map_err(bad)?;
            return Ok(Parsed::Text(text));
        }
        ColumnType::Timestamp => {
            check_temporal(ty, text, check_timestamp)?;
            return Ok(Parsed::Text(text));
        }
        ColumnType::TimestampTz => {
            check_temporal(ty, text, |s| match s.strip_suffix("+00") {
                Some(ts) => check_timestamp(ts),
                None => Err("UTC offset is not +00 (the session TimeZone must be UTC)"),
            })?;
            return Ok(Parsed::Text(text));
        }
        ColumnType::Interval if text.is_empty() => return Err(bad("empty interval")),
        ColumnType::Interval => {
            Value::Interval(crate::interval::canonical(text).ok_or_else(|| bad("not a postgres-style interval"))?)
        }
        ColumnType::Uuid => {
            check_uuid(text).map_err(bad)?;
            return Ok(Parsed::Text(text));
        }
        ColumnType::Array(element) => ArrayParser::parse(ty, element, text)?,
    }))
}

fn number<N>(ty: &ColumnType, text: &str) -> Result<N, ValueError>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    text.parse().map_err(|e: N::Err| invalid(ty, text, &e.to_string()))
}

fn invalid(ty: &ColumnType, text: &str, reason: &str) -> ValueError {
    ValueError::Invalid { ty: type_label(ty), text: snippet(text), reason: reason.to_owned() }
}

fn type_label(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnType::Enum { name, .. } => format!("enum {name}"),
        ColumnType::DecimalText => "decimal".to_owned(),
        ColumnType::Array(element) => format!("{}[]", type_label(element)),
        ColumnType::Other(name) => name.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Error messages quote at most this many characters of the value: values can be megabytes.
const SNIPPET_CHARS: usize = 64;

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn special_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// numeric_out never uses exponents; NaN and ±Infinity (PG14+) are its only non-digit forms.
fn check_decimal(text: &str) -> Result<(), &'static str> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Ok(());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() > 0 && all_digits(int) && all_digits(frac) {
        Ok(())
    } else {
        Err("not a decimal number")
    }
}

/// bytea's hex output format ("Binary Data Types", bytea_output = hex).
fn parse_bytea(text: &str) -> Result<Vec<u8>, &'static str> {
    let hex = text.strip_prefix("\\x").ok_or("not in hex format (bytea_output must be 'hex')")?.as_bytes();
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits");
    }
    let nibble = |b: u8| (b as char).to_digit(16).ok_or("invalid hex digit");
    hex.chunks_exact(2).map(|pair| Ok((nibble(pair[0])? << 4 | nibble(pair[1])?) as u8)).collect()
}

/// Date/timestamp output with DateStyle=ISO: `infinity`/`-infinity` pass through (the event
/// model keeps them); BC values (` BC` suffix) are refused because the model's ISO form has no
/// era and astronomical year numbering would need date arithmetic here.
fn check_temporal(
    ty: &ColumnType,
    text: &str,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(), ValueError> {
    if text.ends_with(" BC") {
        return Err(ValueError::Unsupported {
            ty: type_label(ty),
            text: snippet(text),
            reason: "BC dates are not supported".to_owned(),
        });
    }
    if text == "infinity" || text == "-infinity" {
        return Ok(());
    }
    check(text).map_err(|reason| invalid(ty, text, reason))
}

/// `YYYY-MM-DD`, with four or more year digits.
fn check_date(text: &str) -> Result<(), &'static str> {
    const BAD: &str = "expected YYYY-MM-DD";
    let (year, rest) = text.split_once('-').ok_or(BAD)?;
    let (month, day) = rest.split_once('-').ok_or(BAD)?;
    if year.len() < 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    match (two_digits(month), two_digits(day)) {
        (Some(1..=12), Some(1..=31)) => Ok(()),
        _ => Err(BAD),
    }
}

/// `HH:MM:SS[.ffffff]`; 24:00:00 is a valid time.
fn check_time(text: &str) -> Result<(), &'static str> {
    const BAD: &str = "expected HH:MM:SS[.ffffff]";
    let (hms, frac) = text.split_once('.').unwrap_or((text, "0"));
    let mut parts = hms.split(':').map(two_digits);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Some(0..=24)), Some(Some(0..=59)), Some(Some(0..=60)), None)
            if (1..=6).contains(&frac.len()) && frac.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        _ => Err(BAD),
    }
}

fn check_timestamp(text: &str) -> Result<(), &'static str> {
    let (date, time) = text.split_once(' ').ok_or("expected YYYY-MM-DD HH:MM:SS[.ffffff]")?;
    check_date(date)?;
    check_time(time)
}

fn two_digits(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

fn check_uuid(text: &str) -> Result<(), &'static str> {
    let ok = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    ok.then_some(()).ok_or("expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
}

/// `array_isspace` in arrayfuncs.c: the C locale's isspace.
fn is_array_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// PostgreSQL's MAXDIM: array_out never nests deeper, and the limit bounds our recursion.
const MAX_DIMENSIONS: usize = 6;

/// Parses array_out's literal ("Arrays" → "Array Value Input"): optional `[lo:hi]...=`
/// bounds decoration (dropped), `{...}` nested per dimension, `,` between elements (the
/// delimiter of every type we map), double-quoted elements with backslash escapes, unquoted
/// `NULL` (any case) for null, whitespace around elements ignored.
struct ArrayParser<'a> {
    ty: &'a ColumnType,
    element: &'a ColumnType,
    text: &'a str,
    pos: usize,
}

impl<'a> ArrayParser<'a> {
    fn parse(ty: &'a ColumnType, element: &'a ColumnType, text: &'a str) -> Result<Value, ValueError> {
        let mut p = ArrayParser { ty, element, text, pos: 0 };
        p.skip_whitespace();
        if p.peek() == Some(b'[') {
            p.skip_bounds()?;
        }
        p.skip_whitespace();
        let value = p.array(1)?;
        p.skip_whitespace();
        if p.pos < p.text.len() {
            return Err(p.error("text after the closing '}'"));
        }
        Ok(value)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_array_space) {
            self.pos += 1;
        }
    }

    fn error(&self, reason: &str) -> ValueError {
        invalid(self.ty, self.text, &format!("{reason} at byte {}", self.pos))
    }

    fn skip_bounds(&mut self) -> Result<(), ValueError> {
        while self.peek() == Some(b'[') {
            self.pos += 1;
            while matches!(self.peek(), Some(b'0'..=b'9' | b':' | b'-' | b'+')) {
                self.pos += 1;
            }
            if self.next() != Some(b']') {
                return Err(self.error("malformed dimension bounds"));
            }
        }
        match self.next() {
            Some(b'=') => Ok(()),
            _ => Err(self.error("expected '=' after dimension bounds")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ValueError> {
        if depth > MAX_DIMENSIONS {
            return Err(self.error("more than 6 dimensions"));
        }
        if self.next() != Some(b'{') {
            return Err(self.error("expected '{'"));
        }
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            let item = match self.peek() {
                Some(b'{') => self.array(depth + 1)?,
                Some(_) => self.element()?,
                None => return Err(self.error("unterminated array")),
            };
            items.push(item);
            self.skip_whitespace();
            match self.next() {
                Some(b',') => {}
                Some(b'}') => return Ok(Value::Array(items)),
                None => return Err(self.error("unterminated array")),
                Some(_) => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    /// One element with escapes removed; an unquoted element ends before `,` or `}` and
    /// loses trailing whitespace (escaped whitespace stays). As in arrayfuncs.c, only an
    /// unquoted, unescaped `NULL` is a null.
    fn element(&mut self) -> Result<Value, ValueError> {
        let quoted = self.peek() == Some(b'"');
        if quoted {
            self.pos += 1;
        }
        let mut escaped = false;
        let mut out = Vec::new();
        let mut keep = 0;
        loop {
            match (self.peek(), quoted) {
                (None, true) => return Err(self.error("unterminated quoted element")),
                (None, false) => return Err(self.error("unterminated array")),
                (Some(b'"'), true) => {
                    self.pos += 1;
                    break;
                }
                (Some(b',' | b'}'), false) => {
                    out.truncate(keep);
                    break;
                }
                (Some(b'{' | b'"'), false) => return Err(self.error("unexpected character")),
                (Some(b'\\'), _) => {
                    self.pos += 1;
                    let b = self.next().ok_or_else(|| self.error("unterminated escape"))?;
                    out.push(b);
                    keep = out.len();
                    escaped = true;
                }
                (Some(b), _) => {
                    self.pos += 1;
                    out.push(b);
                    if !is_array_space(b) {
                        keep = out.len();
                    }
                }
            }
        }
        if !quoted && out.is_empty() {
            return Err(self.error("empty element"));
        }
        // Only ASCII bytes were removed from valid UTF-8, so this cannot fail; still no panic.
        let text = String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))?;
        if !quoted && !escaped && text.eq_ignore_ascii_case("NULL") {
            return Ok(Value::Null);
        }
        parse_text(self.element, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType as T;

    /// `Debug` of the value, or `error: ` and the error's message.
    fn parsed(ty: &ColumnType, text: &str) -> String {
        match parse_text(ty, text) {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn array(element: ColumnType) -> ColumnType {
        T::Array(Box::new(element))
    }

    #[test]
    fn map_builtin_types() {
        #[rustfmt::skip]
        let cases = [
            (23, -1, "Int32 int4"), (26, -1, "Int64 oid"), (18, -1, "Text char"),
            (1043, 14, "Text varchar(10)"), (1042, -1, "Text bpchar"), (3802, -1, "Json jsonb"),
            (1184, 3, "TimestampTz timestamptz(3)"), (1186, -1, "Interval interval"),
            (1007, -1, "Array(Int32) int4[]"), (1015, 9, "Array(Text) varchar(5)[]"),
            (3807, -1, "Array(Json) jsonb[]"), (600, -1, "Other(\"oid:600\") oid:600"),
            (1700, -1, "DecimalText numeric"),
        ];
        for (oid, typmod, expected) in cases {
            let (ty, name) = map_type(oid, typmod, &TypeCatalog::default());
            assert_eq!(format!("{ty:?} {name}"), expected);
        }
        #[rustfmt::skip]
        let numerics = [
            (12, 2, "Decimal { precision: 12, scale: 2 }"), (5, 0, "Decimal { precision: 5, scale: 0 }"),
            (38, 38, "Decimal { precision: 38, scale: 38 }"), (39, 2, "DecimalText"),
            (5, -2, "DecimalText"), (3, 5, "DecimalText"), (1000, -1000, "DecimalText"),
        ];
        for (p, s, expected) in numerics {
            let typmod = ((p << 16) | (s & 0x7ff)) + 4;
            let (ty, name) = map_type(1700, typmod, &TypeCatalog::default());
            assert_eq!((format!("{ty:?}"), name), (expected.into(), format!("numeric({p},{s})")));
            let (ty, name) = map_type(1231, typmod, &TypeCatalog::default());
            assert_eq!((format!("{ty:?}"), name), (format!("Array({expected})"), format!("numeric({p},{s})[]")));
        }
    }

    #[test]
    fn map_catalog_types() {
        let mut catalog = TypeCatalog::default();
        let labels = vec!["sad".to_owned(), "happy".to_owned()];
        catalog.enums.insert(16400, ("mood".into(), labels.clone()));
        catalog.arrays.extend([(16399, 16400), (16500, 16501)]);
        catalog.names.extend([(16500, "_point3".into()), (16501, "point3".into())]);
        let mood = T::Enum { name: "mood".into(), labels };
        assert_eq!(map_type(16400, -1, &catalog), (mood.clone(), "mood".into()));
        let moods = array(mood.clone());
        assert_eq!(map_type(16399, -1, &catalog), (moods.clone(), "mood[]".into()));
        let other = |n: &str| (T::Other(n.into()), n.to_owned());
        assert_eq!(map_type(16501, -1, &catalog), other("point3"));
        // An array of an unmapped type stays whole text.
        assert_eq!(map_type(16500, -1, &catalog), other("_point3"));
        assert_eq!(parsed(&mood, "happy"), "Text(\"happy\")");
        assert_eq!(parsed(&moods, "{sad,NULL}"), "Array([Text(\"sad\"), Null])");
        assert_eq!(parsed(&other("point").0, "(1,2)"), "Text(\"(1,2)\")");
    }

    #[test]
    fn parse_scalars() {
        let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        #[rustfmt::skip]
        let cases = [
            (T::Bool, "t", "Bool(true)".to_owned()), (T::Bool, "f", "Bool(false)".into()),
            (T::Int16, "-32768", "Int(-32768)".into()), (T::Int64, "4294967295", "Int(4294967295)".into()),
            (T::Int64, "9223372036854775807", "Int(9223372036854775807)".into()),
            (T::Float64, "1.5e+300", "Float(1.5e300)".into()),
            (T::Float32, "0.1", format!("Float({:?})", f64::from(0.1f32))),
            (T::Float64, "-Infinity", "Float(-inf)".into()), (T::Float32, "NaN", "Float(NaN)".into()),
            (T::DecimalText, "-0.001", "Decimal(\"-0.001\")".into()),
            (T::DecimalText, "NaN", "Decimal(\"NaN\")".into()),
            (T::DecimalText, "-Infinity", "Decimal(\"-Infinity\")".into()),
            (T::Decimal { precision: 4, scale: 2 }, "12.34", "Decimal(\"12.34\")".into()),
            (T::Text, "", "Text(\"\")".into()),
            (T::Bytes, "\\x0aFf", "Bytes([10, 255])".into()), (T::Bytes, "\\x", "Bytes([])".into()),
            (T::Uuid, uuid, format!("Uuid({uuid:?})")),
            (T::Json, r#"{"a": [1]}"#, r#"Json("{\"a\": [1]}")"#.into()),
            (T::Interval, "1 year -3 days 04:05:06.5", "Interval(\"12 months -3 days 14706500000 microseconds\")".into()),
            (T::Date, "2024-02-29", "Date(\"2024-02-29\")".into()),
            (T::Date, "-infinity", "Date(\"-infinity\")".into()),
            (T::Date, "10000-01-01", "Date(\"10000-01-01\")".into()),
            (T::Time, "24:00:00", "Time(\"24:00:00\")".into()),
            (T::Time, "03:04:05.123456", "Time(\"03:04:05.123456\")".into()),
            (T::Timestamp, "2024-01-02 03:04:05.5", "Timestamp(\"2024-01-02 03:04:05.5\")".into()),
            (T::Timestamp, "infinity", "Timestamp(\"infinity\")".into()),
            (T::TimestampTz, "2024-01-02 03:04:05+00", "TimestampTz(\"2024-01-02 03:04:05+00\")".into()),
            (T::TimestampTz, "2024-01-02 03:04:05.5+00", "TimestampTz(\"2024-01-02 03:04:05.5+00\")".into()),
        ];
        for (ty, text, expected) in cases {
            assert_eq!(parsed(&ty, text), expected, "{ty:?}");
        }
    }

    #[test]
    fn refuse_bad_or_unsupported_values() {
        #[rustfmt::skip]
        let invalid = [
            (T::Bool, "true"), (T::Int16, "40000"), (T::Int32, "1.0"), (T::Float64, "abc"),
            (T::DecimalText, "1e5"), (T::DecimalText, "."), (T::Bytes, "\\x0"), (T::Bytes, "\\xzz"),
            (T::Date, "01/02/2024"), (T::Date, "2024-13-01"), (T::Time, "3:04:05"),
            (T::Time, "03:04:05.1234567"), (T::Timestamp, "2024-01-02T03:04:05"),
            (T::TimestampTz, "2024-01-02 03:04:05+02"), (T::TimestampTz, "2024-01-02 03:04:05"),
            (T::Uuid, "a0eebc999c0b4ef8bb6d6bb9bd380a11"), (T::Interval, ""),
        ];
        for (ty, text) in invalid {
            let result = parse_text(&ty, text);
            assert!(matches!(result, Err(ValueError::Invalid { .. })), "{ty:?} {text:?}");
        }
        assert_eq!(
            parsed(&T::Bytes, "\\001"),
            r#"error: invalid bytes value "\\001": not in hex format (bytea_output must be 'hex')"#
        );
        assert_eq!(
            parsed(&T::Date, "0044-03-15 BC"),
            r#"error: unsupported date value "0044-03-15 BC": BC dates are not supported"#
        );
        for (ty, text) in [(T::Timestamp, "0044-03-15 12:00:00 BC"), (T::TimestampTz, "0044-03-15 12:00:00+00 BC")] {
            assert!(matches!(parse_text(&ty, text), Err(ValueError::Unsupported { .. })));
        }
        let Err(ValueError::Invalid { text, .. }) = parse_text(&T::Int32, &"9".repeat(1000)) else {
            panic!("expected Invalid")
        };
        assert_eq!(text.chars().count(), SNIPPET_CHARS + 1);
    }

    #[test]
    fn parse_arrays() {
        #[rustfmt::skip]
        let cases = [
            (T::Int32, "{1,2,NULL}", "[Int(1), Int(2), Null]"),
            (T::Int32, "{}", "[]"),
            (T::Int32, " { 1 , null } ", "[Int(1), Null]"),
            (T::Int32, "{{1,2},{3,4}}", "[Array([Int(1), Int(2)]), Array([Int(3), Int(4)])]"),
            (T::Int32, "[0:1]={1,2}", "[Int(1), Int(2)]"),
            (T::Int32, "[1:1][-2:-1]={{1,2}}", "[Array([Int(1), Int(2)])]"),
            (T::Text, r#"{"a b","x\"y",NULL,"NULL",""}"#,
                r#"[Text("a b"), Text("x\"y"), Null, Text("NULL"), Text("")]"#),
            (T::Text, r#"{a\,b , c d ,"\\",1 2}"#, r#"[Text("a,b"), Text("c d"), Text("\\"), Text("1 2")]"#),
            (T::Text, r#"{"{x}","é,ü",N\ULL}"#, r#"[Text("{x}"), Text("é,ü"), Text("NULL")]"#),
            (T::Bytes, r#"{"\\x0102",NULL}"#, "[Bytes([1, 2]), Null]"),
            (T::Json, r#"{"{\"a\": 1}"}"#, r#"[Json("{\"a\": 1}")]"#),
            (T::TimestampTz, r#"{"2024-01-02 03:04:05+00"}"#, r#"[TimestampTz("2024-01-02 03:04:05+00")]"#),
        ];
        for (element, text, expected) in cases {
            assert_eq!(parsed(&array(element), text), format!("Array({expected})"), "{text}");
        }
    }

    #[test]
    fn refuse_malformed_arrays() {
        let texts = array(T::Text);
        for text in ["", "1,2", "{1,2", "{1,,2}", "{1,2}x", "{\"a}", "{a\"b}", "{a\\", "[0:1]{1}", "[x]={1}"] {
            assert!(parse_text(&texts, text).is_err(), "{text:?}");
        }
        let ints = array(T::Int32);
        assert!(parse_text(&ints, &format!("{}{}", "{".repeat(7), "}".repeat(7))).is_err());
        assert!(parse_text(&ints, &"{".repeat(100_000)).is_err());
        assert_eq!(parsed(&ints, "{1,x}"), "error: invalid int32 value \"x\": invalid digit found in string");
        assert_eq!(parsed(&ints, "{1,2"), "error: invalid int32[] value \"{1,2\": unterminated array at byte 4");
    }
}
