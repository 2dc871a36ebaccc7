-- The migration ledger: one row per run of a migration (apply or rollback), written before the
-- first statement and updated after every completed one, so it always says exactly how far a run
-- got. A migration's state is its latest run.
CREATE TABLE IF NOT EXISTS dbpulse.migration_runs (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version               text NOT NULL,
    name                  text NOT NULL,
    direction             text NOT NULL CHECK (direction IN ('apply', 'rollback')),
    checksum              text NOT NULL,
    run_by                text NOT NULL,
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    outcome               text NOT NULL DEFAULT 'running'
                          CHECK (outcome IN ('running', 'ok', 'failed')),
    statements_total      int NOT NULL,
    statements_completed  int NOT NULL DEFAULT 0,
    error                 text,
    -- pg_stat_statements (queryid -> calls, total ms) when the run started and finished, so the
    -- plan tracker can compare the hot queries before and after
    statements_before     jsonb,
    statements_after      jsonb
);
CREATE INDEX IF NOT EXISTS migration_runs_version ON dbpulse.migration_runs (version, id DESC);
