"""Benchmark: the plan's promise for phase 1 on the default demo scale.

Times the seeds' Q1 (message events list) and Q9 (hot leads) for the heaviest user and a
median user before and after applying phase 1 with DB Pulse's runner, and prints the means and
the ratio as JSON. The plan promises 85-90 % less latency.
Run: .venv/bin/python bench/migration_gain.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from demo import loader  # noqa: E402
from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402
from foundation import migration_files
from foundation.config import Settings, Target  # noqa: E402
from foundation.connections import admin_connection  # noqa: E402
from foundation.roles import Actor  # noqa: E402
from operations import migrations  # noqa: E402

QUERIES = {
    "Q1 message events list": ("SELECT * FROM message_events WHERE user_id = %s AND "
                               "autopilot_status = %s ORDER BY created_at DESC LIMIT 50",
                               lambda user: (user, "sent")),
    "Q9 hot leads": ("SELECT id, name, p_score, last_scored_at FROM leads WHERE user_id = %s "
                     "AND p_score >= 75 ORDER BY p_score DESC LIMIT 50", lambda user: (user,)),
}


def measure(url: str, users: dict, runs: int) -> dict:
    figures = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for label, (query, params) in QUERIES.items():
            for who, user in users.items():
                for _ in range(5):  # warm the cache and the prepared plan
                    conn.execute(query, params(user), prepare=True).fetchall()
                timings = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    conn.execute(query, params(user), prepare=True).fetchall()
                    timings.append(time.perf_counter() - t0)
                figures[f"{label}, {who} user"] = round(statistics.mean(timings) * 1000, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    stack = EmbeddedStack(root=PROJECT_ROOT / ".dbpulse" / "bench-gain", pg_port=free_port(),
                          redis_port=free_port(), database="postgres", with_redis=False)
    stack.destroy()
    status = stack.up()
    try:
        url = create_database(status.state.database_url("postgres"), "gain", "pg_stat_statements")
        loader.load(url, "default")
        with psycopg.connect(url) as conn:
            ranked = [r[0] for r in conn.execute(
                "SELECT user_id FROM message_events GROUP BY user_id ORDER BY count(*) DESC")]
        users = {"heaviest": ranked[0], "median": ranked[len(ranked) // 2]}
        before = measure(url, users, args.runs)
        settings = Settings(role="dba")
        found = migration_files.discover()
        t0 = time.perf_counter()
        with admin_connection(url, settings) as conn:
            migrations.apply(conn, Actor("bench", "dba", Target("bench", url, url), settings),
                             found, up_to="0001")
        apply_s = time.perf_counter() - t0
        after = measure(url, users, args.runs)
    finally:
        stack.destroy()
    print(json.dumps({
        "scale": "default", "runs": args.runs, "phase1_apply_s": round(apply_s, 1),
        "mean_ms_before": before, "mean_ms_after": after,
        "after_over_before": {k: round(after[k] / before[k], 3) for k in before},
        "latency_reduction": {k: f"{100 * (1 - after[k] / before[k]):.0f} %" for k in before},
    }, indent=2))


if __name__ == "__main__":
    main()
