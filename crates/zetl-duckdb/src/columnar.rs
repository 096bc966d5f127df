//! Rows → Arrow columns for DuckDB's appender: one call per column of 2048 rows (DuckDB's
//! vector size) instead of one foreign call and one owned `duckdb::Value` per value.
//!
//! Values go in their staging form (`types::wire_type`): numbers, booleans and bytes as
//! themselves; dates, timestamps, decimals, UUIDs and JSON as their canonical text, which
//! DuckDB casts into the column's type on append, a whole vector at a time, with the same casts
//! it applies to a single appended text. A value of another kind than its column's (none of
//! zetl's sources sends one, but a row appender would convert it) makes the caller fall back to
//! appending row by row.

use crate::types::array_json;
use duckdb::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, PrimitiveBuilder, StringBuilder, UInt64Builder, UInt8Builder,
};
use duckdb::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Schema, SchemaRef};
use duckdb::arrow::record_batch::RecordBatch;
use std::sync::Arc;
use zetl_core::{ColumnType, Value};

/// Rows per record batch: DuckDB's vector size, so that each batch is one data chunk.
pub const ROWS_PER_CHUNK: usize = 2048;

/// The Arrow form of one appended column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    UInt64,
    Float32,
    Float64,
    Bytes,
    /// Canonical text, cast by DuckDB where the column is not VARCHAR.
    Text,
    /// A small code (the staging table's `_zetl_op`).
    Code,
}

impl Kind {
    pub fn of(ty: &ColumnType) -> Kind {
        match ty {
            ColumnType::Bool => Kind::Bool,
            ColumnType::Int16 => Kind::Int16,
            ColumnType::Int32 => Kind::Int32,
            ColumnType::Int64 => Kind::Int64,
            ColumnType::UInt64 => Kind::UInt64,
            ColumnType::Float32 => Kind::Float32,
            ColumnType::Float64 => Kind::Float64,
            ColumnType::Bytes => Kind::Bytes,
            _ => Kind::Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt64 => DataType::UInt64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Bytes => DataType::Binary,
            Kind::Text => DataType::Utf8,
            Kind::Code => DataType::UInt8,
        }
    }

    fn builder(self) -> Builder {
        let n = ROWS_PER_CHUNK;
        match self {
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            Kind::Int16 => Builder::Int16(Int16Builder::with_capacity(n)),
            Kind::Int32 => Builder::Int32(Int32Builder::with_capacity(n)),
            Kind::Int64 => Builder::Int64(Int64Builder::with_capacity(n)),
            Kind::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(n)),
            Kind::Float32 => Builder::Float32(Float32Builder::with_capacity(n)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(n)),
            Kind::Bytes => Builder::Bytes(BinaryBuilder::with_capacity(n, n * 16)),
            Kind::Text => Builder::Text(StringBuilder::with_capacity(n, n * 16)),
            Kind::Code => Builder::Code(UInt8Builder::with_capacity(n)),
        }
    }
}

enum Builder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bytes(BinaryBuilder),
    Text(StringBuilder),
    Code(UInt8Builder),
}

impl Builder {
    /// Appends `value`; false if it is not of this column's kind.
    fn push(&mut self, value: &Value) -> bool {
        match (self, value) {
            (b, Value::Null | Value::Unchanged) => {
                b.push_null();
                true
            }
            (Builder::Bool(b), Value::Bool(v)) => {
                b.append_value(*v);
                true
            }
            (Builder::Int16(b), Value::Int(v)) => i16::try_from(*v).is_ok_and(|v| put(b, v)),
            (Builder::Int32(b), Value::Int(v)) => i32::try_from(*v).is_ok_and(|v| put(b, v)),
            (Builder::Int64(b), Value::Int(v)) => put(b, *v),
            (Builder::UInt64(b), Value::UInt(v)) => put(b, *v),
            // A value out of REAL's range is DuckDB's to reject, as it does when casting one.
            (Builder::Float32(b), Value::Float(v)) => {
                let narrow = *v as f32;
                (narrow.is_finite() || !v.is_finite()) && put(b, narrow)
            }
            (Builder::Float64(b), Value::Float(v)) => put(b, *v),
            (Builder::Bytes(b), Value::Bytes(v)) => {
                b.append_value(v);
                true
            }
            (Builder::Text(b), Value::Array(_)) => {
                b.append_value(array_json(value));
                true
            }
            (Builder::Text(b), v) => match v.as_text() {
                Some(text) => {
                    b.append_value(text);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn push_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::UInt64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Bytes(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Code(b) => b.append_null(),
        }
    }

    fn as_dyn(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            Builder::Bool(b) => b,
            Builder::Int16(b) => b,
            Builder::Int32(b) => b,
            Builder::Int64(b) => b,
            Builder::UInt64(b) => b,
            Builder::Float32(b) => b,
            Builder::Float64(b) => b,
            Builder::Bytes(b) => b,
            Builder::Text(b) => b,
            Builder::Code(b) => b,
        }
    }
}

fn put<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, v: T::Native) -> bool {
    b.append_value(v);
    true
}

/// The columns appended to one table, in the appender's order.
pub struct Columns {
    kinds: Vec<Kind>,
    schema: SchemaRef,
}

impl Columns {
    pub fn new(kinds: Vec<Kind>) -> Columns {
        let fields: Vec<Field> =
            kinds.iter().enumerate().map(|(i, k)| Field::new(format!("c{i}"), k.data_type(), true)).collect();
        Columns { kinds, schema: Arc::new(Schema::new(fields)) }
    }

    /// `rows` (at most [`ROWS_PER_CHUNK`], one data chunk) as one record batch; `write` puts
    /// one row's cells in column order. `None` if a value is not of its column's kind.
    pub fn batch<T>(&self, rows: &[T], write: &mut impl FnMut(&T, &mut Cells<'_>)) -> Option<RecordBatch> {
        let mut builders: Vec<Builder> = self.kinds.iter().map(|k| k.builder()).collect();
        for row in rows {
            let mut cells = Cells { builders: &mut builders, next: 0, fits: true };
            write(row, &mut cells);
            if !cells.fits || cells.next != self.kinds.len() {
                return None;
            }
        }
        debug_assert!(builders.iter_mut().all(|b| b.as_dyn().len() == rows.len()));
        let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.as_dyn().finish()).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).ok()
    }
}

/// One row's cells, written column by column.
pub struct Cells<'a> {
    builders: &'a mut [Builder],
    next: usize,
    fits: bool,
}

impl Cells<'_> {
    pub fn value(&mut self, value: &Value) {
        let fits = self.builders.get_mut(self.next).is_some_and(|b| b.push(value));
        self.advance(fits);
    }

    pub fn code(&mut self, code: u8) {
        let fits = match self.builders.get_mut(self.next) {
            Some(Builder::Code(b)) => put(b, code),
            _ => false,
        };
        self.advance(fits);
    }

    pub fn text(&mut self, text: Option<&str>) {
        let fits = match self.builders.get_mut(self.next) {
            Some(Builder::Text(b)) => {
                b.append_option(text);
                true
            }
            _ => false,
        };
        self.advance(fits);
    }

    fn advance(&mut self, fits: bool) {
        self.fits &= fits;
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::arrow::array::{Array, AsArray};

    #[test]
    fn rows_become_typed_columns() {
        let cols = Columns::new(vec![Kind::Int32, Kind::Text, Kind::Float32, Kind::Code]);
        let rows: Vec<Vec<Value>> = (0..ROWS_PER_CHUNK as i64)
            .map(|i| vec![Value::Int(i), Value::Date("2024-01-02".into()), Value::Float(0.5), Value::Null])
            .collect();
        let batch = cols
            .batch(&rows, &mut |row, c| {
                c.value(&row[0]);
                c.value(&row[1]);
                c.value(&row[2]);
                c.code(3);
            })
            .expect("fits");
        assert_eq!(batch.num_rows(), ROWS_PER_CHUNK);
        assert_eq!(batch.column(0).as_primitive::<duckdb::arrow::datatypes::Int32Type>().value(2047), 2047);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "2024-01-02");
        assert_eq!(batch.column(3).as_primitive::<duckdb::arrow::datatypes::UInt8Type>().value(0), 3);
        assert_eq!(batch.column(0).null_count(), 0);
        let short = cols.batch(&rows[..1], &mut |row, c| c.value(&row[0]));
        assert!(short.is_none(), "a row that leaves columns unwritten does not fit");
    }

    #[test]
    fn a_value_of_another_kind_or_range_falls_back() {
        let cols = Columns::new(vec![Kind::Int16]);
        let one = |v: Value| cols.batch(&[v], &mut |v, c| c.value(v)).is_some();
        assert!(one(Value::Int(-32768)));
        assert!(one(Value::Null));
        assert!(!one(Value::Int(40_000)), "out of SMALLINT's range: DuckDB's cast names it");
        assert!(!one(Value::Text("1".into())));
        let floats = Columns::new(vec![Kind::Float32]);
        assert!(floats.batch(&[Value::Float(1e300)], &mut |v, c| c.value(v)).is_none());
        assert!(floats.batch(&[Value::Float(f64::NEG_INFINITY)], &mut |v, c| c.value(v)).is_some());
    }
}
