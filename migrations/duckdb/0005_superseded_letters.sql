-- A dead letter is superseded when a later change to its key (or a truncate, or a new copy of
-- its table) is applied after it: replaying it would put an older row over a newer one, so
-- `zetl dead-letters replay` skips it and `list` shows why. superseded_position is the source
-- position of the commit whose change won (for a letter superseded by the replay of a later
-- letter of its key: that letter's position).
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_at TIMESTAMPTZ;
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_by VARCHAR;
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS superseded_position VARCHAR;
-- The staged type of each column of the letter (columns staged as text left out), so that a
-- replay into a column still narrower than the source's refuses a value it would change.
ALTER TABLE _zetl.dead_letters ADD COLUMN IF NOT EXISTS column_types JSON;
