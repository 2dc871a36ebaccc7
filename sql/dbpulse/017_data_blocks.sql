-- The buffer cache figures of the database's data (reads/cache.py DATA_BLOCKS): its tables,
-- indexes, TOAST and materialized views, without the system catalogues, sequences and DB
-- Pulse's own schema, whose blocks DB Pulse's own reads would add. blks_hit and blks_read
-- keep pg_stat_database's whole figures of the snapshots taken before; they are no longer
-- written, and a period before this column has no hit rate (unknown, not the old figure).
ALTER TABLE dbpulse.snapshots ADD COLUMN IF NOT EXISTS data_blks_hit bigint;
ALTER TABLE dbpulse.snapshots ADD COLUMN IF NOT EXISTS data_blks_read bigint;
