-- How far a sequence has counted needs SELECT or USAGE on it, so a pg_monitor-only login saw
-- every sequence as "unknown". This function, owned by the DBA who installs the schema, hands
-- pg_monitor each sequence's last value and nothing else. DB Pulse uses it only where its owner
-- may read every sequence (a superuser installed it).
CREATE OR REPLACE FUNCTION dbpulse.sequence_last_values()
RETURNS TABLE (seqrelid oid, last_value bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT s.seqrelid, pg_sequence_last_value(s.seqrelid)
    FROM pg_catalog.pg_sequence s
    JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
    WHERE c.relpersistence <> 't'  -- other sessions' temporary sequences cannot be read
$$;
REVOKE ALL ON FUNCTION dbpulse.sequence_last_values() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbpulse.sequence_last_values() TO pg_monitor;
