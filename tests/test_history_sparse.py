"""Statements are stored only when they change (issue 15): a hand-built history of known calls
is stored sparsely, and the same history stored with every statement in every snapshot; each
period's deltas equal the known calls and are identical between the two. The cases: a
statement unchanged for hours (its value carried into a period that starts after its last row),
one evicted and back (gone at a complete snapshot: counted fresh), one new, a reset."""

import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from foundation.connections import admin_connection, monitoring_connection
from operations import dbpulse_schema, history, snapshots
from tests.conftest import as_actor

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc)
RESET_AT = T0 + timedelta(hours=4, minutes=30)
# per snapshot (hourly): pg_stat_statements' evictions so far, and calls of A, B, C, D
# (None: not in pg_stat_statements then)
HISTORY = [
    (0, {"A": 10, "B": 5, "C": 3}),
    (0, {"A": 20, "B": 5, "C": 3}),
    (1, {"A": 30, "B": 5}),                       # C evicted
    (1, {"A": 30, "B": 8, "C": 7, "D": 4}),       # A unchanged; C back (higher); D new
    (1, {"A": 45, "B": 8, "C": 11, "D": 4}),
    (0, {"A": 5, "B": 1}),                        # pg_stat_statements_reset() at RESET_AT
    (0, {"A": 9, "B": 1}),
]
IDS = {"A": 101, "B": 102, "C": 103, "D": 104}


def _snapshot(source: str, hour: int) -> snapshots.Snapshot:
    evicted, calls = HISTORY[hour]
    frame = pd.DataFrame([{
        "queryid": IDS[name], "userid": 10, "role_name": "app", "query": f"SELECT {name}",
        "calls": n, "total_exec_ms": 2.0 * n, "total_plan_ms": None, "rows": n,
        "shared_blks_hit": n, "shared_blks_read": 0, "shared_blks_dirtied": 0,
        "shared_blks_written": 0, "temp_blks": 0, "io_ms": 0.0, "wal_bytes": 0,
        "stats_since": None} for name, n in calls.items()])
    return snapshots.Snapshot(
        source, T0 + timedelta(hours=hour), 180000, T0 - timedelta(days=1), pss_version="1.10",
        pss_stats_reset=RESET_AT if T0 + timedelta(hours=hour) > RESET_AT else T0,
        pss_dealloc=evicted, statements=frame)


@pytest.fixture
def histories(database_url, dba_settings, monkeypatch):
    """(sparse source, complete source) holding the same history."""
    sparse, full = (f"sparse-{uuid.uuid4().hex[:6]}", f"full-{uuid.uuid4().hex[:6]}")
    who = as_actor(dba_settings)
    with admin_connection(database_url, dba_settings) as conn:
        dbpulse_schema.install(conn, who)
        stored = [snapshots.store(conn, _snapshot(sparse, h), who) for h in range(len(HISTORY))]
        monkeypatch.setattr(snapshots, "_stores_every_statement", lambda *args: True)
        for h in range(len(HISTORY)):
            snapshots.store(conn, _snapshot(full, h), who)
    return sparse, full, stored


def _calls(url, settings, source, start_hour, end_hour=6) -> dict:
    period = history.Period(T0 + timedelta(hours=start_hour), T0 + timedelta(hours=end_hour))
    with monitoring_connection(url, settings) as conn:
        deltas = history.statement_deltas(conn, source, period)
    names = {v: k for k, v in IDS.items()}
    return {names[int(q)]: int(c) for q, c in zip(deltas["queryid"], deltas["calls"])}


def test_only_changed_statements_are_stored_and_complete_snapshots_hold_all(histories):
    _, _, stored = histories
    assert [(s.statements, s.complete) for s in stored] == [
        (3, True),    # the first
        (1, False),   # A changed
        (2, True),    # an eviction since the one before: every statement
        (3, False),   # B changed, C back, D new
        (2, False),   # A and C changed
        (2, True),    # a reset
        (1, False)]   # A changed


@pytest.mark.parametrize("start_hour, expected", [
    (0, {"A": 44, "B": 4, "C": 11, "D": 4}),  # A 10+10+0+15, reset: 5, +4; C back: 7 fresh, +4
    (2, {"A": 24, "B": 4, "C": 11, "D": 4}),
    (3, {"A": 24, "B": 1, "C": 4}),          # A at 4 h: 45 − 30 stored at 2 h, carried over 3 h
    (4, {"A": 9, "B": 1}),
])
def test_each_period_counts_the_known_calls_as_the_complete_history_does(
        histories, database_url, dba_settings, start_hour, expected):
    sparse, full, _ = histories
    assert _calls(database_url, dba_settings, sparse, start_hour) == expected
    assert _calls(database_url, dba_settings, full, start_hour) == expected


def test_a_period_inside_unchanged_hours_counts_nothing_for_them(histories, database_url,
                                                                 dba_settings):
    sparse, full, _ = histories
    # between 2 h and 3 h only B, C and D moved; A was carried unchanged
    assert _calls(database_url, dba_settings, sparse, 2, 3) == {"B": 3, "C": 7, "D": 4}
    assert _calls(database_url, dba_settings, full, 2, 3) == {"B": 3, "C": 7, "D": 4}
