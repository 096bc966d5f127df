//! The `_zetl` schema, created and upgraded by sqlx's migrator from the versioned files in
//! `migrations/postgres/` (embedded in the binary): each applied once, in its own transaction,
//! under sqlx's advisory lock so that two zetl processes never race. The applied versions are
//! kept in `_zetl._sqlx_migrations`; one this binary does not know means a newer zetl has
//! migrated the target, and is refused.

use crate::error::PgTargetError;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, SqlSafeStr};
use std::borrow::Cow;
use std::str::FromStr;

/// Version, description, SQL. A file is never changed once released: sqlx checks each applied
/// one against its checksum.
const FILES: &[(i64, &str, &str)] = &[
    (1, "state", include_str!("../../../migrations/postgres/0001_state.sql")),
    (2, "dead letters", include_str!("../../../migrations/postgres/0002_dead_letters.sql")),
    (3, "source id", include_str!("../../../migrations/postgres/0003_source_id.sql")),
    (4, "superseded letters", include_str!("../../../migrations/postgres/0004_superseded_letters.sql")),
    (5, "stored schema", include_str!("../../../migrations/postgres/0005_stored_schema.sql")),
];

pub async fn migrate(url: &str) -> Result<(), PgTargetError> {
    // sqlx's own parse errors may quote the URL, password included: say only what failed.
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| PgTargetError::State("the target URL is not one sqlx can read for migrations".into()))?
        .application_name("zetl migrations");
    let mut conn = sqlx::PgConnection::connect_with(&options).await.map_err(PgTargetError::Migrate)?;
    let migrations = FILES
        .iter()
        .map(|(version, about, sql)| {
            Migration::new(*version, Cow::Borrowed(*about), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.create_schema("_zetl");
    migrator.dangerous_set_table_name("_zetl._sqlx_migrations");
    let result = migrator.run(&mut conn).await;
    let _ = conn.close().await;
    match result {
        Err(MigrateError::VersionMissing(found)) => {
            Err(PgTargetError::NewerSchema { found, known: FILES.len() as i64 })
        }
        Err(e) => Err(PgTargetError::Migrate(e.into())),
        Ok(()) => Ok(()),
    }
}
