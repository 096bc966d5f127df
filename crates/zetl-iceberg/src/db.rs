//! The database that holds the SQL catalog: a SQLite file on one machine, PostgreSQL in
//! production. Both run the same statements (written with `?` placeholders, which become
//! `$n` for PostgreSQL); this module is the only place that knows which one it talks to.

use thiserror::Error;
use zetl_core::config::SecretUrl;

pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    /// tokio-postgres on a runtime of its own: the catalog is called from synchronous code
    /// (the writer thread, `zetl lake maintain`), never from inside another runtime.
    Postgres {
        rt: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
    },
}

#[derive(Debug, Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", zetl_postgres::chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Connect(Box<zetl_postgres::PgError>),
    #[error("cannot start the catalog connection's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

impl From<zetl_postgres::PgError> for DbError {
    fn from(e: zetl_postgres::PgError) -> Self {
        DbError::Connect(Box::new(e))
    }
}

impl DbError {
    /// A lost PostgreSQL connection, which a reconnect can cure.
    pub fn is_transient(&self) -> bool {
        use zetl_core::Retry;
        match self {
            DbError::Postgres(e) => zetl_postgres::transient_sql(e),
            DbError::Connect(e) => e.is_transient(),
            DbError::Sqlite(_) | DbError::Runtime(_) => false,
        }
    }
}

/// A statement parameter.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(Option<&'a str>),
    Int(i64),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(text: &'a str) -> Self {
        Arg::Text(Some(text))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(text: &'a String) -> Self {
        Arg::Text(Some(text))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(text: Option<&'a str>) -> Self {
        Arg::Text(text)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

/// One value of a result row: the catalog's columns are texts and integers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Text(String),
    Int(i64),
}

impl Cell {
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(n) => Some(n.to_string()),
            Cell::Null => None,
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            Cell::Text(t) => t.parse().unwrap_or(0),
            Cell::Null => 0,
        }
    }
}

impl Db {
    /// `sqlite:///path` (the file and its directory are created) or `postgres://…`.
    pub fn open(url: &SecretUrl) -> Result<Db, DbError> {
        match url.expose().strip_prefix("sqlite://") {
            Some(path) => {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let conn = rusqlite::Connection::open(path)?;
                // Readers (Spark, pyiceberg) open the file while zetl writes, and `zetl lake
                // maintain` holds the write lock while it rewrites a table: wait for them.
                conn.busy_timeout(std::time::Duration::from_secs(900))?;
                Ok(Db::Sqlite(conn))
            }
            None => {
                let info = zetl_postgres::conninfo::ConnInfo::from_url(url.expose())?;
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let client = rt.block_on(info.connect_sql())?;
                Ok(Db::Postgres { rt, client })
            }
        }
    }

    /// The SQLite file's path, when this is one.
    pub fn sqlite_path(&self) -> Option<&str> {
        match self {
            Db::Sqlite(conn) => conn.path(),
            Db::Postgres { .. } => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres { .. })
    }

    /// Runs statements without parameters (DDL, transaction control).
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres { rt, client } => Ok(rt.block_on(client.batch_execute(sql))?),
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let params = rusqlite::params_from_iter(args.iter().map(sqlite_value));
                Ok(conn.execute(sql, params)? as u64)
            }
            Db::Postgres { rt, client } => Ok(rt.block_on(client.execute(numbered(sql).as_str(), &pg_refs(args)))?),
        }
    }

    /// Runs one query; returns its rows.
    pub fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Vec<Cell>>, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql)?;
                let width = stmt.column_count();
                let params = rusqlite::params_from_iter(args.iter().map(sqlite_value));
                let rows = stmt.query_map(params, |r| {
                    (0..width)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Cell::Null,
                                rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                                other => Cell::Text(other.as_str().map(str::to_string).unwrap_or_default()),
                            })
                        })
                        .collect::<Result<Vec<_>, rusqlite::Error>>()
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            }
            Db::Postgres { rt, client } => {
                let rows = rt.block_on(client.query(numbered(sql).as_str(), &pg_refs(args)))?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Opens a transaction holding the catalog's write lock (`catalog` names the catalog):
    /// a running zetl and `zetl lake maintain` take turns. SQLite locks the file; PostgreSQL
    /// takes a transaction-scoped advisory lock keyed by the catalog's name.
    pub fn begin_locked(&self, catalog: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres { .. } => {
                self.batch("BEGIN")?;
                self.query("SELECT pg_advisory_xact_lock(2053729388, hashtext(?))", &[catalog.into()]).map(drop)
            }
        }
    }
}

fn sqlite_value(arg: &Arg<'_>) -> rusqlite::types::Value {
    match arg {
        Arg::Text(Some(t)) => rusqlite::types::Value::Text(t.to_string()),
        Arg::Text(None) => rusqlite::types::Value::Null,
        Arg::Int(n) => rusqlite::types::Value::Integer(*n),
    }
}

fn pg_refs<'v>(args: &'v [Arg<'_>]) -> Vec<&'v (dyn tokio_postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Text(t) => t as &(dyn tokio_postgres::types::ToSql + Sync),
            Arg::Int(n) => n as &(dyn tokio_postgres::types::ToSql + Sync),
        })
        .collect()
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Vec<Cell>, DbError> {
    use tokio_postgres::types::Type;
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            Ok(if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int)
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)?.map_or(Cell::Null, |n| Cell::Int(n.into()))
            } else if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)?.map_or(Cell::Null, |b| Cell::Text(b.to_string()))
            } else if *ty == Type::VOID {
                Cell::Null
            } else {
                row.try_get::<_, Option<String>>(i)?.map_or(Cell::Null, Cell::Text)
            })
        })
        .collect()
}

/// `?` placeholders as PostgreSQL's `$1, $2, …` (the catalog's statements hold no `?` in
/// literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(numbered("UPDATE t SET a = ? WHERE b = ? AND c = ?"), "UPDATE t SET a = $1 WHERE b = $2 AND c = $3");
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
    }
}
