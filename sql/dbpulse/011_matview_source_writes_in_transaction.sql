-- A refresh logged in the transaction that also wrote its sources (UPDATE src; REFRESH ... in one
-- call) recorded the source counters without those writes: the server adds a transaction's
-- counts to the shared statistics only after it ends, so the view looked written-to since its
-- refresh and later "stale" though it matched its sources. The counters now include the
-- current transaction's own writes.
CREATE OR REPLACE FUNCTION dbpulse.matview_source_writes(view_oid oid)
RETURNS bigint LANGUAGE sql STABLE AS $$
    WITH RECURSIVE sources(oid) AS (
        SELECT d.refobjid
        FROM pg_rewrite r
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass
        WHERE r.ev_class = view_oid AND d.refobjid <> view_oid
      UNION
        SELECT next.oid
        FROM sources s
        JOIN pg_class k ON k.oid = s.oid
        CROSS JOIN LATERAL (
            SELECT d.refobjid AS oid          -- a view: what it reads
            FROM pg_rewrite r
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                            AND d.refclassid = 'pg_class'::regclass
            WHERE k.relkind = 'v' AND r.ev_class = k.oid AND d.refobjid <> k.oid
            UNION ALL
            SELECT i.inhrelid                 -- a partitioned table: its partitions
            FROM pg_inherits i
            WHERE k.relkind = 'p' AND i.inhparent = k.oid) AS next
    )
    SELECT coalesce(sum(pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)
                        + pg_stat_get_tuples_deleted(c.oid)
                        -- this transaction's own writes, not yet in the shared counters
                        + pg_stat_get_xact_tuples_inserted(c.oid)
                        + pg_stat_get_xact_tuples_updated(c.oid)
                        + pg_stat_get_xact_tuples_deleted(c.oid)), 0)::bigint
    FROM (SELECT DISTINCT oid FROM sources) AS src
    JOIN pg_class c ON c.oid = src.oid AND c.relkind IN ('r', 'm')
$$;
