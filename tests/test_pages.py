"""AppTest for every page on the small demo: each renders without an exception and shows its
findings; a database without pg_stat_statements degrades with a clear message."""

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from foundation.markup import shown
from reads import redis_cache
from tests.conftest import PROJECT_ROOT

APP = str(PROJECT_ROOT / "app.py")


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [c.value for c in at.code]
    parts += [e.value for e in list(at.error) + list(at.warning) + list(at.info)]
    return "\n".join(parts)


def test_slow_queries_page(production_env, logins):
    with psycopg.connect(logins.app_url) as conn:  # the application's own statement
        conn.execute("SELECT id FROM leads WHERE status = %s AND p_score > %s",
                     ("hot", 90)).fetchall()
    at = _page("slow_queries")
    assert any(m.label.startswith("Calls slower than") for m in at.metric)
    assert "Cumulative since" in _text(at)
    assert len(at.dataframe) >= 1
    [text_filter] = [t for t in at.text_input if t.label == "Statement text contains"]
    text_filter.input("status = $1 AND p_score > $2").run()
    [explain] = [b for b in at.button if b.label.startswith("Show the generic plan")]
    explain.click().run()
    assert not at.exception
    plans = [c.value for c in at.code if "Scan" in c.value]
    assert plans and "leads" in plans[0], _text(at)


def test_slow_queries_without_pg_stat_statements(production_env, scratch_database):
    production_env.setenv("DATABASE_URL", scratch_database)
    at = _page("slow_queries")
    assert any("pg_stat_statements is not installed" in e.value for e in at.error)


def test_indexes_page_shows_the_planted_findings(production_env):
    production_env.setenv("DBPULSE_UNUSED_INDEX_MIN_AGE_DAYS", "0")  # the demo's indexes are new
    at = _page("indexes")
    text = _text(at)
    assert "DROP INDEX CONCURRENTLY IF EXISTS public.idx_contacts_user_id;" in text
    assert "idx_web_tracking_events_url" in text
    # each drawn finding's definition, read for it (and a duplicate's, the one that stays)
    assert "Definition: btree \\(url\\)" in text
    assert ("Definition: btree \\(user_id\\); the one that stays\\: btree \\(user_id, "
            "created_at DESC\\)") in text


def test_bloat_page_shows_the_churned_table(production_env):
    at = _page("bloat")
    table = at.dataframe[0].value
    assert table.iloc[0]["table_name"] == "dm_conversations"
    assert "VACUUM (ANALYZE) public.dm_conversations" in _text(at)


def test_buffer_cache_page(production_env):
    at = _page("buffer_cache")
    assert {m.label for m in at.metric} >= {"Database hit rate", "Tables hit rate",
                                             "Indexes hit rate"}


def test_activity_page(production_env):
    at = _page("activity")
    assert any(m.label == "Connections in use" for m in at.metric)
    # nothing blocks here: no session and no destructive action is chosen for the DBA
    [session] = [b for b in at.selectbox if b.label == "Session"]
    assert session.value is None and not at.radio


def test_overview_shows_health_banners(production_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    text = "\n".join(w.value for w in at.warning)
    assert "Duplicate and redundant indexes" in text
    assert "Table and index bloat" in text


def test_redis_page(production_env, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("forgotten:1", "x")  # a family without TTL
    client.set("dashboard:test", "x", ex=600)
    at = _page("redis")
    labels = {m.label for m in at.metric}
    assert {redis_cache.HIT_RATE_LABEL, "Keyspace hit rate, last 5 min",
            "Memory used"} <= labels
    # TTLs are read only when asked: each one is a lookup Redis counts
    assert not any("forgotten:" in shown(w.value) for w in at.warning)
    at.toggle(key="redis_sample_ttls").set_value(True).run()
    assert any("forgotten:" in shown(w.value) for w in at.warning)
    client.delete("forgotten:1", "dashboard:test")


def test_redis_page_with_redis_down(production_env, closed_port):
    production_env.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    at = _page("redis")
    assert any("Redis is not available" in e.value for e in at.error)


def test_matviews_page_on_the_demo(production_env):
    at = _page("matviews")
    assert any("mv_deal_pipeline cannot be refreshed CONCURRENTLY" in shown(w.value)
               for w in at.warning)


def test_bloat_page_measures_a_relation_whose_name_holds_a_dot(production_env, scratch_database):
    import psycopg
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute('CREATE EXTENSION pgstattuple; CREATE SCHEMA "a.b"; '
                     'CREATE TABLE "a.b"."seq tbl" (id int); '
                     'INSERT INTO "a.b"."seq tbl" SELECT generate_series(1, 1000); ANALYZE')
    production_env.setenv("DATABASE_URL", scratch_database)
    production_env.setenv("DATABASE_ADMIN_URL", scratch_database)
    at = _page("bloat")
    assert not any("seq tbl" in o for box in at.selectbox for o in box.options)  # under 1 MB
    next(t for t in at.toggle if t.label.startswith("Also estimate relations under")).set_value(
        True).run()
    box = at.selectbox[0]
    assert '"a.b"."seq tbl"' in box.options  # shown quoted, chosen as (schema, name)
    box.select(("a.b", "seq tbl", False)).run()
    next(b for b in at.button if b.label.startswith("Measure exactly")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    exact = next(d.value for d in at.dataframe if list(d.value.columns) == ["measure", "value"])
    measured = dict(zip(exact["measure"], exact["value"]))
    assert measured["table len"] >= 1000 * 4  # bytes of 1,000 int rows, measured not estimated


def test_activity_page_shows_the_blocker_and_a_dba_terminates_it(production_env, scratch_database):
    import threading
    import time

    import psycopg
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE locked (id int)")
    holder = psycopg.connect(scratch_database, application_name="holder")
    holder.execute("LOCK TABLE locked")  # then idle in its transaction
    holder_pid = holder.info.backend_pid
    got_lock = threading.Event()

    def wait():
        with psycopg.connect(scratch_database, application_name="waiter") as waiter:
            waiter.execute("SET lock_timeout = '20s'")
            waiter.execute("SELECT * FROM locked")
            got_lock.set()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(1)
    production_env.setenv("DATABASE_URL", scratch_database)
    production_env.setenv("DATABASE_ADMIN_URL", scratch_database)
    try:
        viewer = _page_as("activity", production_env, "viewer")
        tree = viewer.dataframe[0].value
        assert str(holder_pid) in tree["session"].iloc[0]
        # what ends it is written out under the grid, in full
        assert f"Ends it: SELECT pg_terminate_backend\\({holder_pid}\\);" in _text(viewer)
        # a viewer sees the action disabled, with the reason
        [terminate] = [b for b in viewer.button if b.label == "Terminate"]
        assert terminate.disabled and "needs the DBA role" in terminate.help
        assert not got_lock.is_set()
        at = _page_as("activity", production_env, "dba")
        assert at.selectbox[0].value == holder_pid  # the root blocker comes first
        assert at.radio[0].value == "Terminate the session"     # idle in transaction
        next(b for b in at.button if b.label == "Terminate").click().run()
        # the dialog says what happens and asks for the pid (AppTest cannot press a button
        # inside a dialog: the browser tests do; here the action it calls)
        said = _text(at)
        assert f"Session **{holder_pid}**" in said and "1 waiting session(s) go on" in said
        assert [t.label for t in at.text_input] == [f"Type **{holder_pid}** to confirm"]
        from ui import actions, context
        done = actions.end_session(context.actor(context.current_target()), holder_pid, True)
        assert done.ok and "terminated session" in done.value
        assert got_lock.wait(5)
    finally:
        holder.close()
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT action, object_name, outcome FROM dbpulse.audit_log "
                            "ORDER BY id DESC LIMIT 1").fetchone() == (
            "terminate_backend", f"pid {holder_pid}", "ok")


def _page_as(name, env, role):
    env.setenv("DBPULSE_ROLE", role)
    st.cache_data.clear()
    return _page(name)


def test_audit_page_says_actions_and_parameters_in_words(production_env):
    from operations import audit

    at = _page("audit")
    shown = at.dataframe[0].value
    assert len(shown) > 0
    assert not set(shown["action"]) & set(audit.ACTION_LABELS)  # no code left
    assert not shown["parameters"].astype(str).str.contains('[{}"]|true|false').any()
    labels = set(audit.ACTION_LABELS.values())
    assert set(shown["action"]) <= labels | {"demo_ok", "demo_fail", "nested"}


def test_two_statements_with_one_start_are_two_bars(production_env, logins):
    import json

    prefix = "SELECT id, status, p_score, created_at, updated_at, user_id FROM leads WHERE "
    with psycopg.connect(logins.app_url) as conn:
        conn.execute(prefix + "status = %s", ("hot",)).fetchall()
        conn.execute(prefix + "p_score > %s", (90,)).fetchall()
    at = _page("slow_queries")
    [text_filter] = [t for t in at.text_input if t.label == "Statement text contains"]
    text_filter.input("SELECT id, status, p_score, created_at, updated_at").run()
    [chart] = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    bars = spec["data"][0]["y"]
    assert len(bars) == 2 and len(set(bars)) == 2, bars
    # each label is written above its bar (the axis' own labels would squeeze a phone's bars)
    assert sorted(a["text"] for a in spec["layout"]["annotations"]) == sorted(bars)
    assert spec["layout"]["yaxis"]["showticklabels"] is False


@pytest.mark.parametrize("name", ["space", "buffer_cache"])
def test_db_pulses_own_tables_are_hidden_until_asked_for(production_env, name):
    """The history tables DB Pulse keeps in the watched database are not the application's."""
    at = _page(name)
    shown = {v for d in at.dataframe for v in d.value.get("schema_name", [])}
    assert "dbpulse" not in shown and shown
    next(t for t in at.toggle if t.label == "Show DB Pulse's own objects").set_value(True).run()
    shown = {v for d in at.dataframe for v in d.value.get("schema_name", [])}
    assert "dbpulse" in shown


def test_one_redis_figure_has_one_value_on_every_page(production_env, redis_url):
    """The Overview, the Redis page, the plan page and the Fleet show the Redis hit rate from
    one read per cache period: the same value at the same moment, under the same name."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("one_figure:hit", "x", ex=600)
    for n in range(7):  # the application's lookups, between the pages' reads
        client.get("one_figure:hit" if n % 2 else f"one_figure:miss:{n}")
    shown_rates = {}
    for page in ("overview", "redis", "plan"):
        at = _page(page)
        [metric] = [m for m in at.metric if m.label == redis_cache.HIT_RATE_LABEL]
        shown_rates[page] = metric.value
        client.get("one_figure:hit")  # the application goes on between two pages
    at = _page("fleet")
    [frame] = [d.value for d in at.dataframe]
    shown_rates["fleet"] = f"{float(frame['redis_hit_rate'].iloc[0]):.1f} %"  # in percent there
    assert len(set(shown_rates.values())) == 1, shown_rates
    client.delete("one_figure:hit")


def test_a_refresh_shows_the_duration_its_log_row_holds(production_env, logins):
    """"Refreshed in N ms" and the table's "Took" are one figure: both the server's clock
    around the refresh, as logged."""
    from foundation.config import Settings
    from foundation.connections import monitoring_connection
    from operations import actions
    from reads import matviews
    from tests.conftest import as_actor

    settings = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3)
    with psycopg.connect(logins.admin_url) as conn:
        name = conn.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' "
                            "ORDER BY 1 LIMIT 1").fetchone()[0]
    who = as_actor(settings, logins.admin_url)
    result = actions.refresh_view(who, "public", name, allow_blocking=True)
    with monitoring_connection(logins.monitor_url, settings) as conn:
        views = matviews.list_matviews(conn, settings.matview_max_age_minutes)
    took = float(views[views["view_name"] == name]["last_duration_ms"].iloc[0])
    assert took == pytest.approx(result.duration_ms, abs=0.01)
