//! `zetl_dead_letters` in the catalog database: the changes whose values an Iceberg table
//! cannot store (a timestamp of `infinity`, a `NaN` decimal), set aside in the catalog
//! transaction that commits the rest, with the rules of the other targets: a letter is
//! superseded by a later change to its key, a truncate or a new copy of its table, and by the
//! replay of a later letter of the same key; only pending letters are replayed.

use crate::catalog::SqlCatalog;
use crate::error::IcebergError;
use crate::state::table_id;
use std::collections::HashSet;
use zetl_core::apply::DeadLetter;
use zetl_core::{Position, TableId};

pub const LATER_CHANGE: &str = "a later change to this key was applied";
pub const TRUNCATED: &str = "the table was truncated at the source after it";
pub const COPIED: &str = "the table was copied again after it";

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS zetl_dead_letters (
    id BIGINT PRIMARY KEY,
    integration TEXT NOT NULL,
    table_schema TEXT NOT NULL,
    table_name TEXT NOT NULL,
    key TEXT NOT NULL,
    key_bytes TEXT NOT NULL,
    op TEXT NOT NULL,
    row_data TEXT NOT NULL,
    error TEXT NOT NULL,
    position TEXT,
    created_at TEXT NOT NULL,
    replayed_at TEXT,
    superseded_at TEXT,
    superseded_by TEXT,
    superseded_position TEXT);
";

const PENDING: &str = "replayed_at IS NULL AND superseded_at IS NULL";

/// A change set aside.
pub struct NewLetter {
    pub table: TableId,
    /// The key as `zetl dead-letters list` shows it, e.g. `(id=5)`; empty for a keyless table.
    pub key: String,
    /// The key as the table's index compares it (empty for a keyless table).
    pub key_bytes: Vec<u8>,
    pub op: &'static str,
    /// The row, see `letter_row`.
    pub row: String,
    pub error: String,
}

/// A letter to replay.
pub struct Letter {
    pub id: i64,
    pub table: TableId,
    pub key_bytes: String,
    pub row: String,
}

impl SqlCatalog {
    pub fn add_letter(&self, integration: &str, letter: &NewLetter) -> Result<(), IcebergError> {
        let sql = format!(
            "INSERT INTO zetl_dead_letters (id, integration, table_schema, table_name, key, key_bytes, op, row_data, \
             error, created_at) SELECT coalesce(max(id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, {} FROM zetl_dead_letters",
            self.now_sql()
        );
        let key_bytes = zetl_core::hex::encode(&letter.key_bytes);
        let args = [
            integration.into(),
            (&letter.table.schema).into(),
            (&letter.table.name).into(),
            (&letter.key).into(),
            (&key_bytes).into(),
            letter.op.into(),
            (&letter.row).into(),
            (&letter.error).into(),
        ];
        self.execute(&sql, &args, || format!("setting aside a change to {}", letter.table))?;
        Ok(())
    }

    /// The tables with letters to replay.
    pub fn letter_tables(&self, integration: &str) -> Result<HashSet<TableId>, IcebergError> {
        let rows = self.query(
            &format!(
                "SELECT DISTINCT table_schema, table_name FROM zetl_dead_letters WHERE integration = ? AND {PENDING}"
            ),
            &[integration.into()],
            || "reading zetl_dead_letters".into(),
        )?;
        Ok(rows.iter().map(|r| table_id(r)).collect())
    }

    /// The keys (as the index compares them) of `table`'s letters to replay.
    pub fn letter_keys(&self, integration: &str, table: &TableId) -> Result<HashSet<String>, IcebergError> {
        let rows = self.query(
            &format!(
                "SELECT key_bytes FROM zetl_dead_letters \
                 WHERE integration = ? AND table_schema = ? AND table_name = ? AND {PENDING}"
            ),
            &[integration.into(), (&table.schema).into(), (&table.name).into()],
            || format!("reading the dead letters of {table}"),
        )?;
        Ok(rows.iter().filter_map(|r| r[0].text()).collect())
    }

    /// Marks superseded the pending letters of `table` (of key `key_bytes`, or all of them).
    pub fn supersede_letters(
        &self,
        integration: &str,
        table: &TableId,
        key_bytes: Option<&str>,
        why: &str,
    ) -> Result<u64, IcebergError> {
        let mut sql = format!(
            "UPDATE zetl_dead_letters SET superseded_at = {}, superseded_by = ? \
             WHERE integration = ? AND table_schema = ? AND table_name = ? AND {PENDING}",
            self.now_sql()
        );
        let mut args = vec![why.into(), integration.into(), (&table.schema).into(), (&table.name).into()];
        if let Some(key) = key_bytes {
            sql.push_str(" AND key_bytes = ?");
            args.push(key.into());
        }
        self.execute(&sql, &args, || format!("superseding dead letters of {table}"))
    }

    /// Stamps the open transaction's new and superseded letters with the position it commits at.
    pub fn position_letters(&self, integration: &str, position: &Position) -> Result<(), IcebergError> {
        let what = || "positioning dead letters".to_string();
        let args = [(&position.0).into(), integration.into()];
        self.execute(
            "UPDATE zetl_dead_letters SET position = ? WHERE position IS NULL AND integration = ?",
            &args,
            what,
        )?;
        self.execute(
            "UPDATE zetl_dead_letters SET superseded_position = ? \
             WHERE superseded_at IS NOT NULL AND superseded_position IS NULL AND integration = ?",
            &args,
            what,
        )?;
        Ok(())
    }

    pub fn list_letters(&self, integration: &str) -> Result<Vec<DeadLetter>, IcebergError> {
        let rows = self.query(
            "SELECT id, table_schema || '.' || table_name, key, op, error, created_at, replayed_at, superseded_at, \
             superseded_by || coalesce(' (source position ' || superseded_position || ')', '') \
             FROM zetl_dead_letters WHERE integration = ? ORDER BY id",
            &[integration.into()],
            || "reading zetl_dead_letters".into(),
        )?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r[0].int(),
                table: r[1].text().unwrap_or_default(),
                key: r[2].text().unwrap_or_default(),
                op: r[3].text().unwrap_or_default(),
                error: r[4].text().unwrap_or_default(),
                created_at: r[5].text().unwrap_or_default(),
                replayed_at: r[6].text(),
                superseded_at: r[7].text(),
                superseded_by: r[8].text(),
            })
            .collect())
    }

    /// The pending letters (or those of `ids` among them), oldest first.
    pub fn letters_to_replay(&self, integration: &str, ids: &[i64]) -> Result<Vec<Letter>, IcebergError> {
        let rows = self.query(
            &format!(
                "SELECT id, table_schema, table_name, key_bytes, row_data FROM zetl_dead_letters \
                 WHERE integration = ? AND {PENDING} ORDER BY id"
            ),
            &[integration.into()],
            || "reading zetl_dead_letters".into(),
        )?;
        Ok(rows
            .iter()
            .map(|r| Letter {
                id: r[0].int(),
                table: TableId::new(r[1].text().unwrap_or_default(), r[2].text().unwrap_or_default()),
                key_bytes: r[3].text().unwrap_or_default(),
                row: r[4].text().unwrap_or_default(),
            })
            .filter(|l| ids.is_empty() || ids.contains(&l.id))
            .collect())
    }

    /// Whether letter `id` is still to replay (the replay of a later letter of its key may
    /// have superseded it meanwhile).
    pub fn letter_pending(&self, id: i64) -> Result<bool, IcebergError> {
        let rows = self.query(
            &format!("SELECT count(*) FROM zetl_dead_letters WHERE id = ? AND {PENDING}"),
            &[id.into()],
            || "reading zetl_dead_letters".into(),
        )?;
        Ok(rows.first().is_some_and(|r| r[0].int() > 0))
    }

    /// Letter `id` is applied (at the stored checkpoint `position`): the older pending letters
    /// of its key are superseded by it.
    pub fn letter_replayed(
        &self,
        integration: &str,
        letter: &Letter,
        position: Option<&str>,
    ) -> Result<(), IcebergError> {
        let what = || format!("marking dead letter {} replayed", letter.id);
        if !letter.key_bytes.is_empty() {
            let why = format!("dead letter {} of the same key was replayed after it", letter.id);
            let sql = format!(
                "UPDATE zetl_dead_letters SET superseded_at = {}, superseded_by = ?, superseded_position = ? \
                 WHERE integration = ? AND table_schema = ? AND table_name = ? AND key_bytes = ? AND id < ? AND {PENDING}",
                self.now_sql()
            );
            let args = [
                (&why).into(),
                position.into(),
                integration.into(),
                (&letter.table.schema).into(),
                (&letter.table.name).into(),
                (&letter.key_bytes).into(),
                letter.id.into(),
            ];
            self.execute(&sql, &args, what)?;
        }
        let sql = format!("UPDATE zetl_dead_letters SET replayed_at = {} WHERE id = ?", self.now_sql());
        self.execute(&sql, &[letter.id.into()], what)?;
        Ok(())
    }
}
