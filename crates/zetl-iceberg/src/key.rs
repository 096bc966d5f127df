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
            // As a long: a key column widened from int to long keeps its keys (see `types::storage`).
            DataType::Int32 => i64::from(column.as_primitive::<Int32Type>().value(row)).to_le_bytes().to_vec(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_le_bytes().to_vec(),
            DataType::Float32 => column.as_primitive::<Float32Type>().value(row).to_bits().to_le_bytes().to_vec(),
            DataType::Float64 => column.as_primitive::<Float64Type>().value(row).to_bits().to_le_bytes().to_vec(),
            DataType::Decimal128(..) => column.as_primitive::<Decimal128Type>().value(row).to_le_bytes().to_vec(),
            DataType::Date32 => i64::from(column.as_primitive::<Date32Type>().value(row)).to_le_bytes().to_vec(),
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

/// A key's bytes in the index: held inline up to 22 bytes (integers, UUIDs, short texts), so
/// that the index of a large table makes no allocation per row and an entry with its slot
/// takes 32 bytes.
#[derive(Clone)]
pub enum IndexKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const INLINE: usize = 22;

impl IndexKey {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IndexKey::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for IndexKey {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey::Inline { len: key.len() as u8, bytes }
        } else {
            IndexKey::Heap(key.into())
        }
    }
}

// Equality and hashing are the bytes', so that the index is looked up by `&[u8]`.
impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IndexKey {}

impl std::hash::Hash for IndexKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::ArrayRef;
    use std::sync::Arc;
    use zetl_core::{Column, ColumnType, RowIdentity, TableId, TableSchema};

    /// A key computed from a change's values equals the one read back from the written arrays.
    #[test]
    fn keys_from_values_match_keys_read_back() {
        let kinds = [
            (ColumnType::Int32, Value::Int(-7)),
            (ColumnType::Int64, Value::Int(1 << 40)),
            (ColumnType::Decimal { precision: 12, scale: 2 }, Value::Decimal("1.5".into())),
            (ColumnType::Text, Value::Text("k é".into())),
            (ColumnType::Date, Value::Date("2024-02-29".into())),
            (ColumnType::TimestampTz, Value::TimestampTz("2024-02-29 12:00:00.5+00".into())),
            (ColumnType::Uuid, Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())),
            (ColumnType::Bytes, Value::Bytes(vec![0, 255])),
        ];
        for (ty, value) in kinds {
            let column = Column { name: "k".into(), ty: ty.clone(), source_type: String::new(), nullable: false };
            let source =
                TableSchema { id: TableId::new("s", "t"), columns: vec![column], identity: RowIdentity::Key(vec![0]) };
            let lake = types::lake_schema(&source, None, 0).expect("schema");
            let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&lake).expect("arrow"));
            let row = vec![value.clone()];
            let batch = types::record_batch(&arrow, &source, &[&row]).expect("batch");
            let written = from_arrays(&[batch.column(0).as_ref()], 0).expect("read back");
            let data_type = arrow.field(0).data_type().clone();
            assert_eq!(from_values(&[data_type], &[&value]), Ok(written), "{ty:?}");
        }
        // An int key widened to long keeps its bytes.
        let ints: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![5]));
        let longs: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![5]));
        assert_eq!(from_arrays(&[ints.as_ref()], 0), from_arrays(&[longs.as_ref()], 0));
    }

    #[test]
    fn index_keys_are_their_bytes_inline_or_not() {
        use std::collections::HashMap;
        assert_eq!(std::mem::size_of::<IndexKey>(), 24);
        let short: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0, 7];
        let long: Vec<u8> = (0..40).collect();
        let mut index: HashMap<IndexKey, u32> = HashMap::new();
        index.insert(short.into(), 1);
        index.insert(long.as_slice().into(), 2);
        index.insert((&[][..]).into(), 3);
        assert_eq!(index.get(short), Some(&1));
        assert_eq!(index.get(long.as_slice()), Some(&2));
        assert_eq!(index.get(&[][..]), Some(&3));
        assert_eq!(index.get(&short[..8]), None, "a prefix is another key");
        assert!(matches!(IndexKey::from(long.as_slice()), IndexKey::Heap(_)));
    }
}
