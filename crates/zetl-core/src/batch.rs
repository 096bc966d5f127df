//! A batch of changes from one or more whole source transactions (or a chunk of one big one),
//! collapsed per key so that the target applies each key's final state once — or, for a
//! changelog target, every change kept in source order with where its transaction committed.

use crate::event::Position;
use crate::model::{Change, ChangeKind, Row, RowIdentity, TableId, TableSchema, Value};
use std::collections::{BTreeMap, HashMap};

/// Maps keyed by a row's encoded key.
type KeyMap<V> = HashMap<Vec<u8>, V, foldhash::fast::RandomState>;

/// The final state of one key within a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyedOp {
    /// Insert or replace the row. Columns that are [`Value::Unchanged`] keep the target's value.
    Upsert(Row),
    /// Delete the row whose key columns equal those of this (old) row.
    Delete(Row),
    /// A delete by the source's time to live (see [`ChangeKind::Expire`]).
    Expire(Row),
    /// An upsert whose key changed from `from`'s while some columns were left unchanged: the
    /// target takes those from the row it holds under the old key.
    Move { row: Row, from: Row },
}

/// The changes of one table within a batch.
#[derive(Debug, Default)]
pub struct TableBatch {
    /// The table was truncated in this batch before the changes below.
    pub truncate: bool,
    /// Keyed tables: where each key's final op is, by key (see [`KeyIndex`]).
    keys: KeyIndex,
    /// Keyed ops in the order their keys were last touched; a superseded op is dropped at once
    /// (a key updated 10 000 times in a batch holds one row, not 10 000).
    ops: Vec<Option<KeyedOp>>,
    /// Tables without a key: changes in source order (inserts only, or full-row identity).
    pub unkeyed: Vec<ChangeKind>,
    /// Changelog batches: every change of the table in source order, none collapsed.
    pub log: Vec<Logged>,
    /// The table is being filled beside the stream (see `SourceEvent::FillStart`): an update
    /// that left columns unchanged, for a key the target holds no row of yet, is dropped
    /// instead of refused. The copy brings that row whole later, or a delete the stream sends
    /// again after its chunk removes it.
    pub filling: bool,
}

impl TableBatch {
    /// Keyed ops with their final state; superseded slots are skipped.
    pub fn keyed_ops(&self) -> impl Iterator<Item = &KeyedOp> {
        self.ops.iter().flatten()
    }

    fn set(&mut self, key: &[u8], op: KeyedOp) {
        // The newer state goes last; the older one's slot is emptied (cheaper than removal).
        if let Some(older) = self.keys.insert(key, self.ops.len()) {
            self.ops[older] = None;
        }
        self.ops.push(Some(op));
    }

    fn current(&self, key: &[u8]) -> Option<&KeyedOp> {
        self.keys.get(key).and_then(|i| self.ops[i].as_ref())
    }
}

/// The ops of a batch by key, in about a third of the memory of a map from owned keys: the
/// encoded keys end to end in one buffer (op `i`'s from `ends[i - 1]` to `ends[i]`), and a
/// hash table of op indexes that hashes and compares those slices. Per op: its key's bytes,
/// 8 bytes of end and about 10 of table, where a `HashMap<Vec<u8>, usize>` holds a 32-byte
/// entry (with room to grow) and an allocation of the key.
#[derive(Default)]
struct KeyIndex {
    table: hashbrown::HashTable<usize>,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex").field("keys", &self.table.len()).finish()
    }
}

/// Op `i`'s key in a [`KeyIndex`]'s buffers.
fn key_of<'a>(bytes: &'a [u8], ends: &[usize], i: usize) -> &'a [u8] {
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &bytes[start..ends[i]]
}

impl KeyIndex {
    /// Notes `key` as op `at`'s (ops are numbered in order, from 0); returns the op it held
    /// before, if any.
    fn insert(&mut self, key: &[u8], at: usize) -> Option<usize> {
        debug_assert_eq!(at, self.ends.len(), "ops are noted in order");
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
        let Self { table, bytes, ends, hasher } = self;
        let hash = |k: &[u8]| std::hash::BuildHasher::hash_one(&*hasher, k);
        let found = table.entry(hash(key), |&i| key_of(bytes, ends, i) == key, |&i| hash(key_of(bytes, ends, i)));
        match found {
            hashbrown::hash_table::Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), at)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(at);
                None
            }
        }
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, key);
        self.table.find(hash, |&i| key_of(&self.bytes, &self.ends, i) == key).copied()
    }
}

/// One entry of a changelog batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// The source transaction it belongs to: an index into [`Batch::commits`], or
    /// `commits.len()` for the transaction still open when the batch was written (its commit
    /// is the first of the next batch).
    pub txn: usize,
    pub what: LoggedOp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoggedOp {
    Change(ChangeKind),
    Truncate,
    /// A row of a fill (see [`TableBatch::filling`]).
    Copied(Row),
}

/// Where and when a source transaction of a changelog batch committed.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceCommit {
    pub position: Position,
    pub commit_time_us: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub tables: BTreeMap<TableId, TableBatch>,
    /// Keep every change ([`TableBatch::log`]) instead of collapsing them per key.
    pub changelog: bool,
    /// Changelog batches: the source transactions committed in this batch, in order.
    pub commits: Vec<SourceCommit>,
    /// Source changes taken in per table, by kind (before collapsing), for metrics.
    pub counts: BTreeMap<TableId, OpCounts>,
    weight: usize,
    changes: u64,
    /// Reused for the encoded keys of each change (new, old).
    scratch: [Vec<u8>; 2],
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub truncates: u64,
}

impl Batch {
    /// An empty batch; `changelog`: keep every change instead of collapsing them per key.
    pub fn new(changelog: bool) -> Self {
        Batch { changelog, ..Batch::default() }
    }

    /// Nothing for the target: no changes, and (changelog) no commit of a transaction whose
    /// changes an earlier batch carried.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.commits.is_empty()
    }

    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Source changes taken in (before collapsing).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn clear(&mut self) {
        self.tables.clear();
        self.commits.clear();
        self.counts.clear();
        self.weight = 0;
        self.changes = 0;
    }

    pub fn truncate(&mut self, table: &TableId) {
        slot(&mut self.counts, table).truncates += 1;
        self.changes += 1;
        let t = slot(&mut self.tables, table);
        if self.changelog {
            t.log.push(Logged { txn: self.commits.len(), what: LoggedOp::Truncate });
            return;
        }
        *t = TableBatch { truncate: true, ..TableBatch::default() };
    }

    /// A changelog batch's open source transaction committed at `position`.
    pub fn source_committed(&mut self, position: &Position, commit_time_us: Option<i64>) {
        if self.changelog {
            self.commits.push(SourceCommit { position: position.clone(), commit_time_us });
        }
    }

    /// A row of a fill (see [`TableBatch::filling`]): it replaces what the batch holds for its
    /// key, and is not counted as a source change.
    pub fn push_copied(&mut self, schema: &TableSchema, row: Row) {
        self.weight += crate::copy_rows::row_weight(&row);
        let table = slot(&mut self.tables, &schema.id);
        if self.changelog {
            table.log.push(Logged { txn: self.commits.len(), what: LoggedOp::Copied(row) });
            return;
        }
        match &schema.identity {
            RowIdentity::Key(k) => table.set(key_bytes(&row, k, &mut self.scratch[0]), KeyedOp::Upsert(row)),
            RowIdentity::FullRow | RowIdentity::None => table.unkeyed.push(ChangeKind::Insert { row }),
        }
    }

    /// Marks `table`'s changes in this batch as those of a table being filled.
    pub fn mark_filling(&mut self, table: &TableId) {
        if let Some(t) = self.tables.get_mut(table) {
            t.filling = true;
        }
    }

    pub fn push(&mut self, schema: &TableSchema, change: Change) {
        let weight = change.weight();
        self.push_all(schema, &change.table, std::iter::once(change.kind), weight);
    }

    /// Changes to `table` (its schema is `schema`: that of the table written), in order, that
    /// weigh `weight` together: the table's entries are looked up once for all of them.
    pub fn push_all(
        &mut self,
        schema: &TableSchema,
        table: &TableId,
        kinds: impl IntoIterator<Item = ChangeKind>,
        weight: usize,
    ) {
        self.weight += weight;
        let counts = slot(&mut self.counts, table);
        // The schema names the table written: a table filled aside takes its table's changes.
        let written = slot(&mut self.tables, &schema.id);
        for kind in kinds {
            self.changes += 1;
            match kind {
                ChangeKind::Insert { .. } => counts.inserts += 1,
                ChangeKind::Update { .. } => counts.updates += 1,
                ChangeKind::Delete { .. } | ChangeKind::Expire { .. } => counts.deletes += 1,
            }
            if self.changelog {
                written.log.push(Logged { txn: self.commits.len(), what: LoggedOp::Change(kind) });
                continue;
            }
            match &schema.identity {
                RowIdentity::Key(key_cols) => push_keyed(written, key_cols, &mut self.scratch, kind),
                RowIdentity::FullRow | RowIdentity::None => written.unkeyed.push(fill_from_old(kind)),
            }
        }
    }
}

/// Unchanged TOAST values come as such even with REPLICA IDENTITY FULL, whose old row is
/// complete: they are taken from there.
fn fill_from_old(kind: ChangeKind) -> ChangeKind {
    match kind {
        ChangeKind::Update { old: Some(old), mut row } => {
            for (value, prev) in row.iter_mut().zip(&old) {
                if matches!(value, Value::Unchanged) {
                    *value = prev.clone();
                }
            }
            ChangeKind::Update { old: Some(old), row }
        }
        kind => kind,
    }
}

/// A change to a keyed table becomes its key's final state in the batch.
fn push_keyed(table: &mut TableBatch, key_cols: &[usize], scratch: &mut [Vec<u8>; 2], kind: ChangeKind) {
    let [new_buf, old_buf] = scratch;
    match kind {
        ChangeKind::Insert { row } => table.set(key_bytes(&row, key_cols, new_buf), KeyedOp::Upsert(row)),
        ChangeKind::Update { old, mut row } => {
            let new_key = key_bytes(&row, key_cols, new_buf);
            let mut moved_from = None;
            if let Some(old) = old {
                let old_key = key_bytes(&old, key_cols, old_buf);
                if old_key != new_key {
                    moved_from = fill_unchanged(&mut row, table.current(old_key));
                    if moved_from.is_none() && row.iter().any(|v| matches!(v, Value::Unchanged)) {
                        moved_from = Some(old.clone());
                    }
                    table.set(old_key, KeyedOp::Delete(old));
                }
            }
            if moved_from.is_none() {
                moved_from = fill_unchanged(&mut row, table.current(new_key));
            }
            let op = match moved_from {
                Some(from) if row.iter().any(|v| matches!(v, Value::Unchanged)) => KeyedOp::Move { row, from },
                _ => KeyedOp::Upsert(row),
            };
            table.set(new_key, op);
        }
        ChangeKind::Delete { old } => table.set(key_bytes(&old, key_cols, new_buf), KeyedOp::Delete(old)),
        ChangeKind::Expire { old } => table.set(key_bytes(&old, key_cols, new_buf), KeyedOp::Expire(old)),
    }
}

/// `map`'s entry for `table`, made if missing: a change is looked up by reference, without
/// cloning the table's name for every change as `entry` would.
fn slot<'a, V: Default>(map: &'a mut BTreeMap<TableId, V>, table: &TableId) -> &'a mut V {
    if !map.contains_key(table) {
        map.insert(table.clone(), V::default());
    }
    map.get_mut(table).expect("inserted above")
}

/// Takes unchanged (unsent) column values from the key's earlier state in this batch, so the
/// target only has to look up what the batch itself does not know. Returns the old key's row
/// when that earlier state was itself a move whose values the target must still supply.
fn fill_unchanged(row: &mut Row, earlier: Option<&KeyedOp>) -> Option<Row> {
    let (prev, from) = match earlier {
        Some(KeyedOp::Upsert(prev)) => (prev, None),
        Some(KeyedOp::Move { row, from }) => (row, Some(from.clone())),
        _ => return None,
    };
    for (value, prev) in row.iter_mut().zip(prev) {
        if matches!(value, Value::Unchanged) {
            *value = prev.clone();
        }
    }
    from
}

/// The net effect of a keyless table's changes (in source order) as rows to remove from the
/// target and rows to add. A removal cancels an identical row added earlier in the batch, or
/// else removes one identical row of the target; identical rows cannot be told apart, so
/// applying the removals first and then the additions ends as applying the changes one by one
/// would, with one statement each instead of one per change.
pub fn net_unkeyed(changes: &[ChangeKind]) -> (Vec<&Row>, Vec<&Row>) {
    let whole = |row: &Row| {
        let mut out = Vec::new();
        row.iter().for_each(|v| encode(v, &mut out));
        out
    };
    let inserts_only = changes.iter().all(|c| matches!(c, ChangeKind::Insert { .. }));
    if inserts_only {
        // An append-only table (a log, history): nothing to cancel, so nothing to hash.
        let added = changes.iter().filter_map(|c| if let ChangeKind::Insert { row } = c { Some(row) } else { None });
        return (Vec::new(), added.collect());
    }
    let mut removed = Vec::new();
    let mut added: Vec<Option<&Row>> = Vec::new();
    // Rows added so far and not cancelled, by content: their places in `added`.
    let mut pending: KeyMap<Vec<usize>> = KeyMap::default();
    for change in changes {
        let (old, new) = match change {
            ChangeKind::Insert { row } => (None, Some(row)),
            ChangeKind::Update { old, row } => (old.as_ref(), Some(row)),
            ChangeKind::Delete { old } | ChangeKind::Expire { old } => (Some(old), None),
        };
        if let Some(old) = old {
            match pending.get_mut(&whole(old)).and_then(Vec::pop) {
                Some(i) => added[i] = None,
                None => removed.push(old),
            }
        }
        if let Some(row) = new {
            pending.entry(whole(row)).or_default().push(added.len());
            added.push(Some(row));
        }
    }
    (removed, added.into_iter().flatten().collect())
}

/// A canonical byte string of the key columns, for hashing (values hold floats, so `Value` is
/// not `Hash`), written over `out`.
pub fn key_bytes<'a>(row: &Row, key_cols: &[usize], out: &'a mut Vec<u8>) -> &'a [u8] {
    out.clear();
    for &i in key_cols {
        encode(row.get(i).unwrap_or(&Value::Null), out);
    }
    out
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    let mut text = |tag: u8, s: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    };
    match v {
        Value::Null => text(0, b""),
        Value::Unchanged => text(1, b""),
        Value::Bool(b) => text(2, &[*b as u8]),
        Value::Int(i) => text(3, &i.to_le_bytes()),
        Value::UInt(u) => text(4, &u.to_le_bytes()),
        Value::Float(f) => text(5, &f.to_bits().to_le_bytes()),
        Value::Decimal(s) => text(6, s.as_bytes()),
        Value::Text(s) => text(7, s.as_bytes()),
        Value::Bytes(b) => text(8, b),
        Value::Date(s) => text(9, s.as_bytes()),
        Value::Time(s) => text(10, s.as_bytes()),
        Value::Timestamp(s) => text(11, s.as_bytes()),
        Value::TimestampTz(s) => text(12, s.as_bytes()),
        Value::Interval(s) => text(13, s.as_bytes()),
        Value::Uuid(s) => text(14, s.as_bytes()),
        Value::Json(s) => text(15, s.as_bytes()),
        Value::Array(items) => {
            out.push(16);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

#[cfg(test)]
mod net_tests {
    use super::*;

    fn row(a: i64, b: &str) -> Row {
        vec![Value::Int(a), Value::Text(b.into())]
    }

    #[test]
    fn removals_cancel_rows_added_earlier_in_the_batch_only() {
        let changes = vec![
            ChangeKind::Delete { old: row(1, "x") },
            ChangeKind::Insert { row: row(1, "x") },
            ChangeKind::Insert { row: row(2, "y") },
            ChangeKind::Insert { row: row(2, "y") },
            ChangeKind::Update { old: Some(row(2, "y")), row: row(3, "z") },
            ChangeKind::Delete { old: row(3, "z") },
            ChangeKind::Update { old: Some(row(4, "w")), row: row(4, "v") },
        ];
        let (removed, added) = net_unkeyed(&changes);
        // The first delete came before the identical insert: it removes a target row.
        assert_eq!(removed, vec![&row(1, "x"), &row(4, "w")]);
        assert_eq!(added, vec![&row(1, "x"), &row(2, "y"), &row(4, "v")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType};

    fn schema(identity: RowIdentity) -> TableSchema {
        let col =
            |n: &str| Column { name: n.into(), ty: ColumnType::Int64, source_type: "int8".into(), nullable: true };
        TableSchema { id: TableId::new("s", "t"), columns: vec![col("id"), col("v"), col("big")], identity }
    }

    fn change(kind: ChangeKind) -> Change {
        Change { table: TableId::new("s", "t"), kind }
    }

    fn row(id: i64, v: i64, big: Value) -> Row {
        vec![Value::Int(id), Value::Int(v), big]
    }

    fn final_ops(b: &Batch) -> Vec<KeyedOp> {
        b.tables[&TableId::new("s", "t")].keyed_ops().cloned().collect()
    }

    #[test]
    fn the_key_index_finds_each_keys_last_op_through_growth() {
        let (mut index, mut expected) = (KeyIndex::default(), HashMap::new());
        for at in 0..20_000usize {
            // Keys of different lengths, each noted about twice, far apart.
            let key = format!("k{}", (at * 7919) % 10_000).into_bytes();
            assert_eq!(index.insert(&key, at), expected.insert(key.clone(), at), "op {at}");
        }
        for (key, at) in &expected {
            assert_eq!(index.get(key), Some(*at));
        }
        assert_eq!(index.get(b"k10000"), None);
    }

    #[test]
    fn collapses_to_last_state_per_key() {
        let s = schema(RowIdentity::Key(vec![0]));
        let mut b = Batch::default();
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Int(9)) }));
        b.push(&s, change(ChangeKind::Update { old: None, row: row(1, 2, Value::Unchanged) }));
        b.push(&s, change(ChangeKind::Insert { row: row(2, 1, Value::Null) }));
        b.push(&s, change(ChangeKind::Delete { old: row(2, 0, Value::Null) }));
        assert_eq!(b.changes(), 4);
        assert_eq!(
            final_ops(&b),
            vec![KeyedOp::Upsert(row(1, 2, Value::Int(9))), KeyedOp::Delete(row(2, 0, Value::Null))]
        );
    }

    /// Changes read together (one event) make the same batch as the same changes one by one.
    #[test]
    fn changes_pushed_together_collapse_as_one_by_one() {
        let s = schema(RowIdentity::Key(vec![0]));
        let kinds = vec![
            ChangeKind::Insert { row: row(1, 1, Value::Int(9)) },
            ChangeKind::Update { old: Some(row(1, 1, Value::Int(9))), row: row(3, 2, Value::Unchanged) },
            ChangeKind::Insert { row: row(2, 1, Value::Null) },
            ChangeKind::Delete { old: row(2, 1, Value::Null) },
        ];
        let (mut together, mut one_by_one) = (Batch::default(), Batch::default());
        together.push_all(&s, &s.id, kinds.clone(), 100);
        for kind in kinds {
            one_by_one.push(&s, change(kind));
        }
        assert_eq!(final_ops(&together), final_ops(&one_by_one));
        assert_eq!(final_ops(&together).len(), 3, "{:?}", final_ops(&together));
        assert_eq!((together.changes(), together.weight), (4, 100));
        let counts = |b: &Batch| {
            let c = &b.counts[&s.id];
            (c.inserts, c.updates, c.deletes)
        };
        assert_eq!(counts(&together), (2, 1, 1));
        assert_eq!(counts(&together), counts(&one_by_one));
    }

    #[test]
    fn a_changelog_batch_keeps_every_change_with_its_transaction() {
        let s = schema(RowIdentity::Key(vec![0]));
        let mut b = Batch::new(true);
        let insert = ChangeKind::Insert { row: row(1, 1, Value::Int(9)) };
        let update = ChangeKind::Update { old: None, row: row(1, 2, Value::Unchanged) };
        b.push(&s, change(insert.clone()));
        b.source_committed(&Position("0/10".into()), Some(7));
        b.push(&s, change(update.clone()));
        b.truncate(&s.id);
        b.source_committed(&Position("0/20".into()), None);
        b.push(&s, change(insert.clone()));
        let t = &b.tables[&s.id];
        let logged: Vec<(usize, &LoggedOp)> = t.log.iter().map(|l| (l.txn, &l.what)).collect();
        assert_eq!(
            logged,
            vec![
                (0, &LoggedOp::Change(insert.clone())),
                (1, &LoggedOp::Change(update)),
                (1, &LoggedOp::Truncate),
                (2, &LoggedOp::Change(insert)),
            ]
        );
        assert_eq!(b.commits.len(), 2, "the last change's transaction is still open");
        assert_eq!(b.commits[0], SourceCommit { position: Position("0/10".into()), commit_time_us: Some(7) });
        assert!(t.keyed_ops().next().is_none() && !t.truncate);
        b.clear();
        assert!(b.commits.is_empty() && b.changelog);
    }

    #[test]
    fn key_change_deletes_old_key() {
        let s = schema(RowIdentity::Key(vec![0]));
        let mut b = Batch::default();
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Int(9)) }));
        b.push(&s, change(ChangeKind::Update { old: Some(row(1, 0, Value::Null)), row: row(5, 1, Value::Unchanged) }));
        assert_eq!(
            final_ops(&b),
            vec![KeyedOp::Delete(row(1, 0, Value::Null)), KeyedOp::Upsert(row(5, 1, Value::Int(9)))]
        );
    }

    #[test]
    fn key_change_with_unknown_unchanged_columns_becomes_a_move() {
        let s = schema(RowIdentity::Key(vec![0]));
        let mut b = Batch::default();
        let old = row(1, 0, Value::Null);
        b.push(&s, change(ChangeKind::Update { old: Some(old.clone()), row: row(5, 1, Value::Unchanged) }));
        b.push(&s, change(ChangeKind::Update { old: None, row: row(5, 2, Value::Unchanged) }));
        assert_eq!(
            final_ops(&b),
            vec![KeyedOp::Delete(old.clone()), KeyedOp::Move { row: row(5, 2, Value::Unchanged), from: old }]
        );
    }

    #[test]
    fn full_row_identity_takes_unchanged_values_from_the_old_row() {
        let s = schema(RowIdentity::FullRow);
        let mut b = Batch::default();
        let old = row(1, 1, Value::Int(9));
        b.push(&s, change(ChangeKind::Update { old: Some(old.clone()), row: row(1, 2, Value::Unchanged) }));
        let t = &b.tables[&TableId::new("s", "t")];
        assert_eq!(t.unkeyed, vec![ChangeKind::Update { old: Some(old), row: row(1, 2, Value::Int(9)) }]);
    }

    #[test]
    fn unkeyed_tables_keep_every_change_in_order() {
        let s = schema(RowIdentity::FullRow);
        let mut b = Batch::default();
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Null) }));
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Null) }));
        b.push(&s, change(ChangeKind::Delete { old: row(1, 1, Value::Null) }));
        assert_eq!(b.tables[&TableId::new("s", "t")].unkeyed.len(), 3);
    }

    #[test]
    fn truncate_drops_earlier_changes_of_the_table() {
        let s = schema(RowIdentity::Key(vec![0]));
        let mut b = Batch::default();
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Null) }));
        b.truncate(&TableId::new("s", "t"));
        b.push(&s, change(ChangeKind::Insert { row: row(2, 1, Value::Null) }));
        let t = &b.tables[&TableId::new("s", "t")];
        assert!(t.truncate);
        assert_eq!(t.keyed_ops().count(), 1);
    }

    #[test]
    fn a_copied_row_replaces_the_key_and_later_changes_replace_it() {
        let s = schema(RowIdentity::Key(vec![0]));
        let t = TableId::new("s", "t");
        let mut b = Batch::default();
        b.push(&s, change(ChangeKind::Insert { row: row(1, 1, Value::Int(10)) }));
        b.push_copied(&s, row(1, 2, Value::Int(20)));
        b.push_copied(&s, row(2, 2, Value::Int(20)));
        // A change after the chunk leaves a column unsent: the copied row supplies it.
        b.push(&s, change(ChangeKind::Update { old: None, row: row(2, 3, Value::Unchanged) }));
        assert_eq!(
            final_ops(&b),
            vec![KeyedOp::Upsert(row(1, 2, Value::Int(20))), KeyedOp::Upsert(row(2, 3, Value::Int(20)))]
        );
        assert_eq!(b.changes(), 2, "copied rows are not source changes");
        assert_eq!(b.counts[&t].inserts + b.counts[&t].updates, 2);
        assert!(!b.tables[&t].filling);
        b.mark_filling(&t);
        assert!(b.tables[&t].filling);
    }
}
