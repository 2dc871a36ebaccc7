-- Each run records a checksum per statement, so a rerun after the file was edited knows which
-- of the statements that already ran are unchanged (and continues after them) or changed.
ALTER TABLE dbpulse.migration_runs ADD COLUMN IF NOT EXISTS statement_checksums jsonb;
