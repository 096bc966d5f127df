//! Test support: throwaway PostgreSQL, MariaDB and moto servers, and (with
//! the `compare` feature) a whole-table comparison of a PostgreSQL source
//! with its DuckDB target ([`compare::assert_tables_equal`]).
//!
//! Tests, benchmarks and the quick-start script start their own servers
//! from the installed binaries: each gets its own directory, a free TCP port
//! on 127.0.0.1 and replication switched on, and is stopped (and its
//! directory removed) when the value is dropped. Many can run at once.
//!
//! ```no_run
//! use zetl_testkit::{PgOptions, PgServer};
//! let pg = PgServer::start(PgOptions::default())?;
//! pg.psql("zetl", "CREATE TABLE t (id int primary key)")?;
//! let url = pg.url("zetl"); // postgres://zetl:zetl@127.0.0.1:PORT/zetl
//! # Ok::<(), zetl_testkit::HarnessError>(())
//! ```
//!
//! Environment: `ZETL_KEEP_SERVERS=1` leaves dropped servers running with
//! their files in place; `ZETL_SERVER_START_TIMEOUT` (seconds, default 90)
//! bounds each startup; `ZETL_PG_BINDIR` names the PostgreSQL binaries;
//! `ZETL_MOTO_SERVER` replaces `python3 -m moto.server`.
//!
//! When running as root, PostgreSQL runs as the OS user `postgres`, which
//! must be able to reach the data directory.

#[cfg(feature = "compare")]
pub mod compare;
#[cfg(feature = "compare")]
pub mod compare_dynamo;
#[cfg(feature = "compare")]
pub mod compare_iceberg;
#[cfg(feature = "compare")]
pub mod compare_mysql;
#[cfg(feature = "compare")]
pub mod compare_pg;
mod error;
mod mariadb;
mod moto;
mod pg;
mod port;
mod util;

pub use error::HarnessError;
pub use mariadb::{MariaDbOptions, MariaDbServer};
pub use moto::MotoServer;
pub use pg::{PgOptions, PgServer};
pub use port::free_port;
