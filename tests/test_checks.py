"""The health checks: activity findings from real sessions, degraded checks, severities."""

import threading
import time
from dataclasses import replace

import psycopg
import pytest

from foundation import capabilities, format
from foundation.config import Settings
from foundation.connections import monitoring_connection
from operations import checks
from reads import activity
from tests.conftest import read_data


def test_blocked_and_long_running_sessions_are_found(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as setup:
        setup.execute("CREATE TABLE locked (id int)")
    holder = psycopg.connect(scratch_database, application_name="holder")
    holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")  # transaction stays open
    waiter_done, waiter_got_the_lock = threading.Event(), threading.Event()

    def wait_for_lock():
        with psycopg.connect(scratch_database, application_name="waiter") as waiter:
            waiter.execute("SET lock_timeout = '20s'")
            try:
                waiter.execute("SELECT * FROM locked").fetchall()
                waiter_got_the_lock.set()
            except psycopg.Error:
                pass
        waiter_done.set()

    thread = threading.Thread(target=wait_for_lock)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with monitoring_connection(scratch_database, settings) as conn:
                frame = activity.sessions(conn)
            # the waiter's state and its blockers are read a moment apart: wait until both
            # say it waits (between its SET and its SELECT it is idle in a transaction)
            waiter = frame[frame["application_name"] == "waiter"]
            if len(activity.blocked(frame)) and (waiter["state"] == "active").all() \
                    and (waiter["wait_event"] == "relation").all():  # its wait set, too
                break
            time.sleep(0.2)
        blocked = activity.blocked(frame)
        assert list(blocked["application_name"]) == ["waiter"]
        holder_pid = holder.info.backend_pid
        assert list(blocked.iloc[0]["blocked_by"]) == [holder_pid]
        # what each waits for, in words: a table lock; the holder, the application's next command
        assert blocked.iloc[0]["waiting_for"] == activity.WAIT_EVENTS[("Lock", "relation")]
        holder_row = frame[frame["pid"] == holder_pid].iloc[0]
        assert holder_row["waiting_for"] == activity.WAIT_EVENTS[("Client", "ClientRead")]
        assert len(activity.long_running(frame, 0)) >= 1
        assert list(activity.idle_in_transaction(frame, 0)["pid"]) == [holder_pid]
        with monitoring_connection(scratch_database, settings) as conn:
            findings = {f.check: f for f in checks.check_activity(conn, Settings(
                long_query_s=0, idle_in_transaction_s=0))}
        assert findings["blocked_sessions"].severity == "red"
        # the holder is idle in its transaction: cancelling it would change nothing
        fix = findings["blocked_sessions"].fix
        assert fix.startswith(f"SELECT pg_terminate_backend({holder_pid});")
        assert findings["long_running"].severity == "amber"
        tree = activity.blocking_tree(frame)
        assert list(tree["pid"][:1]) == [holder_pid] and tree.iloc[0]["depth"] == 0
        assert tree.iloc[1]["depth"] == 1 and tree.iloc[1]["waits_for"] == [holder_pid]
        assert tree.iloc[0]["blocks"] == [int(blocked.iloc[0]["pid"])]
        # the fix, run as shown, ends the block at once
        with psycopg.connect(scratch_database, autocommit=True) as dba:
            dba.execute(fix.split("--")[0])
        assert waiter_got_the_lock.wait(5)
    finally:
        holder.close()  # terminated by the fix, or rolled back here
        thread.join(30)
    assert waiter_done.is_set()


def test_a_role_that_cannot_see_other_sessions_gets_grey_not_green(scratch_database, settings):
    from tests.conftest import login_role
    holder = psycopg.connect(scratch_database, application_name="holder")
    holder.execute("SELECT 1")  # idle in transaction, as another role
    try:
        with login_role(scratch_database, "activity_blind", "pw-act") as url:
            with monitoring_connection(url, settings) as conn:
                caps = capabilities.detect(conn)
                findings = {f.check: f for f in checks.check_activity(conn, Settings(
                    idle_in_transaction_s=0), caps)}
    finally:
        holder.rollback()
        holder.close()
    assert not caps.can_read_all_stats
    for name in ("long_running", "blocked_sessions", "connections"):
        assert findings[name].severity == "grey", findings[name]
        assert "pg_read_all_stats" in findings[name].summary
    assert findings["connections"].fix == "GRANT pg_monitor TO activity_blind;"


def test_index_checks_that_cannot_read_turn_grey_and_the_others_run(scratch_database, settings):
    # On one connection run_all reads the index checks' catalogue first and judges it while the
    # other checks read: a login that may not read pg_index (revoked in this database only)
    # fails that read, which must become the grey finding, not an exception
    from tests.conftest import login_role
    with psycopg.connect(scratch_database, autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int PRIMARY KEY, a int)")
        setup.execute("CREATE INDEX t_a ON t (a)")
        setup.execute("REVOKE SELECT ON pg_catalog.pg_index FROM PUBLIC")
        setup.execute("INSERT INTO t VALUES (1, 1)")
        read_data(setup, "t")
    with login_role(scratch_database, "index_blind", "pw-idx") as url:
        with monitoring_connection(url, settings) as conn:
            caps = capabilities.detect(conn)
            findings = {f.check: f for f in checks.run_all(conn, caps, settings)}
    assert findings["indexes"].severity == "grey"
    assert findings["indexes"].summary.startswith("Could not check: ")
    assert "pg_index" in findings["indexes"].summary
    assert not {"unused_indexes", "duplicate_indexes", "invalid_indexes"} & findings.keys()
    assert findings["vacuum"].severity == "green" and findings["cache_hit"].severity != "grey"


def test_connections_against_the_limit(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        use = activity.connection_use(conn)
        green = {f.check: f for f in checks.check_activity(conn, settings)}["connections"]
        red = {f.check: f for f in checks.check_activity(conn, Settings(
            connections_amber_share=0.0, connections_red_share=0.0))}["connections"]
    assert 1 <= use.used < use.max_connections
    assert green.severity == "green" and red.severity == "red"


def test_run_all_on_a_database_without_pg_stat_statements(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        caps = capabilities.detect(conn)
        findings = {f.check: f for f in checks.run_all(conn, caps, settings)}
    assert findings["slow_queries"].severity == "grey"
    assert "CREATE EXTENSION" in findings["slow_queries"].fix
    assert findings["unused_indexes"].severity == "green"
    assert checks.worst_severity(list(findings.values())) in ("grey", "green")


def test_run_all_on_the_demo_finds_the_planted_problems(database_url, settings):
    # the demo's indexes are minutes old: no age is asked of them here (see test_index_findings)
    settings = replace(settings, unused_index_min_age_days=0)
    with monitoring_connection(database_url, settings) as conn:
        caps = capabilities.detect(conn)
        findings = {f.check: f for f in checks.run_all(conn, caps, settings)}
    twins = {"public.idx_message_events_user", "public.idx_message_events_user_id"}
    assert len(twins & set(findings["duplicate_indexes"].objects)) == 1
    assert "public.idx_contacts_user_id" in findings["duplicate_indexes"].objects
    assert "public.idx_web_tracking_events_url" in findings["unused_indexes"].objects
    # each finding says the size of its own indexes (the unused one said both kinds' together)
    with monitoring_connection(database_url, settings) as conn:
        sizes = dict(conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relpages::bigint * "
            "current_setting('block_size')::int FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'i'").fetchall())
    for check in ("unused_indexes", "duplicate_indexes"):
        found = findings[check]
        together = format.human_bytes(sum(sizes[name] for name in found.objects))
        assert f"; together they take {together}." in found.summary
        assert "duplicates" not in found.summary
    assert findings["bloat"].objects[0] == "public.dm_conversations"
    assert "ALTER TABLE public.dm_conversations RESET (autovacuum_enabled);" in \
        findings["vacuum"].fix
    assert findings["invalid_indexes"].severity == "green"
    # nothing from DB Pulse's own schema
    assert not any(o.startswith("dbpulse.") for f in findings.values() for o in f.objects)


def test_a_failing_check_turns_grey_and_the_others_run(scratch_database):
    # A materialized view in the middle of a refresh is locked: the materialized-view check,
    # which sizes it, waits, reaches the lock time limit and turns grey; the other checks still
    # give their figures. (A tiny statement timeout instead depends on how fast the checks
    # are, and they got faster than it.)
    with psycopg.connect(scratch_database, autocommit=True) as setup:
        setup.execute("CREATE MATERIALIZED VIEW totals AS "
                      "SELECT g AS id FROM generate_series(1, 1000) g")
        read_data(setup, "totals")
    quick = Settings(lock_timeout_ms=200)
    with monitoring_connection(scratch_database, quick) as conn:
        caps = capabilities.detect(conn)
        holder = psycopg.connect(scratch_database)
        try:
            holder.execute("REFRESH MATERIALIZED VIEW totals")  # its transaction stays open
            findings = {f.check: f for f in checks.run_all(conn, caps, quick)}
        finally:
            holder.rollback()
            holder.close()
    assert findings["matviews"].severity == "grey"
    assert findings["matviews"].summary.startswith("Could not check: Could not get a lock in time")
    assert {f.check for f in findings.values() if f.severity == "grey"} == {"matviews",
                                                                          "slow_queries"}
    assert "CREATE EXTENSION" in findings["slow_queries"].fix  # grey for its own reason
    # and with the lock gone, the same check gives its figure
    with monitoring_connection(scratch_database, quick) as conn:
        assert checks.check_matviews(conn, quick).severity != "grey"


@pytest.mark.parametrize("ratio,expected", [(0.995, "green"), (0.97, "amber"), (0.5, "red"),
                                            (None, "grey")])
def test_state_for_ratio(ratio, expected):
    assert format.state_for_ratio(ratio, 0.99) == expected


def test_a_role_at_its_own_connection_limit_is_red_and_its_fix_clears_it(database_url,
                                                                         settings):
    """A login role with CONNECTION LIMIT 2 holding 2 connections: the next one would be
    refused, whatever max_connections leaves. The fix shown runs and the finding goes."""
    from tests.conftest import login_role

    with login_role(database_url, "limited_app", "pw-limited") as url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("ALTER ROLE limited_app CONNECTION LIMIT 2")
        held = [psycopg.connect(url) for _ in range(2)]
        try:
            with pytest.raises(psycopg.OperationalError, match="too many connections"):
                psycopg.connect(url)  # the ground truth: the limit is reached
            with monitoring_connection(database_url, settings) as conn:
                found = {f.check: f for f in checks.check_activity(conn, settings)}
            limit = found["connection_limits"]
            assert (limit.severity, limit.objects) == ("red", ["role limited_app"])
            assert "role limited_app 2 of 2" in limit.summary
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(limit.fix)
            with monitoring_connection(database_url, settings) as conn:
                after = {f.check: f for f in checks.check_activity(conn, settings)}
            assert after["connection_limits"].severity == "green"
            psycopg.connect(url).close()  # and a third connection is let in
        finally:
            for conn in held:
                conn.close()
