//! `zetl dead-letters replay` on an Iceberg target: each pending letter (oldest first) in a
//! catalog transaction of its own, holding the catalog's write lock like `zetl lake
//! maintain` (a running `zetl run` waits at its next transaction, then reads the table again):
//! the row is decoded, checked against the table as it is now, written over its key, and
//! committed as a snapshot carrying the stored checkpoint's position. A table stays loaded
//! from one letter to the next; a failed letter's rollback forgets it.

use crate::commit;
use crate::error::IcebergError;
use crate::letter_row;
use crate::letters::Letter;
use crate::IcebergTarget;
use zetl_core::apply::Replayed;
use zetl_core::target::Target;
use zetl_core::{Row, Value};

impl IcebergTarget {
    pub(crate) fn replay(&mut self, ids: &[i64]) -> Result<Replayed, IcebergError> {
        let (mut done, mut failed) = (0, Vec::new());
        for letter in self.catalog.letters_to_replay(&self.integration, ids)? {
            self.catalog.begin("replaying a dead letter")?;
            self.in_transaction = true;
            match self.replay_one(&letter) {
                Ok(true) => {
                    self.in_transaction = false;
                    done += 1;
                }
                Ok(false) => self.rollback()?,
                Err(e) => {
                    self.rollback()?;
                    failed.push((letter.id, e.to_string()));
                }
            }
        }
        Ok((done, failed))
    }

    /// Applies and commits `letter`; `false` when it is no longer pending (a later letter of
    /// its key was replayed in this same run).
    fn replay_one(&mut self, letter: &Letter) -> Result<bool, IcebergError> {
        if !self.catalog.letter_pending(letter.id)? {
            return Ok(false);
        }
        let id = &letter.table;
        let gone = |why: &str| IcebergError::State(format!("dead letter {}: table {id} {why}", letter.id));
        let checkpoint = self.catalog.load_checkpoint(&self.integration)?.ok_or_else(|| gone("was never committed"))?;
        // The table stays loaded for the next letters (its key index read once), unless a
        // running `zetl run` committed to it meanwhile.
        let now = self.catalog.metadata_location(id)?.ok_or_else(|| gone("is no longer in the catalog"))?;
        if self.tables.get(id).is_none_or(|t| t.location != now) {
            let source =
                self.catalog.stored_schemas(&self.integration)?.remove(id).ok_or_else(|| gone("is not replicated"))?;
            let (metadata, location) = self.read_metadata(id)?.ok_or_else(|| gone("is no longer in the catalog"))?;
            let mut lake = self.open_table(source, metadata, location)?;
            // A row that still does not fit is this letter's error again, not a new letter.
            lake.letters.set_aside = false;
            self.tables.insert(id.clone(), lake);
        }
        let properties = self.snapshot_properties(&checkpoint.position.0);
        let lake = self.tables.get_mut(id).ok_or_else(|| gone("could not be loaded"))?;
        let columns = letter_row::decode(&letter.row)
            .map_err(|problem| IcebergError::State(format!("dead letter {}: {problem}", letter.id)))?;
        let row: Row = lake
            .source
            .columns
            .iter()
            .map(|c| columns.iter().find(|(name, _)| *name == c.name).map_or(Value::Null, |(_, v)| v.clone()))
            .collect();
        let produced = self.rt.block_on(async {
            lake.replay(&self.file_io, row).await?;
            commit::produce(&self.file_io, lake, &properties).await
        })?;
        if let Some(done) = &produced {
            self.catalog.swap(id, &lake.location, &done.location)?;
        }
        self.catalog.letter_replayed(&self.integration, letter, Some(&checkpoint.position.0))?;
        self.catalog.commit()?;
        if let Some(done) = produced {
            lake.committed(done.metadata, done.location);
        }
        Ok(true)
    }
}
