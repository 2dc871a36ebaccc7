-- The bloat check and the Bloat page's default read the statistics of the tables above a size
-- floor only. Through column_statistics() the monitoring login got every column of the
-- database first (a function's result is built whole) and kept those of the tables asked
-- for: twice a superuser's time for the check on the small demo, and every column of a big
-- catalogue. This one takes the tables and reads theirs by index; the same three figures and
-- nothing else.
CREATE OR REPLACE FUNCTION dbpulse.column_statistics(tables oid[])
RETURNS TABLE (relid oid, attnum smallint, inherited boolean, null_frac real, n_distinct real,
               avg_width integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT starelid, staattnum, stainherit, stanullfrac, stadistinct, stawidth
    FROM pg_catalog.pg_statistic
    WHERE starelid = ANY (tables)
$$;
REVOKE ALL ON FUNCTION dbpulse.column_statistics(oid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbpulse.column_statistics(oid[]) TO pg_monitor;
