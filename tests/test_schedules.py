"""pg_cron refresh schedules on Debian's PostgreSQL 15 with pg_cron preloaded (the suite's
pg15 server): scheduled from DB Pulse, run by pg_cron, listed with the run and the failure."""

import time
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg import conninfo

from foundation.config import Settings
from foundation.connections import DatabaseProblem, monitoring_connection
from foundation.markup import shown
from operations import actions
from reads import matviews, schedules
from tests.conftest import app_on, as_actor, run_cli
from ui import loaders


@pytest.fixture
def cron_url(pg15_url):
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('cron.job')").fetchone()[0] is None:
            pytest.skip("pg_cron is not installed here (postgresql-15-cron)")
        conn.execute("DROP MATERIALIZED VIEW IF EXISTS sched_ok, sched_fail")
        conn.execute("DROP TABLE IF EXISTS sched_src")
        conn.execute("CREATE TABLE sched_src (n int)")
        conn.execute("INSERT INTO sched_src VALUES (1)")
        conn.execute("CREATE MATERIALIZED VIEW sched_ok AS SELECT 1 AS id, count(*) AS n "
                     "FROM sched_src")
        conn.execute("CREATE UNIQUE INDEX ON sched_ok (id)")
        # refreshes only while sched_src has rows: emptied below, so its runs fail
        conn.execute("CREATE MATERIALIZED VIEW sched_fail AS SELECT 1 / count(*) AS x "
                     "FROM sched_src")
    yield pg15_url
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s",
                     (schedules.JOB_PREFIX + "%",))


def _jobs(url: str):
    """The target's refresh jobs as DB Pulse lists them, by name."""
    with psycopg.connect(url, autocommit=True) as conn, \
            schedules.open_cron(conn, url, Settings()) as cron:
        return schedules.schedules(cron).set_index("jobname")


def _finished(url: str, names: list[str]) -> bool:
    """Each job has a finished run (one caught while it runs is "starting" or "running")."""
    listed = _jobs(url)
    return all(listed.loc[n].last_status in ("succeeded", "failed") for n in names)


def test_pg_cron_runs_what_db_pulse_scheduled_here_and_from_another_database(
        cron_url, elsewhere_url, pg15_logins, dba_settings, monkeypatch, tmp_path):
    """Debian's pg_cron 1.4 runs jobs on the minute only, so the three cases share one wait:
    views scheduled in pg_cron's own database (one that succeeds, one that fails), a view of
    another database scheduled there for it, and a job DB Pulse did not make, whose run is a
    view's refresh time."""
    # here: made by the DBA, listed and shown to the pg_monitor-only login, which pg_cron's row
    # security alone would show none of the DBA's jobs and runs
    dba = as_actor(Settings(role="dba"), cron_url, name="pg15", person="ann@example.com")
    job = actions.schedule_refresh(dba, "public", "sched_ok", "* * * * *")
    with pytest.raises(DatabaseProblem, match="cannot be refreshed CONCURRENTLY"):
        actions.schedule_refresh(dba, "public", "sched_fail", "* * * * *")  # no unique index
    actions.schedule_refresh(dba, "public", "sched_fail", "* * * * *", allow_blocking=True)
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("DELETE FROM sched_src")  # from now on sched_fail divides by zero
    monitor = pg15_logins.monitor_url
    listed = _jobs(monitor)
    ok = listed.loc["dbpulse-refresh-public.sched_ok"]
    assert ok.jobid == job and ok.active and ok.last_status is None
    assert ok.command == "REFRESH MATERIALIZED VIEW CONCURRENTLY public.sched_ok"
    assert listed.loc["dbpulse-refresh-public.sched_fail"].command == \
        "REFRESH MATERIALIZED VIEW public.sched_fail"
    assert ok.next_run > datetime.now(timezone.utc)
    assert ok.next_run.second == 0

    # elsewhere: made in pg_cron's database, to run in this one
    far = as_actor(Settings(role="dba"), elsewhere_url, name="far", person="ann@example.com")
    far_job = actions.schedule_refresh(far, "public", "far_ok", "* * * * *")
    far_name = "dbpulse-refresh-cron_elsewhere.public.far_ok"
    with psycopg.connect(cron_url) as conn:
        assert conn.execute("SELECT jobname, database, command FROM cron.job WHERE jobid = %s",
                            (far_job,)).fetchone() == (
            far_name, "cron_elsewhere", "REFRESH MATERIALIZED VIEW CONCURRENTLY public.far_ok")
    with psycopg.connect(elsewhere_url, autocommit=True) as conn:
        assert schedules.cron_place(conn).elsewhere
        assert schedules.scheduled_views(conn, elsewhere_url, Settings()) == {
            ("public", "far_ok"): far_name}  # the agent leaves the view to it
        conn.execute("INSERT INTO far_src VALUES (2)")

    # a job of pg_cron's own (not DB Pulse's) refreshing a view nobody else logs
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cron_src (id int); "
                     "CREATE MATERIALIZED VIEW IF NOT EXISTS cron_mv AS "
                     "SELECT count(*) FROM cron_src")
        by_hand = conn.execute("SELECT cron.schedule('dbpulse-test-cron', '* * * * *', "
                               "'REFRESH MATERIALIZED VIEW public.cron_mv')").fetchone()[0]
    try:
        deadline = time.monotonic() + 80  # the next whole minute, and the runs' own time
        while not (_finished(monitor, ["dbpulse-refresh-public.sched_ok",
                                       "dbpulse-refresh-public.sched_fail"])
                   and _finished(elsewhere_url, [far_name])):
            assert time.monotonic() < deadline, "pg_cron ran no job within 80 s"
            time.sleep(2)
        with psycopg.connect(cron_url, autocommit=True) as conn:
            while not conn.execute("SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE "
                                   "jobid = %s AND status = 'succeeded')", (by_hand,)
                                   ).fetchone()[0]:
                assert time.monotonic() < deadline, "pg_cron ran no job within 80 s"
                time.sleep(1)
            ended = conn.execute("SELECT max(end_time) FROM cron.job_run_details "
                                 "WHERE jobid = %s", (by_hand,)).fetchone()[0]
        with monitoring_connection(cron_url, dba_settings) as conn:
            row = matviews.list_matviews(conn, 15.0).set_index("view_name").loc["cron_mv"]
    finally:
        with psycopg.connect(cron_url, autocommit=True) as conn:
            conn.execute("SELECT cron.unschedule(%s)", (by_hand,))
    # pg_cron's run sets the view's last refresh
    assert row["recorded_by"] == "pg_cron" and row["last_refresh"] == ended
    assert row["freshness"].startswith("fresh:")

    # here: the run and the failure, listed to the monitoring login
    listed = _jobs(monitor)
    ok, failed = (listed.loc[f"dbpulse-refresh-public.{v}"] for v in ("sched_ok", "sched_fail"))
    assert ok.last_status == "succeeded" and ok.failure_streak == 0 and ok.last_ms >= 0
    assert failed.last_status == "failed" and failed.failure_streak >= 1
    assert "division by zero" in failed.last_error
    with psycopg.connect(cron_url) as conn:
        assert conn.execute("SELECT n FROM sched_ok").fetchone()[0] == 0  # refreshed: empty now
        audited = conn.execute("SELECT actor, outcome, parameters->>'schedule' FROM "
                               "dbpulse.audit_log WHERE action = 'schedule_refresh' "
                               "ORDER BY id").fetchall()
    assert audited[0] == ("ann@example.com", "ok", "* * * * *")
    assert ("ann@example.com", "error", "* * * * *") in audited  # the refused blocking one
    # the page shows the run: its runs table, and the failing job's streak above the schedules
    monkeypatch.delenv("REDIS_URL", raising=False)
    at = app_on(monkeypatch, tmp_path, monitor, "", role="viewer")
    at.switch_page("views/matviews.py").run()
    assert not at.exception
    runs = next(d.value for d in at.dataframe if "return_message" in d.value.columns)
    newest = runs.drop_duplicates("jobname")  # newest first: each job's last run
    statuses = dict(zip(newest["jobname"], newest["status"]))
    assert statuses["dbpulse-refresh-public.sched_ok"] == "succeeded"
    assert statuses["dbpulse-refresh-public.sched_fail"] == "failed"
    assert any("dbpulse-refresh-public.sched_fail" in shown(e.value)
               and "division by zero" in shown(e.value) for e in at.error)

    # elsewhere: refreshed there, as the page lists it; paused and removed from here
    listed = _jobs(elsewhere_url)
    assert listed.loc[far_name].last_status == "succeeded", listed.loc[far_name].last_error
    with psycopg.connect(elsewhere_url) as conn:
        assert conn.execute("SELECT n FROM far_ok").fetchone()[0] == 2
    page = loaders.matviews_data.__wrapped__(elsewhere_url, Settings()).value
    assert page["cron_problem"] is None and page["cron_database"] == "cron_elsewhere"
    assert list(page["cron"]["jobname"].unique()) == [far_name]
    actions.pause_schedule(far, "public", "far_ok", active=False)
    assert not _jobs(elsewhere_url).loc[far_name].active
    actions.remove_schedule(far, "public", "far_ok")
    assert _jobs(elsewhere_url).empty


def test_pause_resume_remove_and_bad_input(cron_url):
    dba = as_actor(Settings(role="dba"), cron_url, name="pg15")
    viewer = as_actor(Settings(role="viewer"), cron_url, name="pg15", person="bob@example.com")
    with pytest.raises(DatabaseProblem, match="pg_cron refused the schedule 'every tuesday'"):
        actions.schedule_refresh(dba, "public", "sched_ok", "every tuesday")
    with pytest.raises(DatabaseProblem) as refused:
        actions.schedule_refresh(viewer, "public", "sched_ok", "*/10 * * * *")
    assert refused.value.kind == "refused"
    actions.schedule_refresh(dba, "public", "sched_ok", "*/10 * * * *")
    actions.pause_schedule(dba, "public", "sched_ok", active=False)
    row = _jobs(cron_url).loc["dbpulse-refresh-public.sched_ok"]
    assert not row.active and row.next_run is None
    actions.schedule_refresh(dba, "public", "sched_ok", "*/15 * * * *")  # change it
    actions.pause_schedule(dba, "public", "sched_ok", active=True)
    jobs = _jobs(cron_url).reset_index()
    mine = jobs[jobs["jobname"] == "dbpulse-refresh-public.sched_ok"]
    assert len(mine) == 1 and mine.iloc[0].schedule == "*/15 * * * *" and mine.iloc[0].active
    actions.remove_schedule(dba, "public", "sched_ok")
    with pytest.raises(DatabaseProblem, match="has no refresh schedule"):
        actions.remove_schedule(dba, "public", "sched_ok")


def test_a_job_of_that_name_owned_by_another_role_is_refused(cron_url):
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS cron_other")
        conn.execute("CREATE ROLE cron_other")
        conn.execute("GRANT USAGE ON SCHEMA cron TO cron_other")
        conn.execute("SET ROLE cron_other")
        conn.execute("SELECT cron.schedule('dbpulse-refresh-public.sched_ok', '0 * * * *', "
                     "'SELECT 1')")
        conn.execute("RESET ROLE")
    dba = as_actor(Settings(role="dba"), cron_url, name="pg15")
    with pytest.raises(DatabaseProblem, match="owned by cron_other"):
        actions.schedule_refresh(dba, "public", "sched_ok", "*/10 * * * *")


def test_without_pg_cron_it_says_how_to_enable_it(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE MATERIALIZED VIEW v AS SELECT 1 AS id")
        place = schedules.cron_place(conn)
    assert not place.installed
    dba = as_actor(Settings(role="dba"), scratch_database, name="scratch")
    with pytest.raises(DatabaseProblem, match="pg_cron is not available in this database"):
        actions.schedule_refresh(dba, "public", "v", "*/10 * * * *")


def test_cli_schedule(cron_url, tmp_path):
    env = {"DATABASE_URL": cron_url, "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"),
           "DBPULSE_ROLE": "dba"}
    made = run_cli("schedule", "set", "public.sched_ok", "--every", "*/10 * * * *", env=env)
    assert made.returncode == 0, made.stderr
    listed = run_cli("schedule", "list", env=env)
    assert "dbpulse-refresh-public.sched_ok  [*/10 * * * *]  next" in listed.stdout
    refused = run_cli("schedule", "set", "public.sched_ok", env={**env, "DBPULSE_ROLE": "viewer"})
    assert refused.returncode == 1 and "DBA" in refused.stderr


def test_the_page_schedules_a_view_and_lists_it(cron_url, monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    at = app_on(monkeypatch, tmp_path, cron_url, "", role="dba")
    at.switch_page("views/matviews.py").run()
    assert not at.exception
    next(s for s in at.selectbox if s.label == "View").select("public.sched_ok").run()
    next(b for b in at.button if shown(b.label) == "Schedule public.sched_ok").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Done: pg_cron job" in s.value for s in at.success)
    jobs = next(d.value for d in at.dataframe if "schedule" in d.value.columns)
    assert "dbpulse-refresh-public.sched_ok" in set(jobs["jobname"])  # listed at once


def test_stale_views_a_pg_cron_job_refreshes_are_left_to_it(cron_url):
    dba = as_actor(Settings(role="dba", matview_max_age_minutes=0), cron_url, name="pg15",
                   person="ann@example.com")
    actions.schedule_refresh(dba, "public", "sched_ok", "0 3 * * *")  # not before 03:00
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sched_src VALUES (2)")  # a write since: both views stale
        # another role's job, written by hand, for the other view
        conn.execute("SELECT cron.schedule('dbpulse-refresh-by-hand', '0 4 * * *', "
                     "'refresh materialized view SCHED_FAIL;')")
    try:
        left = {o.view: o for o in actions.refresh_stale(dba, leave_scheduled=True)
                if "sched_" in o.view}  # the server's other views are not this test's
        assert left == {
            "public.sched_ok": matviews.LeftToCron("public.sched_ok",
                                                   "dbpulse-refresh-public.sched_ok"),
            "public.sched_fail": matviews.LeftToCron("public.sched_fail",
                                                     "dbpulse-refresh-by-hand")}
        actions.pause_schedule(dba, "public", "sched_ok", False)  # a paused job refreshes nothing
        done = {o.view: o for o in actions.refresh_stale(dba, leave_scheduled=True)}
        assert isinstance(done["public.sched_ok"], matviews.Refreshed)
        assert isinstance(done["public.sched_fail"], matviews.LeftToCron)
    finally:
        with psycopg.connect(cron_url, autocommit=True) as conn:
            conn.execute("SELECT cron.unschedule('dbpulse-refresh-by-hand')")


@pytest.fixture
def elsewhere_url(cron_url):
    """A second database on the pg15 server: pg_cron lives in salesflow15 (cron.database_name),
    not here."""
    server = conninfo.make_conninfo(cron_url, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cron_elsewhere WITH (FORCE)")
        conn.execute("DROP ROLE IF EXISTS cron_dba")
        conn.execute("CREATE ROLE cron_dba LOGIN PASSWORD 'cron-dba'")
        conn.execute("CREATE DATABASE cron_elsewhere OWNER cron_dba")
    url = conninfo.make_conninfo(cron_url, dbname="cron_elsewhere")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE far_src (n int)")
        conn.execute("INSERT INTO far_src VALUES (1)")
        conn.execute("CREATE MATERIALIZED VIEW far_ok AS SELECT 1 AS id, count(*) AS n "
                     "FROM far_src")
        conn.execute("CREATE UNIQUE INDEX ON far_ok (id)")
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA cron TO cron_dba")
        conn.execute("GRANT SELECT ON cron.job, cron.job_run_details TO cron_dba")
    yield url
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = "
                     "'cron_elsewhere'")
        conn.execute("DROP OWNED BY cron_dba")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP DATABASE cron_elsewhere WITH (FORCE)")
        conn.execute("DROP ROLE cron_dba")


def test_pg_cron_in_another_database_without_the_grant_says_which(elsewhere_url, cron_url):
    role_url = conninfo.make_conninfo(elsewhere_url, user="cron_dba", password="cron-dba")
    dba = as_actor(Settings(role="dba"), role_url, name="far")
    with pytest.raises(DatabaseProblem, match="cannot see whether it runs from another one"):
        actions.schedule_refresh(dba, "public", "far_ok", "*/10 * * * *")
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("GRANT pg_monitor TO cron_dba")  # as README's monitoring role
        conn.execute("REVOKE CONNECT ON DATABASE salesflow15 FROM PUBLIC")
    try:  # pg_cron's database refuses this role
        with pytest.raises(DatabaseProblem, match="from the database salesflow15.*could not "
                           "connect there with this target's credentials"):
            actions.schedule_refresh(dba, "public", "far_ok", "*/10 * * * *")
    finally:
        with psycopg.connect(cron_url, autocommit=True) as conn:
            conn.execute("GRANT CONNECT ON DATABASE salesflow15 TO PUBLIC")
    with pytest.raises(DatabaseProblem, match=r"may not call cron\.schedule_in_database.*"
                       r"GRANT EXECUTE ON FUNCTION cron\.schedule_in_database"):
        actions.schedule_refresh(dba, "public", "far_ok", "*/10 * * * *")
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, "
                     "text, text, boolean) TO cron_dba")
    actions.schedule_refresh(dba, "public", "far_ok", "*/10 * * * *")
    assert _jobs(role_url).loc["dbpulse-refresh-cron_elsewhere.public.far_ok"].username == \
        "cron_dba"
    with pytest.raises(DatabaseProblem, match=r"may not call cron\.alter_job"):
        actions.pause_schedule(dba, "public", "far_ok", active=False)
    actions.remove_schedule(dba, "public", "far_ok")  # its owner may always remove it
    assert _jobs(role_url).empty


def test_run_history_is_read_from_its_latest_runs_only(cron_url):
    """pg_cron keeps every run: with 30,000 old runs, the listing reads the latest ones by
    run id (no sequential scan of the history) and still counts the streak of the last runs."""
    dba = as_actor(Settings(role="dba"), cron_url, name="pg15")
    job = actions.schedule_refresh(dba, "public", "sched_ok", "0 3 * * *")
    with psycopg.connect(cron_url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username,
                command, status, return_message, start_time, end_time)
            SELECT 0, nextval('cron.runid_seq'), 0, 'salesflow15', 'x', 'SELECT 1',
                   'succeeded', '', now() - interval '30 days', now() - interval '30 days'
            FROM generate_series(1, 30000)""")
        for status in ("succeeded", "failed", "failed", "failed"):
            conn.execute("""
                INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username,
                    command, status, return_message, start_time, end_time)
                VALUES (%s, nextval('cron.runid_seq'), 0, 'salesflow15', current_user,
                        'REFRESH MATERIALIZED VIEW CONCURRENTLY public.sched_ok', %s,
                        'boom', now(), now())""", (job, status))
        conn.execute("ANALYZE cron.job_run_details")
    try:
        with psycopg.connect(cron_url) as conn:  # one transaction: its own scan counters
            cron = schedules.Cron(conn, "salesflow15", False, True)
            row = schedules.schedules(cron).set_index("jobname").loc[
                "dbpulse-refresh-public.sched_ok"]
            runs = schedules.refresh_runs(cron)
            schedules.last_refreshes(cron)
            scans = "SELECT pg_stat_get_xact_numscans('cron.job_run_details'::regclass)"
            assert conn.execute(scans).fetchone()[0] == 0
            conn.execute("SELECT count(*) FROM cron.job_run_details")
            assert conn.execute(scans).fetchone()[0] == 1  # the counter does count a scan
        assert row.failure_streak == 3 and row.last_status == "failed"
        assert list(runs["status"][:4]) == ["failed", "failed", "failed", "succeeded"]
    finally:
        with psycopg.connect(cron_url, autocommit=True) as conn:
            conn.execute("DELETE FROM cron.job_run_details WHERE jobid = %s OR jobid = 0",
                         (job,))
