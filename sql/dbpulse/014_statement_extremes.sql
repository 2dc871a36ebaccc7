-- Each stored statement row also keeps its fastest and slowest call and since when those two
-- were kept (PostgreSQL 17 can reset them on their own): over a period the share of calls over
-- the plan's slow limit is then bounded the way the Slow queries page bounds it, not guessed
-- from means alone. NULL where unknown (older rows, synthetic history).
ALTER TABLE dbpulse.snapshot_statements
    ADD COLUMN IF NOT EXISTS min_exec_ms double precision,
    ADD COLUMN IF NOT EXISTS max_exec_ms double precision,
    ADD COLUMN IF NOT EXISTS minmax_since timestamptz;
