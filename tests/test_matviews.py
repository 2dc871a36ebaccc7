"""Materialized views: freshness, refresh (concurrent, plain with confirmation, refused),
the refresh log and the event trigger, the CLI and the page."""

import os
import subprocess
import sys
import time

import pandas as pd
import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from foundation.config import Settings
from foundation.connections import DatabaseProblem, admin_connection, monitoring_connection
from foundation.roles import PermissionDenied
from operations import actions, dbpulse_schema
from reads import matviews
from tests.conftest import PROJECT_ROOT, as_actor

ODD = 'Sales "Daily" MV'


@pytest.fixture
def views_db(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE sales (id int PRIMARY KEY, day date, amount int);
            INSERT INTO sales SELECT g, current_date - g % 10, g FROM generate_series(1, 1000) g;
            CREATE MATERIALIZED VIEW "Sales ""Daily"" MV" AS
                SELECT day, sum(amount) AS total FROM sales GROUP BY day;
            CREATE UNIQUE INDEX ON "Sales ""Daily"" MV" (day);
            CREATE MATERIALIZED VIEW no_unique AS SELECT day, count(*) FROM sales GROUP BY day;
            CREATE MATERIALIZED VIEW never_filled AS SELECT id FROM sales WITH NO DATA;
            CREATE UNIQUE INDEX ON never_filled (id);
        """)
    return scratch_database


def _views(url, settings, max_age=15.0):
    with monitoring_connection(url, settings) as conn:
        return matviews.list_matviews(conn, max_age).set_index("view_name")


def _log(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT view_name, outcome, recorded_by, was_concurrent, detail "
                            "FROM dbpulse.matview_refresh_log ORDER BY id").fetchall()


def _audit(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT action, object_name, outcome FROM dbpulse.audit_log "
                            "WHERE action = 'refresh_matview' ORDER BY id").fetchall()


def _ready(conn, settings):
    """DB Pulse's schema, which operations/actions.perform installs before any action."""
    dbpulse_schema.install(conn, as_actor(Settings(role="dba")))
    return as_actor(settings)


def _refresh(url, settings, name, **kw):
    with admin_connection(url, settings) as conn:
        return matviews.refresh(conn, _ready(conn, settings), schema="public", name=name, **kw)


def test_listing_before_any_refresh_says_unknown(views_db, settings):
    views = _views(views_db, settings)
    assert views.loc[ODD, "concurrent_refresh"] and views.loc[ODD, "unique_index"]
    assert not views.loc["no_unique", "concurrent_refresh"]
    assert "no unique index" in views.loc["no_unique", "why_not_concurrent"]
    assert "not populated" in views.loc["never_filled", "why_not_concurrent"]
    assert views.loc[ODD, "freshness"] == "unknown: no refresh recorded"
    assert views.loc["never_filled", "freshness"] == "not populated"
    assert views["stale"].all()
    assert views.loc[ODD, "source_tables"] == "public.sales"


def test_concurrent_refresh_of_a_quoted_name_is_logged(views_db, dba_settings):
    result = actions.refresh_view(as_actor(dba_settings, views_db), "public", ODD)
    assert result.concurrently
    assert _log(views_db) == [(ODD, "ok", "dbpulse", True, None)]
    assert _audit(views_db) == [("refresh_matview", 'public."Sales ""Daily"" MV"', "ok")]
    views = _views(views_db, dba_settings)
    assert not views.loc[ODD, "stale"] and views.loc[ODD, "writes_since_refresh"] == 0
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("INSERT INTO sales SELECT g, current_date, 1 FROM generate_series(2001, 2050) g")
    time.sleep(1.1)  # cumulative statistics arrive up to a second late
    views = _views(views_db, dba_settings, max_age=0)
    assert views.loc[ODD, "writes_since_refresh"] == 50 and views.loc[ODD, "stale"]


def test_plain_refresh_needs_confirmation(views_db, dba_settings):
    with pytest.raises(matviews.RefreshRefused, match="ACCESS EXCLUSIVE"):
        _refresh(views_db, dba_settings, "no_unique")
    with pytest.raises(matviews.RefreshRefused, match="not populated"):
        _refresh(views_db, dba_settings, "never_filled")
    assert not _log(views_db)  # nothing started, nothing logged
    assert not _refresh(views_db, dba_settings, "never_filled", allow_blocking=True).concurrently
    assert _refresh(views_db, dba_settings, "never_filled").concurrently  # populated now


def test_viewer_cannot_refresh(views_db, settings):
    with pytest.raises(PermissionDenied):
        _refresh(views_db, settings, ODD)


def test_failed_refresh_is_logged_exactly(views_db, dba_settings):
    with psycopg.connect(views_db, autocommit=True) as conn:
        # a view whose refresh fails: its query divides by zero once the data allows it
        conn.execute("CREATE MATERIALIZED VIEW fragile AS SELECT id, 100 / amount AS x FROM sales")
        conn.execute("CREATE UNIQUE INDEX ON fragile (id)")
        conn.execute("UPDATE sales SET amount = 0 WHERE id = 1")
    with pytest.raises(DatabaseProblem) as failed:
        actions.refresh_view(as_actor(dba_settings, views_db), "public", "fragile")
    assert isinstance(failed.value.__cause__, psycopg.errors.DivisionByZero)
    [row] = _log(views_db)
    assert row[:3] == ("fragile", "error", "dbpulse") and "division by zero" in row[4]
    assert _audit(views_db) == [("refresh_matview", "public.fragile", "error")]
    views = _views(views_db, dba_settings)
    assert views.loc["fragile", "freshness"] == "unknown: no refresh recorded"


def test_lock_timeout_and_one_refresh_at_a_time(views_db, dba_settings):
    with admin_connection(views_db, dba_settings) as conn:
        view_oid = conn.execute("SELECT 'no_unique'::regclass::oid").fetchone()[0]
    holder = psycopg.connect(views_db)
    try:
        holder.execute("SELECT * FROM no_unique LIMIT 1").fetchall()  # a reader mid-transaction
        with pytest.raises(psycopg.errors.LockNotAvailable):
            _refresh(views_db, dba_settings, "no_unique", allow_blocking=True, lock_timeout_ms=200)
        holder.rollback()
        holder.autocommit = True
        holder.execute("SELECT pg_advisory_lock(%s, %s::int)",
                       (matviews.REFRESH_LOCK_CLASS, view_oid))
        with pytest.raises(matviews.RefreshRefused, match="already running"):
            _refresh(views_db, dba_settings, "no_unique", allow_blocking=True)
    finally:
        holder.close()
    assert [r[1] for r in _log(views_db)] == ["error"]  # the refused one never started
    assert "lock timeout" in _log(views_db)[0][4]


def test_event_trigger_logs_refreshes_by_anyone(views_db, dba_settings):
    with admin_connection(views_db, dba_settings) as conn:
        matviews.install_event_trigger(conn, _ready(conn, dba_settings))
        assert matviews.event_trigger_installed(conn)
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute('REFRESH MATERIALIZED VIEW CONCURRENTLY "Sales ""Daily"" MV"')
    _refresh(views_db, dba_settings, "no_unique", allow_blocking=True)  # logged once, by DB Pulse
    assert _log(views_db) == [(ODD, "ok", "event_trigger", True, None),
                              ("no_unique", "ok", "dbpulse", False, None)]
    views = _views(views_db, dba_settings)
    assert views.loc[ODD, "recorded_by"] == "event_trigger"


def test_a_refresh_right_after_a_write_in_one_call_is_fresh(views_db, dba_settings):
    """UPDATE and REFRESH in one call (one transaction): the write reaches the shared
    statistics only after the refresh was logged; it is not a write since the refresh."""
    with admin_connection(views_db, dba_settings) as conn:
        matviews.install_event_trigger(conn, _ready(conn, dba_settings))
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute('UPDATE sales SET amount = amount + 1 WHERE id <= 10; '
                     'REFRESH MATERIALIZED VIEW "Sales ""Daily"" MV"')
    time.sleep(1.1)  # cumulative statistics arrive up to a second late
    views = _views(views_db, dba_settings)
    assert views.loc[ODD, "recorded_by"] == "event_trigger"
    assert views.loc[ODD, "writes_since_refresh"] == 0 and not views.loc[ODD, "stale"]


def test_refresh_stale_goes_on_past_failures(views_db, dba_settings):
    with admin_connection(views_db, dba_settings) as conn:
        outcomes = {o.view: o for o in matviews.refresh_stale(conn, _ready(conn, dba_settings))}
    assert isinstance(outcomes['public."Sales ""Daily"" MV"'], matviews.Refreshed)
    assert isinstance(outcomes["public.no_unique"], matviews.NotRefreshed)
    assert isinstance(outcomes["public.never_filled"], matviews.NotRefreshed)
    assert "cannot be refreshed CONCURRENTLY" in outcomes["public.no_unique"].reason


def _cli(url, *args):
    env = {**os.environ, "DATABASE_URL": url, "DBPULSE_SECRETS_FILE": "/nonexistent",
           "DBPULSE_ROLE": "dba"}
    env.pop("DATABASE_ADMIN_URL", None)
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "refresh", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_refresh(views_db):
    ok = _cli(views_db, f"public.{ODD}")
    assert ok.returncode == 0 and "(concurrently)" in ok.stdout
    refused = _cli(views_db, "no_unique")
    assert refused.returncode == 1 and "--allow-blocking" in refused.stderr
    assert _cli(views_db, "no_unique", "--allow-blocking").returncode == 0
    stale = _cli(views_db, "--stale", "--allow-blocking")
    assert stale.returncode == 0 and "never_filled: refreshed" in stale.stdout


@pytest.fixture
def page_env(monkeypatch, tmp_path, views_db, redis_url):
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", views_db)
    monkeypatch.setenv("REDIS_URL", redis_url)
    st.cache_data.clear()
    yield monkeypatch
    st.cache_data.clear()


def _page():
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/matviews.py").run()
    assert not at.exception, at.exception
    return at


def test_page_for_a_viewer_shows_the_refresh_disabled_with_why(page_env, views_db):
    page_env.setenv("DBPULSE_ROLE", "viewer")
    with admin_connection(views_db, Settings(role="dba")) as conn:
        _ready(conn, Settings(role="dba"))
    at = _page()
    assert any("DBA actions are shown disabled" in c.value for c in at.caption)
    buttons = [b for b in at.button if b.label.startswith(("Refresh now", "Refresh all stale"))]
    assert len(buttons) == 2
    assert all(b.disabled and "needs the DBA role" in b.help for b in buttons)
    assert _log(views_db) == []                                   # nothing refreshed


def test_page_refresh_as_dba(page_env, views_db):
    page_env.setenv("DBPULSE_ROLE", "dba")
    at = _page()
    [refresh] = [b for b in at.button if b.label == "Refresh now"]
    refresh.click().run()
    assert not at.exception
    assert any("Refreshed" in s.value for s in at.success)
    assert _log(views_db)[-1][2] == "dbpulse"


def test_unique_violation_under_concurrently_is_reported_and_logged(views_db, dba_settings):
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("CREATE MATERIALIZED VIEW recent AS SELECT day, amount FROM sales "
                     "WHERE id <= 10")
        conn.execute("CREATE UNIQUE INDEX ON recent (day)")
        conn.execute("UPDATE sales SET day = current_date WHERE id = 2")  # two rows, one day
    with pytest.raises(DatabaseProblem) as failed:
        actions.refresh_view(as_actor(dba_settings, views_db), "public", "recent")
    assert isinstance(failed.value.__cause__, psycopg.errors.UniqueViolation)
    [row] = _log(views_db)
    assert row[:4] == ("recent", "error", "dbpulse", True)
    assert _audit(views_db) == [("refresh_matview", "public.recent", "error")]


def test_page_asks_again_when_the_view_lost_its_unique_index_since_it_was_listed(page_env,
                                                                                 views_db):
    page_env.setenv("DBPULSE_ROLE", "dba")
    at = _page()  # the list says: refreshable CONCURRENTLY
    assert at.selectbox[0].value is not None
    with psycopg.connect(views_db, autocommit=True) as conn:
        index = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = "
                             """'"Sales ""Daily"" MV"'::regclass""").fetchone()[0]
        conn.execute(f"DROP INDEX {index}")
    before = len(_log(views_db)) if _log_exists(views_db) else 0
    [refresh] = [b for b in at.button if b.label == "Refresh now"]
    refresh.click().run()  # within the cache time: the page still thinks CONCURRENTLY works
    assert any("Confirm to run it anyway" in e.value for e in at.error), [e.value for e in at.error]
    assert (len(_log(views_db)) if _log_exists(views_db) else 0) == before  # nothing ran
    # the refused action cleared the cache: the next run asks for the confirmation
    at.run()
    assert any("cannot be refreshed CONCURRENTLY" in w.value for w in at.warning)


def _log_exists(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('dbpulse.matview_refresh_log') IS NOT NULL"
                            ).fetchone()[0]


def test_writes_through_partitions_and_views_are_seen(views_db, dba_settings):
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE events (id int, day date) PARTITION BY RANGE (day);
            CREATE TABLE events_old PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2026-01-01');
            CREATE TABLE events_new PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2100-01-01');
            CREATE MATERIALIZED VIEW events_daily AS SELECT day, count(*) AS n FROM events GROUP BY day;
            CREATE UNIQUE INDEX ON events_daily (day);
            CREATE VIEW big_sales AS SELECT * FROM sales WHERE amount > 500;
            CREATE MATERIALIZED VIEW big_sales_daily AS
                SELECT day, count(*) AS n FROM big_sales GROUP BY day;
            CREATE UNIQUE INDEX ON big_sales_daily (day);
        """)
    for name in ("events_daily", "big_sales_daily"):
        _refresh(views_db, dba_settings, name)
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("INSERT INTO events SELECT g, date '2026-06-01' + g % 9 "
                     "FROM generate_series(1, 30) g")
        conn.execute("UPDATE sales SET amount = amount + 1 WHERE id <= 20")
    time.sleep(1.1)  # cumulative statistics arrive up to a second late
    views = _views(views_db, dba_settings, max_age=60)
    assert views.loc["events_daily", "writes_since_refresh"] == 30  # was 0: "no writes since"
    assert views.loc["big_sales_daily", "writes_since_refresh"] == 20


def test_without_the_event_trigger_an_old_logged_refresh_is_not_called_stale(views_db,
                                                                              dba_settings):
    _refresh(views_db, dba_settings, ODD)
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("INSERT INTO sales SELECT g, current_date, 1 FROM generate_series(3001, 3010) g")
        # someone else refreshes: DB Pulse cannot know without the trigger
        conn.execute('REFRESH MATERIALIZED VIEW CONCURRENTLY "Sales ""Daily"" MV"')
    time.sleep(1.1)
    row = _views(views_db, dba_settings, max_age=0).loc[ODD]
    assert row["freshness"].startswith("unknown: DB Pulse refreshed it")
    assert pd.isna(row["age_minutes"])
    with admin_connection(views_db, dba_settings) as conn:
        matviews.install_event_trigger(conn, _ready(conn, dba_settings))
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute('REFRESH MATERIALIZED VIEW CONCURRENTLY "Sales ""Daily"" MV"')
        conn.execute("INSERT INTO sales SELECT g, current_date, 1 FROM generate_series(3011, 3015) g")
    time.sleep(1.1)
    row = _views(views_db, dba_settings, max_age=0).loc[ODD]
    assert row["freshness"].startswith("stale:") and row["age_minutes"] >= 0


def test_event_trigger_knows_a_concurrent_refresh_inside_a_function(views_db, dba_settings):
    with admin_connection(views_db, dba_settings) as conn:
        matviews.install_event_trigger(conn, _ready(conn, dba_settings))
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION refresh_both() RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                REFRESH MATERIALIZED VIEW CONCURRENTLY "Sales ""Daily"" MV";
                REFRESH MATERIALIZED VIEW no_unique;
            END $$""")
        conn.execute("SELECT refresh_both()")
    assert [(name, concurrent) for name, _, _, concurrent, _ in _log(views_db)] == [
        (ODD, True), ("no_unique", False)]


def test_refreshes_that_keep_failing_or_a_view_twice_too_old_turn_red(views_db, dba_settings):
    """The plan's "MV refresh fails → monitoring": three refreshes in a row that fail (by
    anyone DB Pulse sees) make the stale check red and name the view; so does an age past twice
    the maximum. A refresh that works ends the streak."""
    from operations import checks

    with admin_connection(views_db, dba_settings) as conn:  # every refresh is known: ages too
        matviews.install_event_trigger(conn, _ready(conn, dba_settings))
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("CREATE MATERIALIZED VIEW ratio AS SELECT 1 / count(*) AS x FROM sales")
        conn.execute("DELETE FROM sales")  # from now on its refresh divides by zero
    for _ in range(3):
        with pytest.raises(DatabaseProblem):
            actions.refresh_view(as_actor(dba_settings, views_db), "public", "ratio",
                                 allow_blocking=True)
    with monitoring_connection(views_db, dba_settings) as conn:
        finding = checks.check_matviews(conn, dba_settings)
        listed = matviews.list_matviews(conn, 15).set_index("view_name")
    assert listed.loc["ratio", "failures_in_a_row"] == 3
    assert finding.severity == "red" and "public.ratio (3 refreshes in a row failed)" in \
        finding.summary
    with psycopg.connect(views_db, autocommit=True) as conn:
        conn.execute("INSERT INTO sales VALUES (1, current_date, 1)")
    _refresh(views_db, dba_settings, "ratio", allow_blocking=True)
    with psycopg.connect(views_db, autocommit=True) as conn:  # and then forty minutes pass
        conn.execute("UPDATE dbpulse.matview_refresh_log SET "
                     "started_at = started_at - interval '40 minutes', "
                     "finished_at = finished_at - interval '40 minutes'")
        conn.execute("INSERT INTO sales VALUES (2, current_date, 1)")
    time.sleep(1.1)  # the write's statistics
    with monitoring_connection(views_db, dba_settings) as conn:
        listed = matviews.list_matviews(conn, 15).set_index("view_name")
        finding = checks.check_matviews(conn, dba_settings)
    assert listed.loc["ratio", "failures_in_a_row"] == 0
    assert finding.severity == "red" and "public.ratio (40 min old)" in finding.summary
