//! MySQL column kinds, as read from a binlog TABLE_MAP event or from information_schema, and
//! their mapping to the event model (docs/type-mapping.md). Both readers produce the same kind
//! for the same column, so the snapshot and the stream agree on the target's schema.

use mysql_common::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType as MyType;
use std::collections::HashMap;
use zetl_core::{Column, ColumnType, RowIdentity, TableId, TableSchema};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MyKind {
    /// TINYINT … BIGINT; `bytes` is the storage width (1, 2, 3, 4 or 8).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// Character data; `latin1` columns are re-encoded (the binlog carries the column's own
    /// charset; the snapshot reads everything as utf8mb4).
    Text {
        latin1: bool,
    },
    /// Binary data; `pad_to` is BINARY(n)'s width (the binlog drops its trailing zero bytes).
    Bytes {
        pad_to: u16,
    },
    Date,
    /// A duration, -838:59:59 … 838:59:59.
    Time,
    DateTime,
    Timestamp,
    Year,
    Bit {
        bits: u16,
    },
    Enum(Vec<String>),
    Set(Vec<String>),
    /// `binary`: MySQL's JSON type (binary JSON in the binlog, the server's rendering in a
    /// query); MariaDB's JSON is LONGTEXT with a `json_valid()` check and arrives as its text.
    Json {
        binary: bool,
    },
    Geometry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyColumn {
    pub name: String,
    pub kind: MyKind,
    pub nullable: bool,
    /// The type as the server names it, for docs and errors.
    pub source_type: String,
}

/// A table as seen at one moment: columns in order and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyTable {
    pub id: TableId,
    pub columns: Vec<MyColumn>,
    pub key: Vec<usize>,
}

impl MyTable {
    pub fn schema(&self) -> TableSchema {
        TableSchema {
            id: self.id.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    ty: column_type(&c.kind),
                    source_type: c.source_type.clone(),
                    nullable: c.nullable,
                })
                .collect(),
            identity: if self.key.is_empty() { RowIdentity::FullRow } else { RowIdentity::Key(self.key.clone()) },
        }
    }
}

pub fn column_type(kind: &MyKind) -> ColumnType {
    match kind {
        MyKind::Int { bytes: 1, .. } | MyKind::Int { bytes: 2, unsigned: false } | MyKind::Year => ColumnType::Int16,
        MyKind::Int { bytes: 2, .. } | MyKind::Int { bytes: 3, .. } | MyKind::Int { bytes: 4, unsigned: false } => {
            ColumnType::Int32
        }
        MyKind::Int { bytes: 4, .. } | MyKind::Int { unsigned: false, .. } => ColumnType::Int64,
        MyKind::Int { .. } => ColumnType::UInt64,
        MyKind::Float => ColumnType::Float32,
        MyKind::Double => ColumnType::Float64,
        MyKind::Decimal { precision, scale } if *precision <= 38 => {
            ColumnType::Decimal { precision: *precision, scale: *scale }
        }
        MyKind::Decimal { .. } => ColumnType::DecimalText,
        MyKind::Text { .. } | MyKind::Enum(_) | MyKind::Set(_) => ColumnType::Text,
        MyKind::Bytes { .. } | MyKind::Geometry => ColumnType::Bytes,
        MyKind::Date => ColumnType::Date,
        MyKind::Time => ColumnType::Interval,
        MyKind::DateTime => ColumnType::Timestamp,
        MyKind::Timestamp => ColumnType::TimestampTz,
        MyKind::Bit { bits: 1 } => ColumnType::Bool,
        MyKind::Bit { .. } => ColumnType::UInt64,
        MyKind::Json { .. } => ColumnType::Json,
    }
}

/// The binary charset's collation id: character columns with it hold bytes.
pub const BINARY_COLLATION: u16 = 63;

/// Collation id → character set name (`information_schema.COLLATIONS`).
pub type Collations = HashMap<u16, String>;

/// Why a TABLE_MAP event cannot be turned into columns.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("the binlog carries no column names (set binlog_row_metadata=FULL on the server)")]
    NoColumnNames,
    #[error("column {index}: {reason}")]
    Column { index: usize, reason: String },
}

/// Columns of a table as one TABLE_MAP event describes them (requires
/// `binlog_row_metadata=FULL`). `json_columns` names MariaDB's JSON columns, which the binlog
/// shows as LONGTEXT.
pub fn from_table_map(
    tme: &TableMapEvent<'_>,
    collations: &Collations,
    json_columns: &[String],
) -> Result<MyTable, MapError> {
    let count = tme.columns_count() as usize;
    let mut names = Vec::new();
    let mut unsigned_bits = Vec::new();
    let mut key = Vec::new();
    let mut enums: Vec<Vec<String>> = Vec::new();
    let mut sets: Vec<Vec<String>> = Vec::new();
    let mut charsets: Vec<u16> = Vec::new();
    let mut default_charset = None;
    let mut non_default: HashMap<usize, u16> = HashMap::new();
    for field in tme.iter_optional_meta() {
        let field = field.map_err(|e| MapError::Column { index: 0, reason: format!("bad optional metadata: {e}") })?;
        match field {
            OptionalMetadataField::Signedness(bits) => unsigned_bits = bits.iter().by_vals().collect(),
            OptionalMetadataField::ColumnName(n) => {
                names = n.iter_names().filter_map(Result::ok).map(|n| n.name().into_owned()).collect()
            }
            OptionalMetadataField::SimplePrimaryKey(pk) => {
                key = pk.iter_indexes().filter_map(Result::ok).map(|i| i as usize).collect()
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(pk) => {
                key = pk.iter_keys().filter_map(Result::ok).map(|k| k.column_index() as usize).collect()
            }
            OptionalMetadataField::EnumStrValue(v) => {
                enums = v
                    .iter_values()
                    .filter_map(Result::ok)
                    .map(|e| e.values().iter().map(|s| s.value().into_owned()).collect())
                    .collect()
            }
            OptionalMetadataField::SetStrValue(v) => {
                sets = v
                    .iter_values()
                    .filter_map(Result::ok)
                    .map(|e| e.values().iter().map(|s| s.value().into_owned()).collect())
                    .collect()
            }
            OptionalMetadataField::DefaultCharset(d) => {
                default_charset = Some(d.default_charset());
                for nd in d.iter_non_default().filter_map(Result::ok) {
                    non_default.insert(nd.column_index() as usize, nd.charset());
                }
            }
            OptionalMetadataField::ColumnCharset(c) => charsets = c.iter_charsets().filter_map(Result::ok).collect(),
            _ => {}
        }
    }
    if names.len() != count {
        return Err(MapError::NoColumnNames);
    }
    let mut unsigned = unsigned_bits.into_iter();
    let (mut enums, mut sets, mut charsets) = (enums.into_iter(), sets.into_iter(), charsets.into_iter());
    let nulls = tme.null_bitmask();
    let mut columns = Vec::with_capacity(count);
    let mut char_index = 0usize;
    for (index, name) in names.into_iter().enumerate() {
        let bad = |reason: String| MapError::Column { index, reason };
        let ty = tme.get_column_type(index).map_err(|e| bad(e.to_string()))?.ok_or_else(|| bad("no type".into()))?;
        let meta = tme.get_column_metadata(index).unwrap_or(&[]);
        let is_numeric = is_numeric(ty);
        let is_unsigned = if is_numeric { unsigned.next().unwrap_or(false) } else { false };
        let mut charset = || {
            let c = charsets.next().or_else(|| non_default.get(&char_index).copied()).or(default_charset);
            char_index += 1;
            c.unwrap_or(0)
        };
        let kind = match ty {
            MyType::MYSQL_TYPE_TINY => MyKind::Int { bytes: 1, unsigned: is_unsigned },
            MyType::MYSQL_TYPE_SHORT => MyKind::Int { bytes: 2, unsigned: is_unsigned },
            MyType::MYSQL_TYPE_INT24 => MyKind::Int { bytes: 3, unsigned: is_unsigned },
            MyType::MYSQL_TYPE_LONG => MyKind::Int { bytes: 4, unsigned: is_unsigned },
            MyType::MYSQL_TYPE_LONGLONG => MyKind::Int { bytes: 8, unsigned: is_unsigned },
            MyType::MYSQL_TYPE_FLOAT => MyKind::Float,
            MyType::MYSQL_TYPE_DOUBLE => MyKind::Double,
            MyType::MYSQL_TYPE_NEWDECIMAL | MyType::MYSQL_TYPE_DECIMAL => MyKind::Decimal {
                precision: meta.first().copied().unwrap_or(65),
                scale: meta.get(1).copied().unwrap_or(0),
            },
            MyType::MYSQL_TYPE_DATE | MyType::MYSQL_TYPE_NEWDATE => MyKind::Date,
            MyType::MYSQL_TYPE_TIME | MyType::MYSQL_TYPE_TIME2 => MyKind::Time,
            MyType::MYSQL_TYPE_DATETIME | MyType::MYSQL_TYPE_DATETIME2 => MyKind::DateTime,
            MyType::MYSQL_TYPE_TIMESTAMP | MyType::MYSQL_TYPE_TIMESTAMP2 => MyKind::Timestamp,
            MyType::MYSQL_TYPE_YEAR => MyKind::Year,
            MyType::MYSQL_TYPE_BIT => MyKind::Bit {
                bits: meta.get(1).copied().unwrap_or(0) as u16 * 8 + meta.first().copied().unwrap_or(0) as u16,
            },
            MyType::MYSQL_TYPE_ENUM => MyKind::Enum(enums.next().unwrap_or_default()),
            MyType::MYSQL_TYPE_SET => MyKind::Set(sets.next().unwrap_or_default()),
            MyType::MYSQL_TYPE_JSON => MyKind::Json { binary: true },
            MyType::MYSQL_TYPE_GEOMETRY => MyKind::Geometry,
            MyType::MYSQL_TYPE_VARCHAR
            | MyType::MYSQL_TYPE_VAR_STRING
            | MyType::MYSQL_TYPE_STRING
            | MyType::MYSQL_TYPE_TINY_BLOB
            | MyType::MYSQL_TYPE_MEDIUM_BLOB
            | MyType::MYSQL_TYPE_LONG_BLOB
            | MyType::MYSQL_TYPE_BLOB => {
                let collation = charset();
                if json_columns.contains(&name) {
                    MyKind::Json { binary: false }
                } else if collation == BINARY_COLLATION {
                    MyKind::Bytes { pad_to: if ty == MyType::MYSQL_TYPE_STRING { fixed_width(meta) } else { 0 } }
                } else {
                    MyKind::Text { latin1: collations.get(&collation).is_some_and(|c| c == "latin1") }
                }
            }
            other => return Err(bad(format!("unsupported column type {other:?}"))),
        };
        columns.push(MyColumn {
            nullable: nulls.get(index).map(|b| *b).unwrap_or(true),
            source_type: format!("{ty:?}").trim_start_matches("MYSQL_TYPE_").to_lowercase(),
            name,
            kind,
        });
    }
    Ok(MyTable { id: TableId::new(tme.database_name(), tme.table_name()), columns, key })
}

/// The server's rule for which columns the signedness metadata covers.
fn is_numeric(ty: MyType) -> bool {
    use MyType::*;
    matches!(
        ty,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
    )
}

/// CHAR/BINARY's byte width from its TABLE_MAP metadata (widths over 255 borrow two bits of
/// the first byte).
fn fixed_width(meta: &[u8]) -> u16 {
    match meta {
        [b0, b1, ..] => (*b1 as u16) | ((((*b0 as u16) & 0x30) ^ 0x30) << 4),
        _ => 0,
    }
}

/// A column as information_schema.COLUMNS describes it.
pub struct SchemaColumn<'a> {
    pub name: &'a str,
    pub data_type: &'a str,
    /// `COLUMN_TYPE`, e.g. `int(10) unsigned`, `enum('a','b')`, `bit(3)`.
    pub column_type: &'a str,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
    pub charset: Option<&'a str>,
    /// `CHARACTER_OCTET_LENGTH`.
    pub octets: Option<u64>,
    pub nullable: bool,
    pub is_json: bool,
}

/// The kind information_schema gives for a column; `None` for a type zetl does not map.
pub fn from_schema(c: &SchemaColumn<'_>) -> Option<MyKind> {
    let unsigned = c.column_type.contains("unsigned");
    let binary = c.charset.is_none() || c.charset == Some("binary");
    Some(match c.data_type {
        "tinyint" => MyKind::Int { bytes: 1, unsigned },
        "smallint" => MyKind::Int { bytes: 2, unsigned },
        "mediumint" => MyKind::Int { bytes: 3, unsigned },
        "int" | "integer" => MyKind::Int { bytes: 4, unsigned },
        "bigint" => MyKind::Int { bytes: 8, unsigned },
        "float" => MyKind::Float,
        "double" | "real" => MyKind::Double,
        "decimal" | "numeric" => MyKind::Decimal {
            precision: c.precision.unwrap_or(65).min(65) as u8,
            scale: c.scale.unwrap_or(0).min(38) as u8,
        },
        "date" => MyKind::Date,
        "time" => MyKind::Time,
        "datetime" => MyKind::DateTime,
        "timestamp" => MyKind::Timestamp,
        "year" => MyKind::Year,
        "bit" => MyKind::Bit { bits: c.precision.unwrap_or(1) as u16 },
        "enum" => MyKind::Enum(labels(c.column_type)),
        "set" => MyKind::Set(labels(c.column_type)),
        "json" => MyKind::Json { binary: true },
        _ if c.is_json => MyKind::Json { binary: false },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if !binary => {
            MyKind::Text { latin1: c.charset == Some("latin1") }
        }
        "binary" => MyKind::Bytes { pad_to: c.octets.unwrap_or(0).min(255) as u16 },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "varbinary" | "tinyblob" | "blob"
        | "mediumblob" | "longblob" => MyKind::Bytes { pad_to: 0 },
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" => MyKind::Geometry,
        _ => return None,
    })
}

/// The labels of `enum('a','b''c')` / `set(...)`.
fn labels(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map(|(i, _)| i) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        out.push(label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_are_unquoted() {
        assert_eq!(labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(labels("set('x')"), vec!["x"]);
    }

    #[test]
    fn integer_widths_map_to_the_smallest_exact_type() {
        let t = |bytes, unsigned| column_type(&MyKind::Int { bytes, unsigned });
        assert_eq!(t(1, true), ColumnType::Int16);
        assert_eq!(t(2, true), ColumnType::Int32);
        assert_eq!(t(3, false), ColumnType::Int32);
        assert_eq!(t(4, true), ColumnType::Int64);
        assert_eq!(t(8, false), ColumnType::Int64);
        assert_eq!(t(8, true), ColumnType::UInt64);
        assert_eq!(column_type(&MyKind::Decimal { precision: 65, scale: 2 }), ColumnType::DecimalText);
    }

    #[test]
    fn schema_columns_map_like_the_binlog() {
        let col = |data_type, column_type, charset| SchemaColumn {
            name: "c",
            data_type,
            column_type,
            precision: None,
            scale: None,
            charset,
            octets: None,
            nullable: true,
            is_json: false,
        };
        assert_eq!(from_schema(&col("int", "int(10) unsigned", None)), Some(MyKind::Int { bytes: 4, unsigned: true }));
        assert_eq!(from_schema(&col("varchar", "varchar(5)", Some("latin1"))), Some(MyKind::Text { latin1: true }));
        assert_eq!(from_schema(&col("varbinary", "varbinary(5)", None)), Some(MyKind::Bytes { pad_to: 0 }));
        assert_eq!(from_schema(&col("enum", "enum('a')", Some("utf8mb4"))), Some(MyKind::Enum(vec!["a".into()])));
    }
}
