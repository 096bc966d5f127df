//! Whole-table comparison of a PostgreSQL source table with its copy in a PostgreSQL target,
//! by the rules of [`crate::compare`] (both sides read the same way, so they normalise alike).

use crate::compare::{connect_pg, diff, ident, pg_columns, read_pg};

/// Compares every `(source table, target table)` pair (`"schema.table"` each), reading only
/// the target rows that pass `target_filter` (e.g. `NOT _zetl_deleted`; empty for all), and
/// panics naming every pair that differs with its first differing row.
pub fn assert_pg_tables_equal(source_url: &str, target_url: &str, tables: &[(&str, &str)], target_filter: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    let connect = |url: &str| connect_pg(&runtime, url).unwrap_or_else(|e| panic!("cannot compare: {e}"));
    let (source, target) = (connect(source_url), connect(target_url));
    let failures: Vec<String> = tables
        .iter()
        .filter_map(|(s, t)| {
            let quote = |name: &str| -> Result<String, String> {
                let (schema, table) = name.split_once('.').ok_or_else(|| format!("{name}: expected `schema.table`"))?;
                Ok(format!("{}.{}", ident(schema), ident(table)))
            };
            let run = || -> Result<(), String> {
                let (sq, tq) = (quote(s)?, quote(t)?);
                let columns = pg_columns(&runtime, &source, s, &sq)?;
                let a = read_pg(&runtime, &source, s, &sq, &columns, "")?;
                let b = read_pg(&runtime, &target, t, &tq, &columns, target_filter)?;
                diff(s, &columns, a, b)
            };
            run().err()
        })
        .collect();
    if !failures.is_empty() {
        panic!("source and target differ ({} of {} tables):\n{}", failures.len(), tables.len(), failures.join("\n"));
    }
}
