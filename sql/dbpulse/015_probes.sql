-- Latency probes (reads/probes.py): one row per timed run of a hot query's probe (seconds
-- NULL: it failed, error says why), and the index scans each run caused, which the
-- unused-index verdicts discount (DB Pulse's own scans prove no use by the application).
CREATE TABLE IF NOT EXISTS dbpulse.probe_samples (
    source     text NOT NULL,
    taken_at   timestamptz NOT NULL,
    name       text NOT NULL,
    seconds    double precision,
    error      text
);
CREATE INDEX IF NOT EXISTS probe_samples_source_time ON dbpulse.probe_samples (source, taken_at);

-- per index, the scans the probes caused since the database's statistics were last reset
-- ('-infinity': never reset); a reset starts a new row, so only the current one is discounted
CREATE TABLE IF NOT EXISTS dbpulse.probe_index_scans (
    source       text NOT NULL,
    index_oid    oid NOT NULL,
    stats_reset  timestamptz NOT NULL,
    scans        bigint NOT NULL,
    PRIMARY KEY (source, index_oid, stats_reset)
);
