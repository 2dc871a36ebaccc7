-- Statements are stored only when their counters changed since the row stored before (the
-- delta SQL carries the last value forward), and every statement at a "complete" snapshot:
-- the first of a source, one after a reset, restart, upgrade or eviction, and one a day. A
-- statement missing from a complete snapshot was gone then. Snapshots stored before this file
-- hold every statement: they are complete.
ALTER TABLE dbpulse.snapshots
    ADD COLUMN IF NOT EXISTS statements_complete boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS snapshots_source_complete
    ON dbpulse.snapshots (source, taken_at) WHERE statements_complete;
-- Read by snapshot: a B-tree on snapshot_id alone replaces the primary key on (snapshot_id,
-- queryid, userid). Its entries deduplicate (many rows per snapshot), so it is a quarter of the
-- size; the writer stores a statement at most once per snapshot.
ALTER TABLE dbpulse.snapshot_statements DROP CONSTRAINT IF EXISTS snapshot_statements_pkey;
CREATE INDEX IF NOT EXISTS snapshot_statements_snapshot
    ON dbpulse.snapshot_statements (snapshot_id);
