//! What a staged batch must be checked for before it reaches its table (see `screen`, which
//! runs the checks): planned once per stage from the table as the target's catalog shows it.

use crate::catalog::TableColumn;
use zetl_core::TableSchema;

/// One way a staged column can be rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The staged value must convert to the table column's type; `exactly`: without changing
    /// (the table's type is not the one zetl gives the column, so the cast may round).
    Converts { column: usize, to: String, exactly: bool },
    /// The table column is NOT NULL.
    NotNull { column: usize },
}

/// The checks a staged batch needs before it reaches a table with `table` columns; a stage's
/// own column types are `staged` (same order as the schema's columns). Empty when every staged
/// value goes in as it is, the common case.
pub fn plan(schema: &TableSchema, staged: &[String], table: &[TableColumn]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (column, col) in schema.columns.iter().enumerate() {
        let Some(t) = table.iter().find(|t| t.name == col.name) else { continue };
        let as_text = crate::types::staged_as_text(&col.ty);
        let differs = staged.get(column) != Some(&t.data_type);
        if as_text || differs {
            let exactly = if as_text { t.data_type != crate::types::target_type(&col.ty) } else { differs };
            checks.push(Check::Converts { column, to: t.data_type.clone(), exactly });
        }
        if !t.nullable {
            checks.push(Check::NotNull { column });
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use zetl_core::{Column, ColumnType, RowIdentity, TableId};

    fn column(name: &str, ty: ColumnType) -> Column {
        Column { name: name.into(), ty, source_type: String::new(), nullable: true }
    }

    #[test]
    fn only_what_can_fail_is_checked() {
        let schema = TableSchema {
            id: TableId::new("s", "t"),
            columns: vec![
                column("id", ColumnType::Int32),
                column("v", ColumnType::Int32),
                column("iv", ColumnType::Interval),
            ],
            identity: RowIdentity::Key(vec![0]),
        };
        let staged = vec!["INTEGER".to_string(), "INTEGER".to_string(), "VARCHAR".to_string()];
        let table = |v: &str, nullable: bool| {
            vec![
                TableColumn { name: "id".into(), data_type: "INTEGER".into(), nullable: true },
                TableColumn { name: "v".into(), data_type: v.into(), nullable },
                TableColumn { name: "iv".into(), data_type: "INTERVAL".into(), nullable: true },
            ]
        };
        // As zetl made it: only the staged interval text must still parse.
        assert_eq!(
            plan(&schema, &staged, &table("INTEGER", true)),
            vec![Check::Converts { column: 2, to: "INTERVAL".into(), exactly: false }]
        );
        // Narrowed and NOT NULL by the user.
        let narrowed = plan(&schema, &staged, &table("SMALLINT", false));
        assert!(narrowed.contains(&Check::Converts { column: 1, to: "SMALLINT".into(), exactly: true }));
        assert!(narrowed.contains(&Check::NotNull { column: 1 }));
    }
}
