//! The SQL catalog: the `iceberg_tables` and `iceberg_namespace_properties` tables that Java's
//! JdbcCatalog (schema version V1) and pyiceberg's SqlCatalog read, in a SQLite file or a
//! PostgreSQL database, with zetl's own state (`zetl_checkpoints`, `zetl_tables`) beside them.
//! One catalog transaction moves every table's `metadata_location` and the checkpoint
//! together, so a crash between table commits cannot leave one table ahead of another or of
//! the checkpoint.

use crate::db::{Arg, Cell, Db};
use crate::error::{CatalogContext, IcebergError};
use crate::IcebergTargetConfig;
use zetl_core::TableId;

pub struct SqlCatalog {
    pub(crate) db: Db,
    /// `catalog_name` in the catalog's rows.
    pub(crate) name: String,
    /// For messages: the file or the database, without a password.
    pub(crate) label: String,
    /// The integration's writer lock on a SQLite catalog (see `claim`).
    writer_lock: Option<std::fs::File>,
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
    rows_copied BIGINT NOT NULL DEFAULT 0,
    copy_cursor TEXT,
    copied_at TEXT,
    source_id TEXT,
    source_schema TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (integration, table_schema, table_name));
";

impl SqlCatalog {
    /// Opens the catalog of a target's settings, creating its tables where they are missing.
    pub fn open(config: &IcebergTargetConfig) -> Result<Self, IcebergError> {
        let label = config.catalog.url.to_string();
        let db = Db::open(&config.catalog.url).catalog(&label, || "opening the catalog".into())?;
        db.batch(SCHEMA).catalog(&label, || "creating the catalog tables".into())?;
        db.batch(crate::letters::SCHEMA).catalog(&label, || "creating zetl_dead_letters".into())?;
        Ok(SqlCatalog { db, name: config.catalog.name.clone(), label, writer_lock: None })
    }

    pub(crate) fn execute(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        what: impl FnOnce() -> String,
    ) -> Result<u64, IcebergError> {
        self.db.execute(sql, args).catalog(&self.label, what)
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<Vec<Cell>>, IcebergError> {
        self.db.query(sql, args).catalog(&self.label, what)
    }

    /// `zetl check`: the catalog database is reachable (a SQLite file's directory exists);
    /// creates nothing.
    pub fn check(config: &IcebergTargetConfig) -> Result<(), IcebergError> {
        let label = config.catalog.url.to_string();
        match config.sqlite_path().map(std::path::Path::new) {
            Some(path) => match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                    Err(IcebergError::State(format!("the directory of the catalog {label} does not exist")))
                }
                _ => Ok(()),
            },
            None => {
                let db = Db::open(&config.catalog.url).catalog(&label, || "connecting".into())?;
                db.query("SELECT 1", &[]).catalog(&label, || "querying".into()).map(drop)
            }
        }
    }

    /// The current time as the catalog database writes it in `updated_at`.
    pub(crate) fn now_sql(&self) -> &'static str {
        if self.db.is_postgres() {
            r#"to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
        } else {
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        }
    }

    /// The current metadata file of `table`, if the catalog has the table.
    pub fn metadata_location(&self, table: &TableId) -> Result<Option<String>, IcebergError> {
        let rows = self.query(
            "SELECT metadata_location FROM iceberg_tables \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
            &[(&self.name).into(), (&table.schema).into(), (&table.name).into()],
            || format!("looking up {table}"),
        )?;
        Ok(rows.first().and_then(|r| r[0].text()))
    }

    /// Registers a new table (and its namespace) at its first metadata file.
    pub fn create_table(&self, table: &TableId, location: &str) -> Result<(), IcebergError> {
        self.execute(
            "INSERT INTO iceberg_namespace_properties VALUES (?, ?, 'exists', 'true') ON CONFLICT DO NOTHING",
            &[(&self.name).into(), (&table.schema).into()],
            || format!("creating namespace {}", table.schema),
        )?;
        self.execute(
            "INSERT INTO iceberg_tables VALUES (?, ?, ?, ?, NULL, 'TABLE')",
            &[(&self.name).into(), (&table.schema).into(), (&table.name).into(), location.into()],
            || format!("registering {table}"),
        )?;
        Ok(())
    }

    /// Moves `table` from metadata file `from` to `to`; fails when another writer moved it.
    pub fn swap(&self, table: &TableId, from: &str, to: &str) -> Result<(), IcebergError> {
        let n = self.execute(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?",
            &[to.into(), from.into(), (&self.name).into(), (&table.schema).into(), (&table.name).into(), from.into()],
            || format!("committing {table}"),
        )?;
        if n != 1 {
            return Err(IcebergError::Conflict { table: table.to_string(), expected: from.to_string() });
        }
        Ok(())
    }

    pub fn drop_table(&self, table: &TableId) -> Result<(), IcebergError> {
        self.execute(
            "DELETE FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
            &[(&self.name).into(), (&table.schema).into(), (&table.name).into()],
            || format!("dropping {table}"),
        )?;
        Ok(())
    }

    /// Makes this process the integration's only writer (`zetl run`), for as long as it
    /// lives: SQLite: an exclusive lock on `<catalog>.<integration>.lock` beside the file
    /// (freed by the kernel when the process ends); PostgreSQL: a session advisory lock on
    /// the catalog connection (tried for a few seconds: a writer killed a moment ago holds
    /// it until the server notices). `false` when another process holds it.
    pub fn claim(&mut self, integration: &str) -> Result<bool, IcebergError> {
        let what = || format!("taking the writer lock of integration {integration}");
        match self.db.sqlite_path() {
            Some(path) => {
                let lock = format!("{path}.{integration}.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock)
                    .map_err(|e| IcebergError::State(format!("cannot open the writer lock {lock}: {e}")))?;
                match file.try_lock() {
                    Ok(()) => {
                        self.writer_lock = Some(file);
                        Ok(true)
                    }
                    Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(IcebergError::State(format!("cannot lock the writer lock {lock}: {e}")))
                    }
                }
            }
            None => {
                let key = format!("{}/{integration}", self.name);
                for _ in 0..20 {
                    let rows =
                        self.query("SELECT pg_try_advisory_lock(2053729389, hashtext(?))", &[(&key).into()], what)?;
                    if rows.first().and_then(|r| r[0].text()).is_some_and(|t| t == "true") {
                        return Ok(true);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Ok(false)
            }
        }
    }

    /// Opens a transaction holding the catalog's write lock.
    pub fn begin(&self, what: &str) -> Result<(), IcebergError> {
        self.db.begin_locked(&self.name).catalog(&self.label, || what.to_string())
    }

    pub fn commit(&self) -> Result<(), IcebergError> {
        self.db.batch("COMMIT").catalog(&self.label, || "committing".into())
    }

    pub fn rollback(&self) -> Result<(), IcebergError> {
        self.db.batch("ROLLBACK").catalog(&self.label, || "rolling back".into())
    }
}
