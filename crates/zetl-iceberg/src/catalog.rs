//! The SQL catalog: the `iceberg_tables` and `iceberg_namespace_properties` tables that Java's
//! JdbcCatalog (schema version V1) and pyiceberg's SqlCatalog read, in a SQLite file, with
//! zetl's own state (`zetl_checkpoints`, `zetl_tables`) beside them. One SQLite transaction
//! moves every table's `metadata_location` and the checkpoint together, so a crash between
//! table commits cannot leave one table ahead of another or of the checkpoint.

use crate::error::{CatalogContext, IcebergError};
use rusqlite::{params, Connection, OptionalExtension};
use zetl_core::TableId;

pub struct SqlCatalog {
    pub(crate) conn: Connection,
    /// `catalog_name` in the catalog's rows.
    pub(crate) name: String,
    /// For messages: the file.
    pub(crate) label: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name));
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255),
    property_value VARCHAR(1000),
    PRIMARY KEY (catalog_name, namespace, property_key));
CREATE TABLE IF NOT EXISTS zetl_checkpoints (
    integration TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    phase TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zetl_tables (
    integration TEXT NOT NULL,
    table_schema TEXT NOT NULL,
    table_name TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    rows_copied INTEGER NOT NULL DEFAULT 0,
    copy_cursor TEXT,
    copied_at TEXT,
    source_id TEXT,
    source_schema TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (integration, table_schema, table_name));
";

impl SqlCatalog {
    pub fn open(path: &str, name: &str) -> Result<Self, IcebergError> {
        let label = path.to_string();
        let conn = Connection::open(path).catalog(&label, || "opening the catalog file".into())?;
        // Readers (Spark, pyiceberg) open the file while zetl writes, and `zetl lake maintain`
        // holds the write lock while it rewrites a table: wait for them.
        conn.busy_timeout(std::time::Duration::from_secs(900)).catalog(&label, || "setting busy_timeout".into())?;
        conn.execute_batch(SCHEMA).catalog(&label, || "creating the catalog tables".into())?;
        Ok(SqlCatalog { conn, name: name.to_string(), label })
    }

    /// The current metadata file of `table`, if the catalog has the table.
    pub fn metadata_location(&self, table: &TableId) -> Result<Option<String>, IcebergError> {
        self.conn
            .query_row(
                "SELECT metadata_location FROM iceberg_tables \
                 WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                params![self.name, table.schema, table.name],
                |r| r.get(0),
            )
            .optional()
            .catalog(&self.label, || format!("looking up {table}"))
    }

    /// Registers a new table (and its namespace) at its first metadata file.
    pub fn create_table(&self, table: &TableId, location: &str) -> Result<(), IcebergError> {
        self.conn
            .execute(
                "INSERT INTO iceberg_namespace_properties VALUES (?, ?, 'exists', 'true') ON CONFLICT DO NOTHING",
                params![self.name, table.schema],
            )
            .catalog(&self.label, || format!("creating namespace {}", table.schema))?;
        self.conn
            .execute(
                "INSERT INTO iceberg_tables VALUES (?, ?, ?, ?, NULL, 'TABLE')",
                params![self.name, table.schema, table.name, location],
            )
            .catalog(&self.label, || format!("registering {table}"))?;
        Ok(())
    }

    /// Moves `table` from metadata file `from` to `to`; fails when another writer moved it.
    pub fn swap(&self, table: &TableId, from: &str, to: &str) -> Result<(), IcebergError> {
        let n = self
            .conn
            .execute(
                "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
                 WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?",
                params![to, from, self.name, table.schema, table.name, from],
            )
            .catalog(&self.label, || format!("committing {table}"))?;
        if n != 1 {
            return Err(IcebergError::Conflict { table: table.to_string(), expected: from.to_string() });
        }
        Ok(())
    }

    pub fn drop_table(&self, table: &TableId) -> Result<(), IcebergError> {
        self.conn
            .execute(
                "DELETE FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                params![self.name, table.schema, table.name],
            )
            .catalog(&self.label, || format!("dropping {table}"))?;
        Ok(())
    }

    pub fn execute(&self, sql: &str, what: &str) -> Result<(), IcebergError> {
        self.conn.execute_batch(sql).catalog(&self.label, || what.to_string())
    }
}
