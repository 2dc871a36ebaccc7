"""Snapshots and deltas against real servers: a stats reset, an eviction, a crash restart and a
Redis restart are counted from zero, never negative or as the whole history; pruning; periods
with too few snapshots; an unreachable or separate history database."""

import dataclasses
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import redis

from demo.stack import EmbeddedStack, create_database, free_port, redis_server_binary
from foundation.config import Target
from foundation.connections import DatabaseProblem, admin_connection, monitoring_connection
from foundation.roles import Actor
from operations import actions, dbpulse_schema, history, snapshots
from tests.conftest import as_actor

PROBE = "SELECT count(*) AS history_probe FROM contacts WHERE name = %s"


def _source() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # each test its own history inside the shared tables


def _snap(url, settings, source, redis_urls=()):
    with admin_connection(url, settings) as history_conn, \
            monitoring_connection(url, settings) as monitor:
        dbpulse_schema.install(history_conn, as_actor(settings))
        return snapshots.take(monitor, history_conn, as_actor(settings), source=source,
                              redis_urls=redis_urls)


def _run(url, n, statement=PROBE):
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(n):
            conn.execute(statement, (str(i),))


def _probe_calls(url, settings, source, start, end) -> float:
    with monitoring_connection(url, settings) as conn:
        deltas = history.statement_deltas(conn, source, history.Period(start, end))
        assert (deltas["calls"].astype(float) >= 0).all()
        assert (deltas["total_exec_ms"].astype(float) >= 0).all()
        probe = deltas[deltas["query"].str.contains("history_probe", na=False)]
        return float(probe["calls"].sum())


def _window(first, last):
    """From the first snapshot (the baseline: the last one at or before the start) to the last."""
    return first.taken_at, last.taken_at


def test_snapshot_stores_counters_and_each_text_once(database_url, dba_settings):
    source = _source()
    first = _snap(database_url, dba_settings, source)
    _run(database_url, 7)
    second = _snap(database_url, dba_settings, source)
    assert first.statements > 0 and not first.problems
    # the source's first snapshot holds every statement; the next only those that changed
    assert first.complete and first.statements_stored == first.statements
    assert not second.complete and 0 < second.statements_stored < second.statements
    with monitoring_connection(database_url, dba_settings) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT (queryid, userid)) FROM "
                            "dbpulse.snapshot_statements WHERE snapshot_id = %s",
                            (second.snapshot_id,)).fetchone()
        assert rows[0] == rows[1] == second.statements_stored
        stored_probe = conn.execute(
            "SELECT s.calls FROM dbpulse.snapshot_statements s JOIN dbpulse.statement_texts t "
            "USING (queryid, userid) WHERE s.snapshot_id = %s AND t.query LIKE "
            "'%%history_probe%%'", (second.snapshot_id,)).fetchall()
        assert [c for c, in stored_probe] == [7]  # new since the first: stored
        texts = conn.execute("SELECT count(*) FROM dbpulse.statement_texts t WHERE EXISTS ("
                             "SELECT 1 FROM dbpulse.snapshot_statements s WHERE s.snapshot_id "
                             "= %s AND s.queryid = t.queryid AND s.userid = t.userid)",
                             (first.snapshot_id,)).fetchone()[0]
        assert texts == first.statements  # one text per statement, not one per snapshot
        own = conn.execute("SELECT count(*) FROM dbpulse.statement_texts WHERE query LIKE "
                           "'%%dbpulse.snapshot%%'").fetchone()[0]
        assert own == 0  # DB Pulse's own writes are not part of the history
        tables = conn.execute("SELECT count(*) FROM dbpulse.snapshot_tables WHERE snapshot_id "
                              "= %s AND table_name = 'message_events'",
                              (second.snapshot_id,)).fetchone()[0]
        assert tables == 1
    assert _probe_calls(database_url, dba_settings, source, *_window(first, second)) == 7


def test_viewer_cannot_take_a_snapshot(database_url, settings):
    from foundation.roles import PermissionDenied

    with pytest.raises(PermissionDenied):
        _snap(database_url, settings, _source())


def test_deltas_across_an_evicted_and_re_added_entry(database_url, dba_settings):
    """Removing one entry is what an eviction does: the statement comes back with fresh
    counters. The probe ran 5 times, was evicted, then ran 3 times: 8, not 3 and not -2."""
    source = _source()
    first = _snap(database_url, dba_settings, source)
    _run(database_url, 5)
    second = _snap(database_url, dba_settings, source)
    with psycopg.connect(database_url, autocommit=True) as conn:
        queryid = conn.execute("SELECT queryid FROM pg_stat_statements WHERE query LIKE "
                               "'%history_probe%' LIMIT 1").fetchone()[0]
        conn.execute("SELECT pg_stat_statements_reset(0, 0, %s)", (queryid,))
    _run(database_url, 3)
    third = _snap(database_url, dba_settings, source)
    assert _probe_calls(database_url, dba_settings, source, *_window(first, third)) == 8
    assert _probe_calls(database_url, dba_settings, source, *_window(second, third)) == 3


def test_deltas_with_falling_counters_and_no_stats_since(database_url, dba_settings):
    """Before pg_stat_statements 1.11 there is no stats_since: a drop in calls is the sign.
    Stored counters are edited to look like that (what older servers store)."""
    source = _source()
    first = _snap(database_url, dba_settings, source)
    _run(database_url, 6)
    second = _snap(database_url, dba_settings, source)
    _run(database_url, 2)
    third = _snap(database_url, dba_settings, source)
    with admin_connection(database_url, dba_settings) as conn:
        conn.execute("UPDATE dbpulse.snapshot_statements SET stats_since = NULL WHERE snapshot_id "
                     "= ANY(%s)", ([first.snapshot_id, second.snapshot_id, third.snapshot_id],))
        # the third snapshot as if the entry had been evicted and re-added, then called twice
        conn.execute("""UPDATE dbpulse.snapshot_statements s SET calls = 2
                        FROM dbpulse.statement_texts t
                        WHERE s.snapshot_id = %s AND t.queryid = s.queryid
                          AND t.userid = s.userid AND t.query LIKE '%%history_probe%%'""",
                     (third.snapshot_id,))
    assert _probe_calls(database_url, dba_settings, source, *_window(first, third)) == 8


def test_pg_stat_statements_upgrade_is_not_compared(database_url, dba_settings):
    source = _source()
    first = _snap(database_url, dba_settings, source)
    _run(database_url, 4)
    second = _snap(database_url, dba_settings, source)
    _run(database_url, 4)
    third = _snap(database_url, dba_settings, source)
    with admin_connection(database_url, dba_settings) as conn:  # as if upgraded in between
        conn.execute("UPDATE dbpulse.snapshots SET pss_version = '1.10' WHERE id = ANY(%s)",
                     ([first.snapshot_id, second.snapshot_id],))
    start, end = _window(first, third)
    assert _probe_calls(database_url, dba_settings, source, start, end) == 4
    with monitoring_connection(database_url, dba_settings) as conn:
        notes = history.coverage(conn, source, history.Period(start, end)).notes
    assert any("pg_stat_statements changed" in n for n in notes)


def test_periods_with_no_or_one_snapshot_say_so(database_url, dba_settings):
    source = _source()
    now = datetime.now(timezone.utc)
    period = history.Period(now - timedelta(days=7), now)
    with monitoring_connection(database_url, dba_settings) as conn:
        with pytest.raises(history.HistoryUnavailable, match="No snapshots"):
            history.require_usable(history.coverage(conn, source, period), period)
    _snap(database_url, dba_settings, source)
    period = history.Period(now - timedelta(days=7), datetime.now(timezone.utc))
    with monitoring_connection(database_url, dba_settings) as conn:
        with pytest.raises(history.HistoryUnavailable, match="Only one snapshot"):
            history.require_usable(history.coverage(conn, source, period), period)


def _age(url, settings, snapshot_id, hours):
    with admin_connection(url, settings) as conn:
        conn.execute("UPDATE dbpulse.snapshots SET taken_at = taken_at "
                     "- make_interval(hours => %s) WHERE id = %s", (hours, snapshot_id))


def test_prune_deletes_old_snapshots_and_their_texts_but_keeps_a_baseline(
        database_url, scratch_database, dba_settings):
    # a history database of its own: pruning with a cutoff in the future would delete the
    # other tests' histories
    settings = dataclasses.replace(dba_settings, history_retention_days=3650)

    def snap():
        with admin_connection(scratch_database, settings) as history_conn, \
                monitoring_connection(database_url, settings) as monitor:
            dbpulse_schema.install(history_conn, as_actor(settings))
            return snapshots.take(monitor, history_conn, as_actor(settings), source="pruned")

    old = snap()
    _age(scratch_database, settings, old.snapshot_id, 100 * 24)
    with admin_connection(scratch_database, settings) as conn:
        conn.execute("INSERT INTO dbpulse.statement_texts (queryid, userid, query) VALUES "
                     "(-42, 0, 'only in the old snapshot')")
        conn.execute("INSERT INTO dbpulse.snapshot_statements (snapshot_id, queryid, userid, "
                     "calls, total_exec_ms) VALUES (%s, -42, 0, 1, 1)", (old.snapshot_id,))
        for days in (100, 0):  # an alert past the retention, and one inside it
            conn.execute("INSERT INTO dbpulse.alert_log (source, target, raised_at, check_name, "
                         "state, title) VALUES ('pruned', 't', now() - %s * interval '1 day', "
                         "'invalid_indexes', 'red', 'Invalid indexes')", (days,))
    baseline = snap()  # the last complete one is 100 days old: this one is complete
    _age(scratch_database, settings, baseline.snapshot_id, 1)
    recent = snap()    # only what changed in the hour
    assert old.complete and baseline.complete and not recent.complete
    with admin_connection(scratch_database, settings) as conn:
        # the cutoff between the baseline and the recent one: the baseline is past it, but
        # the recent one's statements are carried from it, so it stays
        deleted = snapshots.prune(conn, 90, now=recent.taken_at + timedelta(days=90, minutes=-30))
        assert deleted == 1
        left = conn.execute("SELECT id FROM dbpulse.snapshots ORDER BY taken_at").fetchall()
        assert left == [(baseline.snapshot_id,), (recent.snapshot_id,)]
        assert conn.execute("SELECT count(*) FROM dbpulse.statement_texts WHERE queryid = -42"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dbpulse.snapshot_statements WHERE snapshot_id "
                            "= %s", (old.snapshot_id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dbpulse.alert_log").fetchone()[0] == 1


def test_unreachable_history_database_is_a_clear_error(database_url, dba_settings, closed_port):
    target = Target("t", database_url, database_url,
                    history_url=f"postgresql://nobody:x@127.0.0.1:{closed_port}/history")
    with pytest.raises(DatabaseProblem) as problem:
        actions.take_snapshot(Actor("tester", "dba", target, dba_settings))
    assert problem.value.kind == "unreachable"


def test_separate_history_database(servers, database_url, logins, dba_settings):
    """Snapshots go to the history database, none to the watched one (where the README's set-up
    installed the schema: `logins`, so the check does not depend on what ran before)."""
    history_url = create_database(servers[0], f"history_{uuid.uuid4().hex[:6]}")
    target = Target("t", database_url, database_url, history_url=history_url)
    result = actions.take_snapshot(Actor("tester", "dba", target, dba_settings))
    with psycopg.connect(history_url) as conn:
        assert conn.execute("SELECT source FROM dbpulse.snapshots WHERE id = %s",
                            (result.snapshot_id,)).fetchone() == ("salesflow_test",)
    with psycopg.connect(database_url) as conn:  # not in the watched database
        assert conn.execute("SELECT count(*) FROM dbpulse.snapshots WHERE taken_at = %s",
                            (result.taken_at,)).fetchone()[0] == 0


@pytest.fixture(scope="module")
def crashable_stack(tmp_path_factory):
    """A PostgreSQL of its own: the test crashes it."""
    stack = EmbeddedStack(root=tmp_path_factory.mktemp("crash"), pg_port=free_port(),
                          with_redis=False, database="postgres")
    status = stack.up()
    url = create_database(status.state.database_url("postgres"), "crashme", "pg_stat_statements")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (name text)")
    yield stack, url
    stack.destroy()


def test_deltas_across_a_crash_restart_and_a_full_reset(crashable_stack, dba_settings):
    """The probe runs 5 times, the server crashes (immediate stop), 3 more, then
    pg_stat_statements_reset() for everything, 2 more: 10 in all, none counted twice.
    PostgreSQL 18 keeps pg_stat_statements over the crash but drops pg_stat_database's
    counters; neither may turn negative. The demo server commits asynchronously, so this also
    shows that stored snapshots survive the crash."""
    stack, url = crashable_stack
    source = _source()
    first = _snap(url, dba_settings, source)
    _run(url, 5)
    _snap(url, dba_settings, source)
    subprocess.run([stack._bin("pg_ctl"), "-D", str(stack.pgdata), "-m", "immediate", "-w",
                    "stop"], check=True, capture_output=True, **stack._run_as_pg_user())
    stack.up()
    _run(url, 3)
    _snap(url, dba_settings, source)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    _run(url, 2)
    last = _snap(url, dba_settings, source)
    start, end = _window(first, last)
    assert _probe_calls(url, dba_settings, source, start, end) == 10
    with monitoring_connection(url, dba_settings) as conn:
        period = history.Period(start, end)
        notes = history.coverage(conn, source, period).notes
        buffer = history.buffer_cache_series(conn, source, period)
    assert any("restarted" in n for n in notes)
    assert any("pg_stat_statements was reset" in n for n in notes)
    assert len(buffer) == 3
    assert (buffer[["data_blks_hit", "data_blks_read"]].astype(float) >= 0).all().all()


def test_redis_restart_between_snapshots(database_url, dba_settings, tmp_path):
    port = free_port()

    def start():
        proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind",
                                 "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
                                stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis did not start")

    def traffic(hits, misses):
        client = redis.Redis(port=port)
        client.set("k", "v")
        for _ in range(hits):
            client.get("k")
        for _ in range(misses):
            client.get("absent")

    url = f"redis://127.0.0.1:{port}/0"
    source = _source()
    proc = start()
    try:
        traffic(50, 50)
        first = _snap(database_url, dba_settings, source, (url,))
        traffic(40, 10)
        _snap(database_url, dba_settings, source, (url,))
        proc.terminate()
        proc.wait(10)
        proc = start()
        traffic(9, 1)
        third = _snap(database_url, dba_settings, source, (url,))
    finally:
        proc.terminate()
        proc.wait(10)
    with monitoring_connection(database_url, dba_settings) as conn:
        series = history.redis_series(conn, source, history.Period(*_window(first, third)))
    assert list(series["keyspace_hits"]) == [40, 9]      # not -31, not 99
    assert list(series["keyspace_misses"]) == [10, 1]
    assert history.ratio(series["keyspace_hits"], series["keyspace_misses"]) == pytest.approx(
        49 / 60)
