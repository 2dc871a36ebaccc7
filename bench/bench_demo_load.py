"""Benchmark: demo load time per scale and the Overview's data load, on a fresh embedded stack.

Prints one JSON object. Run: .venv/bin/python bench/bench_demo_load.py [--scales small default]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import loader  # noqa: E402
from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402
from foundation import capabilities, server
from foundation.config import Settings  # noqa: E402
from foundation.connections import monitoring_connection  # noqa: E402
from reads import cache  # noqa: E402


def page_data(url: str, redis_url: str, repeats: int = 5) -> dict:
    """Each page's data as the dashboard loads it (the loaders without their cache), on a
    pooled connection after a short workload; median and max of warm runs in ms."""
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from demo.workload import Workload
    from reads.statements import StatementFilter
    from ui import loaders

    workload = Workload(url, redis_url, seed=1)
    workload.run(rate_per_s=100, duration_s=10)
    workload.close()
    settings = Settings()
    pages = {
        "overview": lambda: loaders.postgres_overview.__wrapped__(url, settings),
        "slow_queries": lambda: loaders.statements_data.__wrapped__(url, settings,
                                                                     StatementFilter()),
        "indexes": lambda: loaders.indexes_data.__wrapped__(url, settings),
        "bloat": lambda: loaders.bloat_data.__wrapped__(url, settings),
        "buffer_cache": lambda: loaders.buffer_cache_data.__wrapped__(url, settings),
        "activity": lambda: loaders.activity_data.__wrapped__(url, settings),
        "matviews": lambda: loaders.matviews_data.__wrapped__(url, settings),
        "redis": lambda: loaders.redis_page_data.__wrapped__(redis_url, settings),
    }
    figures = {}
    for name, load in pages.items():
        assert load().ok, name
        timings = []
        for _ in range(repeats):
            loaders.index_reads.clear()  # the Overview's and Indexes page's shared read: anew
            t0 = time.perf_counter()
            load()
            timings.append(time.perf_counter() - t0)
        figures[name] = {"median_ms": round(statistics.median(timings) * 1000, 1),
                         "max_ms": round(max(timings) * 1000, 1)}
    return figures


def overview_seconds(url: str, repeats: int = 20) -> dict:
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with monitoring_connection(url, Settings()) as conn:
            server.server_identity(conn)
            capabilities.detect(conn)
            cache.cache_hit_rates(conn)
        timings.append(time.perf_counter() - t0)
    return {"median_ms": round(statistics.median(timings) * 1000, 1),
            "max_ms": round(max(timings) * 1000, 1), "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", nargs="+", default=["small", "default"])
    args = parser.parse_args()
    stack = EmbeddedStack(root=PROJECT_ROOT / ".dbpulse" / "bench", pg_port=free_port(),
                          redis_port=free_port(), database="postgres")
    stack.destroy()
    t0 = time.perf_counter()
    status = stack.up()
    result = {"stack_up_s": round(time.perf_counter() - t0, 2), "scales": {}}
    try:
        for scale in args.scales:
            url = create_database(status.state.database_url("postgres"), f"bench_{scale}",
                                  "pg_stat_statements")
            loaded = loader.load(url, scale)
            result["scales"][scale] = {
                "load_s": loaded.seconds,
                "message_events": loaded.row_counts["message_events"],
                "leads": loaded.row_counts["leads"],
                "slowest_steps_s": dict(sorted(loaded.step_seconds.items(),
                                               key=lambda kv: -kv[1])[:3]),
                "overview_data": overview_seconds(url),
                "page_data": page_data(url, status.state.redis_url()),
            }
    finally:
        stack.destroy()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
