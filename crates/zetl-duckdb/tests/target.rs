//! The DuckDB target against a real (embedded) DuckDB file.

use zetl_core::batch::Batch;
use zetl_core::target::Target;
use zetl_core::{
    Change, ChangeKind, Checkpoint, Column, ColumnType, Phase, Position, RowIdentity, TableId, TableSchema, Value,
};
use zetl_duckdb::DuckdbTarget;

fn col(name: &str, ty: ColumnType) -> Column {
    Column { name: name.into(), ty, source_type: String::new(), nullable: true }
}

fn schema(identity: RowIdentity, extra: bool) -> TableSchema {
    let mut columns = vec![
        col("id", ColumnType::Int64),
        col("name", ColumnType::Text),
        col("tags", ColumnType::Array(Box::new(ColumnType::Text))),
        col("span", ColumnType::Interval),
    ];
    if extra {
        columns.push(col("price", ColumnType::Decimal { precision: 10, scale: 2 }));
    }
    TableSchema { id: TableId::new("shop", "items"), columns, identity }
}

fn row(id: i64, name: Value, extra: Option<&str>) -> Vec<Value> {
    let mut r = vec![
        Value::Int(id),
        name,
        Value::Array(vec![Value::Text("a,\"b".into()), Value::Null]),
        Value::Interval("1 day 02:00:00".into()),
    ];
    if let Some(p) = extra {
        r.push(Value::Decimal(p.into()));
    }
    r
}

fn dump(t: &DuckdbTarget) -> Vec<String> {
    let mut stmt =
        t.connection().prepare("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM shop.items ORDER BY id").expect("prepare");
    let n = stmt.query([]).ok();
    drop(n);
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(r) = rows.next().expect("row") {
        let width = r.as_ref().column_count();
        let vals: Vec<String> =
            (0..width).map(|i| r.get::<_, Option<String>>(i).expect("get").unwrap_or("NULL".into())).collect();
        out.push(vals.join("|"));
    }
    out
}

/// A directory of its own for a test, and a DuckDB file path in it that does not exist yet.
fn fresh_file(test: &str, file: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(file);
    let _ = std::fs::remove_file(&path);
    (dir, path)
}

fn change(kind: ChangeKind) -> Change {
    Change { table: TableId::new("shop", "items"), kind }
}

#[test]
fn copy_then_collapsed_changes_with_unchanged_and_new_column() {
    let (dir, path) = fresh_file("zetl-duckdb-test", "a.duckdb");
    let mut t = DuckdbTarget::open(&path, "it").expect("open");
    assert_eq!(t.checkpoint().expect("cp"), None);
    let s = schema(RowIdentity::Key(vec![0]), false);
    t.begin().expect("begin");
    t.ensure_table(&s).expect("table");
    t.copy_start(&s.id).expect("copy start");
    t.copy_rows(&s.id, &[row(1, Value::Text("one".into()), None), row(2, Value::Null, None)]).expect("rows");
    t.copy_done(&s.id, 2, &Default::default()).expect("done");
    t.commit(&Checkpoint { position: Position("0/10".into()), phase: Phase::Streaming }).expect("commit");

    let mut b = Batch::default();
    b.push(&s, change(ChangeKind::Update { old: None, row: row(1, Value::Unchanged, None) }));
    b.push(&s, change(ChangeKind::Delete { old: vec![Value::Int(2), Value::Null, Value::Null, Value::Null] }));
    b.push(&s, change(ChangeKind::Insert { row: row(3, Value::Text("".into()), None) }));
    t.begin().expect("begin");
    t.apply(&b).expect("apply");
    let s2 = schema(RowIdentity::Key(vec![0]), true);
    assert!(t.alter_needs_commit(&s2).expect("alter check"));
    t.commit(&Checkpoint { position: Position("0/15".into()), phase: Phase::Streaming }).expect("commit");
    t.begin().expect("begin");
    let s2 = schema(RowIdentity::Key(vec![0]), true);
    t.ensure_table(&s2).expect("add column");
    let mut b2 = Batch::default();
    b2.push(&s2, change(ChangeKind::Insert { row: row(4, Value::Text("four".into()), Some("12.50")) }));
    t.apply(&b2).expect("apply 2");
    t.commit(&Checkpoint { position: Position("0/20".into()), phase: Phase::Streaming }).expect("commit");

    assert_eq!(
        dump(&t),
        vec![
            "1|one|['a,\"b', NULL]|1 day 02:00:00|NULL",
            "3||['a,\"b', NULL]|1 day 02:00:00|NULL",
            "4|four|['a,\"b', NULL]|1 day 02:00:00|12.50",
        ]
    );
    drop(t);
    let mut t = DuckdbTarget::open(&path, "it").expect("reopen");
    assert_eq!(t.checkpoint().expect("cp").map(|c| c.position.0), Some("0/20".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keyless_full_row_deletes_exactly_one_duplicate() {
    let (dir, path) = fresh_file("zetl-duckdb-test2", "b.duckdb");
    let mut t = DuckdbTarget::open(&path, "it").expect("open");
    let s = schema(RowIdentity::FullRow, false);
    let r = row(7, Value::Text("dup".into()), None);
    let mut b = Batch::default();
    b.push(&s, change(ChangeKind::Insert { row: r.clone() }));
    b.push(&s, change(ChangeKind::Insert { row: r.clone() }));
    b.push(&s, change(ChangeKind::Delete { old: r.clone() }));
    t.begin().expect("begin");
    t.ensure_table(&s).expect("table");
    t.apply(&b).expect("apply");
    t.commit(&Checkpoint { position: Position("1".into()), phase: Phase::Streaming }).expect("commit");
    assert_eq!(dump(&t).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn key_change_keeps_unchanged_columns_from_the_old_row() {
    let (dir, path) = fresh_file("zetl-duckdb-test3", "c.duckdb");
    let mut t = DuckdbTarget::open(&path, "it").expect("open");
    let s = schema(RowIdentity::Key(vec![0]), false);
    t.begin().expect("begin");
    t.ensure_table(&s).expect("table");
    t.copy_start(&s.id).expect("copy start");
    t.copy_rows(&s.id, &[row(1, Value::Text("big".into()), None)]).expect("rows");
    t.copy_done(&s.id, 1, &Default::default()).expect("done");
    t.commit(&Checkpoint { position: Position("1".into()), phase: Phase::Streaming }).expect("commit");
    let mut b = Batch::default();
    let old = vec![Value::Int(1), Value::Null, Value::Null, Value::Null];
    b.push(&s, change(ChangeKind::Update { old: Some(old), row: row(5, Value::Unchanged, None) }));
    t.begin().expect("begin");
    t.apply(&b).expect("apply");
    t.commit(&Checkpoint { position: Position("2".into()), phase: Phase::Streaming }).expect("commit");
    assert_eq!(dump(&t), vec!["5|big|['a,\"b', NULL]|1 day 02:00:00"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_named_like_a_schema_is_not_ambiguous() {
    // DuckDB names a directly opened file's catalog after the file: `shop.items` would then be
    // ambiguous between catalog `shop` and schema `shop`.
    let (dir, path) = fresh_file("zetl-duckdb-test4", "shop.duckdb");
    let mut t = DuckdbTarget::open(&path, "it").expect("open");
    let s = schema(RowIdentity::Key(vec![0]), false);
    let mut b = Batch::default();
    b.push(&s, change(ChangeKind::Insert { row: row(1, Value::Text("one".into()), None) }));
    t.begin().expect("begin");
    t.ensure_table(&s).expect("table");
    t.apply(&b).expect("apply");
    t.commit(&Checkpoint { position: Position("1".into()), phase: Phase::Streaming }).expect("commit");
    assert_eq!(dump(&t).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soft_mode_tells_ttl_expiries_from_deletes() {
    let (dir, path) = fresh_file("zetl-duckdb-test-ttl", "e.duckdb");
    use zetl_core::apply::{ApplyPolicy, DeleteMode, TableApply};
    let policy = ApplyPolicy::uniform(TableApply { deletes: DeleteMode::Soft, ..TableApply::default() });
    let mut t = DuckdbTarget::open(&path, "it").expect("open").with_apply_policy(policy);
    let s = schema(RowIdentity::Key(vec![0]), false);
    let mut b = Batch::default();
    for id in 1..=3 {
        b.push(&s, change(ChangeKind::Insert { row: row(id, Value::Text(format!("n{id}")), None) }));
    }
    t.begin().expect("begin");
    t.ensure_table(&s).expect("table");
    t.apply(&b).expect("apply");
    t.commit(&Checkpoint { position: Position("1".into()), phase: Phase::Streaming }).expect("commit");
    let mut b = Batch::default();
    b.push(&s, change(ChangeKind::Delete { old: row(1, Value::Null, None) }));
    b.push(&s, change(ChangeKind::Expire { old: row(2, Value::Null, None) }));
    t.begin().expect("begin");
    t.apply(&b).expect("apply");
    t.commit(&Checkpoint { position: Position("2".into()), phase: Phase::Streaming }).expect("commit");
    let flags: Vec<(i64, bool, bool)> = t
        .connection()
        .prepare("SELECT id, _zetl_deleted, _zetl_expired FROM shop.items ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
        .expect("flags");
    assert_eq!(flags, vec![(1, true, false), (2, true, true), (3, false, false)]);
    let _ = std::fs::remove_dir_all(&dir);
}
