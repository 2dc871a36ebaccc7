-- pg_cron shows each role only its own jobs and runs (row-level security: username =
-- current_user), so a monitoring login granted SELECT still sees none of the DBA's. These two
-- functions, owned by the superuser who installs DB Pulse's schema where pg_cron lives, hand
-- pg_monitor the columns DB Pulse reads, of every job: no passwords, nothing else. Installed by
-- `schema install` when pg_cron is in this database, again at every install.
CREATE OR REPLACE FUNCTION dbpulse.cron_jobs()
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text, active boolean,
               database text, username text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT jobid, jobname::text, schedule::text, command::text, active, database::text,
           username::text
    FROM cron.job
$$;

-- the latest `recent` runs, newest first: pg_cron never purges its history by itself
CREATE OR REPLACE FUNCTION dbpulse.cron_job_runs(recent integer)
RETURNS TABLE (runid bigint, jobid bigint, database text, command text, status text,
               start_time timestamptz, end_time timestamptz, return_message text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT runid, jobid, database::text, command::text, status::text, start_time, end_time,
           return_message::text
    FROM cron.job_run_details
    ORDER BY runid DESC
    LIMIT recent
$$;

REVOKE ALL ON FUNCTION dbpulse.cron_jobs(), dbpulse.cron_job_runs(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbpulse.cron_jobs(), dbpulse.cron_job_runs(integer) TO pg_monitor;
