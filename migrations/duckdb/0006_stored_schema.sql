-- The source schema each table was last brought up to, stored with the data it describes: a
-- restarted stream compares the source's first schema with it, so that a column added with a
-- DEFAULT or retyped while zetl was stopped is filled in or copied again.
ALTER TABLE _zetl.tables ADD COLUMN IF NOT EXISTS source_schema VARCHAR;
-- Why a table is waiting for a copy (resync-required, excluded), for `zetl status`.
ALTER TABLE _zetl.tables ADD COLUMN IF NOT EXISTS state_reason VARCHAR;
