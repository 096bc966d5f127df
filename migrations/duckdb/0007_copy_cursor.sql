-- Where a copy read in key order stands (the source's cursor after the last committed row), so
-- that an initial copy interrupted by a crash continues there instead of starting over.
ALTER TABLE _zetl.tables ADD COLUMN IF NOT EXISTS copy_cursor VARCHAR;
