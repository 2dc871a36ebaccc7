"""Benchmark: the fleet overview over 20 databases on one server, a few with findings, plus
one target that is down. Times the concurrent read (operations/fleet.py), the Fleet page drawn by
Streamlit's AppTest, and the page in headless Chromium (a fresh dashboard each run). Prints one
JSON object.

Run against the embedded stack: eval "$(.venv/bin/python cli.py stack status)";
.venv/bin/python bench/fleet.py [--targets 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from demo.stack import PROJECT_ROOT, create_database, free_port  # noqa: E402
from foundation.config import Settings, Target  # noqa: E402
from operations import fleet  # noqa: E402

GOAL_S = 3.0


def build(base_url: str, count: int) -> list[Target]:
    """`count` small databases; every fifth has an INVALID index and a foreign key without
    an index."""
    targets = []
    for n in range(count):
        name = f"fleet_bench_{n:02d}"
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        url = create_database(base_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text)")
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, account_id int "
                         "REFERENCES accounts, total numeric)")
            conn.execute("INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 2000) g")
            conn.execute("INSERT INTO orders SELECT g, 1 + g % 2000, g FROM "
                         "generate_series(1, 20000) g")
            if n % 5 == 0:
                conn.execute("CREATE INDEX CONCURRENTLY orders_account ON orders (account_id)")
                conn.execute("UPDATE pg_index SET indisvalid = false "
                             "WHERE indexrelid = 'orders_account'::regclass")
            conn.execute("ANALYZE")
        targets.append(Target(name, url, url))
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    return targets + [Target("down", down, down)]


def drop(base_url: str, count: int) -> None:
    with psycopg.connect(base_url, autocommit=True) as conn:
        for n in range(count):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(f"fleet_bench_{n:02d}")))


def page_seconds(targets: list[Target], runs: int) -> list[float]:
    """The Fleet page drawn cold (caches cleared) with the targets in a secrets file."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    secrets = Path(tempfile.mkdtemp()) / "secrets.toml"
    secrets.write_text("".join(f'[targets.{t.name}]\ndatabase_url = "{t.database_url}"\n'
                               for t in targets))
    os.environ.update(DBPULSE_SECRETS_FILE=str(secrets), DATABASE_URL="", REDIS_URL="")
    values = []
    for _ in range(runs):
        st.cache_data.clear()
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
        at.run()
        t0 = time.perf_counter()
        at.switch_page("views/fleet.py").run()
        values.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return values


def browser_seconds(targets: list[Target], runs: int) -> tuple[list[float], list[float]]:
    """The Fleet page in headless Chromium on a fresh dashboard (empty caches): reached by its
    sidebar link from an almost empty page opened first (so the dashboard's own start is not
    counted), then again by the link from the cache."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pages_in_browser as browser
    from playwright.sync_api import sync_playwright

    secrets = Path(tempfile.mkdtemp()) / "secrets.toml"
    secrets.write_text("".join(f'[targets.{t.name}]\ndatabase_url = "{t.database_url}"\n'
                               for t in targets))
    first, cached = [], []
    for _ in range(runs):
        proc, base = browser.serve("", "", str(secrets))
        try:
            with sync_playwright() as p:
                chromium = p.chromium.launch(executable_path=browser.CHROMIUM,
                                             args=browser.FLAGS)
                page = chromium.new_page(viewport={"width": 1440, "height": 900})
                browser.drawn_seconds(page, f"{base}/audit", "Audit log")
                first.append(browser.navigated_seconds(page, "Fleet", "Fleet"))
                browser.navigated_seconds(page, "Audit log", "Audit log")
                cached.append(browser.navigated_seconds(page, "Fleet", "Fleet"))
                chromium.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return first, cached


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    base_url = os.environ["DATABASE_URL"]
    targets = build(base_url, args.targets)
    try:
        settings = Settings(connect_timeout_s=3)
        reads, statuses = [], {}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            reports = fleet.fleet_reports(targets, settings, time_limit_s=8)
            reads.append(time.perf_counter() - t0)
            statuses = {r["target"]: r["status"] for r in reports}
        page = page_seconds(targets, args.runs)
        in_browser, from_cache = browser_seconds(targets, args.runs)
    finally:
        drop(base_url, args.targets)
    with psycopg.connect(base_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    print(json.dumps({
        "postgresql": version, "targets": len(targets), "down": 1, "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "read_all_s": {"median": round(statistics.median(reads), 3), "max": round(max(reads), 3)},
        "fleet_page_s": {"median": round(statistics.median(page), 3), "max": round(max(page), 3)},
        "fleet_page_in_chromium_s": {"median": round(statistics.median(in_browser), 3),
                                     "max": round(max(in_browser), 3)},
        "fleet_page_in_chromium_from_cache_s": round(statistics.median(from_cache), 3),
        "goal_s": GOAL_S, "within_goal": max(statistics.median(page),
                                             statistics.median(in_browser)) <= GOAL_S,
        "statuses": {s: list(statuses.values()).count(s) for s in set(statuses.values())},
    }, indent=2))


if __name__ == "__main__":
    main()
