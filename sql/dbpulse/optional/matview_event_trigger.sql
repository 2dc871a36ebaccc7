-- Logs refreshes of materialized views by anyone (pg_cron, psql, the application) into
-- dbpulse.matview_refresh_log. Installed by a DBA action; event triggers need a superuser
-- (on Supabase, the postgres role). DB Pulse's own refreshes set dbpulse.refreshing and are
-- skipped here, since DB Pulse logs them itself with more detail.
CREATE OR REPLACE FUNCTION dbpulse.log_matview_refresh() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    command record;
BEGIN
    IF current_setting('dbpulse.refreshing', true) = 'on' THEN
        RETURN;
    END IF;
    FOR command IN SELECT * FROM pg_event_trigger_ddl_commands()
                   WHERE command_tag = 'REFRESH MATERIALIZED VIEW' LOOP
        INSERT INTO dbpulse.matview_refresh_log
            (view_oid, schema_name, view_name, started_at, finished_at, was_concurrent,
             refreshed_by, recorded_by, outcome, source_writes)
        SELECT c.oid, n.nspname, c.relname, statement_timestamp(), clock_timestamp(),
               -- a plain refresh holds ACCESS EXCLUSIVE on the view until the transaction
               -- ends, a concurrent one only EXCLUSIVE: this holds inside a function too,
               -- where the statement's text is not current_query()
               NOT EXISTS (SELECT 1 FROM pg_locks l
                           WHERE l.relation = c.oid AND l.pid = pg_backend_pid()
                             AND l.mode = 'AccessExclusiveLock' AND l.granted),
               session_user, 'event_trigger', 'ok',
               dbpulse.matview_source_writes(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = command.objid;
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS dbpulse_log_matview_refresh;
CREATE EVENT TRIGGER dbpulse_log_matview_refresh ON ddl_command_end
    WHEN TAG IN ('REFRESH MATERIALIZED VIEW')
    EXECUTE FUNCTION dbpulse.log_matview_refresh();
