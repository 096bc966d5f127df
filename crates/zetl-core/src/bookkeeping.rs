//! What every target keeps about its open transaction beside the data: rows of the copies
//! under way (stored at each commit, so `zetl status` shows their progress), the tables whose
//! soft-deleted rows wait for the commit's position, and the dead letters set aside or
//! superseded. The target does the writing; this keeps the counts the same way everywhere.

use crate::event::CopyCursor;
use crate::model::TableId;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Default)]
pub struct Bookkeeping {
    copying: HashMap<TableId, u64>,
    /// The source's cursors of copies read in key order, by part, stored with their rows.
    cursors: HashMap<TableId, BTreeMap<u32, String>>,
    soft_touched: HashSet<TableId>,
    dead_pending: u64,
    dead_committed: u64,
    /// Tables with dead letters not yet replayed or superseded (from the target at open,
    /// exact again after a rollback): only their changes pay for superseding letters.
    letters_pending: HashSet<TableId>,
    /// The open transaction superseded letters (their position is set at commit).
    superseding: bool,
}

impl Bookkeeping {
    pub fn new(letters_pending: HashSet<TableId>) -> Self {
        Bookkeeping { letters_pending, ..Default::default() }
    }

    /// Whether `table` has dead letters that its next changes may supersede.
    pub fn has_pending_letters(&self, table: &TableId) -> bool {
        self.letters_pending.contains(table)
    }

    /// A copy of `table` starts; returns whether its pending letters must be superseded now
    /// (the copy replaces every row they were about).
    pub fn copy_started(&mut self, table: &TableId) -> bool {
        self.copying.insert(table.clone(), 0);
        self.cursors.remove(table);
        let supersede = self.has_pending_letters(table);
        self.superseding |= supersede;
        supersede
    }

    /// The copy of `table` holds `rows` rows so far (see [`Target::copy_holds`](crate::target::Target::copy_holds)).
    pub fn copy_holds(&mut self, table: &TableId, rows: u64) {
        self.copying.insert(table.clone(), rows);
    }

    /// A part of the copy of `table` stands at the source's cursor `after`.
    pub fn copy_reached(&mut self, table: &TableId, after: &CopyCursor) {
        self.cursors.entry(table.clone()).or_default().insert(after.part, after.token.clone());
    }

    /// Rows written into `table`, by a copy (`copied`) or by changes; `dead` of them were set
    /// aside; `soft`: the table keeps deleted rows, marked with the commit's position.
    pub fn wrote(&mut self, table: &TableId, copied: u64, dead: u64, soft: bool) {
        if copied > 0 {
            *self.copying.entry(table.clone()).or_default() += copied;
        }
        self.dead_pending += dead;
        if dead > 0 {
            self.letters_pending.insert(table.clone());
        }
        if soft {
            self.soft_touched.insert(table.clone());
        }
    }

    /// Changes to `table` are applied now, superseding its pending letters if it has any.
    pub fn applying(&mut self, table: &TableId) {
        self.superseding |= self.has_pending_letters(table);
    }

    pub fn copy_done(&mut self, table: &TableId) {
        self.copying.remove(table);
        self.cursors.remove(table);
    }

    /// Copies under way, the rows they hold so far and their cursors, a line per part (copies
    /// read in key order), as [`CopyUnderWay::parts`](crate::CopyUnderWay) reads them back.
    pub fn copies(&self) -> impl Iterator<Item = (&TableId, u64, Option<String>)> {
        self.copying.iter().map(|(t, n)| {
            let parts = self.cursors.get(t).map(|p| p.values().map(String::as_str).collect::<Vec<_>>().join("\n"));
            (t, *n, parts)
        })
    }

    /// The rows of table `from` (one filled aside) moved into `to` in the open transaction:
    /// what was kept about `from` is `to`'s now.
    pub fn moved(&mut self, from: &TableId, to: &TableId) {
        if self.soft_touched.remove(from) {
            self.soft_touched.insert(to.clone());
        }
        if self.letters_pending.remove(from) {
            self.letters_pending.insert(to.clone());
        }
    }

    /// The tables whose new rows take the position of the commit being made.
    pub fn take_soft_touched(&mut self) -> HashSet<TableId> {
        std::mem::take(&mut self.soft_touched)
    }

    /// Whether the commit being made must stamp dead letters with its position.
    pub fn letters_need_position(&self) -> bool {
        self.dead_pending > 0 || self.superseding
    }

    pub fn committed(&mut self) {
        self.dead_committed += std::mem::take(&mut self.dead_pending);
        self.superseding = false;
    }

    /// The open transaction was undone; `letters_pending` as the target now holds them.
    pub fn rolled_back(&mut self, letters_pending: HashSet<TableId>) {
        self.soft_touched.clear();
        self.dead_pending = 0;
        self.superseding = false;
        self.letters_pending = letters_pending;
    }

    /// Dead letters committed since the target was opened.
    pub fn dead_letters(&self) -> u64 {
        self.dead_committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_count_once_committed_and_vanish_with_a_rollback() {
        let t = TableId::new("s", "t");
        let mut b = Bookkeeping::default();
        b.wrote(&t, 0, 2, false);
        assert!(b.letters_need_position() && b.has_pending_letters(&t));
        b.rolled_back(HashSet::new());
        assert!(!b.letters_need_position() && !b.has_pending_letters(&t));
        assert_eq!(b.dead_letters(), 0);
        b.wrote(&t, 0, 3, true);
        assert_eq!(b.take_soft_touched().len(), 1);
        b.committed();
        assert_eq!(b.dead_letters(), 3);
        assert!(!b.letters_need_position());
    }

    #[test]
    fn a_copy_counts_its_rows_and_supersedes_pending_letters() {
        let t = TableId::new("s", "t");
        let mut b = Bookkeeping::new([t.clone()].into());
        assert!(b.copy_started(&t));
        b.wrote(&t, 10, 0, false);
        b.wrote(&t, 5, 0, false);
        assert_eq!(b.copies().collect::<Vec<_>>(), vec![(&t, 15, None)]);
        let at = |part, token: &str| CopyCursor { part, token: token.into() };
        b.copy_reached(&t, &at(1, "b7"));
        b.copy_reached(&t, &at(0, "a3"));
        b.copy_reached(&t, &at(1, "b15"));
        assert_eq!(b.copies().collect::<Vec<_>>(), vec![(&t, 15, Some("a3\nb15".into()))], "a line per part, in order");
        assert!(b.letters_need_position());
        b.copy_done(&t);
        assert_eq!(b.copies().count(), 0);
        b.copy_holds(&t, 15);
        assert_eq!(
            b.copies().collect::<Vec<_>>(),
            vec![(&t, 15, None)],
            "a resumed copy keeps the stored cursor until it reads further"
        );
    }
}
