//! What the server says about itself and its tables (information_schema), read without
//! changing anything.

use crate::columns::{self, Collations, MyColumn, MyTable, SchemaColumn};
use crate::error::{MyError, SqlContext};
use crate::flavor::Flavor;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use zetl_core::filter::TableFilter;
use zetl_core::TableId;

/// Databases that belong to the server itself: never replicated, whatever the filters say.
pub const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

pub fn is_system(schema: &str) -> bool {
    SYSTEM_DATABASES.iter().any(|s| s.eq_ignore_ascii_case(schema))
}

/// The replication-relevant server settings.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: String,
    pub log_bin: bool,
    pub binlog_format: String,
    pub binlog_row_image: String,
    pub binlog_row_metadata: String,
    pub binlog_checksum: String,
    pub server_id: u64,
    /// MariaDB's `log_bin_compress` (compressed binlog events zetl cannot read).
    pub log_bin_compress: bool,
}

pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, MyError> {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('version', 'log_bin', 'binlog_format', \
             'binlog_row_image', 'binlog_row_metadata', 'binlog_checksum', 'server_id', 'log_bin_compress')",
        )
        .await
        .ctx(|| "reading the server's settings".into())?;
    let get =
        |k: &str| vars.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()).unwrap_or_default();
    let version = get("version");
    Ok(ServerInfo {
        flavor: Flavor::of(&version),
        version,
        log_bin: get("log_bin").eq_ignore_ascii_case("ON") || get("log_bin") == "1",
        binlog_format: get("binlog_format").to_uppercase(),
        binlog_row_image: get("binlog_row_image").to_uppercase(),
        binlog_row_metadata: get("binlog_row_metadata").to_uppercase(),
        binlog_checksum: get("binlog_checksum").to_uppercase(),
        server_id: get("server_id").parse().unwrap_or(0),
        log_bin_compress: get("log_bin_compress").eq_ignore_ascii_case("ON"),
    })
}

impl ServerInfo {
    /// The settings `zetl run` cannot work without, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.log_bin {
            out.push(
                "binary logging is off: start the server with log_bin (e.g. `log_bin = mysql-bin` in my.cnf)".into(),
            );
        }
        if self.binlog_format != "ROW" {
            out.push(format!(
                "binlog_format is {}, not ROW: SET GLOBAL binlog_format = 'ROW' (and in my.cnf)",
                self.binlog_format
            ));
        }
        if self.binlog_row_image != "FULL" {
            out.push(format!(
                "binlog_row_image is {}, not FULL: SET GLOBAL binlog_row_image = 'FULL' (and in my.cnf)",
                self.binlog_row_image
            ));
        }
        if self.binlog_row_metadata != "FULL" {
            out.push(format!(
                "binlog_row_metadata is {}, not FULL (zetl reads column names from the binlog): \
                 SET GLOBAL binlog_row_metadata = 'FULL' (and in my.cnf)",
                if self.binlog_row_metadata.is_empty() {
                    "unsupported by this server"
                } else {
                    &self.binlog_row_metadata
                }
            ));
        }
        if self.log_bin_compress {
            out.push(LOG_BIN_COMPRESS_FIX.into());
        }
        if self.server_id == 0 {
            out.push("server_id is 0: set a non-zero server_id in my.cnf".into());
        }
        out
    }
}

/// Why `log_bin_compress=ON` is refused, and the fix.
pub const LOG_BIN_COMPRESS_FIX: &str =
    "log_bin_compress is ON: zetl cannot read MariaDB's compressed binlog events; SET GLOBAL \
     log_bin_compress = OFF (and in my.cnf); if compressed events were already written since the \
     stored position, run `zetl resync --all` too";

pub async fn collations(conn: &mut Conn) -> Result<Collations, MyError> {
    let rows: Vec<(u64, String)> = conn
        .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
        .await
        .ctx(|| "reading the server's collations".into())?;
    Ok(rows.into_iter().map(|(id, cs)| (id as u16, cs)).collect::<HashMap<_, _>>())
}

/// A base table that matches the filters, with the server's row estimate.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub id: TableId,
    pub estimated_rows: u64,
}

pub async fn list_tables(conn: &mut Conn, filter: &TableFilter) -> Result<Vec<TableInfo>, MyError> {
    let rows: Vec<(String, String, Option<u64>)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .ctx(|| "listing tables".into())?;
    Ok(rows
        .into_iter()
        .filter(|(s, _, _)| !is_system(s))
        .map(|(s, n, r)| TableInfo { id: TableId::new(s, n), estimated_rows: r.unwrap_or(0) })
        .filter(|t| filter.matches(&t.id))
        .collect())
}

/// A table's columns and primary key as they are now; `None` when it does not exist.
pub async fn table(conn: &mut Conn, id: &TableId) -> Result<Option<MyTable>, MyError> {
    type Row = (String, String, String, Option<u64>, Option<u64>, Option<String>, Option<u64>, String);
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, \
                    NUMERIC_SCALE, CHARACTER_SET_NAME, CHARACTER_OCTET_LENGTH, IS_NULLABLE \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&id.schema, &id.name),
        )
        .await
        .ctx(|| format!("reading the columns of {id}"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let json = json_columns(conn, id).await?;
    let key_names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (&id.schema, &id.name),
        )
        .await
        .ctx(|| format!("reading the primary key of {id}"))?;
    let mut columns = Vec::with_capacity(rows.len());
    for (name, data_type, column_type, precision, scale, charset, octets, nullable) in &rows {
        let c = SchemaColumn {
            name,
            data_type: &data_type.to_ascii_lowercase(),
            column_type: &column_type.to_ascii_lowercase(),
            precision: if data_type.eq_ignore_ascii_case("decimal") || data_type.eq_ignore_ascii_case("bit") {
                *precision
            } else {
                None
            },
            scale: *scale,
            charset: charset.as_deref(),
            octets: *octets,
            nullable: nullable == "YES",
            is_json: json.contains(name),
        };
        let kind = columns::from_schema(&c).ok_or_else(|| MyError::Table {
            table: id.to_string(),
            reason: format!("column {name} has type {column_type}, which zetl cannot replicate"),
        })?;
        columns.push(MyColumn { name: name.clone(), kind, nullable: c.nullable, source_type: column_type.clone() });
    }
    let key = key_names.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    Ok(Some(MyTable { id: id.clone(), columns, key }))
}

/// MariaDB's JSON columns: LONGTEXT with a `json_valid()` check, which is all the binlog and
/// information_schema.COLUMNS show of them.
pub async fn json_columns(conn: &mut Conn, id: &TableId) -> Result<Vec<String>, MyError> {
    let clauses: Vec<String> = match conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json_valid(%'",
            (&id.schema, &id.name),
        )
        .await
    {
        Ok(c) => c,
        // MySQL has no TABLE_NAME there, and a real JSON type anyway.
        Err(_) => return Ok(Vec::new()),
    };
    Ok(clauses
        .iter()
        .filter_map(|c| {
            c.strip_prefix("json_valid(")?.strip_suffix(')').map(|n| n.trim_matches('`').replace("``", "`"))
        })
        .collect())
}

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub fn quote_table(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.name))
}

/// Privileges the user lacks: REPLICATION SLAVE to read the binlog, REPLICATION CLIENT
/// (MariaDB: BINLOG MONITOR) to see binlog positions, SELECT for the copy.
pub async fn missing_grants(conn: &mut Conn) -> Result<Vec<&'static str>, MyError> {
    let grants: Vec<String> =
        conn.query("SHOW GRANTS FOR CURRENT_USER()").await.ctx(|| "reading the user's grants".into())?;
    let all = grants.join("\n").to_uppercase();
    let global =
        grants.iter().filter(|g| g.contains(" ON *.* ")).map(|g| g.to_uppercase()).collect::<Vec<_>>().join("\n");
    let has = |p: &str| global.contains("ALL PRIVILEGES") || global.contains(p);
    let mut missing = Vec::new();
    if !(has("REPLICATION SLAVE") || has("REPLICATION REPLICA")) {
        missing.push("REPLICATION SLAVE");
    }
    if !(has("REPLICATION CLIENT") || has("BINLOG MONITOR")) {
        missing.push("REPLICATION CLIENT");
    }
    if !(all.contains("ALL PRIVILEGES") || all.contains("GRANT SELECT") || all.contains(", SELECT")) {
        missing.push("SELECT");
    }
    Ok(missing)
}

pub fn grant_fix(missing: &[&str]) -> String {
    format!(
        "missing {list}: GRANT {list} ON *.* TO the zetl user (MariaDB calls REPLICATION CLIENT `BINLOG MONITOR`)",
        list = missing.join(", ")
    )
}

/// A table's columns now, with their DEFAULT and EXTRA, for filling added columns.
pub async fn column_defaults(
    conn: &mut Conn,
    id: &TableId,
) -> Result<HashMap<String, crate::column_changes::CatalogColumn>, MyError> {
    let Some(table) = table(conn, id).await? else { return Ok(HashMap::new()) };
    let rows: Vec<(String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&id.schema, &id.name),
        )
        .await
        .ctx(|| format!("reading the column defaults of {id}"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, default, extra)| {
            let kind = table.columns.iter().find(|c| c.name == name)?.kind.clone();
            Some((name, crate::column_changes::CatalogColumn { kind, default, extra }))
        })
        .collect())
}
