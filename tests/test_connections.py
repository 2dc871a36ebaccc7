import time

import psycopg
import pytest

from foundation.config import Settings
from foundation.connections import (
    ADMIN_APPLICATION_NAME,
    MONITOR_APPLICATION_NAME,
    OWN_STATEMENT_TAG,
    DatabaseProblem,
    admin_connection,
    monitoring_connection,
    redact,
)


def test_monitoring_session_refuses_writes(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE should_not_exist (a int)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE leads SET status = 'lost'")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('should_not_exist')").fetchone()[0] is None


def test_monitoring_session_settings(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        values = conn.execute(
            "SELECT current_setting('default_transaction_read_only'), "
            "current_setting('statement_timeout'), current_setting('lock_timeout'), "
            "current_setting('application_name')").fetchone()
    assert values == ("on", "3s", "1s", MONITOR_APPLICATION_NAME)


def test_statement_timeout_becomes_a_timeout_problem(database_url, settings):
    with pytest.raises(DatabaseProblem) as info:
        with monitoring_connection(database_url, settings) as conn:
            conn.execute("SELECT pg_sleep(10)")
    assert info.value.kind == "timeout"


def test_admin_session_can_write_and_is_named(database_url, dba_settings):
    with admin_connection(database_url, dba_settings) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone()[0] == \
            ADMIN_APPLICATION_NAME
        conn.execute("CREATE TEMP TABLE scratch (a int)")


def test_unreachable_postgres_fails_with_a_clear_message(settings, closed_port):
    with pytest.raises(DatabaseProblem) as info:
        with monitoring_connection(f"postgresql://u:p@127.0.0.1:{closed_port}/db", settings):
            pass
    assert info.value.kind == "unreachable"
    assert "Cannot connect" in info.value.message and "p@" not in info.value.message


def test_bad_dsn(settings):
    with pytest.raises(DatabaseProblem) as info:
        with monitoring_connection("host=localhost port", settings):
            pass
    assert info.value.kind == "bad_dsn"
    assert "postgresql://user:password@host" in info.value.hint


def test_wrong_password_and_missing_database(database_url, settings):
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    wrong = psycopg.conninfo.make_conninfo(**{**params, "password": "not-the-password"})
    with pytest.raises(DatabaseProblem) as info:
        with monitoring_connection(wrong, settings):
            pass
    if info.value.kind != "auth":  # a TEST_DATABASE_URL server may trust local connections
        pytest.skip(f"server does not check passwords here: {info.value}")
    assert "not-the-password" not in str(info.value)
    missing = psycopg.conninfo.make_conninfo(**{**params, "dbname": "no_such_db"})
    with pytest.raises(DatabaseProblem) as info:
        with monitoring_connection(missing, settings):
            pass
    assert info.value.kind == "no_database"


def test_redact_hides_passwords():
    assert "secret" not in redact("postgresql://me:secret@db.example.com:5433/app")
    assert redact("postgresql://me:secret@db.example.com:5433/app") == "me@db.example.com:5433/app"
    assert "secret" not in redact("postgresql://me:secret@db/app?broken=")


@pytest.mark.server  # starts its own
def test_numbers_return_within_seconds_of_a_restart(tmp_path, monkeypatch):
    """PostgreSQL stopped and started again under an open dashboard: the dead pooled
    connections are noticed and the failure is not kept, so numbers come back at once."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from demo.stack import EmbeddedStack, free_port
    from tests.conftest import PROJECT_ROOT
    from ui import loaders

    stack = EmbeddedStack(root=tmp_path / "restart", pg_port=free_port(), redis_port=free_port(),
                          database="postgres", with_redis=False)
    url = stack.up().state.database_url("postgres")
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    st.cache_data.clear()

    def page():
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
        at.run()
        at.switch_page("views/buffer_cache.py").run()
        assert not at.exception, at.exception
        return at

    try:
        first = page()
        assert not first.error  # numbers, and idle pooled connections kept
        assert any(c.value.startswith("As of ") for c in first.caption)  # dated
        stack.down()
        loaders.buffer_cache_data.clear()  # the cached figures expire during the outage
        assert any("not available" in e.value or "connect" in e.value.lower()
                   for e in page().error)
        stack.up()
        back = time.monotonic()
        while page().error:
            assert time.monotonic() - back < 5, "still failing 5 s after the server is back"
            time.sleep(0.5)
        print(f"numbers back {time.monotonic() - back:.1f} s after the restart")
    finally:
        stack.destroy()
        st.cache_data.clear()


def test_pages_reading_on_two_connections_report_a_time_limit_and_recover(database_url):
    """The Bloat and Indexes pages read on a second pooled connection meanwhile: a statement
    over the time limit on either becomes the page's problem, not an exception, again the
    next time (no connection left half-used in the pool), and a sane limit has the figures."""
    from ui import loaders

    tight = Settings(statement_timeout_ms=1)  # every catalogue query times out
    for load in (lambda s: loaders.bloat_data.__wrapped__(database_url, s, 0),
                 lambda s: loaders.indexes_data.__wrapped__(database_url, s)):
        for _ in range(2):
            failed = load(tight)
            assert not failed.ok and failed.problem.kind == "timeout", failed.problem
        recovered = load(Settings())
        assert recovered.ok, recovered.problem
    assert len(recovered.value["least_scanned"]) > 0
    assert len(loaders.bloat_data.__wrapped__(database_url, Settings(), 0).value["tables"]) > 0


def test_the_agent_samples_connection_use_and_the_plan_kpi_is_its_peak(logins):
    """The agent's cycle while the application holds 6 more connections records them; the
    peak the plan's KPI is judged on is that sample, DB Pulse's own connections left out."""
    from datetime import datetime, timedelta, timezone

    from agent.runner import Agent
    from foundation.config import Target
    from operations import alerts
    from reads import activity

    settings = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3)
    target = Target("peak", logins.monitor_url, logins.admin_url)

    def application_connections():
        with psycopg.connect(logins.admin_url) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND application_name NOT LIKE 'dbpulse%' AND pid <> pg_backend_pid()"
            ).fetchone()[0]

    held = [psycopg.connect(logins.app_url) for _ in range(6)]
    try:
        before = application_connections()
        agent = Agent([target], settings, alerts.Alerter([]), log=lambda line: None,
                      snapshot_every=timedelta(days=1))
        start = datetime.now(timezone.utc)
        agent.cycle([target], start)
        after = application_connections()
    finally:
        for conn in held:
            conn.close()
        agent.close()
    assert before == after >= 6  # nothing else came or went meanwhile
    with psycopg.connect(logins.admin_url) as conn:
        peak = activity.peak_use(conn, target.history_source, start,
                                 start + timedelta(seconds=1))
        available = conn.execute(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int "
            "- coalesce(current_setting('reserved_connections', true)::int, 0)").fetchone()[0]
    assert (peak.used, peak.available) == (before, available)
    assert peak.share == pytest.approx(before / available)


def test_psycopgs_own_transaction_statements_are_tagged(scratch_database, settings):
    """BEGIN, SAVEPOINT, RELEASE, COMMIT and ROLLBACK that psycopg sends for conn.transaction()
    on DB Pulse's connections carry its tag: pg_stat_statements does not list them as the
    application's statements (they were among the Slow queries page's bars)."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database "
                     "WHERE datname = current_database()")
    with monitoring_connection(scratch_database, settings) as conn:
        with conn.transaction():
            with conn.transaction():  # a savepoint
                conn.execute("SELECT 1")
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT 2")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        texts = [q for (q,) in conn.execute(
            "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) AND query ~* '^(BEGIN|COMMIT|ROLLBACK|"
            "SAVEPOINT|RELEASE)'")]
    assert len(texts) >= 4, texts
    assert all(q.endswith(OWN_STATEMENT_TAG) for q in texts), texts
