//! The `_zetl` schema, created and upgraded from the versioned files in `migrations/postgres/`
//! (embedded in the binary): each applied once, in its own transaction together with its row
//! in `_zetl.schema_version`, under a transaction-level advisory lock so that two zetl
//! processes never race. A version this binary does not know means a newer zetl has migrated
//! the target, and is refused.
//!
//! Migrations run over the target connection itself, so they get the same TLS and
//! authentication policy (`sslmode`, `require_auth`) as everything else zetl sends.
//! Targets migrated by zetl before this migrator kept their versions in
//! `_zetl._sqlx_migrations`; those are taken over once.

use crate::error::{PgTargetError, SqlContext};
use tokio_postgres::Client;

/// Version, description, SQL. A file is never changed once released.
const FILES: &[(i64, &str, &str)] = &[
    (1, "state", include_str!("../../../migrations/postgres/0001_state.sql")),
    (2, "dead letters", include_str!("../../../migrations/postgres/0002_dead_letters.sql")),
    (3, "source id", include_str!("../../../migrations/postgres/0003_source_id.sql")),
    (4, "superseded letters", include_str!("../../../migrations/postgres/0004_superseded_letters.sql")),
    (5, "stored schema", include_str!("../../../migrations/postgres/0005_stored_schema.sql")),
    (6, "copy cursor", include_str!("../../../migrations/postgres/0006_copy_cursor.sql")),
];

/// The advisory lock key every zetl process takes while it migrates (`zetl` in ASCII).
const LOCK: i64 = 0x7a65_746c;

const VERSION_TABLE: &str = "CREATE SCHEMA IF NOT EXISTS _zetl; \
     CREATE TABLE IF NOT EXISTS _zetl.schema_version (\
         version bigint PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";

pub async fn migrate(c: &Client) -> Result<(), PgTargetError> {
    in_transaction(c, "creating _zetl.schema_version", || async {
        c.batch_execute(VERSION_TABLE).await.ctx(|| "creating _zetl.schema_version".into())?;
        let legacy: Option<String> = c
            .query_one("SELECT to_regclass('_zetl._sqlx_migrations')::text", &[])
            .await
            .ctx(|| "looking for earlier migrations".into())?
            .get(0);
        if legacy.is_some() {
            c.execute(
                "INSERT INTO _zetl.schema_version (version, description, applied_at) \
                 SELECT version, description, installed_on FROM _zetl._sqlx_migrations WHERE success \
                 ON CONFLICT (version) DO NOTHING",
                &[],
            )
            .await
            .ctx(|| "taking over earlier migrations".into())?;
        }
        Ok(())
    })
    .await?;
    for (version, about, sql) in FILES {
        in_transaction(c, &format!("applying migration {version} ({about})"), || async {
            let applied = c
                .query_opt("SELECT 1 FROM _zetl.schema_version WHERE version = $1", &[version])
                .await
                .ctx(|| "reading _zetl.schema_version".into())?;
            if applied.is_none() {
                c.batch_execute(sql).await.ctx(|| format!("applying migration {version} ({about})"))?;
                c.execute("INSERT INTO _zetl.schema_version (version, description) VALUES ($1, $2)", &[version, about])
                    .await
                    .ctx(|| "recording the migration".into())?;
                tracing::info!(version, about, "migrated the target's _zetl schema");
            }
            Ok(())
        })
        .await?;
    }
    let newest: Option<i64> = c
        .query_one("SELECT max(version) FROM _zetl.schema_version", &[])
        .await
        .ctx(|| "reading _zetl.schema_version".into())?
        .get(0);
    let known = FILES.len() as i64;
    match newest {
        Some(found) if found > known => Err(PgTargetError::NewerSchema { found, known }),
        _ => Ok(()),
    }
}

/// Runs `body` in a transaction holding the migration lock; rolls back if it fails.
async fn in_transaction<F, Fut>(c: &Client, what: &str, body: F) -> Result<(), PgTargetError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), PgTargetError>>,
{
    c.batch_execute("BEGIN").await.ctx(|| format!("{what}: BEGIN"))?;
    let result = async {
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.ctx(|| "taking the migration lock".into())?;
        body().await
    }
    .await;
    match result {
        Ok(()) => c.batch_execute("COMMIT").await.ctx(|| format!("{what}: COMMIT")),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}
