//! The row images of a ROWS event, decoded with what its table map says of each column (type,
//! metadata, signedness) worked out once per table map. `mysql_common`'s own row iterator builds
//! a whole column definition (names, flags, charset) for every column of every image it
//! decodes, which was most of the source's time on a binlog backlog (docs/benchmarks.md).

use mysql_common::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_common::binlog::row::BinlogRowValueOptions;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::misc::raw::int::{LenEnc, RawInt};
use std::io;

/// The columns of one table map, as a row image's values are read.
#[derive(Debug)]
pub struct Layout {
    columns: Vec<LayoutColumn>,
}

#[derive(Debug)]
struct LayoutColumn {
    ty: ColumnType,
    meta: Vec<u8>,
    unsigned: bool,
}

/// A row image: the values of the columns its event holds, in table order.
pub type Image<'a> = Vec<BinlogValue<'a>>;

impl Layout {
    pub fn of(tme: &TableMapEvent<'_>) -> io::Result<Layout> {
        let optional = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
        // Signedness is listed for the numeric columns only, in order.
        let mut signedness = optional.iter_signedness();
        let columns = (0..tme.columns_count() as usize)
            .map(|i| {
                let ty = tme
                    .get_column_type(i)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("column {i} has no type")))?;
                let meta = tme.get_column_metadata(i).unwrap_or(&[]).to_vec();
                let unsigned = ty.is_numeric_type() && signedness.next().unwrap_or(false);
                Ok(LayoutColumn { ty, meta, unsigned })
            })
            .collect::<io::Result<_>>()?;
        Ok(Layout { columns })
    }

    /// Each row's images, before and after, as the event holds them (a write has no before
    /// image, a delete no after image).
    pub fn rows<'a>(
        &'a self,
        event: &'a RowsEventData<'a>,
    ) -> impl Iterator<Item = io::Result<(Option<Image<'a>>, Option<Image<'a>>)>> + 'a {
        let partial = matches!(event, RowsEventData::PartialUpdateRowsEvent(_));
        // The columns each image holds, worked out once per event.
        let before = event.columns_before_image().map(|b| b.iter_ones().collect::<Vec<usize>>());
        let after = event.columns_after_image().map(|b| b.iter_ones().collect::<Vec<usize>>());
        let mut buf = ParseBuf(event.rows_data());
        std::iter::from_fn(move || {
            if buf.is_empty() {
                return None;
            }
            let mut row = || {
                let old = before.as_deref().map(|held| self.image(&mut buf, held, false)).transpose()?;
                let new = after.as_deref().map(|held| self.image(&mut buf, held, partial)).transpose()?;
                Ok((old, new))
            };
            let row = row();
            if row.is_err() {
                // Nothing after a bad row can be told apart.
                buf = ParseBuf(&[]);
            }
            Some(row)
        })
    }

    /// One image of the columns `held` (indexes into the table map's columns, ascending).
    fn image<'a>(&'a self, buf: &mut ParseBuf<'a>, held: &[usize], partial: bool) -> io::Result<Image<'a>> {
        if partial {
            // An after image of a partial update starts with its value options.
            let options = *buf.parse::<RawInt<LenEnc>>(())?;
            if options & BinlogRowValueOptions::PARTIAL_JSON_UPDATES as u64 > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "partial JSON update in the binlog: set binlog_row_value_options = '' on the server",
                ));
            }
        }
        let nulls: &[u8] = buf.parse(held.len().div_ceil(8))?;
        let is_null = |n: usize| nulls.get(n / 8).is_none_or(|b| b & (1 << (n % 8)) != 0);
        let mut values = Vec::with_capacity(held.len());
        for (n, &i) in held.iter().enumerate() {
            let col = self.columns.get(i).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("column {i} is not in the table map"))
            })?;
            values.push(if is_null(n) {
                BinlogValue::Value(mysql_common::Value::NULL)
            } else {
                buf.parse::<BinlogValue<'a>>((col.ty, col.meta.as_slice(), col.unsigned, false))?
            });
        }
        Ok(values)
    }
}
