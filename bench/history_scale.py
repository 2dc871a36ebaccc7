"""Benchmark: the history at scale (issue 15). 90 days of hourly snapshots of 5,000 statements
(pg_stat_statements.max), written by the real writer (operations/snapshots.store), then its size
and the weekly review's statement figures timed.

The workload: 500 hot statements run every hour; the other 4,500 each run in about one hour of
24. Only statements whose counters changed are stored, plus every statement in a complete
snapshot once a day; stored in full, the same history would be 10.8 M rows.

Prints one JSON object. Run: .venv/bin/python bench/history_scale.py [--days 90]
[--statements 5000] [--hot 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402
from foundation.config import Settings, Target  # noqa: E402
from foundation.connections import admin_connection, monitoring_connection  # noqa: E402
from foundation.roles import Actor  # noqa: E402
from operations import dbpulse_schema, history, review, snapshots  # noqa: E402

GOAL_BYTES, GOAL_REVIEW_MS = 300 * 1024 ** 2, 1000
SOURCE = "scale"
TABLES = ["snapshots", "snapshot_statements", "statement_texts"]


def snapshots_of(days: int, statements: int, hot: int, added: list, seed: int = 3):
    """One Snapshot per hour, cumulative counters growing by the workload above; `added`
    gets (taken_at, calls run since the snapshot before) of each: the ground truth."""
    rng = np.random.default_rng(seed)
    start = datetime.now(timezone.utc) - timedelta(days=days)
    ids = np.arange(1, statements + 1, dtype=np.int64) * 7919
    calls = np.zeros(statements)
    exec_ms = np.zeros(statements)
    mean_ms = rng.lognormal(0, 1.5, statements)
    texts = [f"SELECT * FROM t{i % 300} WHERE c{i % 7} = $1 /* statement {i} */"
             for i in range(statements)]
    for hour in range(days * 24):
        ran = np.arange(statements) < hot
        ran |= rng.random(statements) < 1 / 24
        new_calls = np.where(ran, rng.integers(1, 500, statements), 0)
        calls += new_calls
        exec_ms += new_calls * mean_ms
        added.append((start + timedelta(hours=hour), int(new_calls.sum())))
        frame = pd.DataFrame({
            "queryid": ids, "userid": 10, "role_name": "app", "query": texts,
            "calls": calls.astype(np.int64), "total_exec_ms": exec_ms, "total_plan_ms": 0.0,
            "rows": calls.astype(np.int64), "shared_blks_hit": (calls * 4).astype(np.int64),
            "shared_blks_read": (calls // 50).astype(np.int64), "shared_blks_dirtied": 0,
            "shared_blks_written": 0, "temp_blks": 0, "io_ms": 0.0, "wal_bytes": 0,
            "stats_since": start})
        yield snapshots.Snapshot(SOURCE, start + timedelta(hours=hour), 180000,
                                 start - timedelta(days=1), pss_version="1.12",
                                 pss_stats_reset=start, pss_dealloc=0, statements=frame)


def timed(fn, runs: int) -> tuple[float, object]:
    values, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        values.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(values), 1), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--hot", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the server and its data")
    args = parser.parse_args()
    settings = Settings(role="dba", statement_timeout_ms=60_000, history_retention_days=3650)
    stack = EmbeddedStack(root=PROJECT_ROOT / ".dbpulse" / "bench-history-scale",
                          pg_port=free_port(), redis_port=free_port(), database="postgres")
    stack.destroy()
    status = stack.up()
    figures: dict = {"days": args.days, "statements": args.statements, "hot": args.hot,
                     "snapshots": args.days * 24}
    try:
        url = create_database(status.state.database_url("postgres"), "history")
        who = Actor("bench", "dba", Target("bench", url, url), settings)
        with admin_connection(url, settings) as conn:
            dbpulse_schema.install(conn, who)
            t0, added = time.perf_counter(), []
            stored = [snapshots.store(conn, snap, who)
                      for snap in snapshots_of(args.days, args.statements, args.hot, added)]
            figures["write_s"] = round(time.perf_counter() - t0, 1)
            figures["store_ms_median"] = round(figures["write_s"] * 1000 / len(stored), 1)
            conn.execute("VACUUM ANALYZE dbpulse.snapshot_statements")
            sizes = {t: conn.execute("SELECT pg_total_relation_size(%s)", (f"dbpulse.{t}",)
                                     ).fetchone()[0] for t in TABLES}
            rows = conn.execute("SELECT count(*) FROM dbpulse.snapshot_statements").fetchone()[0]
            figures["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        total = sum(sizes.values())
        figures.update({
            "complete_snapshots": sum(s.complete for s in stored),
            "statement_rows_stored": rows,
            "statement_rows_if_every_snapshot_held_all": args.statements * len(stored),
            "bytes": sizes, "bytes_total": total,
            "bytes_per_statement_per_day": round(sizes["snapshot_statements"]
                                                 / args.statements / args.days),
            "goal_bytes": GOAL_BYTES, "bytes_within_goal": total <= GOAL_BYTES})
        end = datetime.now(timezone.utc)
        previous, current = history.weekly_periods(end)
        with monitoring_connection(url, settings) as conn, \
                monitoring_connection(url, settings) as spare:
            # as the review reads them: the two periods at once, on two connections
            figures["review_statements_ms_median"], deltas = timed(
                lambda: review.statement_periods(conn, spare, SOURCE, previous, current),
                args.runs)
            top = list(deltas[1]["queryid"].head(10))
            figures["review_trend_ms_median"], _ = timed(
                lambda: history.statement_series(conn, SOURCE, history.Period(previous.start,
                                                                              end), top),
                args.runs)
        # ground truth: the calls run after the week's baseline (the last snapshot at or
        # before its start) up to its end
        baseline = max(at for at, _ in added if at <= current.start)
        figures["review_calls_last_week"] = int(deltas[1]["calls"].sum())
        figures["calls_run_last_week"] = sum(n for at, n in added if baseline < at <= end)
        review_ms = figures["review_statements_ms_median"] + figures["review_trend_ms_median"]
        figures.update({"review_ms": round(review_ms, 1), "goal_review_ms": GOAL_REVIEW_MS,
                        "review_within_goal": review_ms <= GOAL_REVIEW_MS,
                        "cpu_count": os.cpu_count(),
                        "load_average": [round(v, 2) for v in os.getloadavg()]})
    finally:
        if args.keep:
            print(f"kept: {url}", file=sys.stderr)
        else:
            stack.destroy()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
