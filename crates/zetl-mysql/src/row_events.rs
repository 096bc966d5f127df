//! ROWS events → changes: each row decoded with the columns of its own TABLE_MAP event.

use crate::columns::{MyColumn, MyTable};
use crate::convert::{convert, json_text, Origin};
use crate::error::MyError;
use crate::position::BinlogPos;
use crate::row_image::Image;
use crate::stream::Streamer;
use mysql_common::binlog::events::{Event, EventData, RowsEventData};
use mysql_common::binlog::value::BinlogValue;
use zetl_core::{ChangeKind, Row, SourceEvent, Value};

impl Streamer {
    pub(crate) async fn rows(&mut self, event: &Event, event_start: &BinlogPos) -> Result<(), MyError> {
        let data = event.read_data().map_err(|e| MyError::Protocol(format!("bad rows event at {event_start}: {e}")))?;
        let Some(EventData::RowsEvent(rows)) = data else { return Ok(()) };
        let Some((_, Some(table))) = self.table_maps.get(&rows.table_id()) else { return Ok(()) };
        let table = table.clone();
        let xa = self.txn.as_ref().is_some_and(|t| t.xa.is_some());
        if !xa && !self.wanted(&table.id) {
            return Ok(());
        }
        let layout = self
            .layouts
            .get(&rows.table_id())
            .cloned()
            .ok_or_else(|| MyError::Protocol(format!("rows event at {event_start} without its TABLE_MAP")))?;
        let mut kinds = Vec::new();
        for pair in layout.rows(&rows) {
            let (before, after) = pair.map_err(|e| MyError::Table {
                table: table.id.to_string(),
                reason: format!("cannot decode a row: {e}"),
            })?;
            let after = after.map(|r| self.row(&table, r)).transpose()?;
            let kind = match (&rows, before, after) {
                (RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_), _, Some(row)) => {
                    ChangeKind::Insert { row }
                }
                (RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_), Some(old), _) => {
                    ChangeKind::Delete { old: self.row(&table, old)? }
                }
                (_, Some(old), Some(row)) => {
                    // The old row only when the key changed (read whole then), or whole when it
                    // is the identity: most updates keep their key, and their old row is not
                    // read beyond it.
                    let keep_old = table.key.is_empty() || !self.same_key(&table, &old, &row)?;
                    let old = if keep_old { Some(self.row(&table, old)?) } else { None };
                    ChangeKind::Update { old, row }
                }
                _ => continue,
            };
            kinds.push(kind);
        }
        if kinds.is_empty() {
            return Ok(());
        }
        self.emit(SourceEvent::Changes { table: table.id.clone(), kinds }).await
    }

    fn row(&self, table: &MyTable, values: Image<'_>) -> Result<Row, MyError> {
        if values.len() != table.columns.len() {
            return Err(MyError::Table {
                table: table.id.to_string(),
                reason: format!(
                    "a row image has {} of {} columns: set binlog_row_image = FULL on the server",
                    values.len(),
                    table.columns.len()
                ),
            });
        }
        table.columns.iter().zip(values).map(|(col, v)| value(table, col, v)).collect()
    }

    /// Whether the old image's key columns hold the new row's key. An image that is not
    /// whole is not the same: reading it whole then says what is wrong with it.
    fn same_key(&self, table: &MyTable, old: &Image<'_>, row: &Row) -> Result<bool, MyError> {
        if old.len() != table.columns.len() {
            return Ok(false);
        }
        for &k in &table.key {
            if value(table, &table.columns[k], old[k].clone())? != row[k] {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn value(table: &MyTable, col: &MyColumn, v: BinlogValue<'_>) -> Result<Value, MyError> {
    let bad = |reason: String| MyError::Value { table: table.id.to_string(), column: col.name.clone(), reason };
    match v {
        BinlogValue::Value(v) => convert(col, v, Origin::Binlog).map_err(bad),
        BinlogValue::Jsonb(j) => serde_json::Value::try_from(j)
            .map(|j| Value::Json(json_text(&j)))
            .map_err(|e| bad(format!("cannot read binary JSON: {e}"))),
        BinlogValue::JsonDiff(_) => {
            Err(bad("partial JSON update in the binlog: set binlog_row_value_options = '' on the server".into()))
        }
    }
}
