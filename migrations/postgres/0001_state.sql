-- zetl's bookkeeping in a PostgreSQL target (the same logical schema as the DuckDB target's).
CREATE SCHEMA IF NOT EXISTS _zetl;
CREATE TABLE IF NOT EXISTS _zetl.checkpoints (
    integration text PRIMARY KEY,
    position    text NOT NULL,
    phase       text NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS _zetl.tables (
    integration  text NOT NULL,
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    state        text NOT NULL,
    rows_copied  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL,
    copied_at    text,
    PRIMARY KEY (integration, table_schema, table_name)
);
