//! Rows as Arrow columns. A copy's decoder writes each value straight into its column's buffer
//! (no `Value` and no allocation per value), and a target that takes Arrow (DuckDB's appender)
//! appends those buffers as they are; other targets read them back as rows ([`rows_of`]).
//!
//! Columns hold each value's staging form: numbers, booleans and bytes as themselves, every
//! other type as its canonical text (the text its `Value` variant carries), which a target
//! casts into the column's type.

use crate::model::{ColumnType, Row, TableSchema, Value};
use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, PrimitiveBuilder, StringBuilder, UInt64Builder, UInt8Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

pub use arrow_array::RecordBatch;

/// The Arrow form of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Bool,
    Int16,
    Int32,
    Int64,
    UInt64,
    Float32,
    Float64,
    Bytes,
    /// Canonical text, cast by the target where the column is not text.
    Text,
    /// A small code a target adds to its own rows (DuckDB's staging operation).
    Code,
}

impl ColumnKind {
    pub fn of(ty: &ColumnType) -> ColumnKind {
        match ty {
            ColumnType::Bool => ColumnKind::Bool,
            ColumnType::Int16 => ColumnKind::Int16,
            ColumnType::Int32 => ColumnKind::Int32,
            ColumnType::Int64 => ColumnKind::Int64,
            ColumnType::UInt64 => ColumnKind::UInt64,
            ColumnType::Float32 => ColumnKind::Float32,
            ColumnType::Float64 => ColumnKind::Float64,
            ColumnType::Bytes => ColumnKind::Bytes,
            _ => ColumnKind::Text,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Int16 => DataType::Int16,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::UInt64 => DataType::UInt64,
            ColumnKind::Float32 => DataType::Float32,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Bytes => DataType::Binary,
            ColumnKind::Text => DataType::Utf8,
            ColumnKind::Code => DataType::UInt8,
        }
    }

    fn builder(self, rows: usize) -> ColumnBuilder {
        match self {
            ColumnKind::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnKind::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(rows)),
            ColumnKind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            ColumnKind::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnKind::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(rows)),
            ColumnKind::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(rows)),
            ColumnKind::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnKind::Bytes => ColumnBuilder::Bytes(BinaryBuilder::with_capacity(rows, rows * 16)),
            ColumnKind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnKind::Code => ColumnBuilder::Code(UInt8Builder::with_capacity(rows)),
        }
    }
}

/// Whether a table's rows can travel as columns and be read back as the very same values.
/// Arrays cannot: their text form does not keep the element type.
pub fn takes_columns(schema: &TableSchema) -> bool {
    !schema.columns.iter().any(|c| matches!(c.ty, ColumnType::Array(_)))
}

/// The buffer of one column under construction.
pub enum ColumnBuilder {
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

impl ColumnBuilder {
    /// Appends `value`; false (nothing appended) if it is not of this column's kind or range.
    pub fn push(&mut self, value: &Value) -> bool {
        match (self, value) {
            (b, Value::Null | Value::Unchanged) => {
                b.push_null();
                true
            }
            (ColumnBuilder::Bool(b), Value::Bool(v)) => {
                b.append_value(*v);
                true
            }
            (ColumnBuilder::Int16(b), Value::Int(v)) => i16::try_from(*v).is_ok_and(|v| put(b, v)),
            (ColumnBuilder::Int32(b), Value::Int(v)) => i32::try_from(*v).is_ok_and(|v| put(b, v)),
            (ColumnBuilder::Int64(b), Value::Int(v)) => put(b, *v),
            (ColumnBuilder::UInt64(b), Value::UInt(v)) => put(b, *v),
            // A value out of REAL's range is the target's to reject, as it does when casting one.
            (ColumnBuilder::Float32(b), Value::Float(v)) => {
                let narrow = *v as f32;
                (narrow.is_finite() || !v.is_finite()) && put(b, narrow)
            }
            (ColumnBuilder::Float64(b), Value::Float(v)) => put(b, *v),
            (ColumnBuilder::Bytes(b), Value::Bytes(v)) => {
                b.append_value(v);
                true
            }
            (b, v) => v.as_text().is_some_and(|text| b.text(Some(text))),
        }
    }

    /// Appends a value's canonical text (or null); false if this is not a text column.
    pub fn text(&mut self, text: Option<&str>) -> bool {
        match self {
            ColumnBuilder::Text(b) => {
                b.append_option(text);
                true
            }
            _ => false,
        }
    }

    /// Appends a small code; false if this is not a code column.
    pub fn code(&mut self, code: u8) -> bool {
        match self {
            ColumnBuilder::Code(b) => put(b, code),
            _ => false,
        }
    }

    pub fn push_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::UInt64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Bytes(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Code(b) => b.append_null(),
        }
    }

    /// Bytes held by the values appended so far.
    fn bytes(&self) -> usize {
        match self {
            ColumnBuilder::Bytes(b) => b.values_slice().len(),
            ColumnBuilder::Text(b) => b.values_slice().len(),
            ColumnBuilder::Bool(b) => b.len() / 8,
            ColumnBuilder::Int16(b) => b.len() * 2,
            ColumnBuilder::Code(b) => b.len(),
            ColumnBuilder::Int32(b) => b.len() * 4,
            ColumnBuilder::Float32(b) => b.len() * 4,
            ColumnBuilder::Int64(b) => b.len() * 8,
            ColumnBuilder::UInt64(b) => b.len() * 8,
            ColumnBuilder::Float64(b) => b.len() * 8,
        }
    }

    fn as_dyn(&mut self) -> &mut dyn ArrayBuilder {
        match self {
            ColumnBuilder::Bool(b) => b,
            ColumnBuilder::Int16(b) => b,
            ColumnBuilder::Int32(b) => b,
            ColumnBuilder::Int64(b) => b,
            ColumnBuilder::UInt64(b) => b,
            ColumnBuilder::Float32(b) => b,
            ColumnBuilder::Float64(b) => b,
            ColumnBuilder::Bytes(b) => b,
            ColumnBuilder::Text(b) => b,
            ColumnBuilder::Code(b) => b,
        }
    }
}

fn put<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, v: T::Native) -> bool {
    b.append_value(v);
    true
}

/// Rows under construction as columns: a writer fills each column of a row, then ends it.
pub struct ColumnsBuilder {
    schema: SchemaRef,
    kinds: Vec<ColumnKind>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    capacity: usize,
}

impl ColumnsBuilder {
    pub fn new(kinds: Vec<ColumnKind>, capacity: usize) -> ColumnsBuilder {
        let fields: Vec<Field> =
            kinds.iter().enumerate().map(|(i, k)| Field::new(format!("c{i}"), k.data_type(), true)).collect();
        let builders = kinds.iter().map(|k| k.builder(capacity)).collect();
        ColumnsBuilder { schema: Arc::new(Schema::new(fields)), kinds, builders, rows: 0, capacity }
    }

    /// The columns of a table's rows, in its schema's order.
    pub fn for_table(schema: &TableSchema, capacity: usize) -> ColumnsBuilder {
        ColumnsBuilder::new(schema.columns.iter().map(|c| ColumnKind::of(&c.ty)).collect(), capacity)
    }

    /// Column `i`'s buffer, to write the current row's value into.
    pub fn column(&mut self, i: usize) -> Option<&mut ColumnBuilder> {
        self.builders.get_mut(i)
    }

    /// The current row is complete: every column has one more value. False (and the rows
    /// gathered are not to be used) when a column was left out or written twice.
    pub fn end_row(&mut self) -> bool {
        self.rows += 1;
        self.builders.iter_mut().all(|b| b.as_dyn().len() == self.rows)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held by the values gathered so far.
    pub fn bytes(&self) -> usize {
        self.builders.iter().map(ColumnBuilder::bytes).sum()
    }

    /// The rows gathered as one record batch; the builder starts again empty. An error (Arrow's,
    /// as text) if the columns do not make one, which complete rows of the kinds given always do.
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.as_dyn().finish()).collect();
        self.rows = 0;
        self.builders = self.kinds.iter().map(|k| k.builder(self.capacity)).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// The rows of `batch`, built by [`ColumnsBuilder::for_table`] for `schema`, as values. `None`
/// when the batch does not have that shape.
pub fn rows_of(schema: &TableSchema, batch: &RecordBatch) -> Option<Vec<Row>> {
    if batch.num_columns() != schema.columns.len() {
        return None;
    }
    let mut rows: Vec<Row> = (0..batch.num_rows()).map(|_| Vec::with_capacity(schema.columns.len())).collect();
    for (column, array) in schema.columns.iter().zip(batch.columns()) {
        if array.data_type() != &ColumnKind::of(&column.ty).data_type() {
            return None;
        }
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(value_at(&column.ty, array, i)?);
        }
    }
    Some(rows)
}

fn value_at(ty: &ColumnType, array: &ArrayRef, i: usize) -> Option<Value> {
    Some(match cell_at(array, i)? {
        Cell::Null => Value::Null,
        Cell::Bool(v) => Value::Bool(v),
        Cell::Int(v) => Value::Int(v),
        Cell::UInt(v) => Value::UInt(v),
        Cell::Float(v) => Value::Float(v),
        Cell::Bytes(v) => Value::Bytes(v.to_vec()),
        Cell::Text(v) => Value::of_text(ty, v.to_owned())?,
    })
}

/// One value, borrowed from a column's buffer or from a `Value`: what a target encodes
/// without an owned value per cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// The canonical text of a value carried as text (its column's type says which).
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> Cell<'a> {
    /// A value as a cell; `None` for an array. An unchanged value is a null cell.
    pub fn of(value: &'a Value) -> Option<Cell<'a>> {
        Some(match value {
            Value::Null | Value::Unchanged => Cell::Null,
            Value::Bool(v) => Cell::Bool(*v),
            Value::Int(v) => Cell::Int(*v),
            Value::UInt(v) => Cell::UInt(*v),
            Value::Float(v) => Cell::Float(*v),
            Value::Bytes(v) => Cell::Bytes(v),
            Value::Array(_) => return None,
            text => Cell::Text(text.as_text()?),
        })
    }
}

/// Row `i` of a column built by [`ColumnsBuilder`]; `None` for another kind of array.
pub fn cell_at(array: &dyn Array, i: usize) -> Option<Cell<'_>> {
    if array.is_null(i) {
        return Some(Cell::Null);
    }
    Some(match array.data_type() {
        DataType::Boolean => Cell::Bool(array.as_boolean().value(i)),
        DataType::Int16 => Cell::Int(array.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => Cell::UInt(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => Cell::Float(array.as_primitive::<Float32Type>().value(i).into()),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Binary => Cell::Bytes(array.as_binary::<i32>().value(i)),
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(i)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, RowIdentity, TableId};

    fn schema(types: Vec<ColumnType>) -> TableSchema {
        let columns = types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| Column { name: format!("c{i}"), ty, source_type: String::new(), nullable: true })
            .collect();
        TableSchema { id: TableId::new("s", "t"), columns, identity: RowIdentity::Key(vec![0]) }
    }

    #[test]
    fn rows_come_back_as_the_values_they_were() {
        let s = schema(vec![
            ColumnType::Int32,
            ColumnType::Float32,
            ColumnType::Timestamp,
            ColumnType::Decimal { precision: 10, scale: 2 },
            ColumnType::Bytes,
            ColumnType::Bool,
            ColumnType::UInt64,
        ]);
        let rows: Vec<Row> = vec![
            vec![
                Value::Int(-7),
                Value::Float(f64::from(0.1f32)),
                Value::Timestamp("2024-01-02 03:04:05.123456".into()),
                Value::Decimal("-12.50".into()),
                Value::Bytes(vec![0, 255]),
                Value::Bool(true),
                Value::UInt(u64::MAX),
            ],
            vec![
                Value::Int(i32::MAX.into()),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ];
        let mut b = ColumnsBuilder::for_table(&s, 4);
        for row in &rows {
            for (i, v) in row.iter().enumerate() {
                assert!(b.column(i).expect("column").push(v), "column {i} takes {v:?}");
            }
            assert!(b.end_row());
        }
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(rows_of(&s, &batch), Some(rows));
        assert_eq!(b.rows(), 0, "the builder starts again");
    }

    #[test]
    fn a_value_of_another_kind_or_range_is_refused() {
        let mut b = ColumnsBuilder::new(vec![ColumnKind::Int16, ColumnKind::Float32], 1);
        let (int, float) = (0, 1);
        assert!(b.column(int).expect("int").push(&Value::Int(-32768)));
        assert!(!b.column(int).expect("int").push(&Value::Int(40_000)), "out of SMALLINT's range");
        assert!(!b.column(int).expect("int").push(&Value::Text("1".into())));
        assert!(!b.column(float).expect("float").push(&Value::Float(1e300)));
        assert!(b.column(float).expect("float").push(&Value::Float(f64::NEG_INFINITY)));
        assert!(b.end_row());
        assert!(!b.end_row(), "a row with no values is not complete");
    }

    #[test]
    fn arrays_do_not_travel_as_columns() {
        assert!(takes_columns(&schema(vec![ColumnType::Int64, ColumnType::Json])));
        assert!(!takes_columns(&schema(vec![ColumnType::Array(Box::new(ColumnType::Int32))])));
    }
}
