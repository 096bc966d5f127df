//! Rows an Iceberg table cannot store (see `types::misfit`): the error naming the table, key
//! and column (`on_error: fail`), or a dead letter (`dead_letter`), set aside before anything
//! of the change is applied; and the letters a later change to their key makes stale.

use super::LakeTable;
use crate::error::IcebergError;
use crate::letter_row;
use crate::letters::NewLetter;
use crate::types;
use std::collections::HashSet;
use zetl_core::hex::encode as hex;
use zetl_core::Row;

/// A table's dead letters in the open transaction.
#[derive(Default)]
pub struct TableLetters {
    /// `on_error: dead_letter`: a row that does not fit is set aside instead of stopping the run.
    pub set_aside: bool,
    /// Keys (hex, as `zetl_dead_letters.key_bytes`) of the letters still to replay.
    pub pending: HashSet<String>,
    /// Set aside since the target last took them (it stores them in the catalog transaction).
    pub new: Vec<NewLetter>,
    /// Keys whose pending letters a change applied since then made stale.
    pub superseded: Vec<String>,
}

impl LakeTable {
    /// Whether `row` (of key `key`, empty for a keyless table) can be stored; one that cannot
    /// is the error, or is set aside as a letter of operation `op`.
    pub(super) fn admit(&mut self, row: &Row, key: &[u8], op: &'static str) -> Result<bool, IcebergError> {
        let Some((column, problem)) = types::misfit(&self.arrow, &self.refusing, row) else { return Ok(true) };
        let described = self.source.describe_key(row);
        if !self.letters.set_aside {
            return Err(IcebergError::Rejected { table: self.name(), key: described, column, problem });
        }
        let names: Vec<String> = self.layout.columns.iter().map(|c| c.name.clone()).collect();
        let letter = NewLetter {
            table: self.source.id.clone(),
            key: if key.is_empty() { String::new() } else { described },
            key_bytes: key.to_vec(),
            op,
            row: letter_row::encode(&names, row),
            error: format!("column {column}: {problem}"),
        };
        tracing::warn!(table = %letter.table, key = %letter.key, error = %letter.error, "change set aside as a dead letter");
        self.letters.new.push(letter);
        if !key.is_empty() {
            self.letters.pending.insert(hex(key));
        }
        Ok(false)
    }

    /// A change to `key` is applied: a letter of that key still to replay is stale now.
    pub(super) fn applied(&mut self, key: &[u8]) {
        if self.letters.pending.is_empty() {
            return;
        }
        let key = hex(key);
        if self.letters.pending.remove(&key) {
            self.letters.superseded.push(key);
        }
    }

    /// Every letter of the table is stale (a truncate, a new copy).
    pub(super) fn all_applied(&mut self) {
        self.letters.pending.clear();
    }
}
