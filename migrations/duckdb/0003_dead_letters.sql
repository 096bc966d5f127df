-- Changes the target rejected (apply.on_error: dead_letter), as in the PostgreSQL target: the
-- change as each column's text, and why. DuckDB target tables carry no key constraint, so the
-- key columns are kept with each letter for `zetl dead-letters replay`.
CREATE SEQUENCE IF NOT EXISTS _zetl.dead_letter_ids;
CREATE TABLE IF NOT EXISTS _zetl.dead_letters (
    id           BIGINT NOT NULL DEFAULT nextval('_zetl.dead_letter_ids'),
    integration  VARCHAR NOT NULL,
    table_schema VARCHAR NOT NULL,
    table_name   VARCHAR NOT NULL,
    key          VARCHAR NOT NULL,
    key_columns  VARCHAR[] NOT NULL,
    op           VARCHAR NOT NULL,
    row_data     JSON NOT NULL,
    error        VARCHAR NOT NULL,
    position     VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    replayed_at  TIMESTAMPTZ
);
