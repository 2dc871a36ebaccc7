-- Writes that can change a materialized view: to the tables it reads, to the tables behind the
-- views it reads, and to the partitions of partitioned tables it reads (a partitioned parent
-- keeps no counters of its own). Replaces the version of 002, which saw only direct tables.
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
                        + pg_stat_get_tuples_deleted(c.oid)), 0)::bigint
    FROM (SELECT DISTINCT oid FROM sources) AS src
    JOIN pg_class c ON c.oid = src.oid AND c.relkind IN ('r', 'm')
$$;
