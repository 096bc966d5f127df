-- A dead letter is superseded when a later change to its key (or a truncate, or a new copy of
-- its table) is applied after it: replaying it would put an older row over a newer one, so
-- `zetl dead-letters replay` skips it and `list` shows why. superseded_position is the source
-- position of the commit whose change won (for a letter superseded by the replay of a later
-- letter of its key: that letter's position).
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_at timestamptz;
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_by text;
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_position text;
-- The letter's key as jsonb_build_object of the staged (typed) key columns, compared with the
-- keys of later batches; NULL for keyless tables (and letters from before this migration),
-- which only a truncate or a new copy supersedes.
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS key_data jsonb;
-- The staged type of each column of the letter, so that a replay into a column still narrower
-- than the source's refuses a value it would change.
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS column_types jsonb;
CREATE INDEX IF NOT EXISTS dead_letters_pending ON _zetl.dead_letters (integration, table_schema, table_name)
    WHERE replayed_at IS NULL AND superseded_at IS NULL;

-- Raised instead of storing a value that a target column narrower than the source's (a
-- numeric scale, real instead of double precision, timestamp(0), varchar(n)) would change:
-- PostgreSQL rounds such values on assignment without a word. SQLSTATE 22000 is a data
-- exception, so the change becomes a dead letter (apply.on_error: dead_letter) or stops zetl.
CREATE OR REPLACE FUNCTION _zetl.refuse_changed_value(key text, col text, col_type text, value text, stored text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'key %: value % cannot be stored exactly in column % (%): it would become %', key, value, col, col_type, stored
        USING ERRCODE = '22000', HINT = 'widen the target column to the source''s type, then replay the dead letters';
END
$$;
