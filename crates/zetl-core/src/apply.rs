//! How changes are applied at the target, per integration with per-table overrides: deletes
//! remove the row (`hard`) or mark it (`soft`: `_zetl_deleted`, `_zetl_synced_at`,
//! `_zetl_position`), a source TRUNCATE is applied or ignored, and a copy made while streaming
//! replaces the table when complete or fills it in place.

use crate::model::TableId;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    #[default]
    Hard,
    Soft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncatePolicy {
    #[default]
    Apply,
    Ignore,
}

/// What a change the target rejects does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop, naming table, key and cause; nothing after it is applied.
    #[default]
    Fail,
    /// Keep the change and its error in `_zetl.dead_letters` and go on.
    DeadLetter,
}

/// Where a copy made while streaming beside the stream (a resync, a table that joins) writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncMode {
    /// Into a table of its own that replaces the table in one transaction when complete:
    /// readers see the old rows until then.
    #[default]
    Replace,
    /// Into the table itself, emptied first: readers see it fill and follow the stream.
    InPlace,
}

/// The settings of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableApply {
    pub deletes: DeleteMode,
    pub truncate: TruncatePolicy,
    pub on_error: OnError,
    pub resync: ResyncMode,
}

/// The `apply` block of an integration, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyDoc {
    #[serde(default)]
    deletes: DeleteMode,
    #[serde(default)]
    truncate: TruncatePolicy,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    resync: ResyncMode,
    /// `schema.table` → overrides.
    #[serde(default)]
    tables: BTreeMap<String, TableApplyDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableApplyDoc {
    deletes: Option<DeleteMode>,
    truncate: Option<TruncatePolicy>,
    on_error: Option<OnError>,
    resync: Option<ResyncMode>,
}

/// Settings for every table of an integration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyPolicy {
    default: TableApply,
    tables: HashMap<TableId, TableApply>,
}

impl ApplyPolicy {
    pub fn from_doc(doc: ApplyDoc) -> Result<Self, String> {
        let default =
            TableApply { deletes: doc.deletes, truncate: doc.truncate, on_error: doc.on_error, resync: doc.resync };
        let mut tables = HashMap::new();
        for (name, t) in doc.tables {
            let Some((schema, table)) = name.split_once('.').filter(|(s, t)| !s.is_empty() && !t.is_empty()) else {
                return Err(format!("apply.tables: `{name}` is not schema.table"));
            };
            let settings = TableApply {
                deletes: t.deletes.unwrap_or(default.deletes),
                truncate: t.truncate.unwrap_or(default.truncate),
                on_error: t.on_error.unwrap_or(default.on_error),
                resync: t.resync.unwrap_or(default.resync),
            };
            tables.insert(TableId::new(schema, table), settings);
        }
        Ok(Self { default, tables })
    }

    /// The same settings for every table.
    pub fn uniform(settings: TableApply) -> Self {
        Self { default: settings, tables: HashMap::new() }
    }

    /// The settings of every table named and of the rest.
    pub fn all(&self) -> impl Iterator<Item = &TableApply> {
        std::iter::once(&self.default).chain(self.tables.values())
    }

    /// The settings of `table`; a table filled aside follows those of the table it replaces.
    pub fn for_table(&self, table: &TableId) -> TableApply {
        let replaced = table.replaced_by_aside();
        self.tables.get(replaced.as_ref().unwrap_or(table)).copied().unwrap_or(self.default)
    }
}

/// What a replay of dead letters did: how many were applied, and (id, error) of those that
/// failed again.
pub type Replayed = (u64, Vec<(i64, String)>);

/// One dead letter as `zetl dead-letters list` shows it.
pub struct DeadLetter {
    pub id: i64,
    pub table: String,
    pub key: String,
    pub op: String,
    pub error: String,
    pub created_at: String,
    pub replayed_at: Option<String>,
    /// When and why a later change to its key made it stale: it is not replayed.
    pub superseded_at: Option<String>,
    pub superseded_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_override_the_integration_default() {
        let doc: ApplyDoc =
            serde_yaml::from_str("deletes: soft\ntables:\n  shop.audit: { deletes: hard, truncate: ignore }\n")
                .expect("parse");
        let p = ApplyPolicy::from_doc(doc).expect("valid");
        let audit = p.for_table(&TableId::new("shop", "audit"));
        assert_eq!((audit.deletes, audit.truncate), (DeleteMode::Hard, TruncatePolicy::Ignore));
        let other = p.for_table(&TableId::new("shop", "orders"));
        assert_eq!((other.deletes, other.truncate), (DeleteMode::Soft, TruncatePolicy::Apply));
        let bad: ApplyDoc = serde_yaml::from_str("tables: { audit: { deletes: soft } }").expect("parse");
        assert!(ApplyPolicy::from_doc(bad).unwrap_err().contains("`audit` is not schema.table"));
        assert!(serde_yaml::from_str::<ApplyDoc>("deletes: gentle").is_err());
        let dl: ApplyDoc = serde_yaml::from_str("on_error: dead_letter").expect("parse");
        let dl = ApplyPolicy::from_doc(dl).expect("valid");
        assert_eq!(dl.for_table(&TableId::new("a", "b")).on_error, OnError::DeadLetter);
        assert_eq!(p.for_table(&TableId::new("a", "b")).on_error, OnError::Fail);
        let fills: ApplyDoc =
            serde_yaml::from_str("deletes: soft\nresync: in_place\ntables: { shop.audit: { resync: replace } }")
                .expect("parse");
        let fills = ApplyPolicy::from_doc(fills).expect("valid");
        let audit = TableId::new("shop", "audit");
        assert_eq!(fills.for_table(&audit).resync, ResyncMode::Replace);
        assert_eq!(fills.for_table(&audit.fill_aside()), fills.for_table(&audit));
        assert_eq!(fills.for_table(&TableId::new("shop", "x")).resync, ResyncMode::InPlace);
        assert!(serde_yaml::from_str::<ApplyDoc>("resync: swap").is_err());
    }
}
