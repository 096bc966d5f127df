-- The source's identity of the table each copy was made from (PostgreSQL: the OID), so that a
-- table dropped and created again, or swapped by renames, under the same name is copied again.
ALTER TABLE _zetl.tables ADD COLUMN IF NOT EXISTS source_id VARCHAR;
