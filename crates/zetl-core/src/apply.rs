//! How changes are applied at the target, per integration with per-table overrides: deletes
//! remove the row (`hard`) or mark it (`soft`: `_zetl_deleted`, `_zetl_synced_at`,
//! `_zetl_position`), and a source TRUNCATE is applied or ignored.

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

/// The settings of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableApply {
    pub deletes: DeleteMode,
    pub truncate: TruncatePolicy,
}

/// The `apply` block of an integration, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyDoc {
    #[serde(default)]
    deletes: DeleteMode,
    #[serde(default)]
    truncate: TruncatePolicy,
    /// `schema.table` → overrides.
    #[serde(default)]
    tables: BTreeMap<String, TableApplyDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableApplyDoc {
    deletes: Option<DeleteMode>,
    truncate: Option<TruncatePolicy>,
}

/// Settings for every table of an integration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyPolicy {
    default: TableApply,
    tables: HashMap<TableId, TableApply>,
}

impl ApplyPolicy {
    pub fn from_doc(doc: ApplyDoc) -> Result<Self, String> {
        let default = TableApply { deletes: doc.deletes, truncate: doc.truncate };
        let mut tables = HashMap::new();
        for (name, t) in doc.tables {
            let Some((schema, table)) = name.split_once('.').filter(|(s, t)| !s.is_empty() && !t.is_empty()) else {
                return Err(format!("apply.tables: `{name}` is not schema.table"));
            };
            let settings = TableApply {
                deletes: t.deletes.unwrap_or(default.deletes),
                truncate: t.truncate.unwrap_or(default.truncate),
            };
            tables.insert(TableId::new(schema, table), settings);
        }
        Ok(Self { default, tables })
    }

    pub fn for_table(&self, table: &TableId) -> TableApply {
        self.tables.get(table).copied().unwrap_or(self.default)
    }
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
    }
}
