"""Replication against a real streaming standby of the suite's primary (pg_basebackup -R -X
stream through a slot): lag appears when the standby's replay is paused, an inactive slot's
retained WAL grows and its fix removes it, a standby reports its own replay, and an index
scanned only on the standby is never proposed for DROP on the primary."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from demo.stack import free_port
from foundation.connections import monitoring_connection
from operations import checks
from reads import indexes, replication
from tests.conftest import index_findings


@pytest.fixture(scope="module")
def standby(servers):
    """(primary URL, standby URL) of the postgres database, the standby streaming."""
    primary, _, stack = servers
    if stack is None:
        pytest.skip("a standby is started from the suite's own embedded server")
    url = stack.start_standby(free_port())
    yield primary, url
    stack.stop_standby()
    shutil.rmtree(stack.standby_data, ignore_errors=True)
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name = %s", (stack.STANDBY_SLOT,))


def _wal(primary: str, rows: int = 2000) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        # written out at commit: the suite's servers commit asynchronously, and the WAL
        # position the slots and standbys are measured against is what has been written
        conn.execute("SET synchronous_commit = on")
        conn.execute("CREATE TABLE IF NOT EXISTS wal_maker (n int, t text)")
        conn.execute("INSERT INTO wal_maker SELECT g, repeat('x', 200) FROM generate_series(1, %s) g",
                     (rows,))


def _until(condition, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def test_a_paused_standby_shows_lag_on_both_sides(standby, servers, settings):
    primary, url = standby
    strict = replace(settings, replication_lag_max_bytes=1024)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        _wal(primary)
        with monitoring_connection(primary, settings) as conn:
            _until(lambda: (replication.standbys(conn)["replay_lag_bytes"] > 100_000).any())
            lag, _, _ = checks.check_replication(conn, strict)
        assert lag.severity == "amber" and servers[2].STANDBY_NAME in lag.objects[0]
        with monitoring_connection(url, settings) as conn:
            # the primary counts WAL not yet sent too: wait until the standby has received it
            _until(lambda: (replication.recovery(conn).receive_behind_bytes or 0) > 100_000)
            seen = replication.recovery(conn)
            own, _, _ = checks.check_replication(conn, strict)
        assert seen.paused and seen.receive_behind_bytes > 100_000
        assert seen.receiver_status == "streaming" and seen.primary.startswith("127.0.0.1")
        assert own.severity == "amber" and own.fix.startswith("SELECT pg_wal_replay_resume()")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(own.fix.split(";")[0])
        with monitoring_connection(primary, settings) as conn:
            _until(lambda: (replication.standbys(conn)["replay_lag_bytes"] < 1024).all())
            # the lag the walsender measured during the pause stays shown for a while, and other
            # work on the primary writes WAL meanwhile: the check turns green, in time
            _until(lambda: checks.check_replication(conn, strict)[0].severity == "green",
                   timeout_s=60)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_an_inactive_slot_holding_wal_is_red_and_its_fix_removes_it(standby, settings):
    primary, _ = standby
    strict = replace(settings, slot_retained_max_bytes=1024)
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot('dbpulse_idle', true)")
    try:
        with monitoring_connection(primary, settings) as conn:
            before = replication.slots(conn).set_index("slot_name").loc["dbpulse_idle",
                                                                          "retained_bytes"]
        _wal(primary, 5000)
        with monitoring_connection(primary, settings) as conn:
            after = replication.slots(conn).set_index("slot_name").loc["dbpulse_idle",
                                                                         "retained_bytes"]
            _, slots, _ = checks.check_replication(conn, strict)
        assert after > before + 500_000  # the WAL written since is held for it
        assert slots.severity == "red" and slots.objects == ["dbpulse_idle"]
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute(slots.fix)
        with monitoring_connection(primary, settings) as conn:
            _, slots, _ = checks.check_replication(conn, strict)
        assert slots.severity == "green"  # the standby's own slot is active: not a finding
    finally:
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = 'dbpulse_idle'")


def test_an_index_scanned_only_on_the_standby_is_not_dropped(standby, servers, settings):
    primary, url = standby
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS reports; CREATE TABLE reports (id int, day int)")
        conn.execute("INSERT INTO reports SELECT g, g % 300 FROM generate_series(1, 30000) g")
        conn.execute("CREATE INDEX reports_day ON reports (day); ANALYZE reports")
    with psycopg.connect(url, autocommit=True) as conn:  # the analytics reads: the standby's
        _until(lambda: conn.execute("SELECT to_regclass('reports_day')").fetchone()[0])
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM reports WHERE day = 7").fetchone()
    with monitoring_connection(primary, settings) as conn:
        evidence = indexes.usage_evidence(conn, None, timedelta(0))
    judged = {f.index_name: f for f in index_findings(primary, settings, evidence).judged}
    assert judged["reports_day"].verdict == "used on a standby?"
    assert servers[2].STANDBY_NAME in judged["reports_day"].reason
    assert judged["reports_day"].fix == ""
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("DROP TABLE reports")


def test_declared_replicas_add_their_scans_and_the_fleet_shows_the_topology(standby, settings):
    """With the standby declared as the target's replica: an index scanned only there is no
    finding at all, one scanned nowhere is a plain "drop" that names both places, and the
    Fleet shows the primary with its standby."""
    from foundation.config import Target
    from operations import fleet

    primary, url = standby
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS reports; CREATE TABLE reports (id int, day int, "
                     "region int)")
        conn.execute("INSERT INTO reports SELECT g, g % 300, g % 7 FROM generate_series(1, 30000) g")
        conn.execute("CREATE INDEX reports_day ON reports (day); "
                     "CREATE INDEX reports_region ON reports (region); ANALYZE reports")
    with psycopg.connect(url, autocommit=True) as conn:
        _until(lambda: conn.execute("SELECT to_regclass('reports_region')").fetchone()[0])
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM reports WHERE day = 7").fetchone()
    with monitoring_connection(url, settings) as conn:  # the standby has counted it
        _until(lambda: conn.execute("SELECT pg_stat_get_numscans('reports_day'::regclass)"
                                    ).fetchone()[0] == 1)
    with monitoring_connection(primary, settings) as conn:
        evidence = indexes.usage_evidence(conn, None, timedelta(0), (url,), settings)
    assert evidence.replicas.read and not evidence.replicas.problems
    judged = {f.index_name: f for f in index_findings(primary, settings, evidence).judged}
    assert "reports_day" not in judged                       # used: on the standby
    region = judged["reports_region"]
    assert region.verdict == "drop" and "here and on" in region.reason
    with psycopg.connect(primary, autocommit=True) as conn:  # its fix runs
        conn.execute(region.fix)
        assert conn.execute("SELECT to_regclass('reports_region')").fetchone()[0] is None
    report = fleet.target_report(Target("primary", primary, primary, replica_urls=(url,)),
                                 settings)
    assert report["topology"].startswith("primary, 1 standby streaming (")
    assert report["topology"].endswith("; 1 declared as replicas")
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("DROP TABLE reports")


def test_logical_subscriptions_show_whether_they_receive(servers, scratch_database, settings):
    """A subscription that streams from a publication on the same server is receiving; one
    whose slot does not exist on the publisher is enabled but receives nothing: amber, named."""
    from demo.stack import create_database

    primary, _, _ = servers
    publisher = create_database(primary, "publisher_db")
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY); CREATE PUBLICATION pub FOR "
                     "TABLE events")
        conn.execute("SELECT pg_create_logical_replication_slot('sub_ok', 'pgoutput')")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY)")
        for name in ("sub_ok", "sub_no_slot"):
            conn.execute(f"CREATE SUBSCRIPTION {name} CONNECTION '{publisher}' PUBLICATION pub "
                         f"WITH (create_slot = false, slot_name = '{name}', copy_data = false)")
    try:
        with monitoring_connection(scratch_database, settings) as conn:
            _until(lambda: bool(replication.subscriptions(conn).set_index("subscription")
                                .at["sub_ok", "receiving"]))
            # the failing one's worker starts again every few seconds and exits at once
            def finding():
                return {f.check: f for f in checks.check_replication(conn, settings)
                        }["subscriptions"]
            _until(lambda: finding().severity == "amber")
            subs = replication.subscriptions(conn).set_index("subscription")
            found = finding()
        assert bool(subs.at["sub_ok", "receiving"]) and bool(subs.at["sub_ok", "enabled"])
        assert bool(subs.at["sub_no_slot", "enabled"])
        assert found.objects == ["sub_no_slot"] and "sub_no_slot" in found.summary
    finally:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            for name in ("sub_ok", "sub_no_slot"):
                conn.execute(f"ALTER SUBSCRIPTION {name} DISABLE")
                conn.execute(f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE)")
                conn.execute(f"DROP SUBSCRIPTION {name}")
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot('sub_ok')")
            conn.execute("DROP DATABASE publisher_db WITH (FORCE)")
