"""Benchmark: the weekly review's data with 90 days of hourly snapshots of the default demo.

Loads the default demo into a stack of its own, runs the workload briefly, takes real snapshots
(their size and time), writes 90 days of hourly synthetic snapshots (about 2,160) from them,
then times the review's data (the default periods: the last 7 days against the 7 before) and
the interval list for the last week. Prints JSON.
Run: .venv/bin/python bench/history_review.py [--days 90] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import history as demo_history  # noqa: E402
from demo import loader  # noqa: E402
from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402
from demo.workload import Workload  # noqa: E402
from foundation.config import Settings, Target  # noqa: E402
from foundation.connections import admin_connection, monitoring_connection  # noqa: E402
from foundation.roles import Actor  # noqa: E402
from operations import dbpulse_schema, history, review, snapshots  # noqa: E402

HISTORY_TABLES = ["snapshots", "snapshot_statements", "statement_texts", "snapshot_tables",
                  "snapshot_indexes", "snapshot_matviews", "snapshot_redis"]


def history_bytes(conn) -> int:
    return sum(conn.execute("SELECT pg_total_relation_size(%s)", (f"dbpulse.{t}",)).fetchone()[0]
               for t in HISTORY_TABLES)


def timed(fn, runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        timings.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(timings), 1), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", default="default")
    args = parser.parse_args()
    settings = Settings(role="dba", statement_timeout_ms=30_000)
    stack = EmbeddedStack(root=PROJECT_ROOT / ".dbpulse" / "bench-history", pg_port=free_port(),
                          redis_port=free_port(), database="postgres")
    stack.destroy()
    status = stack.up()
    figures: dict = {"scale": args.scale, "days": args.days}
    try:
        url = create_database(status.state.database_url("postgres"), "salesflow",
                              "pg_stat_statements", "pgstattuple")
        redis_url = status.state.redis_url()
        loader.load(url, args.scale)
        workload = Workload(url, redis_url, seed=1)
        workload.run(rate_per_s=1000, duration_s=20)
        workload.close()
        bench = Actor("bench", "dba", Target("bench", url, url), settings)
        with admin_connection(url, settings) as hist, monitoring_connection(url, settings) as mon:
            dbpulse_schema.install(hist, bench)
            before = history_bytes(hist)
            real = [snapshots.take(mon, hist, bench, source="real", redis_urls=(redis_url,))
                    for _ in range(10)]
            figures["statements_per_snapshot"] = real[-1].statements
            figures["snapshot_collect_ms_median"] = round(
                statistics.median(r.collect_ms for r in real), 1)
            figures["snapshot_store_ms_median"] = round(
                statistics.median(r.store_ms for r in real), 1)
            # the texts are stored once: the first snapshot pays for them, the others do not
            figures["bytes_per_snapshot_after_the_first"] = round(
                (history_bytes(hist) - before) / len(real))
            t0 = time.perf_counter()
            written = demo_history.create(mon, hist, bench, source="salesflow",
                                          redis_urls=(redis_url,),
                                          days=args.days)
            figures["synthetic_snapshots"] = written
            figures["synthetic_write_s"] = round(time.perf_counter() - t0, 1)
            hist.execute("ANALYZE")
            total = history_bytes(hist)
            count = hist.execute("SELECT count(*) FROM dbpulse.snapshots").fetchone()[0]
            figures["history_bytes_total"] = total
            figures["bytes_per_snapshot_average"] = round(total / count)

            end = hist.execute("SELECT max(taken_at) FROM dbpulse.snapshots WHERE source = "
                               "'salesflow'").fetchone()[0] + timedelta(minutes=1)
            previous, current = history.weekly_periods(end)
            figures["review_data_ms_median"], result = timed(
                lambda: review.build_review(mon, "salesflow", previous, current, settings,
                                            history.target_events(
                                                mon, review.span(previous, current))),
                args.runs)
            figures["review_headline"] = result.headline
            week = history.Period(end - timedelta(days=7), end)
            figures["interval_last_week_ms_median"], _ = timed(
                lambda: history.statement_deltas(mon, "salesflow", week), args.runs)
            t0 = time.perf_counter()
            from reports import weekly
            weekly.render_html(result, settings)
            figures["html_report_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        figures["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    finally:
        stack.destroy()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
