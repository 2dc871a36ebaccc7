-- Statements are stored only when their counters changed since the row stored before (the
-- delta SQL carries the last value forward), and every statement at a "complete" snapshot:
-- the first of a source, one after a reset, restart, upgrade or eviction, and one a day. A
-- statement missing from a complete snapshot was gone then. Snapshots stored before this file
-- hold every statement: they are complete.
ALTER TABLE dbpulse.snapshots
    ADD COLUMN IF NOT EXISTS statements_complete boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS snapshots_source_complete
    ON dbpulse.snapshots (source, taken_at) WHERE statements_complete;
-- The rows are appended snapshot by snapshot and read by snapshot: a BRIN index on snapshot_id
-- does that at a thousandth of the size of the B-tree primary key it replaces (a fifth of the
-- table's bytes). The writer stores a statement at most once per snapshot.
ALTER TABLE dbpulse.snapshot_statements DROP CONSTRAINT IF EXISTS snapshot_statements_pkey;
CREATE INDEX IF NOT EXISTS snapshot_statements_snapshot
    ON dbpulse.snapshot_statements USING brin (snapshot_id) WITH (pages_per_range = 16);
