//! What the source's catalog says: prerequisites, the tables that match the filters, their
//! columns, keys and replica identity, and the types that have no fixed OID.

use crate::error::{PgError, SqlContext};
use crate::partitions::{self, Leaf};
use crate::pgoutput::ReplicaIdentity;
use crate::types::{map_type, parse_text, TypeCatalog};
use tokio_postgres::Client;
use zetl_core::filter::TableFilter;
use zetl_core::{Column, ColumnType, RowIdentity, TableId, TableSchema, Value};

/// A source table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub id: TableId,
    pub oid: u32,
    pub replica_identity: ReplicaIdentity,
    pub primary_key: Vec<String>,
    pub identity_index: Vec<String>,
    pub partitioned: bool,
    /// The leaf partitions of a partitioned table (see `partitions`).
    pub leaves: Vec<Leaf>,
    pub pages: i64,
    pub estimated_rows: f64,
}

impl TableInfo {
    /// The identity a copy of this table is stored with (see `partitions`).
    pub fn source_id(&self) -> String {
        partitions::source_id(self.oid, &self.leaves)
    }

    /// Publishing a table with no replica identity makes the source reject its UPDATEs and
    /// DELETEs, so such tables are published for inserts only (see `publication`).
    pub fn has_identity(&self) -> bool {
        match self.replica_identity {
            ReplicaIdentity::Full => true,
            ReplicaIdentity::Index => !self.identity_index.is_empty(),
            ReplicaIdentity::Default => !self.primary_key.is_empty(),
            ReplicaIdentity::Nothing => false,
        }
    }

    /// The key used at the target, by the same rules as the stream's Relation messages
    /// (`stream::identity_of`): the primary key (default identity), the identity index, or for
    /// REPLICA IDENTITY FULL the primary key if there is one, else the whole row.
    pub fn identity(&self, columns: &[Column]) -> RowIdentity {
        let index_of = |names: &[String]| -> Option<Vec<usize>> {
            if names.is_empty() {
                return None;
            }
            names.iter().map(|n| columns.iter().position(|c| &c.name == n)).collect()
        };
        match self.replica_identity {
            ReplicaIdentity::Default => index_of(&self.primary_key).map_or(RowIdentity::None, RowIdentity::Key),
            ReplicaIdentity::Index => index_of(&self.identity_index).map_or(RowIdentity::None, RowIdentity::Key),
            ReplicaIdentity::Full => index_of(&self.primary_key).map_or(RowIdentity::FullRow, RowIdentity::Key),
            ReplicaIdentity::Nothing => RowIdentity::None,
        }
    }
}

/// Pages and rows of tables about to be copied, from their size now: statistics are missing
/// for a table loaded and never analysed (`reltuples` = -1, `relpages` = 0) and old for one
/// that grew since. Rows scale with the pages as the planner scales them; without statistics
/// they are the planner's own guess for a scan (from the pages and the row width).
pub async fn size_up(client: &Client, tables: &mut [TableInfo]) -> Result<(), PgError> {
    let oids: Vec<u32> = tables.iter().filter(|t| !t.partitioned).map(|t| t.oid).collect();
    let sql = "SELECT oid, pg_relation_size(oid) / current_setting('block_size')::int8 FROM unnest($1::oid[]) AS oid";
    let rows = client.query(sql, &[&oids]).await.ctx(|| "sizing the tables to copy".into())?;
    // NULL for a table dropped meanwhile: sized as listed.
    let sizes: std::collections::HashMap<u32, i64> =
        rows.iter().filter_map(|r| Some((r.get(0), r.get::<_, Option<i64>>(1)?))).collect();
    for t in tables.iter_mut().filter(|t| !t.partitioned) {
        let pages = sizes.get(&t.oid).copied().unwrap_or(t.pages);
        if t.estimated_rows > 0.0 && t.pages > 0 {
            t.estimated_rows *= pages as f64 / t.pages as f64;
        } else if pages > 0 {
            t.estimated_rows = planned_rows(client, &t.id).await?;
        }
        t.pages = pages;
    }
    Ok(())
}

/// The planner's row estimate for reading the whole table (`EXPLAIN`, nothing run).
async fn planned_rows(client: &Client, table: &TableId) -> Result<f64, PgError> {
    let sql = format!("EXPLAIN SELECT * FROM {}", quote_table(table));
    let rows = client.simple_query(&sql).await.ctx(|| format!("estimating the rows of {table}"))?;
    let plan = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    Ok(plan.as_deref().and_then(plan_rows).unwrap_or(0.0))
}

/// `rows=N` of a plan's first line: `Seq Scan on t  (cost=0.00..35.50 rows=2550 width=4)`.
fn plan_rows(line: &str) -> Option<f64> {
    line.split("rows=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

pub async fn check_wal_level(client: &Client) -> Result<(), PgError> {
    let row = client.query_one("SHOW wal_level", &[]).await.ctx(|| "reading wal_level".into())?;
    let level: String = row.get(0);
    if level != "logical" {
        return Err(PgError::Prerequisite(format!(
            "wal_level is `{level}`; logical replication needs `logical`: run \
             `ALTER SYSTEM SET wal_level = logical` and restart PostgreSQL"
        )));
    }
    Ok(())
}

const KEY_COLUMNS: &str = "SELECT array_agg(a.attname::text ORDER BY k.ord) \
     FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indrelid = c.oid AND ";

/// User tables (not partitions: their parent is published with `publish_via_partition_root`).
pub async fn list_tables(client: &Client, filter: &TableFilter) -> Result<Vec<TableInfo>, PgError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text, c.relkind::text, \
                c.relpages::int8, c.reltuples::float8, \
                ({KEY_COLUMNS} i.indisprimary) AS pk, ({KEY_COLUMNS} i.indisreplident) AS ri \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_zetl') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
         ORDER BY 2, 3"
    );
    let rows = client.query(&sql, &[]).await.ctx(|| "listing tables".into())?;
    let mut tables = Vec::new();
    for row in rows {
        let id = TableId::new(row.get::<_, String>(1), row.get::<_, String>(2));
        if !filter.matches(&id) {
            continue;
        }
        let ident: String = row.get(3);
        let kind: String = row.get(4);
        tables.push(TableInfo {
            id,
            oid: row.get(0),
            replica_identity: ident
                .as_bytes()
                .first()
                .and_then(|c| ReplicaIdentity::from_code(*c))
                .unwrap_or(ReplicaIdentity::Default),
            primary_key: row.get::<_, Option<Vec<String>>>(7).unwrap_or_default(),
            identity_index: row.get::<_, Option<Vec<String>>>(8).unwrap_or_default(),
            partitioned: kind == "p",
            leaves: Vec::new(),
            pages: row.get(5),
            estimated_rows: row.get(6),
        });
    }
    for t in tables.iter_mut().filter(|t| t.partitioned) {
        t.leaves = leaves(client, t).await?;
    }
    Ok(tables)
}

async fn leaves(client: &Client, table: &TableInfo) -> Result<Vec<Leaf>, PgError> {
    let rows = client
        .query(
            // The leaf's row type is created with the table and not touched by ATTACH (which
            // updates its pg_class row): same transaction as its pg_inherits row means it was
            // created as a partition.
            "SELECT c.oid, c.relfilenode, c.oid::regclass::text, coalesce(ty.xmin = i.xmin, false) \
             FROM pg_partition_tree($1::oid::regclass) t JOIN pg_class c ON c.oid = t.relid \
             JOIN pg_type ty ON ty.oid = c.reltype \
             LEFT JOIN pg_inherits i ON i.inhrelid = c.oid WHERE t.isleaf AND c.relkind = 'r'",
            &[&table.oid],
        )
        .await
        .ctx(|| format!("listing the partitions of {}", table.id))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (oid, filenode, name, created_as_partition): (u32, u32, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let new_is_harmless = created_as_partition || {
            let empty = client
                .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM ONLY {name})"), &[])
                .await
                .ctx(|| format!("looking into partition {name}"))?;
            empty.get(0)
        };
        out.push(Leaf { oid, filenode, name, new_is_harmless });
    }
    Ok(out)
}

/// The table's primary key columns now, in key order (empty without one).
pub async fn primary_key(client: &Client, oid: u32) -> Result<Vec<String>, PgError> {
    let sql = format!("SELECT ({KEY_COLUMNS} i.indisprimary) FROM pg_class c WHERE c.oid = $1");
    let row = client.query_opt(&sql, &[&oid]).await.ctx(|| format!("reading the primary key of relation {oid}"))?;
    Ok(row.and_then(|r| r.get::<_, Option<Vec<String>>>(0)).unwrap_or_default())
}

pub async fn type_catalog(client: &Client) -> Result<TypeCatalog, PgError> {
    let mut catalog = TypeCatalog::default();
    let rows = client
        .query(
            "SELECT t.oid, t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
             FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1, 2",
            &[],
        )
        .await
        .ctx(|| "reading enum types".into())?;
    for r in rows {
        catalog.enums.insert(r.get(0), (r.get(1), r.get(2)));
    }
    let rows = client
        .query("SELECT oid, typname::text, typelem, typcategory::text FROM pg_type", &[])
        .await
        .ctx(|| "reading types".into())?;
    for r in rows {
        let oid: u32 = r.get(0);
        let elem: u32 = r.get(2);
        let category: String = r.get(3);
        if category == "A" && elem != 0 {
            catalog.arrays.insert(oid, elem);
        }
        catalog.names.insert(oid, r.get(1));
    }
    Ok(catalog)
}

/// The table's columns in attribute order, which is the order pgoutput sends them in
/// (generated columns are not sent by PostgreSQL 15, so they are left out here too).
pub async fn table_schema(client: &Client, table: &TableInfo, types: &TypeCatalog) -> Result<TableSchema, PgError> {
    let rows = client
        .query(
            "SELECT attname::text, atttypid, atttypmod, attnotnull FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&table.oid],
        )
        .await
        .ctx(|| format!("reading the columns of {}", table.id))?;
    let columns: Vec<Column> = rows
        .iter()
        .map(|r| {
            let (ty, source_type) = map_type(r.get(1), r.get(2), types);
            Column { name: r.get(0), ty, source_type, nullable: !r.get::<_, bool>(3) }
        })
        .collect();
    let identity = table.identity(&columns);
    Ok(TableSchema { id: table.id.clone(), columns, identity })
}

/// What the rows that existed before a column was added hold in it.
pub enum AddedColumn {
    /// NULL (no DEFAULT), or the column is gone again.
    Null,
    /// A constant DEFAULT, kept by PostgreSQL 11+ as the column's missing value.
    Value(Value),
    /// A DEFAULT with no missing value: volatile (the table was rewritten with a value per row),
    /// or set after the column was added; the rows' values are not known here.
    Unknown,
}

pub async fn added_column_value(client: &Client, oid: u32, column: &Column) -> Result<AddedColumn, PgError> {
    let row = client
        .query_opt(
            "SELECT a.atthasmissing, a.attmissingval::text, \
                    EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped",
            &[&oid, &column.name],
        )
        .await
        .ctx(|| format!("reading the default of the added column {}", column.name))?;
    let Some(row) = row else { return Ok(AddedColumn::Null) };
    let (missing, value, has_default): (bool, Option<String>, bool) = (row.get(0), row.get(1), row.get(2));
    match (missing, value) {
        // One-element array of the column's type.
        (true, Some(text)) => match parse_text(&ColumnType::Array(Box::new(column.ty.clone())), &text) {
            Ok(Value::Array(mut items)) if items.len() == 1 => Ok(AddedColumn::Value(items.remove(0))),
            _ => Err(PgError::Protocol(format!("cannot read the missing value {text} of column {}", column.name))),
        },
        _ if has_default => Ok(AddedColumn::Unknown),
        _ => Ok(AddedColumn::Null),
    }
}

pub use zetl_core::sql::{quote_ident, quote_literal, quote_table};

#[cfg(test)]
mod tests {
    use super::plan_rows;

    #[test]
    fn the_row_estimate_is_read_from_the_plan() {
        assert_eq!(plan_rows("Seq Scan on t  (cost=0.00..35.50 rows=2550 width=4)"), Some(2550.0));
        assert_eq!(plan_rows("Result  (cost=0.00..0.01 rows=1 width=0)"), Some(1.0));
        assert_eq!(plan_rows("Seq Scan on t"), None);
    }
}
