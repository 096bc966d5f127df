//! PostgreSQL source.
mod catalog;
mod check;
pub mod conninfo;
mod copy_text;
mod error;
pub mod lsn;
pub mod pgoutput;
mod publication;
pub mod replication;
mod snapshot;
mod source;
mod spill;
mod stream;
pub mod types;
pub use error::PgError;
pub use source::{PgSource, StartState};
