-- Changes the target rejected (apply.on_error: dead_letter): the change, as each column's text,
-- and why. `zetl dead-letters replay` applies them again and sets replayed_at.
CREATE TABLE IF NOT EXISTS _zetl.dead_letters (
    id           bigserial PRIMARY KEY,
    integration  text NOT NULL,
    table_schema text NOT NULL,
    table_name   text NOT NULL,
    key          text NOT NULL,
    op           text NOT NULL,
    row_data     jsonb NOT NULL,
    error        text NOT NULL,
    position     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz
);
