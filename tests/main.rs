//! zetl's end-to-end tests, one binary: each module is an area, run against real servers
//! (PostgreSQL and MariaDB started from the installed binaries, moto for DynamoDB) through the
//! shared harness in `common`, with the real `zetl` binary as a child process.
//!
//! `cargo test -p zetl --test e2e AREA::` runs one area (e.g. `schema_changes::`).

mod common;

mod auth;
mod bad_inputs;
mod changes;
mod config_errors;
mod copy_resume;
mod dead_letter_replay;
mod delete_modes;
#[cfg(feature = "dynamodb")]
mod dynamodb;
mod filters;
mod iceberg;
mod iceberg_catalog;
mod iceberg_letters;
#[cfg(all(feature = "s3", feature = "dynamodb"))]
mod iceberg_s3;
mod identifiers;
mod identity;
mod keyless;
mod large_values;
mod lifecycle;
mod metrics;
mod mysql_changes;
mod mysql_errors;
mod mysql_fidelity;
mod mysql_fill;
mod mysql_lifecycle;
mod mysql_recovery;
mod narrowing;
mod network;
mod operate;
mod pg_target;
mod recovery;
mod resync;
mod resync_guard;
mod schema_changes;
mod snapshot;
mod soak;
mod terminal;
mod tls;
mod toast;
mod types;
