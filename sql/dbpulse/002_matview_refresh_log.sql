-- Materialized views: PostgreSQL does not record when one was refreshed, so DB Pulse does.
-- Every refresh DB Pulse performs is logged here (also failed ones); with the optional event
-- trigger (003, installed by a DBA action) so are refreshes by anyone else.

-- Writes (inserts + updates + deletes) to a view's source tables, from the cumulative
-- statistics: the difference between now and a refresh is how stale the view is.
CREATE OR REPLACE FUNCTION dbpulse.matview_source_writes(view_oid oid)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(pg_stat_get_tuples_inserted(src.oid) + pg_stat_get_tuples_updated(src.oid)
                        + pg_stat_get_tuples_deleted(src.oid)), 0)::bigint
    FROM (SELECT DISTINCT d.refobjid AS oid
          FROM pg_rewrite r
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                          AND d.refclassid = 'pg_class'::regclass
          JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'm', 'p')
          WHERE r.ev_class = view_oid AND d.refobjid <> view_oid) AS src
$$;

CREATE TABLE IF NOT EXISTS dbpulse.matview_refresh_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view_oid       oid NOT NULL,
    schema_name    text NOT NULL,
    view_name      text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    was_concurrent boolean,
    refreshed_by   text NOT NULL,
    recorded_by    text NOT NULL CHECK (recorded_by IN ('dbpulse', 'event_trigger')),
    outcome        text NOT NULL CHECK (outcome IN ('ok', 'error')),
    detail         text,
    source_writes  bigint   -- dbpulse.matview_source_writes() when the refresh finished
);
CREATE INDEX IF NOT EXISTS matview_refresh_log_view
    ON dbpulse.matview_refresh_log (view_oid, finished_at DESC);
