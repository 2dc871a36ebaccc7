"""Benchmark: the Overview, Indexes and Bloat pages drawn in headless Chromium on the big
catalogue of bench/catalog_scale.py (issue 15's goals: Overview under 1.5 s on first load and
under 0.7 s from the cache; Indexes and Bloat under 1 s; issue 32's: Overview and Indexes first
loads within 0.4 s of the reload floor measured in the same run, reloads from the cache within
0.2 s of it).

The dashboard watches the catalogue on the production shape's monitoring login
(catalog_scale.production_shape). Each round starts a fresh dashboard (empty caches), then per
page: the first load (the
Overview opened by its address, the others by their sidebar link, until the page's script
finished), the page again from the cache by its sidebar link
(how people move between pages), and a full reload inside the cache (which also boots
Streamlit's own scripts again: `floor_reload_s` is that floor, an almost empty page
reloaded). The cache goals are judged on the link. Also lists the tables
each page cut ("Rows 1–100 of the first 1,000 of 30,163": a page never sends the whole catalogue).

`--browser returning` keeps one browser profile across the rounds on one port, after a round
that is not counted: Streamlit's scripts come from its cache, as for anyone who opened the
dashboard before (they are served "immutable" for a year).

Prints one JSON object. Run after `bench/catalog_scale.py --keep` (it builds the catalogue if it
is missing): .venv/bin/python bench/pages_in_browser.py [--rounds 3] [--browser returning]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import catalog_scale  # noqa: E402
import psycopg  # noqa: E402

from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402

CHROMIUM = os.environ.get("DBPULSE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
# page path -> (its title, first-load goal s, cached goal s)
PAGES = {"": ("Overview", 1.5, 0.7), "indexes": ("Indexes", 1.0, 1.0),
         "bloat": ("Bloat and vacuum", 1.0, 1.0)}
# issue 32: how far above Streamlit's own reload floor (same run) a first load and a reload
# from the cache may be, s
OVER_FLOOR_GOALS = {"Overview": (0.4, 0.2), "Indexes": (0.4, 0.2)}
FINISHED = """title => {
    const app = document.querySelector('[data-testid=stApp]');
    const heading = [...document.querySelectorAll('h1')].some(h => h.innerText.includes(title));
    return heading && app && app.dataset.testScriptState === 'notRunning';
}"""


def serve(database_url: str, redis_url: str, secrets_file: str | None = None,
          port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A dashboard on `port` (else a free one), as a viewer, watching the URLs (or the
    targets of a secrets file)."""
    port = port or free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "DBPULSE_ROLE": "viewer",
           "DBPULSE_SECRETS_FILE": secrets_file or str(Path(tempfile.mkdtemp()) / "none.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("streamlit did not become healthy within 60 s")


def drawn_seconds(page, url: str, title: str) -> float:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(FINISHED, arg=title, timeout=120_000)
    return time.perf_counter() - t0


def cut_tables(page) -> list[str]:
    """The captions of tables the page cut ("The first 1,000 of 30,163 rows.")."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
        .map(c => c.innerText).filter(t => t.startsWith('Rows '))""")


def navigated_seconds(page, link: str, title: str) -> float:
    """From a click on the page's link in the sidebar to its script finished: how people move
    between pages (no reload of Streamlit's own scripts)."""
    t0 = time.perf_counter()
    page.get_by_role("link", name=link, exact=True).first.click()
    page.wait_for_function(FINISHED, arg=title, timeout=120_000)
    return time.perf_counter() - t0


def one_round(database_url: str, redis_url: str, profile: Path | None = None,
              port: int | None = None) -> dict:
    """A fresh dashboard (empty caches) in a new browser, or with `profile`, a returning
    one: its cache holds Streamlit's scripts from an earlier round on the same `port` (an
    origin of its own), as a browser that opened the dashboard before does (they are served
    "immutable" for a year), so a page's first load does not fetch the scripts of the
    elements it is the first to show."""
    from playwright.sync_api import sync_playwright

    proc, base = serve(database_url, redis_url, port=port)
    figures = {}
    viewport = {"width": 1440, "height": 900}
    try:
        with sync_playwright() as p:
            if profile is None:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport=viewport)
            else:
                browser = p.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, args=FLAGS, viewport=viewport)
                page = browser.new_page()
            # Streamlit's own floor: an almost empty page loaded, then reloaded
            drawn_seconds(page, f"{base}/audit", "Audit log")
            figures["floor_reload_s"] = round(drawn_seconds(page, f"{base}/audit", "Audit log"), 3)
            for path, (title, _, _) in PAGES.items():
                # the Overview opens the dashboard; the others are reached from it
                first = (drawn_seconds(page, f"{base}/{path}", title) if not path
                         else navigated_seconds(page, title, title))
                cut = cut_tables(page)
                navigated_seconds(page, "Audit log", "Audit log")
                cached = navigated_seconds(page, title, title)
                reload = drawn_seconds(page, f"{base}/{path}", title)
                figures[title] = {"first_s": round(first, 3), "cached_s": round(cached, 3),
                                  "cached_reload_s": round(reload, 3), "cut_tables": cut}
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--browser", choices=("new", "returning"), default="new",
                        help="a new browser each round, or one that has opened the dashboard "
                             "before (one round first, not counted, fills its cache)")
    args = parser.parse_args()
    stack = EmbeddedStack(root=catalog_scale.ROOT, pg_port=free_port(), redis_port=free_port(),
                          database="postgres")
    status = stack.up()
    base, url = status.state.database_url("postgres"), status.state.database_url("catalog")
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'catalog'").fetchone()
        if not exists:
            create_database(base, "catalog", "pg_stat_statements")
            catalog_scale.build(url)
        with psycopg.connect(url) as conn:
            indexes = conn.execute("SELECT count(*) FROM pg_index").fetchone()[0]
            version = conn.execute("SHOW server_version").fetchone()[0]
        monitor_url = catalog_scale.production_shape(url)  # the dashboard's login
        profile = port = None
        if args.browser == "returning":
            profile, port = Path(tempfile.mkdtemp()), free_port()
            one_round(monitor_url, status.state.redis_url(), profile, port)
        rounds = [one_round(monitor_url, status.state.redis_url(), profile, port)
                  for _ in range(args.rounds)]
    finally:
        stack.down()
    result = {"postgresql": version, "indexes_in_catalogue": indexes,
              "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
              "rounds": args.rounds, "browser": args.browser,
              "floor_reload_s": statistics.median(r["floor_reload_s"] for r in rounds),
              "pages": {}}
    for _, (title, first_goal, cached_goal) in PAGES.items():
        first = statistics.median(r[title]["first_s"] for r in rounds)
        cached = statistics.median(r[title]["cached_s"] for r in rounds)
        result["pages"][title] = {
            "first_s": {"median": round(first, 3),
                        "max": max(r[title]["first_s"] for r in rounds), "goal": first_goal,
                        "met": first <= first_goal},
            "cached_s": {"median": round(cached, 3),
                         "max": max(r[title]["cached_s"] for r in rounds), "goal": cached_goal,
                         "met": cached <= cached_goal},
            "cached_reload_s": statistics.median(r[title]["cached_reload_s"] for r in rounds),
            "cut_tables": rounds[-1][title]["cut_tables"]}
        if title in OVER_FLOOR_GOALS:
            page, floor = result["pages"][title], result["floor_reload_s"]
            for key, figure, goal in zip(("first_over_floor_s", "cached_reload_over_floor_s"),
                                         (first, page["cached_reload_s"]),
                                         OVER_FLOOR_GOALS[title]):
                page[key] = {"median": round(figure - floor, 3), "goal": goal,
                             "met": figure - floor <= goal}
    result["all_goals_met"] = all(
        p["first_s"]["met"] and p["cached_s"]["met"]
        and all(p[k]["met"] for k in ("first_over_floor_s", "cached_reload_over_floor_s")
                if k in p)
        for p in result["pages"].values())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
