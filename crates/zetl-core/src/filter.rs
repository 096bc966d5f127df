//! `tables.include` / `tables.exclude`: `schema.table` patterns with `*` wildcards.
//! A pattern without a dot matches the table name in any schema. Exclude wins over include;
//! an empty include list means every table. `tables.snapshot` says per pattern whether a
//! table's rows are copied.

use crate::model::TableId;
use serde::Deserialize;

#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    snapshot: Vec<(Pattern, SnapshotMode)>,
    /// Tables zetl keeps at the source for itself, never replicated whatever the patterns say.
    own: Vec<TableId>,
}

/// Whether and when a table's rows are copied (`tables.snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Copied when it joins the integration, and again when resynced.
    #[default]
    Initial,
    /// Never copied: the target table is created (or kept as it is) and gets the changes
    /// from when the table joined on. For a table loaded by other means, or an append-only
    /// log whose history is not wanted.
    Never,
    /// Copied again at every start of `zetl run`: for a table whose changes the stream
    /// cannot carry whole (no key: only inserts are streamed).
    Resync,
}

#[derive(Debug, Clone)]
struct Pattern {
    schema: Option<String>,
    name: String,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty table pattern".into());
        }
        let parts: Vec<&str> = text.split('.').collect();
        match parts.as_slice() {
            [name] => Ok(Pattern { schema: None, name: name.to_string() }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Ok(Pattern { schema: Some(schema.to_string()), name: name.to_string() })
            }
            _ => Err(format!("pattern `{text}` must be `table` or `schema.table` (with `*` wildcards)")),
        }
    }

    fn matches(&self, table: &TableId) -> bool {
        self.schema.as_deref().is_none_or(|s| wildcard(s, &table.schema)) && wildcard(&self.name, &table.name)
    }
}

impl TableFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let parse = |list: &[String]| list.iter().map(|p| Pattern::parse(p)).collect::<Result<Vec<_>, _>>();
        Ok(Self { include: parse(include)?, exclude: parse(exclude)?, snapshot: Vec::new(), own: Vec::new() })
    }

    /// Leaves out `table`, one zetl keeps at the source for itself (a signal table).
    pub fn without(mut self, table: TableId) -> Self {
        self.own.push(table);
        self
    }

    /// With `tables.snapshot`: pattern → mode, the first pattern that matches deciding.
    pub fn with_snapshot_modes(mut self, modes: &[(String, SnapshotMode)]) -> Result<Self, String> {
        for (pattern, mode) in modes {
            self.snapshot.push((Pattern::parse(pattern)?, *mode));
        }
        Ok(self)
    }

    pub fn snapshot_mode(&self, table: &TableId) -> SnapshotMode {
        self.snapshot.iter().find(|(p, _)| p.matches(table)).map(|(_, m)| *m).unwrap_or_default()
    }

    /// Whether the copy the target holds of `table` is made again at this start
    /// (`snapshot: resync`); says so in the log.
    pub fn copy_again_at_start(&self, table: &TableId) -> bool {
        let again = self.snapshot_mode(table) == SnapshotMode::Resync;
        if again {
            tracing::info!(table = %table, "snapshot: resync, so copied again at start");
        }
        again
    }

    /// Include patterns that name one table (no `*`): `(schema if given, name)`. A source can
    /// say that such a table does not exist instead of replicating nothing.
    pub fn literal_includes(&self) -> Vec<(Option<&str>, &str)> {
        self.include
            .iter()
            .filter(|p| !p.name.contains('*') && !p.schema.as_deref().is_some_and(|s| s.contains('*')))
            .map(|p| (p.schema.as_deref(), p.name.as_str()))
            .collect()
    }

    pub fn matches(&self, table: &TableId) -> bool {
        !self.own.contains(table)
            && (self.include.is_empty() || self.include.iter().any(|p| p.matches(table)))
            && !self.exclude.iter().any(|p| p.matches(table))
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(include: &[&str], exclude: &[&str]) -> TableFilter {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        TableFilter::new(&s(include), &s(exclude)).expect("valid patterns")
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("audit_*", "audit_log"));
        assert!(!wildcard("audit_*", "xaudit_log"));
        assert!(wildcard("*_log", "audit_log"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
        assert!(wildcard("orders", "orders"));
        assert!(!wildcard("orders", "orders2"));
    }

    #[test]
    fn exclude_wins_and_empty_include_means_all() {
        let filter = f(&["public.*"], &["public.audit_*"]);
        assert!(filter.literal_includes().is_empty());
        assert_eq!(
            f(&["orders", "d.items", "a*"], &[]).literal_includes(),
            vec![(None, "orders"), (Some("d"), "items")]
        );
        assert!(filter.matches(&TableId::new("public", "orders")));
        assert!(!filter.matches(&TableId::new("public", "audit_log")));
        assert!(!filter.matches(&TableId::new("other", "orders")));
        let all = f(&[], &["tmp_*"]);
        assert!(all.matches(&TableId::new("x", "y")));
        assert!(!all.matches(&TableId::new("x", "tmp_1")));
    }

    #[test]
    fn a_table_zetl_keeps_for_itself_is_never_replicated() {
        let filter = f(&["shop.*"], &[]).without(TableId::new("shop", "zetl_signal"));
        assert!(!filter.matches(&TableId::new("shop", "zetl_signal")));
        assert!(filter.matches(&TableId::new("shop", "zetl_signals")));
        assert!(filter.matches(&TableId::new("shop", "orders")));
    }

    #[test]
    fn the_first_snapshot_pattern_that_matches_decides() {
        let modes = [("shop.audit_log".to_string(), SnapshotMode::Resync), ("shop.*_log".into(), SnapshotMode::Never)];
        let filter = f(&[], &[]).with_snapshot_modes(&modes).expect("valid");
        assert_eq!(filter.snapshot_mode(&TableId::new("shop", "audit_log")), SnapshotMode::Resync);
        assert_eq!(filter.snapshot_mode(&TableId::new("shop", "web_log")), SnapshotMode::Never);
        assert_eq!(filter.snapshot_mode(&TableId::new("shop", "orders")), SnapshotMode::Initial);
        assert!(f(&[], &[]).with_snapshot_modes(&[("a.b.c".into(), SnapshotMode::Never)]).is_err());
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(TableFilter::new(&["a.b.c".into()], &[]).is_err());
        assert!(TableFilter::new(&[".b".into()], &[]).is_err());
        assert!(TableFilter::new(&["".into()], &[]).is_err());
    }
}
