//! MySQL / MariaDB source.
mod binlog;
mod binlog_files;
mod catalog;
mod check;
pub mod columns;
mod conninfo;
pub mod convert;
pub mod ddl;
mod error;
mod flavor;
pub mod position;
mod snapshot;
mod source;
mod stream;
pub use check::check;
pub use error::MyError;
pub use source::{MySource, ResyncRequests, StartState};
pub use zetl_core::check::{Outcome, Verdict};
