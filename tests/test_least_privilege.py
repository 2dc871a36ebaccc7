"""With exactly the monitoring role the README names (pg_monitor, CONNECT and USAGE on the
extensions schema, nothing else) and
the DBA's admin URL for actions, every page renders without a permission error and the CLI's
snapshot, report, check, refresh and migrate status work, on both PostgreSQL versions."""

import os
import subprocess
import sys

import psycopg
import pytest
import streamlit as st
from psycopg import sql
from streamlit.testing.v1 import AppTest

from foundation.config import Settings
from foundation.connections import admin_connection, describe_error, monitoring_connection
from operations import dbpulse_schema
from tests.conftest import PROJECT_ROOT, as_actor, each_page, login_role


@pytest.fixture(params=["pg18", "pg15"])
def monitor(request, tmp_path):
    """(monitoring URL, admin URL): the role has pg_monitor and CONNECT only; the DBA has
    installed DB Pulse's schema through the admin URL."""
    admin = request.getfixturevalue("database_url" if request.param == "pg18" else "pg15_url")
    with admin_connection(admin, Settings(role="dba")) as conn:
        dbpulse_schema.install(conn, as_actor(Settings(role="dba")))
    with login_role(admin, "least_monitor", "pw-least") as url:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("GRANT pg_monitor TO least_monitor")
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO least_monitor").format(
                sql.Identifier(conn.info.dbname)))
            _usage_on_extensions(conn, "least_monitor")
        yield url, admin


def _usage_on_extensions(conn, role: str) -> None:
    """The README's grant where pg_stat_statements lives in an `extensions` schema."""
    if conn.execute("SELECT to_regnamespace('extensions') IS NOT NULL").fetchone()[0]:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA extensions TO {}").format(
            sql.Identifier(role)))


def _env(monkeypatch, tmp_path, url, admin, redis_url, role="dba"):
    values = {"DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"), "DATABASE_URL": url,
              "DATABASE_ADMIN_URL": admin, "REDIS_URL": redis_url, "DBPULSE_ROLE": role}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_every_page_renders_without_a_permission_error(monitor, redis_url, monkeypatch,
                                                       tmp_path):
    url, admin = monitor
    _env(monkeypatch, tmp_path, url, admin, redis_url)
    for page, at in each_page():
        assert not at.exception, (page, at.exception)
        shown = [e.value for e in list(at.error) + list(at.warning)]
        assert not [m for m in shown if "ermission denied" in m], (page, shown)


def _cli(env, *args):
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_the_cli_works_with_the_monitoring_role(monitor, redis_url, monkeypatch, tmp_path):
    url, admin = monitor
    env = _env(monkeypatch, tmp_path, url, admin, redis_url)
    for args in (["snapshot"], ["snapshot"], ["report", "--out", str(tmp_path / "week.md")], ["check"],
                 ["refresh", "--stale", "--allow-blocking"], ["migrate", "status"]):
        result = _cli(env, *args)
        output = result.stdout + result.stderr
        assert "ermission denied" not in output, (args, output)
        assert "Traceback" not in output, (args, output)
        assert result.returncode in ((0, 1) if args == ["check"] else (0,)), (args, output)
    assert (tmp_path / "week.md").read_text().startswith("#")


def test_a_missing_privilege_is_named_not_guessed(scratch_database, settings):
    with login_role(scratch_database, "no_grants", "pw-none") as url:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int)")
        with psycopg.connect(url) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute("SELECT * FROM hidden.t")
    problem = describe_error(caught.value)
    assert problem.kind == "privilege"
    assert "schema hidden" in problem.message  # the object PostgreSQL names
    assert "GRANT pg_monitor" not in problem.hint  # not a guess that pg_monitor is missing


def test_a_plain_role_sees_grey_and_hidden_statements_not_a_crash(database_url, redis_url,
                                                                  monkeypatch, tmp_path):
    from foundation import capabilities
    from foundation.connections import monitoring_connection
    from operations import checks
    with psycopg.connect(database_url) as conn:
        for _ in range(3):
            conn.execute("SELECT count(*) FROM pg_class WHERE relname = %s", ("x",)).fetchone()
    with login_role(database_url, "plain_login", "pw-plain") as url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            _usage_on_extensions(conn, "plain_login")  # it can reach the view, not the texts
        _env(monkeypatch, tmp_path, url, database_url, redis_url, role="viewer")
        st.cache_data.clear()
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=90)
        at.run()
        at.switch_page("views/slow_queries.py").run()
        assert not at.exception, at.exception
        with monitoring_connection(url, Settings(kpi_slow_ms=0, slow_query_mean_ms=0,
                                                 slow_query_min_calls=1)) as conn:
            caps = capabilities.detect(conn)
            findings = {f.check: f for f in checks.run_all(conn, caps, Settings(
                slow_query_mean_ms=0, slow_query_min_calls=1))}
    st.cache_data.clear()
    assert any("another role" in o for o in findings["slow_queries"].objects)
    assert findings["connections"].severity == "grey"
    assert findings["blocked_sessions"].severity == "grey"


def test_pg_stat_statements_in_an_extensions_schema_names_the_grant(scratch_database, settings):
    """As on Supabase: pg_stat_statements in `extensions`; a pg_monitor-only login that may not
    use that schema is told the exact GRANT, which, run, makes the slow-query check judge."""
    from foundation import capabilities
    from operations import checks

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions")
    with login_role(scratch_database, "ext_monitor", "pw-ext") as url:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("GRANT pg_monitor TO ext_monitor")
        with monitoring_connection(url, settings) as conn:
            caps = capabilities.detect(conn)
            before = checks.check_slow_queries(conn, caps, settings)
        assert before.severity == "grey"
        assert before.fix == "GRANT USAGE ON SCHEMA extensions TO ext_monitor;"
        assert "schema extensions, which role ext_monitor may not use" in before.summary
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute(before.fix)
        with monitoring_connection(url, settings) as conn:
            caps = capabilities.detect(conn)
            after = checks.check_slow_queries(conn, caps, settings)
        assert caps.has_pg_stat_statements and after.severity in ("green", "amber")
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("REVOKE USAGE ON SCHEMA extensions FROM ext_monitor")


def test_the_monitoring_login_sees_sequences_after_schema_install(scratch_database, settings,
                                                                  dba_settings):
    """Without SELECT on a sequence its use is unknown (grey); after a superuser's schema
    install the pg_monitor-only login reads its last value through DB Pulse's function."""
    from operations import checks

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE small_ids (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('small_ids_id_seq', 2000000000)")
    with login_role(scratch_database, "seq_monitor", "pw-seq") as url:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("GRANT pg_monitor TO seq_monitor")
        with monitoring_connection(url, settings) as conn:
            blind = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
        with admin_connection(scratch_database, dba_settings) as conn:
            dbpulse_schema.install(conn, as_actor(dba_settings))
        with monitoring_connection(url, settings) as conn:
            seen = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
    assert blind.severity == "grey"
    assert seen.severity == "red" and seen.objects == ["public.small_ids_id_seq"]


def test_the_monitoring_login_reads_the_statistics_of_the_tables_it_asks_for(monitor):
    """Through DB Pulse's function (sql/dbpulse/021): the tables asked for and only theirs, read
    by index, with the figures a superuser reads; the bloat check's estimates come out the
    same on both logins."""
    from pandas.testing import assert_frame_equal

    from reads import bloat

    url, admin = monitor
    settings = Settings()
    with monitoring_connection(url, settings) as conn, \
            monitoring_connection(admin, settings) as superuser:
        oids = [oid for (oid,) in superuser.execute(
            "SELECT c.oid FROM pg_class c WHERE c.relname IN ('leads', 'deals') "
            "AND c.relnamespace = 'public'::regnamespace ORDER BY c.oid")]
        assert conn.execute(bloat.STATS_SOURCE).fetchone() == (False, True, True)
        assert {relid for (relid,) in conn.execute(
            "SELECT DISTINCT relid FROM dbpulse.column_statistics(%s::oid[])", (oids,))} == set(oids)
        theirs = bloat.column_stats(conn, oids)
        assert len(oids) == 2 and set(theirs["relid"]) == set(oids)
        assert theirs["width"].notna().all()
        assert_frame_equal(theirs, bloat.column_stats(superuser, oids))
        for mine, superusers in zip(bloat.table_and_index_bloat(conn, 0),
                                    bloat.table_and_index_bloat(superuser, 0)):
            assert len(mine) > 10
            assert_frame_equal(mine, superusers)
