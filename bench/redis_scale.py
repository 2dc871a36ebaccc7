"""Benchmark: the Redis page against a Redis holding 1,000,000 keys.

Fills a Redis of its own (the plan's key families, most with TTLs, one without), then times
the page's data (INFO, the bounded SCAN sampling, commandstats, slow log) and the whole page
rendered by Streamlit's AppTest. Prints one JSON object.
Run: .venv/bin/python bench/redis_scale.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from demo.stack import PROJECT_ROOT, free_port, redis_server_binary  # noqa: E402
from foundation.config import Settings  # noqa: E402

FAMILIES = [("dashboard", 600), ("lead", 300), ("idps:analytics", 30), ("idps:inbox", 30),
            ("hot_leads", 300), ("proposals", 300), ("user_prefs", None)]


def fill(client: redis.Redis, count: int) -> float:
    t0 = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        family, ttl = FAMILIES[i % len(FAMILIES)]
        key = f"{family}:{i}"
        if ttl:
            pipe.set(key, "v" * 40, ex=ttl * 100)  # long enough to outlive the benchmark
        else:
            pipe.set(key, "v" * 40)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - t0


def timings(fn, runs: int) -> dict:
    values = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        values.append(time.perf_counter() - t0)
    return {"median_ms": round(statistics.median(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    port = free_port()
    folder = tempfile.mkdtemp(prefix="dbpulse-redis-bench-")
    server = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--dir", folder], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        result = {"keys": args.keys, "fill_s": round(fill(client, args.keys), 1)}
        from ui import loaders

        settings = Settings()
        page_data = lambda: loaders.redis_page_data.__wrapped__(url, settings)  # noqa: E731
        sampled = page_data().value["families"]
        result["sampled_keys"] = sampled.sampled
        result["sampling_ms"] = round(sampled.seconds * 1000, 1)
        result["page_data"] = timings(page_data, args.runs)

        from streamlit.testing.v1 import AppTest

        os.environ.update({"DATABASE_URL": "postgresql://unused@127.0.0.1:1/none",
                           "REDIS_URL": url, "DBPULSE_SECRETS_FILE": "/nonexistent"})

        def render():
            loaders.redis_page_data.clear()
            at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
            at.run()
            at.switch_page("views/redis.py").run()
            assert not at.exception and not at.error, (at.exception, at.error)

        render()  # first import of the page's modules
        result["page_render_uncached"] = timings(render, args.runs)
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
