//! The comparison itself: equal when only the printing differs, and a precise report when the
//! data differs. Needs `--features compare` (and PostgreSQL binaries).
#![cfg(feature = "compare")]

use std::path::PathBuf;

use duckdb::Connection;
use zetl_testkit::compare::{assert_tables_equal, compare_table};
use zetl_testkit::{PgOptions, PgServer};

const SOURCE: &str = r#"
CREATE TABLE t (id int PRIMARY KEY, b bool, f float8, r float4, n numeric(10,2), big numeric,
                by bytea, iv interval, arr int[], tarr text[], j jsonb, s text, c char(3),
                ts timestamptz);
INSERT INTO t VALUES
 (1, true, 'NaN', 0.1, 1.50, 12345678901234567890.5, '\x00ff41', '1 year 2 mons 3 days 04:05:06.5',
  '{1,NULL}', '{"a,b",NULL,""}', '{"b": 1, "a": [1.0, "x"]}', 'text', 'ab',
  '2024-01-02 03:04:05.5+02'),
 (2, false, '-Infinity', -2.5, 0, 0.000, '\x', '-1 days +02:00:00', '{}', '{}', 'null', NULL,
  NULL, NULL),
 (3, NULL, 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', '', NULL);
CREATE TABLE k (a int, b text);
INSERT INTO k VALUES (1, 'dup'), (1, 'dup'), (2, NULL);
"#;

/// What zetl would have written for SOURCE, printed the DuckDB way.
const TARGET: &str = r#"
CREATE SCHEMA public;
CREATE TABLE public.t (id INTEGER, b BOOLEAN, f DOUBLE, r REAL, n DECIMAL(10,2), big VARCHAR,
                       "by" BLOB, iv INTERVAL, arr INTEGER[], tarr VARCHAR[], j JSON, s VARCHAR,
                       c VARCHAR, ts TIMESTAMPTZ, dropped_at_source VARCHAR);
INSERT INTO public.t VALUES
 (3, NULL, 1e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', '   ', NULL, 'x'),
 (1, true, 'NaN', 0.1, 1.5, '12345678901234567890.5', from_hex('00FF41'),
  INTERVAL '14 months 3 days 04:05:06.5', [1, NULL], ['a,b', NULL, ''],
  '{"a":[1,"x"],"b":1}', 'text', 'ab ', TIMESTAMPTZ '2024-01-02 01:04:05.5+00', NULL),
 (2, false, '-inf', -2.5, 0.00, '0.000', from_hex(''), INTERVAL '-1 days 02:00:00', [], [],
  'null', NULL, NULL, NULL, NULL);
CREATE TABLE public.k (a INTEGER, b VARCHAR);
INSERT INTO public.k VALUES (2, NULL), (1, 'dup'), (1, 'dup');
"#;

struct Fixture {
    pg: PgServer,
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pg = PgServer::start(PgOptions::default()).expect("start PostgreSQL");
        pg.psql("zetl", SOURCE).expect("source tables");
        let dir = std::env::temp_dir().join(format!("zetl-compare-{name}-{}-{}", std::process::id(), pg.port()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let f = Fixture { pg, dir };
        f.duck().execute_batch(TARGET).expect("target tables");
        f
    }

    fn path(&self) -> PathBuf {
        self.dir.join("w.duckdb")
    }

    fn duck(&self) -> Connection {
        Connection::open(self.path()).expect("open duckdb")
    }

    fn target(&self, sql: &str) {
        self.duck().execute_batch(sql).expect("change the target");
    }

    fn diff(&self, table: &str) -> String {
        compare_table(&self.pg.url("zetl"), &self.path(), table).expect_err("the comparison should find a difference")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn contains_all(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "`{p}` missing in:\n{text}");
    }
}

#[test]
fn equal_when_only_the_printing_differs() {
    let f = Fixture::new("equal");
    assert_tables_equal(&f.pg.url("zetl"), &f.path(), &["public.t", "public.k"]);
}

#[test]
fn value_differences_are_reported_with_key_column_and_values() {
    let f = Fixture::new("values");
    let url = f.pg.url("zetl");
    // NULL is not the empty string.
    f.target("UPDATE public.t SET s = '' WHERE id = 2");
    contains_all(&f.diff("public.t"), &["id=\"2\"", "column `s`", "source NULL", "target \"\"", "3 rows"]);
    f.target("UPDATE public.t SET s = NULL WHERE id = 2; UPDATE public.t SET f = 1 WHERE id = 1");
    contains_all(&f.diff("public.t"), &["id=\"1\"", "column `f`", "NaN"]);
    f.target(
        "UPDATE public.t SET f = 'NaN' WHERE id = 1; UPDATE public.t SET iv = INTERVAL '14 months 3 days' WHERE id = 1",
    );
    contains_all(&f.diff("public.t"), &["column `iv`"]);
    f.target("UPDATE public.t SET iv = INTERVAL '14 months 3 days 04:05:06.5' WHERE id = 1; UPDATE public.t SET \"by\" = from_hex('00FF42') WHERE id = 1");
    contains_all(&f.diff("public.t"), &["column `by`"]);
    f.target("UPDATE public.t SET \"by\" = from_hex('00FF41') WHERE id = 1; UPDATE public.t SET tarr = ['a,b', 'NULL', ''] WHERE id = 1");
    contains_all(&f.diff("public.t"), &["column `tarr`"]);
    f.target("UPDATE public.t SET tarr = ['a,b', NULL, ''] WHERE id = 1; UPDATE public.t SET j = '{\"a\":[1,\"x\"],\"b\":2}' WHERE id = 1");
    contains_all(&f.diff("public.t"), &["column `j`"]);
    f.target("UPDATE public.t SET j = '{\"b\":1.0,\"a\":[1,\"x\"]}' WHERE id = 1");
    assert_eq!(compare_table(&url, &f.path(), "public.t"), Ok(()));
}

#[test]
fn missing_extra_and_duplicate_rows_and_columns() {
    let f = Fixture::new("rows");
    f.target("DELETE FROM public.t WHERE id = 2");
    contains_all(&f.diff("public.t"), &["key (id=\"2\")", "missing at the target", "source has 3 rows, target has 2"]);
    f.target(
        "INSERT INTO public.t (id) VALUES (2); UPDATE public.t SET b = false, f = '-inf', \
         r = -2.5, n = 0, big = '0', \"by\" = from_hex(''), iv = INTERVAL '-1 days 02:00:00', \
         arr = [], tarr = [], j = 'null' WHERE id = 2",
    );
    assert_eq!(compare_table(&f.pg.url("zetl"), &f.path(), "public.t"), Ok(()));
    f.target("INSERT INTO public.t (id) VALUES (2)");
    contains_all(&f.diff("public.t"), &["key (id=\"2\") appears 2 times at the target", "target has 4"]);
    // Keyless: one duplicate too few.
    f.target("DELETE FROM public.k WHERE rowid = (SELECT min(rowid) FROM public.k WHERE a = 1)");
    contains_all(&f.diff("public.k"), &["missing at the target", "no primary key", "a=\"1\", b=\"dup\""]);
    f.target("ALTER TABLE public.k DROP COLUMN b");
    contains_all(&f.diff("public.k"), &["column(s) b missing at the target"]);
    f.target("DROP TABLE public.k");
    contains_all(&f.diff("public.k"), &["does not exist at the target"]);
}

#[test]
#[should_panic(expected = "source and target differ (1 of 2 tables)")]
fn assert_tables_equal_panics_naming_the_tables() {
    let f = Fixture::new("panics");
    f.target("UPDATE public.k SET b = 'changed' WHERE a = 2");
    assert_tables_equal(&f.pg.url("zetl"), &f.path(), &["public.t", "public.k"]);
}
