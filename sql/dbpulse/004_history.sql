-- History: timestamped snapshots of cumulative counters. Rates always come from the difference
-- between two snapshots (never from pg_stat_statements_reset()), so every counter needed to
-- detect a reset or restart between two snapshots is stored with the snapshot itself.
-- These tables live in the watched database's dbpulse schema, or in a separate history database.
CREATE TABLE IF NOT EXISTS dbpulse.snapshots (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at              timestamptz NOT NULL DEFAULT now(),
    source                text NOT NULL,          -- the database the snapshot is of
    taken_by              text NOT NULL,
    synthetic             boolean NOT NULL DEFAULT false,  -- generated demo history
    server_version_num    int NOT NULL,
    server_started_at     timestamptz NOT NULL,   -- pg_postmaster_start_time(): restarts
    pss_version           text,                   -- pg_stat_statements' extversion, NULL if absent
    pss_stats_reset       timestamptz,            -- pg_stat_statements_info (1.9+)
    pss_dealloc           bigint,                 -- entries evicted so far (1.9+)
    db_stats_reset        timestamptz,            -- pg_stat_database.stats_reset
    blks_hit              bigint,                 -- buffer cache, this database
    blks_read             bigint,
    xact_commit           bigint,
    xact_rollback         bigint,
    collect_ms            real                    -- how long taking it took
);
CREATE INDEX IF NOT EXISTS snapshots_source_taken_at ON dbpulse.snapshots (source, taken_at);

-- Statement texts are stored once, not once per snapshot: storage grows with the number of
-- distinct statements, not with calls or snapshots.
CREATE TABLE IF NOT EXISTS dbpulse.statement_texts (
    queryid      bigint NOT NULL,
    userid       oid NOT NULL,
    role_name    text,
    query        text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queryid, userid)
);

CREATE TABLE IF NOT EXISTS dbpulse.snapshot_statements (
    snapshot_id          bigint NOT NULL REFERENCES dbpulse.snapshots (id) ON DELETE CASCADE,
    queryid              bigint NOT NULL,
    userid               oid NOT NULL,
    calls                bigint NOT NULL,
    total_exec_ms        double precision NOT NULL,
    total_plan_ms        double precision,
    rows                 bigint,
    shared_blks_hit      bigint,
    shared_blks_read     bigint,
    shared_blks_dirtied  bigint,
    shared_blks_written  bigint,
    temp_blks            bigint,
    io_ms                double precision,
    wal_bytes            numeric,
    stats_since          timestamptz,     -- 1.11+: when the entry started counting
    PRIMARY KEY (snapshot_id, queryid, userid)
);

CREATE TABLE IF NOT EXISTS dbpulse.snapshot_tables (
    snapshot_id      bigint NOT NULL REFERENCES dbpulse.snapshots (id) ON DELETE CASCADE,
    schema_name      text NOT NULL,
    table_name       text NOT NULL,
    total_bytes      bigint,
    live_rows        bigint,
    dead_rows        bigint,
    seq_scans        bigint,
    index_scans      bigint,
    rows_inserted    bigint,
    rows_updated     bigint,
    rows_deleted     bigint,
    heap_blks_hit    bigint,
    heap_blks_read   bigint,
    bloat_bytes      bigint,          -- DB Pulse's estimate, NULL without statistics
    PRIMARY KEY (snapshot_id, schema_name, table_name)
);

CREATE TABLE IF NOT EXISTS dbpulse.snapshot_indexes (
    snapshot_id      bigint NOT NULL REFERENCES dbpulse.snapshots (id) ON DELETE CASCADE,
    schema_name      text NOT NULL,
    index_name       text NOT NULL,
    table_name       text NOT NULL,
    size_bytes       bigint,
    scans            bigint,
    backs_constraint boolean NOT NULL DEFAULT false,
    is_valid         boolean NOT NULL DEFAULT true,
    bloat_bytes      bigint,
    PRIMARY KEY (snapshot_id, schema_name, index_name)
);

CREATE TABLE IF NOT EXISTS dbpulse.snapshot_matviews (
    snapshot_id      bigint NOT NULL REFERENCES dbpulse.snapshots (id) ON DELETE CASCADE,
    schema_name      text NOT NULL,
    view_name        text NOT NULL,
    populated        boolean,
    last_refresh     timestamptz,
    age_minutes      double precision,
    size_bytes       bigint,
    PRIMARY KEY (snapshot_id, schema_name, view_name)
);

CREATE TABLE IF NOT EXISTS dbpulse.snapshot_redis (
    snapshot_id      bigint NOT NULL REFERENCES dbpulse.snapshots (id) ON DELETE CASCADE,
    instance         text NOT NULL,   -- the URL without its password
    run_id           text,            -- changes when the server restarts
    uptime_s         bigint,
    keyspace_hits    bigint,
    keyspace_misses  bigint,
    commands         bigint,
    evicted_keys     bigint,
    expired_keys     bigint,
    used_memory      bigint,
    keys             bigint,
    error            text,            -- the instance could not be read
    PRIMARY KEY (snapshot_id, instance)
);

-- Events to draw on the history charts besides migrations and refreshes (which come from their
-- own logs), e.g. the phase 1 migration in the synthetic demo history.
CREATE TABLE IF NOT EXISTS dbpulse.history_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    label       text NOT NULL,
    synthetic   boolean NOT NULL DEFAULT false
);
