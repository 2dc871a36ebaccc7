-- The bloat estimate needs each column's NULL fraction, distinct count and average width. pg_stats
-- shows them only for tables the reader may SELECT, so a pg_monitor-only login saw "unknown"
-- for every table. This function, owned by the DBA who installs the schema, hands pg_monitor
-- exactly these three figures from pg_statistic: no sampled values, no histograms, no data.
-- DB Pulse uses it only where its owner may read pg_statistic (a superuser installed it).
CREATE OR REPLACE FUNCTION dbpulse.column_statistics()
RETURNS TABLE (relid oid, attnum smallint, inherited boolean, null_frac real, n_distinct real,
               avg_width integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT starelid, staattnum, stainherit, stanullfrac, stadistinct, stawidth
    FROM pg_catalog.pg_statistic
$$;
REVOKE ALL ON FUNCTION dbpulse.column_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbpulse.column_statistics() TO pg_monitor;
