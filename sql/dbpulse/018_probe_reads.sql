-- What the latency probes' reads added to each relation's statistics (reads/probes.py): a
-- table's sequential scans and the rows they read, an index's scans and the entries they
-- returned, and the blocks each read (found in shared buffers or not). The figures DB Pulse
-- shows take them out: its own reads are not the application's. One row per relation and
-- statistics reset ('-infinity': never reset); a reset starts a new row, so only the current
-- one is taken out. It replaces probe_index_scans and takes over its index scans (whose rows
-- and blocks were not recorded: 0).
CREATE TABLE IF NOT EXISTS dbpulse.probe_reads (
    source          text NOT NULL,
    relation_oid    oid NOT NULL,
    stats_reset     timestamptz NOT NULL,
    scans           bigint NOT NULL,
    tuples_read     bigint NOT NULL,
    blocks_fetched  bigint NOT NULL,
    blocks_hit      bigint NOT NULL,
    PRIMARY KEY (source, relation_oid, stats_reset)
);
INSERT INTO dbpulse.probe_reads (source, relation_oid, stats_reset, scans, tuples_read,
                                 blocks_fetched, blocks_hit)
SELECT source, index_oid, stats_reset, scans, 0, 0, 0 FROM dbpulse.probe_index_scans
ON CONFLICT DO NOTHING;
DROP TABLE dbpulse.probe_index_scans;
