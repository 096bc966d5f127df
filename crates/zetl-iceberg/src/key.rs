//! Keys as the lake stores them: the bytes of the key columns' Iceberg values, computed the
//! same way from a change's values and from a data file's arrays, so that the index built by
//! reading the table back matches the changes that come later (a decimal `1.50` and `1.5`
//! are one key here, as readers of the table see them).

use crate::types;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::Array;
use arrow_schema::DataType;
use zetl_core::Value;

/// The key of `values` (the key columns' values, in order) for columns of `types`.
pub fn from_values(types: &[DataType], values: &[&Value]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(types.len() * 9);
    for (ty, v) in types.iter().zip(values) {
        match types::storage(ty, v)? {
            Some(bytes) => push(&mut out, &bytes),
            None => out.push(0),
        }
    }
    Ok(out)
}

/// The key of row `row` of `columns` (the key columns' arrays of a data file).
pub fn from_arrays(columns: &[&dyn Array], row: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(columns.len() * 9);
    for column in columns {
        if column.is_null(row) {
            out.push(0);
            continue;
        }
        let bytes: Vec<u8> = match column.data_type() {
            DataType::Boolean => vec![u8::from(column.as_boolean().value(row))],
            DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_le_bytes().to_vec(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_le_bytes().to_vec(),
            DataType::Float32 => column.as_primitive::<Float32Type>().value(row).to_bits().to_le_bytes().to_vec(),
            DataType::Float64 => column.as_primitive::<Float64Type>().value(row).to_bits().to_le_bytes().to_vec(),
            DataType::Decimal128(..) => column.as_primitive::<Decimal128Type>().value(row).to_le_bytes().to_vec(),
            DataType::Date32 => column.as_primitive::<Date32Type>().value(row).to_le_bytes().to_vec(),
            DataType::Time64(_) => column.as_primitive::<Time64MicrosecondType>().value(row).to_le_bytes().to_vec(),
            DataType::Timestamp(..) => {
                column.as_primitive::<TimestampMicrosecondType>().value(row).to_le_bytes().to_vec()
            }
            DataType::FixedSizeBinary(_) => column.as_fixed_size_binary().value(row).to_vec(),
            DataType::LargeBinary => column.as_binary::<i64>().value(row).to_vec(),
            DataType::Binary => column.as_binary::<i32>().value(row).to_vec(),
            DataType::Utf8 => column.as_string::<i32>().value(row).as_bytes().to_vec(),
            DataType::LargeUtf8 => column.as_string::<i64>().value(row).as_bytes().to_vec(),
            other => return Err(format!("a key column of Arrow type {other} cannot be read back")),
        };
        push(&mut out, &bytes);
    }
    Ok(out)
}

fn push(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(1);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}
