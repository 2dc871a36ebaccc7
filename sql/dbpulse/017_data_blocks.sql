-- The buffer cache figures of the database's data (reads/cache.py data_blocks): its tables,
-- indexes, TOAST and materialized views, without the system catalogues, sequences, DB Pulse's
-- own schema and its probes' reads, all of which DB Pulse's own work would add. blks_hit and
-- blks_read keep pg_stat_database's whole figures of the snapshots taken before; they are no
-- longer written, and a period before these columns has no hit rate (unknown, not the old
-- figure).
ALTER TABLE dbpulse.snapshots ADD COLUMN IF NOT EXISTS data_blks_hit bigint;
ALTER TABLE dbpulse.snapshots ADD COLUMN IF NOT EXISTS data_blks_read bigint;
