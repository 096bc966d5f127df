-- zetl's bookkeeping in a DuckDB target (same logical schema as the PostgreSQL target's).
CREATE SCHEMA IF NOT EXISTS _zetl;
CREATE TABLE IF NOT EXISTS _zetl.schema_version (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS _zetl.checkpoints (
    integration VARCHAR PRIMARY KEY,
    position    VARCHAR NOT NULL,
    phase       VARCHAR NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS _zetl.tables (
    integration  VARCHAR NOT NULL,
    table_schema VARCHAR NOT NULL,
    table_name   VARCHAR NOT NULL,
    state        VARCHAR NOT NULL,
    rows_copied  BIGINT NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (integration, table_schema, table_name)
);
