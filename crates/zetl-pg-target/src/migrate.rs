//! The `_zetl` schema, created and upgraded from the versioned files in
//! `migrations/postgres/` (embedded in the binary): each applied once, in its own transaction,
//! under an advisory lock so that two zetl processes never race; a schema newer than this
//! binary knows is refused.

use crate::error::{PgTargetError, SqlContext};
use tokio_postgres::Client;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_state.sql"),
    include_str!("../../../migrations/postgres/0002_dead_letters.sql"),
];

/// An arbitrary constant: the advisory lock zetl takes while migrating.
const LOCK: i64 = 0x7a65_746c_5f6d_6967;

pub async fn migrate(client: &Client) -> Result<(), PgTargetError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS _zetl; \
             CREATE TABLE IF NOT EXISTS _zetl.schema_version (version integer NOT NULL, applied_at timestamptz NOT NULL)",
        )
        .await
        .ctx(|| "creating the _zetl schema".into())?;
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK]).await.ctx(|| "locking for migrations".into())?;
    let result = apply(client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await;
    result?;
    unlocked.ctx(|| "unlocking after migrations".into())?;
    Ok(())
}

async fn apply(client: &Client) -> Result<(), PgTargetError> {
    let found: i64 = client
        .query_one("SELECT coalesce(max(version), 0)::int8 FROM _zetl.schema_version", &[])
        .await
        .ctx(|| "reading _zetl.schema_version".into())?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(PgTargetError::NewerSchema { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        client
            .batch_execute(&format!(
                "BEGIN; {sql}; INSERT INTO _zetl.schema_version VALUES ({version}, now()); COMMIT;"
            ))
            .await
            .ctx(|| format!("applying migration {version}"))?;
        tracing::info!(version, "target schema _zetl migrated");
    }
    Ok(())
}
