"""Benchmark: the fleet over 200 databases on one server (issue 32): most small, every 40th
with a catalogue of 2,500 indexes (slow to check), every 50th unreachable (down). Times the
concurrent read (operations/fleet.py) and the peak of connections it opens, `check
--all-targets` and the Fleet page reading every target, an agent's cycles over every target
with their peaks of connections (those taking the targets' first snapshots, spread over cycles,
then a steady one), then `check --all-targets`, the Fleet page drawn
by Streamlit's AppTest and the page in headless Chromium (a fresh dashboard each run) showing
that agent's figures (its /fleet.json, setting agent_url). Prints one JSON object, each figure
with its goal and whether it is met.

Run against the embedded stack: eval "$(.venv/bin/python cli.py stack status)";
.venv/bin/python bench/fleet.py [--targets 200] [--runs 3]
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

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from agent.metrics import serve  # noqa: E402
from agent.runner import Agent  # noqa: E402
from demo.stack import PROJECT_ROOT, create_database, drop_databases, free_port  # noqa: E402
from foundation.config import Settings, Target  # noqa: E402
from operations import fleet  # noqa: E402
from operations.alerts import Alerter  # noqa: E402

# seconds, issue 32
GOAL_S = {"fleet page": 3.0, "check --all-targets": 5.0, "agent cycle": 30.0}
SLOW_EVERY, DOWN_EVERY = 40, 50
TEMPLATES = {"small": "fleet_bench_small", "slow": "fleet_bench_slow"}


def _make_template(base_url: str, name: str, tables: int) -> None:
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
        for t in range(tables):  # the slow ones' catalogue: five indexes a table
            conn.execute(f"CREATE TABLE extra_{t} (id int PRIMARY KEY, a int, b int, c text)")
            for columns in ("a", "b", "a, b", "c"):
                conn.execute(f"CREATE INDEX ON extra_{t} ({columns})")
        conn.execute("ANALYZE")


def build(base_url: str, count: int) -> list[Target]:
    """`count` databases copied from two templates; every fifth has an INVALID index and a
    foreign key without an index; every DOWN_EVERY-th target is a closed port."""
    _make_template(base_url, TEMPLATES["small"], 0)
    _make_template(base_url, TEMPLATES["slow"], 500)
    targets = []
    for n in range(count):
        if n % DOWN_EVERY == DOWN_EVERY - 1:
            down = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
            targets.append(Target(f"down_{n:03d}", down, down))
            continue
        name = f"fleet_bench_{n:03d}"
        template = TEMPLATES["slow" if n % SLOW_EVERY == SLOW_EVERY - 1 else "small"]
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        url = base_url.rsplit("/", 1)[0] + "/" + name
        if n % 5 == 0:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE INDEX CONCURRENTLY orders_account ON orders (account_id)")
                conn.execute("UPDATE pg_index SET indisvalid = false "
                             "WHERE indexrelid = 'orders_account'::regclass")
        targets.append(Target(name, url, url))
    return targets


def drop(base_url: str, count: int) -> None:
    drop_databases(base_url, [f"fleet_bench_{n:03d}" for n in range(count)]
                   + list(TEMPLATES.values()))


class PeakConnections:
    """The most client connections the server held at once while it ran (sampled every 20 ms
    from pg_stat_activity, the sampler's own left out), by a process of its own: a thread here
    would take the interpreter from what is measured in this process (an agent's cycle)."""

    SAMPLER = """
import select, sys
import psycopg

QUERY = ("SELECT count(*) FROM pg_stat_activity "
         "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
peak = 0
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0.02)[0]:  # until told to stop
        peak = max(peak, conn.execute(QUERY).fetchone()[0])
print(peak, flush=True)
"""

    def __init__(self, base_url: str):
        self.base_url, self.peak = base_url, 0

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.SAMPLER, self.base_url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdout.readline()  # connected: sampling from now on
        return self

    def __exit__(self, *exc):
        out, _ = self.proc.communicate("stop\n", timeout=30)
        self.peak = int(out.split()[-1])


def secrets_file(targets: list[Target], agent_url: str = "") -> Path:
    path = Path(tempfile.mkdtemp()) / "secrets.toml"
    path.write_text((f'[settings]\nagent_url = "{agent_url}"\n' if agent_url else "")
                    + "".join(f'[targets.{t.name}]\ndatabase_url = "{t.database_url}"\n'
                              for t in targets))
    return path


def cli_seconds(targets: list[Target], *args: str, agent_url: str = ""
                ) -> tuple[float, int, str]:
    """A CLI command over every target of a secrets file: seconds, exit code, last line."""
    env = {**os.environ, "DBPULSE_SECRETS_FILE": str(secrets_file(targets, agent_url)),
           "DATABASE_URL": "", "REDIS_URL": "", "DBPULSE_ROLE": "dba"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return time.perf_counter() - t0, done.returncode, lines[-1] if lines else ""


def page_seconds(targets: list[Target], runs: int, agent_url: str = "") -> list[float]:
    """The Fleet page drawn cold (caches cleared) with the targets in a secrets file."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ.update(DBPULSE_SECRETS_FILE=str(secrets_file(targets, agent_url)), DATABASE_URL="",
                      REDIS_URL="")
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


def browser_seconds(targets: list[Target], runs: int, agent_url: str = ""
                    ) -> tuple[list[float], list[float]]:
    """The Fleet page in headless Chromium on a fresh dashboard (empty caches): reached by its
    sidebar link from an almost empty page opened first (so the dashboard's own start is not
    counted), then again by the link from the cache."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pages_in_browser as browser
    from playwright.sync_api import sync_playwright

    secrets = secrets_file(targets, agent_url)
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


def agent_cycles(targets: list[Target], base_url: str) -> tuple[dict, Agent]:
    """One agent watching every target (as `agent --all-targets`, in this process), cycle
    after cycle: the first cycles take the targets' first snapshots, at most
    snapshots_per_cycle each (the rest wait), until every target has one; then a steady cycle
    (snapshots hourly). Each with its seconds and the peak of connections, the targets it
    measured and the snapshots it took; and the agent, whose last cycle the Fleet then shows."""
    lines: list[str] = []
    agent = Agent(targets, Settings(role="dba", connect_timeout_s=3), Alerter([]),
                  log=lines.append)
    goal = GOAL_S["agent cycle"]
    spreading: list[dict] = []
    out = {}
    try:
        agent.claim()
        while True:
            lines.clear()
            with PeakConnections(base_url) as connections:
                t0 = time.perf_counter()
                agent.cycle(targets)
                seconds = time.perf_counter() - t0
            cycle = {"seconds": round(seconds, 2), "goal_s": goal, "met": seconds <= goal,
                     "peak_connections": connections.peak,
                     # the log's line per target: measured ("N red, M amber") or not
                     "targets_measured": sum(" red, " in line for line in lines),
                     "snapshots": sum("; snapshot " in line and "snapshot due" not in line
                                      for line in lines)}
            if not cycle["snapshots"] or len(spreading) == 20:
                out["agent cycle"] = cycle
                break
            spreading.append(cycle)
        out["agent cycle, first (snapshots)"] = spreading[0] if spreading else None
        out["agent cycles taking the first snapshots"] = {
            "cycles": len(spreading), "snapshots": sum(c["snapshots"] for c in spreading),
            "max_s": max((c["seconds"] for c in spreading), default=None), "goal_s": goal,
            "met": all(c["met"] for c in spreading)}
    finally:
        agent.close()
    return out, agent


def _median(values: list[float], goal: float | None = None) -> dict:
    out = {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
    if goal is not None:
        out.update(goal_s=goal, met=out["median_s"] <= goal)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    base_url = os.environ["DATABASE_URL"]
    targets = build(base_url, args.targets)
    result: dict = {"targets": len(targets), "cpu_count": os.cpu_count(),
                    "load_before": [round(v, 2) for v in os.getloadavg()]}
    try:
        settings = Settings(connect_timeout_s=3)
        reads, statuses, peak = [], {}, 0
        for _ in range(args.runs):
            with PeakConnections(base_url) as connections:
                t0 = time.perf_counter()
                reports = fleet.fleet_reports(targets, settings)
                reads.append(time.perf_counter() - t0)
            peak = max(peak, connections.peak)
            statuses = {r["target"]: r["status"] for r in reports}
        result["read_all"] = _median(reads)
        result["read_all"]["peak_connections"] = peak
        result["statuses"] = {s: list(statuses.values()).count(s) for s in set(statuses.values())}
        # read live: every target by the command or page itself (no goal: 200 targets' checks
        # are more CPU than 5 s of two cores; the goals are met with the agent's figures)
        check = [cli_seconds(targets, "check", "--all-targets") for _ in range(args.runs)]
        result["check --all-targets, read live"] = {**_median([c[0] for c in check]),
                                                    "exit_code": check[-1][1]}
        result["fleet page (AppTest), read live"] = _median(page_seconds(targets, 1))
        cycles, agent = agent_cycles(targets, base_url)
        result.update(cycles)
        port = free_port()
        server = serve(agent.last, port)
        agent_url = f"http://127.0.0.1:{port}"
        try:
            check = [cli_seconds(targets, "check", "--all-targets", agent_url=agent_url)
                     for _ in range(args.runs)]
            result["check --all-targets"] = {**_median([c[0] for c in check],
                                                       GOAL_S["check --all-targets"]),
                                             "exit_code": check[-1][1],
                                             "last_line": check[-1][2]}
            result["fleet page (AppTest)"] = _median(page_seconds(targets, args.runs, agent_url),
                                                     GOAL_S["fleet page"])
            in_browser, from_cache = browser_seconds(targets, args.runs, agent_url)
            result["fleet page in Chromium"] = _median(in_browser, GOAL_S["fleet page"])
            result["fleet page in Chromium from the cache"] = _median(from_cache)
        finally:
            server.shutdown()
    finally:
        drop(base_url, args.targets)
    with psycopg.connect(base_url) as conn:
        result["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        result["max_connections"] = int(conn.execute("SHOW max_connections").fetchone()[0])
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    result["all_goals_met"] = all(v.get("met", True) for v in result.values()
                                  if isinstance(v, dict))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
