//! ROWS events → changes: each row decoded with the columns of its own TABLE_MAP event.

use crate::columns::MyTable;
use crate::convert::{convert, json_text, Origin};
use crate::error::MyError;
use crate::position::BinlogPos;
use crate::row_image::Image;
use crate::stream::Streamer;
use mysql_common::binlog::events::{Event, EventData, RowsEventData};
use mysql_common::binlog::value::BinlogValue;
use zetl_core::{Change, ChangeKind, Row, SourceEvent, Value};

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
        let mut changes = Vec::new();
        for pair in layout.rows(&rows) {
            let (before, after) = pair.map_err(|e| MyError::Table {
                table: table.id.to_string(),
                reason: format!("cannot decode a row: {e}"),
            })?;
            let before = before.map(|r| self.row(&table, r)).transpose()?;
            let after = after.map(|r| self.row(&table, r)).transpose()?;
            let kind = match (&rows, before, after) {
                (RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_), _, Some(row)) => {
                    ChangeKind::Insert { row }
                }
                (RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_), Some(old), _) => {
                    ChangeKind::Delete { old }
                }
                (_, Some(old), Some(row)) => {
                    // The old key only when it changed; the whole old row when it is the identity.
                    let keep_old = table.key.is_empty() || table.key.iter().any(|&i| old[i] != row[i]);
                    ChangeKind::Update { old: keep_old.then_some(old), row }
                }
                _ => continue,
            };
            changes.push(Change { table: table.id.clone(), kind });
        }
        for change in changes {
            self.emit(SourceEvent::Change(change)).await?;
        }
        Ok(())
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
        table
            .columns
            .iter()
            .zip(values)
            .map(|(col, v)| {
                let bad =
                    |reason: String| MyError::Value { table: table.id.to_string(), column: col.name.clone(), reason };
                match v {
                    BinlogValue::Value(v) => convert(col, v, Origin::Binlog).map_err(bad),
                    BinlogValue::Jsonb(j) => serde_json::Value::try_from(j)
                        .map(|j| Value::Json(json_text(&j)))
                        .map_err(|e| bad(format!("cannot read binary JSON: {e}"))),
                    BinlogValue::JsonDiff(_) => Err(bad(
                        "partial JSON update in the binlog: set binlog_row_value_options = '' on the server".into(),
                    )),
                }
            })
            .collect()
    }
}
