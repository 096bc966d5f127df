//! QUERY events: table DDL is followed (tables created, altered, renamed, dropped,
//! truncated), and data changes logged as statements stop the integration, since zetl cannot
//! apply SQL text (guarantee 8).

use crate::catalog;
use crate::ddl::{self, Ddl, Dml};
use crate::error::MyError;
use crate::flavor::Flavor;
use crate::position::BinlogPos;
use crate::stream::Streamer;
use zetl_core::{CopiedTable, Position, SourceEvent, TableId};

impl Streamer {
    /// A statement logged as text: table DDL is followed, anything else is not ours to read
    /// (row changes arrive as row events in ROW format).
    pub(crate) async fn statement(
        &mut self,
        schema: &str,
        sql: &str,
        ddl: Ddl,
        event_start: &BinlogPos,
        at: &BinlogPos,
    ) -> Result<(), MyError> {
        match ddl {
            Ddl::Create { table, if_not_exists, select, start_transaction } => {
                let id = self.resolve(&table, schema);
                if !self.replicated(&id) || !self.wanted(&id) {
                    // Outside the filters, or before a copy of the table that holds its effect.
                } else if select && !start_transaction {
                    // Logged as a statement (STATEMENT or MIXED format): the rows are in the
                    // SELECT, not in row events. The copy at the end of this transaction has them.
                    self.resync(&id, "CREATE TABLE … SELECT was logged as a statement, without its rows".into())
                        .await?;
                } else if if_not_exists && self.known.contains(&id) {
                    // The table existed (it was not dropped since it became known): the
                    // statement changed nothing, and an empty copy would lose its rows.
                    tracing::debug!(table = %id, "CREATE TABLE IF NOT EXISTS on an existing table; nothing to do");
                } else if self.replicated(&id)
                    && self
                        .copied_at
                        .get(&id)
                        .is_none_or(|c| c.partial_cmp(event_start) != Some(std::cmp::Ordering::Greater))
                {
                    self.created(&id, at).await?;
                }
            }
            Ddl::Alter { table, renamed_to, partition, added } => {
                let id = self.resolve(&table, schema);
                if let Some(change) = partition {
                    self.partition_changed(&id, change, schema).await?;
                }
                if let Some(to) = renamed_to {
                    let to = self.resolve(&to, schema);
                    self.renamed(&id, to);
                } else if self.replicated(&id) && self.wanted(&id) {
                    self.refresh_json_columns(&id).await?;
                    self.alters.entry(id.clone()).or_default().extend(added);
                    tracing::info!(table = %id, "table altered; its next row event brings the new columns");
                }
            }
            Ddl::Rename(pairs) => {
                for (from, to) in pairs {
                    let (from, to) = (self.resolve(&from, schema), self.resolve(&to, schema));
                    self.renamed(&from, to);
                }
            }
            Ddl::Drop(tables) => {
                for t in tables {
                    let id = self.resolve(&t, schema);
                    self.dropped(&id);
                }
            }
            Ddl::Truncate(t) => {
                let id = self.resolve(&t, schema);
                if self.replicated(&id) && self.wanted(&id) {
                    self.begin().await?;
                    self.events.send(SourceEvent::Truncate(vec![id])).await?;
                }
            }
            Ddl::Other => self.statement_dml(schema, sql, event_start)?,
        }
        Ok(())
    }

    /// DML logged as a statement (a session with binlog_format STATEMENT or MIXED): zetl
    /// cannot apply SQL text, so a change to a replicated table (or to one it cannot tell)
    /// stops the integration before anything after it is acknowledged. A table copied after
    /// the statement (the fix: `zetl resync`) already holds its effect.
    pub(crate) fn statement_dml(&self, schema: &str, sql: &str, event_start: &BinlogPos) -> Result<(), MyError> {
        let table = match ddl::dml(sql) {
            Dml::NotDml => return Ok(()),
            Dml::Table(t) if t.schema.is_some() || !schema.is_empty() => self.resolve(&t, schema),
            Dml::Table(_) | Dml::Unknown => {
                return Err(MyError::StatementDml {
                    what: "a data change to a table zetl cannot tell".into(),
                    position: event_start.to_string(),
                    fix: "`zetl resync --all -c FILE -i NAME`".into(),
                })
            }
        };
        if !self.replicated(&table) || !self.wanted(&table) {
            tracing::debug!(table = %table, position = %event_start, "statement-logged change to a table not replicated here");
            return Ok(());
        }
        Err(MyError::StatementDml {
            what: format!("a data change to {table}"),
            position: event_start.to_string(),
            fix: format!("`zetl resync -c FILE -i NAME {table}`"),
        })
    }

    /// A table created after the copy: it starts empty, so an empty copy stands for it and its
    /// rows follow in the binlog.
    async fn created(&mut self, id: &TableId, at: &BinlogPos) -> Result<(), MyError> {
        let Some(table) = catalog::table(&mut self.side, id).await? else {
            // Gone again already; its TABLE_MAP events (if any) bring the columns.
            return Ok(());
        };
        self.remember_json_columns(&table);
        tracing::info!(table = %id, "new table matches the filters; replicating it");
        self.begin().await?;
        self.events.send(SourceEvent::Schema(table.schema())).await?;
        self.sent_columns.entry(id.clone()).or_default().extend(table.columns.iter().map(|c| c.name.clone()));
        // `snapshot: never`: what the target holds under that name stays.
        if self.filter.snapshot_mode(id) != zetl_core::filter::SnapshotMode::Never {
            self.events.send(SourceEvent::CopyStart(id.clone())).await?;
        }
        let at = Position(BinlogPos { gtid: None, ..at.clone() }.to_string());
        self.events
            .send(SourceEvent::CopyDone {
                table: id.clone(),
                rows: 0,
                copied: Box::new(CopiedTable { consistent_at: Some(at), ..CopiedTable::default() }),
            })
            .await?;
        self.schemas.insert(id.clone(), table);
        self.known.insert(id.clone());
        self.filling.remove(id);
        Ok(())
    }

    fn renamed(&mut self, from: &TableId, to: TableId) {
        if self.replicated(from) && self.wanted(from) {
            tracing::warn!(from = %from, to = %to, "table renamed at the source; the target keeps the old name's copy");
            self.forget(from);
        }
        if self.replicated(&to) && self.wanted(&to) {
            tracing::info!(table = %to, "a table was renamed into the filters; copying it");
            self.copy_at_end(&to);
        }
    }

    async fn refresh_json_columns(&mut self, id: &TableId) -> Result<(), MyError> {
        if self.flavor == Flavor::MariaDb {
            let cols = catalog::json_columns(&mut self.side, id).await?;
            self.json_columns.insert(id.clone(), cols);
        }
        Ok(())
    }
}
