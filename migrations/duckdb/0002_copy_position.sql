-- Where a table's copy is consistent, for tables copied while the integration streams: after
-- a crash the stream skips that table's transactions committed before it.
ALTER TABLE _zetl.tables ADD COLUMN IF NOT EXISTS copied_at VARCHAR;
