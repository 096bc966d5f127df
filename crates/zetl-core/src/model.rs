//! The event model every source emits and every target consumes.
//!
//! Values are typed, but temporal, decimal and JSON values travel in one canonical text form
//! (ISO 8601, plain decimal digits, JSON text) so that no precision is lost between a source's
//! own representation and the target's; see docs/type-mapping.md.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `schema.table` at the source (MySQL: `database.table`; DynamoDB: schema `dynamodb`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

/// Name prefix of the table a copy made while streaming fills before it replaces the table
/// (`apply.resync: replace`).
const ASIDE_PREFIX: &str = "_zetl_fill_";

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self { schema: schema.into(), name: name.into() }
    }

    /// The table a copy made while streaming fills aside, beside this one, to replace it.
    pub fn fill_aside(&self) -> TableId {
        TableId::new(&self.schema, format!("{ASIDE_PREFIX}{}", self.name))
    }

    /// For a table filled aside: the table it replaces.
    pub fn replaced_by_aside(&self) -> Option<TableId> {
        self.name.strip_prefix(ASIDE_PREFIX).map(|name| TableId::new(&self.schema, name))
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// The logical column types of the event model. Targets map each to their own type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    Bool,
    Int16,
    Int32,
    Int64,
    /// Unsigned 64-bit (MySQL BIGINT UNSIGNED).
    UInt64,
    Float32,
    Float64,
    /// Exact decimal with known precision and scale (precision ≤ 38).
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// Exact decimal without a usable precision (unconstrained or wider than 38 digits):
    /// kept as its exact text.
    DecimalText,
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    /// A source enum; values arrive as their labels.
    Enum {
        name: String,
        labels: Vec<String>,
    },
    Array(Box<ColumnType>),
    /// A source type with no mapping; values are kept as the source's text form.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// The source type as the source names it (for docs, errors and `status`).
    pub source_type: String,
    pub nullable: bool,
}

/// How rows of a table are identified when updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowIdentity {
    /// Indexes of the key columns (a primary key or a unique replica-identity index).
    Key(Vec<usize>),
    /// The whole old row identifies it (PostgreSQL REPLICA IDENTITY FULL without a key).
    FullRow,
    /// Inserts only: the source cannot update or delete rows of this table.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<Column>,
    pub identity: RowIdentity,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_columns(&self) -> &[usize] {
        match &self.identity {
            RowIdentity::Key(k) => k,
            _ => &[],
        }
    }

    /// A fingerprint of the columns, stored with a fill's cursor: a restart continues the fill
    /// only while the table still has them (a column added or changed while zetl was stopped
    /// would otherwise be missing from the rows already copied).
    pub fn columns_fingerprint(&self) -> String {
        // FNV-1a: stable across runs and builds, unlike the standard library's hasher.
        let text = format!("{:?}{:?}", self.columns, self.identity);
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        format!("{hash:016x}")
    }

    /// A column whose name zetl keeps for its own bookkeeping at the target (soft-delete
    /// markers, staging columns: all start with `_zetl_`), if the table has one.
    pub fn reserved_column(&self) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.to_ascii_lowercase().starts_with(RESERVED_PREFIX))
    }

    /// The columns that name a row in messages: the key, or the first three of a keyless table.
    fn described_columns(&self) -> Vec<usize> {
        match self.key_columns() {
            [] => (0..self.columns.len().min(3)).collect(),
            k => k.to_vec(),
        }
    }

    /// `(id=42, region=eu)` for messages: the key columns, or the first three of a keyless table.
    pub fn describe_key(&self, row: &[Value]) -> String {
        let parts: Vec<String> = self
            .described_columns()
            .iter()
            .map(|&i| format!("{}={}", self.columns[i].name, row.get(i).map(short).unwrap_or_else(|| "?".into())))
            .collect();
        format!("({})", parts.join(", "))
    }

    /// SQL writing [`TableSchema::describe_key`]'s text for a row a target holds in SQL (a
    /// staged row, say); `as_text(column name)` is the target's SQL for that column as text,
    /// cut at 64 characters.
    pub fn describe_key_sql(&self, as_text: impl Fn(&str) -> String) -> String {
        let parts: Vec<String> = self
            .described_columns()
            .iter()
            .map(|&i| {
                let name = &self.columns[i].name;
                format!("'{}=' || coalesce({}, 'NULL')", name.replace('\'', "''"), as_text(name))
            })
            .collect();
        format!("'(' || concat_ws(', ', {}) || ')'", parts.join(", "))
    }
}

/// Column names zetl uses at the target for itself start with this.
pub const RESERVED_PREFIX: &str = "_zetl_";

/// A value for a message, cut at 64 characters.
fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => "NULL".into(),
        Value::Unchanged => "(unchanged)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Array(a) => format!("<array of {}>", a.len()),
        text => text.as_text().unwrap_or_default().to_string(),
    };
    if s.chars().count() > 64 {
        format!("{}…", s.chars().take(64).collect::<String>())
    } else {
        s
    }
}

/// One typed value. See the module comment for the canonical text forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// The source did not send this column because it did not change (PostgreSQL's unchanged
    /// TOAST value): the target keeps what it has.
    Unchanged,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Decimal digits with an optional sign and point, or `NaN`/`Infinity` where the source has them.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// `YYYY-MM-DD`, or `infinity` / `-infinity`.
    Date(String),
    /// `HH:MM:SS[.ffffff]`.
    Time(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    Timestamp(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00` (always UTC).
    TimestampTz(String),
    /// `M months D days U microseconds`, each a signed whole number.
    Interval(String),
    Uuid(String),
    Json(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of the variants that carry their value in canonical text form.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Interval(s)
            | Value::Uuid(s)
            | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a column of `ty` whose canonical text is `text` (the inverse of
    /// [`Value::as_text`]); `None` for a type whose values are not carried as text.
    pub fn of_text(ty: &ColumnType, text: String) -> Option<Value> {
        Some(match ty {
            ColumnType::Decimal { .. } | ColumnType::DecimalText => Value::Decimal(text),
            ColumnType::Text | ColumnType::Enum { .. } | ColumnType::Other(_) => Value::Text(text),
            ColumnType::Date => Value::Date(text),
            ColumnType::Time => Value::Time(text),
            ColumnType::Timestamp => Value::Timestamp(text),
            ColumnType::TimestampTz => Value::TimestampTz(text),
            ColumnType::Interval => Value::Interval(text),
            ColumnType::Uuid => Value::Uuid(text),
            ColumnType::Json => Value::Json(text),
            ColumnType::Bool
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::UInt64
            | ColumnType::Float32
            | ColumnType::Float64
            | ColumnType::Bytes
            | ColumnType::Array(_) => return None,
        })
    }

    /// An estimate of the memory the value holds, for batch sizing.
    pub fn weight(&self) -> usize {
        16 + match self {
            Value::Bytes(b) => b.len(),
            Value::Array(items) => items.iter().map(Value::weight).sum(),
            other => other.as_text().map_or(0, str::len),
        }
    }
}

pub type Row = Vec<Value>;

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    Insert {
        row: Row,
    },
    /// `old` holds the old key (or the whole old row for [`RowIdentity::FullRow`]) when the
    /// source sent it, which it does when the key changed.
    Update {
        old: Option<Row>,
        row: Row,
    },
    /// `old` holds at least the key columns (other columns may be `Null`).
    Delete {
        old: Row,
    },
    /// The source removed the row because its time to live passed (DynamoDB TTL): applied as a
    /// delete; in soft-delete mode the kept row is marked `_zetl_expired` as well.
    Expire {
        old: Row,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: TableId,
    pub kind: ChangeKind,
}

impl Change {
    pub fn weight(&self) -> usize {
        self.kind.weight()
    }
}

impl ChangeKind {
    /// An estimate of the memory the change holds.
    pub fn weight(&self) -> usize {
        let rows: usize = match self {
            ChangeKind::Insert { row } => row.iter().map(Value::weight).sum(),
            ChangeKind::Update { old, row } => row.iter().chain(old.iter().flatten()).map(Value::weight).sum(),
            ChangeKind::Delete { old } | ChangeKind::Expire { old } => old.iter().map(Value::weight).sum(),
        };
        64 + rows
    }
}

impl TableSchema {
    /// The form targets store the schema in (`_zetl.tables.source_schema`).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A schema stored by [`TableSchema::to_stored`]; `None` if it is not one (written by
    /// another version), which only costs the comparison it would have allowed.
    pub fn from_stored(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}
