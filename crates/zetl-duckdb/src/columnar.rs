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
use zetl_core::columns::{ColumnKind, ColumnsBuilder, RecordBatch};
use zetl_core::Value;

/// Rows per record batch: DuckDB's vector size, so that each batch is one data chunk.
pub const ROWS_PER_CHUNK: usize = 2048;

/// The columns appended to one table, in the appender's order.
pub struct Columns {
    kinds: Vec<ColumnKind>,
}

impl Columns {
    pub fn new(kinds: Vec<ColumnKind>) -> Columns {
        Columns { kinds }
    }

    /// `rows` (at most [`ROWS_PER_CHUNK`], one data chunk) as one record batch; `write` puts
    /// one row's cells in column order. `None` if a value is not of its column's kind.
    pub fn batch<T>(&self, rows: &[T], write: &mut impl FnMut(&T, &mut Cells<'_>)) -> Option<RecordBatch> {
        let mut columns = ColumnsBuilder::new(self.kinds.clone(), rows.len());
        for row in rows {
            let mut cells = Cells { columns: &mut columns, next: 0, fits: true };
            write(row, &mut cells);
            if !cells.fits || !columns.end_row() {
                return None;
            }
        }
        columns.finish().ok()
    }

    /// Whether `batch` holds these columns (a copy's, built for the table's schema).
    pub fn hold(&self, batch: &RecordBatch) -> bool {
        let types = batch.schema_ref().fields().iter().map(|f| f.data_type().clone());
        batch.num_columns() == self.kinds.len() && types.eq(self.kinds.iter().map(|k| k.data_type()))
    }
}

/// One row's cells, written column by column.
pub struct Cells<'a> {
    columns: &'a mut ColumnsBuilder,
    next: usize,
    fits: bool,
}

impl Cells<'_> {
    pub fn value(&mut self, value: &Value) {
        if let Value::Array(_) = value {
            return self.text(Some(&array_json(value)));
        }
        let fits = self.columns.column(self.next).is_some_and(|b| b.push(value));
        self.advance(fits);
    }

    pub fn code(&mut self, code: u8) {
        let fits = self.columns.column(self.next).is_some_and(|b| b.code(code));
        self.advance(fits);
    }

    pub fn text(&mut self, text: Option<&str>) {
        let fits = self.columns.column(self.next).is_some_and(|b| b.text(text));
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
        let cols = Columns::new(vec![ColumnKind::Int32, ColumnKind::Text, ColumnKind::Float32, ColumnKind::Code]);
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
        let cols = Columns::new(vec![ColumnKind::Int16]);
        let one = |v: Value| cols.batch(&[v], &mut |v, c| c.value(v)).is_some();
        assert!(one(Value::Int(-32768)));
        assert!(one(Value::Null));
        assert!(!one(Value::Int(40_000)), "out of SMALLINT's range: DuckDB's cast names it");
        assert!(!one(Value::Text("1".into())));
        let floats = Columns::new(vec![ColumnKind::Float32]);
        assert!(floats.batch(&[Value::Float(1e300)], &mut |v, c| c.value(v)).is_none());
        assert!(floats.batch(&[Value::Float(f64::NEG_INFINITY)], &mut |v, c| c.value(v)).is_some());
    }
}
