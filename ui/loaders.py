"""Cached loaders between the core (reads/, operations/) and the pages. Each borrows a pooled monitoring connection,
calls the core, and returns a Loaded: the value, or the problem that stopped it (cached too,
briefly, so an unreachable server is not hammered on every rerun)."""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pandas as pd
import streamlit as st

from foundation import capabilities, migration_files, plan, server
from foundation.config import Settings, Target, load_settings
from foundation.connections import DatabaseProblem, MonitoringPool
from foundation.problems import Problem
from foundation.threads import work_beside
from operations import alert_log, audit, checks, fleet, history, migrations, review
from reads import (
    activity,
    bloat,
    cache,
    indexes,
    matviews,
    pgbouncer,
    plan_tracker,
    probes,
    redis_cache,
    replication,
    schedules,
    space,
    statements,
    tune,
    vacuum,
)
from reads.redis_cache import RedisProblem

try:
    CACHE_TTL_S = load_settings().cache_ttl_s
except ValueError:  # a broken configuration is reported by the sidebar, not at import
    CACHE_TTL_S = 30


@dataclass
class Loaded:
    value: Any = None
    problem: Problem | None = None
    loaded_at: datetime | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None


FAILURE_TTL_S = 3.0  # a failure is shown again only this long: the server may be back


class _Failed(Exception):
    """Carries a failed Loaded out of st.cache_data, which caches only what returns."""

    def __init__(self, loaded: Loaded):
        super().__init__(str(loaded.problem))
        self.loaded = loaded


def cached(ttl: float):
    """st.cache_data for a loader that returns a Loaded: a result is reused for `ttl` seconds,
    a failure only for FAILURE_TTL_S, so numbers return within seconds of a server coming back
    and a server that is down is not asked on every rerun."""
    def wrap(fn: Callable) -> Callable:
        def results(*args, **kwargs):
            loaded = fn(*args, **kwargs)
            if not loaded.ok:
                raise _Failed(loaded)
            return loaded

        # st.cache_data keys a function by module, qualified name and source: give each
        # loader's cache its own name, or they would share entries
        results.__qualname__ = f"{fn.__qualname__}.results"
        results = st.cache_data(ttl=ttl, show_spinner=False)(results)

        failures: dict[str, tuple[float, Loaded]] = {}

        @functools.wraps(fn)
        def loader(*args, **kwargs):
            key = repr((args, sorted(kwargs.items())))
            recent = failures.get(key)
            if recent and time.monotonic() - recent[0] < FAILURE_TTL_S:
                return recent[1]
            try:
                return results(*args, **kwargs)
            except _Failed as failed:
                failures[key] = (time.monotonic(), failed.loaded)
                return failed.loaded

        def clear() -> None:
            results.clear()
            failures.clear()

        loader.clear = clear
        return loader
    return wrap


@st.cache_resource(show_spinner=False)
def monitoring_pool(dsn: str, settings: Settings) -> MonitoringPool:
    return MonitoringPool(dsn, settings)


def _load(dsn: str, settings: Settings, fn: Callable) -> Loaded:
    t0 = time.monotonic()
    try:
        with monitoring_pool(dsn, settings).connection() as conn:
            value = fn(conn)
        problem = None
    except (Problem, statements.StatementsUnavailable) as exc:
        value, problem = None, exc
        if isinstance(exc, statements.StatementsUnavailable):
            problem = DatabaseProblem("unavailable", str(exc))
    return Loaded(value, problem, datetime.now(timezone.utc), time.monotonic() - t0)


def _dated(loaded: Loaded, parts_read_at: list[datetime]) -> Loaded:
    """loaded, dated by the oldest read it holds: a part taken from another loader's cache (the
    shared index read) is as old as that entry, and the page's "as of" says so."""
    oldest = min(parts_read_at, default=None)
    if loaded.ok and oldest is not None and oldest < loaded.loaded_at:
        return replace(loaded, loaded_at=oldest)
    return loaded


@dataclass
class PostgresOverview:
    identity: server.ServerIdentity
    capabilities: capabilities.Capabilities
    cache_hit: cache.CacheHitRates
    findings: list
    size: Loaded  # the database's size, read every SIZE_TTL_S


# The database's size changes slowly, and reading it visits every file of the database (on
# the small demo a fifth of an Overview load's statement time, 75 ms at 25,000 indexes): read
# this often, apart from the Overview's other figures, with its own time
SIZE_TTL_S = max(CACHE_TTL_S, 600)


@cached(ttl=SIZE_TTL_S)
def database_size(dsn: str, settings: Settings) -> Loaded:
    return _load(dsn, settings, server.database_size)


@cached(ttl=CACHE_TTL_S)
def postgres_overview(dsn: str, settings: Settings, replica_urls: tuple[str, ...] = ()) -> Loaded:
    def load(conn):
        # three at once: the index checks (most of the time; their read on a second
        # connection, unless the Indexes page's load left it cached), the other figures and
        # checks on this one, each in a thread, and the size (when its own cache time is
        # over, on a third). Read before the checks instead, the load on new connections took
        # 1/0.92 as long at 25,000 indexes (8 alternated runs)
        with work_beside(2) as pool:
            index_findings = pool.submit(_index_findings, dsn, settings, replica_urls,
                                         index_read_at)
            rest = pool.submit(_overview_reads, conn, settings, index_findings)
            size = database_size(dsn, settings)
            identity, caps, rates, findings = rest.result()
        return PostgresOverview(identity, caps, rates, findings, size)
    index_read_at: list[datetime] = []
    return _dated(_load(dsn, settings, load), index_read_at)


@cached(ttl=CACHE_TTL_S)
def index_reads(dsn: str, settings: Settings, replica_urls: tuple[str, ...] = ()) -> Loaded:
    """What the index findings are judged from (checks.index_reads), shared: the Overview's
    index checks and the Indexes page judge the same read while it is cached, so both name
    the same findings, and the page reached from the Overview does not read the catalogue
    again."""
    return _load(dsn, settings, lambda conn: checks.index_reads(conn, settings, replica_urls))


def _index_findings(dsn: str, settings: Settings, replica_urls: tuple[str, ...],
                    read_at: list[datetime]) -> list:
    """The index checks' findings from the shared read (index_reads), its time in read_at."""
    loaded = index_reads(dsn, settings, replica_urls)
    read_at.append(loaded.loaded_at)
    if not loaded.ok:
        return checks.could_not_check("indexes", loaded.problem)
    return checks.index_check_findings(loaded.value, settings)


def _overview_reads(conn, settings: Settings, index_findings) -> tuple:
    """The Overview's figures and checks on conn, the index checks' already started. The hit
    rate is the database's: the tables' and indexes' sum every relation's statistics (45 ms at
    25,000 indexes, on every uncached load), and the Buffer cache page shows them."""
    caps = capabilities.detect(conn)
    rates = cache.cache_hit_rates(conn, per_kind=False)
    identity = server.server_identity(conn)
    return identity, caps, rates, checks.run_all(conn, caps, settings, rates=rates,
                                                 index_findings=index_findings)


@cached(ttl=CACHE_TTL_S)
def capabilities_and_identity(dsn: str, settings: Settings) -> Loaded:
    return _load(dsn, settings, lambda conn: (capabilities.detect(conn),
                                              server.server_identity(conn)))


@cached(ttl=CACHE_TTL_S)
def statements_data(dsn: str, settings: Settings, flt: statements.StatementFilter) -> Loaded:
    def load(conn):
        caps = capabilities.detect(conn)
        if not caps.has_pg_stat_statements:
            issue = next((i for i in caps.issues if i.name == "pg_stat_statements"), None)
            raise statements.StatementsUnavailable(
                issue.message + " Fix: " + issue.fix if issue else "pg_stat_statements is not "
                "readable here.")
        ext = caps.extension("pg_stat_statements")
        return {"capabilities": caps, "info": statements.statements_info(conn, ext),
                "kpi": statements.slow_query_kpi(conn, ext, settings.kpi_slow_ms),
                "top": statements.top_statements(conn, ext, flt),
                "roles": server.login_roles(conn),
                "databases": server.connectable_databases(conn)}
    return _load(dsn, settings, load)


ALL_INDEXES_SHOWN = 1000  # a page never sends the whole catalogue to the browser


@cached(ttl=CACHE_TTL_S)
def indexes_data(dsn: str, settings: Settings, include_own: bool = False,
                 replica_urls: tuple[str, ...] = ()) -> Loaded:
    def listing(conn):
        # read now even when the findings come from the Overview's cached read: the page says
        # this time beside the lists when it is the later one
        read_at = datetime.now(timezone.utc)
        least_scanned = indexes.list_indexes(conn, limit=ALL_INDEXES_SHOWN)
        count = int(least_scanned["indexes_total"].iat[0]) if len(least_scanned) else 0
        if not include_own:
            least_scanned = least_scanned[least_scanned["schema_name"] != indexes.OWN_SCHEMA]
        return {"least_scanned": least_scanned, "index_count": count,
                "seq_scans": indexes.sequential_scan_heavy(conn), "lists_read_at": read_at}

    def load(conn):
        # the lists on this connection in a thread, while the findings' read (the Overview's,
        # when still cached; else on a second connection) is judged in this one
        with work_beside() as pool:
            lists = pool.submit(listing, conn)
            reads = index_reads(dsn, settings, replica_urls)
            if not reads.ok:
                raise reads.problem
            index_read_at.append(reads.loaded_at)
            review = checks.judged_indexes(reads.value, settings, include_own)
            lists = lists.result()
        return {"review": review, **lists, "identity": server.server_identity(conn)}
    index_read_at: list[datetime] = []
    return _dated(_load(dsn, settings, load), index_read_at)


@cached(ttl=CACHE_TTL_S)
def index_definitions(dsn: str, settings: Settings, oids: tuple[int, ...]) -> Loaded:
    """The definitions of the indexes a page draws (indexes.definitions), by oid."""
    return _load(dsn, settings, lambda conn: indexes.definitions(conn, list(oids)))


@cached(ttl=CACHE_TTL_S)
def bloat_data(dsn: str, settings: Settings, min_size_bytes: int = 0) -> Loaded:
    """Relations of at least min_size_bytes estimated (every one with 0)."""
    def load(conn):
        # every table's column statistics are read meanwhile when every relation is estimated
        aside = nullcontext() if min_size_bytes else monitoring_pool(dsn, settings).connection()
        with aside as spare:
            tables, indexes = bloat.estimates(conn, min_size_bytes, spare_conn=spare)
        return {"tables": tables, "indexes": indexes,
                "vacuum": vacuum.vacuum_status(conn), "wraparound": vacuum.wraparound(conn),
                "sequences": vacuum.sequences_near_max(conn),
                "capabilities": capabilities.detect(conn)}
    return _load(dsn, settings, load)


@cached(ttl=CACHE_TTL_S)
def buffer_cache_data(dsn: str, settings: Settings) -> Loaded:
    return _load(dsn, settings, lambda conn: {
        "rates": cache.cache_hit_rates(conn), "tables": cache.table_hit_rates(conn),
        "identity": server.server_identity(conn)})


@cached(ttl=CACHE_TTL_S)
def replication_data(dsn: str, settings: Settings) -> Loaded:
    def load(conn):
        return {"recovery": replication.recovery(conn), "standbys": replication.standbys(conn),
                "slots": replication.slots(conn),
                "subscriptions": replication.subscriptions(conn),
                "findings": checks.check_replication(conn, settings)}
    return _load(dsn, settings, load)


@cached(ttl=min(CACHE_TTL_S, 5))
def pooler_data(url: str, settings: Settings) -> Loaded:
    """PgBouncer's pools (the target's pooler_url), or the problem reading them."""
    t0 = time.monotonic()
    try:
        value, problem = pgbouncer.read(url, settings), None
    except DatabaseProblem as exc:
        value, problem = None, exc
    return Loaded(value, problem, datetime.now(timezone.utc), time.monotonic() - t0)


@cached(ttl=min(CACHE_TTL_S, 5))
def activity_data(dsn: str, settings: Settings) -> Loaded:
    return _load(dsn, settings, lambda conn: {
        "sessions": activity.sessions(conn), "connections": activity.connection_use(conn),
        "by_client": activity.connections_by_client(conn),
        "limits": activity.connection_limits(conn)})


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fleet_data(targets: tuple[Target, ...], settings: Settings, time_limit_s: float) -> list:
    """Every target's health, read concurrently (a down target is a row, not a failure)."""

    return fleet.fleet_reports(list(targets), settings, time_limit_s)


@cached(ttl=CACHE_TTL_S)
def tune_data(dsn: str, settings: Settings) -> Loaded:
    def load(conn):
        caps = capabilities.detect(conn)
        ext = caps.extension("pg_stat_statements") if caps.has_pg_stat_statements else None
        return {"advice": tune.advise(tune.read_settings(conn), tune.read_evidence(conn, ext)),
                "identity": server.server_identity(conn)}
    return _load(dsn, settings, load)


@cached(ttl=CACHE_TTL_S)
def space_data(target: Target, settings: Settings) -> Loaded:
    """Sizes now from the watched database; growth from the history when there is one."""

    loaded = _load(target.database_url, settings, lambda conn: {
        "tables": space.table_space(conn), "indexes": space.index_space(conn)})
    if not loaded.ok:
        return loaded
    now = datetime.now(timezone.utc)
    changes = _load_history(target, settings, lambda conn: history.table_changes(
        conn, target.history_source, history.Period(now - timedelta(days=7), now)))
    loaded.value["tables"] = space.with_growth(loaded.value["tables"],
                                               changes.value if changes.ok else None)
    loaded.value["growth_known"] = changes.ok
    return loaded


@st.cache_resource(show_spinner=False)
def redis_client(url: str):
    """One client per Redis URL for the whole dashboard: its connections are kept, so DB
    Pulse's connection handshakes (which it cannot take out of Redis's command counts) happen
    once, not on every page view."""
    return redis_cache.connect(url)


def _load_redis(url: str, fn: Callable) -> Loaded:
    """Like _load, for Redis, on the shared client; a failure drops it, the next call
    connects again."""
    t0 = time.monotonic()
    try:
        value, problem = fn(redis_client(url)), None
    except RedisProblem as exc:
        value, problem = None, exc
        redis_client.clear()
    except redis_cache.redis.RedisError as exc:  # e.g. the server went away mid-sampling
        value, problem = None, redis_cache.describe_error(exc, url)
        redis_client.clear()
    return Loaded(value, problem, datetime.now(timezone.utc), time.monotonic() - t0)


@cached(ttl=CACHE_TTL_S)
def redis_overview(url: str) -> Loaded:
    return _load_redis(url, lambda client: redis_cache.redis_overview(client, url))


def redis_hit_rate(urls: tuple[str, ...] | list[str]) -> float | None:
    """The lowest hit rate of a target's Redis servers, from the shared reads above."""
    rates = [r.value.hit_rate for r in map(redis_overview, urls) if r.ok]
    rates = [rate for rate in rates if rate is not None]
    return min(rates) if rates else None


@cached(ttl=CACHE_TTL_S)
def matviews_data(dsn: str, settings: Settings) -> Loaded:
    def load(conn):
        found = {"views": matviews.list_matviews(conn, settings.matview_max_age_minutes),
                 "history": matviews.refresh_history(conn),
                 "event_trigger": matviews.event_trigger_installed(conn),
                 "log": matviews.log_available(conn),
                 "cron": None, "schedules": None, "cron_problem": None, "cron_database": None}
        try:
            with schedules.open_cron(conn, dsn, settings) as cron:
                found["cron_database"] = cron.database if cron.elsewhere else None
                if cron.readable:
                    found["cron"] = schedules.refresh_runs(cron)
                    found["schedules"] = schedules.schedules(cron)
        except schedules.ScheduleError as exc:  # no pg_cron to reach: the page says why
            found["cron_problem"] = str(exc)
        return found
    return _load(dsn, settings, load)


@cached(ttl=min(CACHE_TTL_S, 10))
def redis_page_data(url: str, settings: Settings, with_ttl: bool = False) -> Loaded:
    def load(client):
        overview = redis_cache.redis_overview(client, url)
        server = overview.run_id
        return {"overview": overview,
                "families": redis_cache.sample_key_families(
                    client, plan.key_families(settings), settings.redis_sample_keys,
                    settings.redis_sample_seconds, server=server, with_ttl=with_ttl),
                "commands": redis_cache.top_commands(client, server=server),
                "slowlog": redis_cache.slow_log(client, server=server)}
    return _load_redis(url, load)


def _discover(settings: Settings):
    """(migrations, None) or (None, a Loaded with the reason they cannot be read)."""

    try:
        return migration_files.discover(migration_files.migrations_dir(settings)), None
    except migration_files.MigrationError as exc:
        return None, Loaded(problem=DatabaseProblem("migrations", str(exc)))


@cached(ttl=CACHE_TTL_S)
def migrations_data(dsn: str, settings: Settings) -> Loaded:
    found, unreadable = _discover(settings)
    if unreadable:
        return unreadable

    def load(conn):
        states = migrations.status(conn, found)
        pending = set(states[states["state"] != "applied"]["version"])
        return {"migrations": found, "status": states, "ledger": migrations.ledger(conn),
                "plans": {m.version: migrations.plan(conn, m) for m in found
                          if m.version in pending},
                "lint": {m.version: migration_files.lint(m) for m in found}}
    return _load(dsn, settings, load)


@cached(ttl=CACHE_TTL_S)
def plan_data(dsn: str, settings: Settings) -> Loaded:
    found, unreadable = _discover(settings)
    if unreadable:
        return unreadable

    def load(conn):
        caps = capabilities.detect(conn)
        pss = caps.extension("pg_stat_statements")
        objects = plan_tracker.object_status(conn, found)
        views = matviews.list_matviews(conn, settings.matview_max_age_minutes)
        planned_views = set(objects[objects["kind"] == "materialized view"]["name"]) \
            if not objects.empty else set()
        if not views.empty:
            views = views[[f"{r.schema_name}.{r.view_name}" in planned_views
                           for r in views.itertuples()]]
        return {"status": migrations.status(conn, found), "objects": objects, "views": views,
                "kpi": statements.slow_query_kpi(conn, pss, settings.kpi_slow_ms)
                if caps.has_pg_stat_statements else None,
                "before_after": {m.version: plan_tracker.hot_queries_before_after(
                    conn, pss, plan_tracker.latest_apply(conn, m.version))
                    for m in found} if caps.has_pg_stat_statements else {}}
    return _load(dsn, settings, load)


# --- history ----------------------------------------------------------------------------------

def _load_history(target: Target, settings: Settings, fn: Callable) -> Loaded:
    """Read the history database (the watched one unless configured apart); a period that
    cannot be measured comes back as the problem, with what to do."""

    def load(conn):
        if not history.history_installed(conn):
            raise history.HistoryUnavailable(
                "No history yet: no snapshot has been taken. A DBA takes one with the button "
                "below or `.venv/bin/python cli.py snapshot` (run it hourly from cron).")
        return fn(conn)

    try:
        return _load(target.history_read_url, settings, load)
    except history.HistoryUnavailable as exc:
        return Loaded(problem=DatabaseProblem("history", str(exc)),
                      loaded_at=datetime.now(timezone.utc))


@cached(ttl=CACHE_TTL_S)
def snapshot_times(target: Target, settings: Settings) -> Loaded:
    return _load_history(target, settings,
                         lambda conn: history.snapshot_times(conn, target.history_source))


@cached(ttl=CACHE_TTL_S)
def interval_statements(target: Target, settings: Settings, period) -> Loaded:
    def load(conn):
        cov = history.coverage(conn, target.history_source, period)
        history.require_usable(cov, period)
        return {"coverage": cov,
                "statements": history.statement_deltas(conn, target.history_source, period)}
    return _load_history(target, settings, load)


@cached(ttl=CACHE_TTL_S)
def statement_history(target: Target, settings: Settings, queryid: int, days: int = 7) -> Loaded:
    """One statement's calls and mean time per hour over the stored snapshots."""

    now = datetime.now(timezone.utc)
    period = history.Period(now - timedelta(days=days), now)
    return _load_history(target, settings, lambda conn: history.statement_series(
        conn, target.history_source, period, [queryid], bucket_hours=1))


@cached(ttl=CACHE_TTL_S)
def redis_history(target: Target, settings: Settings, hours: int = 24) -> Loaded:
    """The Redis hit rate between stored snapshots (the agent's or cron's): it outlives the
    dashboard process and is the same for every dashboard."""

    now = datetime.now(timezone.utc)
    return _load_history(target, settings, lambda conn: history.redis_series(
        conn, target.history_source, history.Period(now - timedelta(hours=hours), now)))


@cached(ttl=CACHE_TTL_S)
def review_data(target: Target, settings: Settings, previous, current) -> Loaded:
    # migrations and refreshes come from the watched database; without it, no marks
    marks = _load(target.database_url, settings, lambda conn: history.target_events(
        conn, review.span(previous, current)))
    def load(conn):
        with monitoring_pool(target.history_read_url, settings).connection() as spare:
            return review.build_review(conn, target.history_source, previous, current,
                                       settings, marks.value, spare_conn=spare)
    return _load_history(target, settings, load)


def alerts_data(target: Target, settings: Settings, since: datetime) -> Loaded:
    """The alerts the agent raised for this target since `since` (not cached: the page is
    opened to see the latest)."""

    return _load_history(target, settings, lambda conn: alert_log.recent(
        conn, target.history_source, since))


def audit_data(where: Target, settings: Settings, **filters) -> Loaded:
    """The audit rows matching the filters (not cached: a page opened after an action must show
    it), from the target's database and, when snapshots live elsewhere, the history database,
    where snapshot and pruning rows are written."""

    def load(conn):
        if not audit.log_exists(conn):
            return None
        return {"rows": audit.actions(conn, **filters), "choices": audit.choices(conn)}

    sources = [where.database_url] + ([where.history_read_url] if where.history_url else [])
    parts = [_load(dsn, settings, load) for dsn in sources]
    failed = next((p for p in parts if not p.ok), None)
    if failed:
        return failed
    found = [p.value for p in parts if p.value is not None]
    if not found:
        return Loaded(None, loaded_at=parts[0].loaded_at)
    rows = pd.concat([f["rows"] for f in found], ignore_index=True).sort_values(
        "started_at", ascending=False, kind="stable")
    choices = {k: sorted({v for f in found for v in f["choices"][k]}) for k in found[0]["choices"]}
    return Loaded({"rows": rows, "choices": choices}, loaded_at=parts[0].loaded_at)


@cached(ttl=CACHE_TTL_S)
def probe_latency(target: Target, settings: Settings, hours: int = 24) -> Loaded:
    """The plan's latency probes over the last hours, beside their targets."""

    now = datetime.now(timezone.utc)
    queries = plan.current(settings).probes

    return _load(target.history_read_url, settings, lambda conn: probes.latency(
        conn, target.history_source, queries, now - timedelta(hours=hours), now))


@cached(ttl=CACHE_TTL_S)
def connection_peak(target: Target, settings: Settings, hours: int = 24) -> Loaded:
    """The application's busiest moment for connections over the last hours (the agent's
    samples), or None without samples."""

    now = datetime.now(timezone.utc)

    return _load(target.history_read_url, settings, lambda conn: activity.peak_use(
        conn, target.history_source, now - timedelta(hours=hours), now))
