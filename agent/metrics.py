"""Metrics for Prometheus from the agent's last cycle: a scrape reads what the cycle stored and
never queries a database.

Conventions (as postgres_exporter and redis_exporter keep them): what counts is a counter
(`_total`), so `rate()` and `increase()` work over any window and survive resets; base units
(`_seconds`); one stable series per check (its state as a number, its object count apart);
labels bounded and stable: targets, checks, views, a fixed number of statements by query id
(never their text), Redis instances by address; no `instance` or `job` of our own, which
Prometheus sets itself.

The same port serves /fleet.json: the Fleet's row of every target as the last cycle measured
it, and when, so that the Fleet page and `check --all-targets` show 200 targets without reading
them again (operations/fleet.agent_rows). No finding's objects or fix, as in the metrics."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector

from operations import fleet

# dbpulse_check_state's values; "grey" (the check could not run) is unknown
CHECK_STATES = {"green": 0, "amber": 1, "red": 2, "grey": 3}
# latency probe buckets (seconds): fine around the plan's targets (200, 250, 300 ms), so
# histogram_quantile() and the share under a target are close there
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5)


@dataclass
class TargetFigures:
    """What one cycle measured on one target (the figures the dashboard shows)."""
    report: dict                                  # operations.fleet.target_report
    slow_calls: tuple[int, int, int] | None = None  # low, high, total calls
    exec_ms: float | None = None                  # all statements' execution time
    statements: list[dict] = field(default_factory=list)  # queryid, calls, exec_ms
    view_ages: dict[str, float | None] = field(default_factory=dict)  # view -> minutes
    index_scans: int | None = None
    seq_scans: int | None = None
    connections: object | None = None             # reads.activity.ConnectionUse

    @property
    def answered(self) -> bool:
        """PostgreSQL answered this cycle."""
        return fleet.answered(self.report)


class LastCycle:
    """The figures of the last cycle per target, and DB Pulse's own cost and work."""

    def __init__(self):
        self.lock = threading.Lock()
        self.targets: dict[str, TargetFigures] = {}
        self.cycle_seconds: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.errors: dict[str, int] = {}
        self.refreshes: dict[tuple[str, str], int] = {}  # (target, outcome) -> count
        # (target, hot query) -> [count per bucket (not cumulative), sum of seconds]
        self.probes: dict[tuple[str, str], list] = {}
        self.probe_failures: dict[tuple[str, str], int] = {}

    def store(self, target: str, figures: TargetFigures | None, seconds: float,
              failed: bool) -> None:
        with self.lock:
            if figures is not None:
                self.targets[target] = figures
            self.cycle_seconds[target] = seconds
            self.finished_at[target] = time.time()
            self.errors[target] = self.errors.get(target, 0) + int(failed)

    def fleet(self) -> dict:
        """{target: its Fleet row as the last cycle measured it} (/fleet.json)."""
        with self.lock:
            reports = [dict(figures.report) for figures in self.targets.values()]
        return {row["target"]: row for row in fleet.summary_rows(list(map(fleet.mark_down,
                                                                          reports)))}

    def count_refreshes(self, target: str, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.refreshes[(target, outcome)] = self.refreshes.get((target, outcome), 0) + n

    def observe_probe(self, target: str, query: str, seconds: float | None) -> None:
        """One probe run: its duration in the histogram, or a failure."""
        with self.lock:
            key = (target, query)
            if seconds is None:
                self.probe_failures[key] = self.probe_failures.get(key, 0) + 1
                return
            counts, total = self.probes.get(key, [[0] * (len(PROBE_BUCKETS) + 1), 0.0])
            slot = next((i for i, edge in enumerate(PROBE_BUCKETS) if seconds <= edge),
                        len(PROBE_BUCKETS))
            counts[slot] += 1
            self.probes[key] = [counts, total + seconds]
            self.probe_failures.setdefault(key, 0)

    def _probe_families(self, probes: dict, failures: dict):
        latency = HistogramMetricFamily(
            "dbpulse_probe_duration_seconds", "Duration of the plan's hot queries, run by the "
            "agent with representative parameters on its read-only probe login",
            labels=["target", "query"])
        failed = CounterMetricFamily("dbpulse_probe_failures", "Probe runs that failed or hit "
                                     "the probe timeout", labels=["target", "query"])
        for (target, query), (counts, total) in probes.items():
            running, buckets = 0, []
            for edge, n in zip([*map(str, PROBE_BUCKETS), "+Inf"], counts):
                running += n
                buckets.append((edge, running))
            latency.add_metric([target, query], buckets, total)
        for (target, query), n in failures.items():
            failed.add_metric([target, query], float(n))
        return latency, failed

    def collect(self):
        with self.lock:
            targets = dict(self.targets)
            seconds, errors = dict(self.cycle_seconds), dict(self.errors)
            finished, refreshes = dict(self.finished_at), dict(self.refreshes)
            probes = {k: [list(c), s] for k, (c, s) in self.probes.items()}
            probe_failures = dict(self.probe_failures)
        up = GaugeMetricFamily("dbpulse_up", "1 when PostgreSQL answered in the last cycle",
                               labels=["target"])
        last = GaugeMetricFamily("dbpulse_last_cycle_timestamp_seconds",
                                 "When the last cycle on the target ended (Unix time): a stuck "
                                 "agent shows here, its other figures stay as they were",
                                 labels=["target"])
        took = GaugeMetricFamily("dbpulse_cycle_duration_seconds",
                                 "Duration of DB Pulse's last cycle", labels=["target"])
        failed = CounterMetricFamily("dbpulse_cycle_errors", "Cycles that could not read the "
                                     "target", labels=["target"])
        # the database's data only (reads/cache.py DATA_BLOCKS): DB Pulse's catalogue reads
        # would count as hits
        hits = CounterMetricFamily("dbpulse_buffer_cache_hits", "Blocks of the database's "
                                   "tables, indexes and TOAST found in shared buffers "
                                   "(pg_stat_database.blks_hit less the system catalogues', "
                                   "sequences', DB Pulse's own schema's and its probes')",
                                   labels=["target"])
        reads = CounterMetricFamily("dbpulse_buffer_cache_reads", "Blocks of the database's "
                                    "tables, indexes and TOAST read from disk or the OS cache "
                                    "(pg_stat_database.blks_read less the same)",
                                    labels=["target"])
        redis_hits = CounterMetricFamily(
            "dbpulse_redis_keyspace_hits", "Redis keyspace hits (every command that reads a "
            "key), the lookups of every DB Pulse process taken out", labels=["target", "redis"])
        redis_misses = CounterMetricFamily(
            "dbpulse_redis_keyspace_misses", "Redis keyspace misses, the lookups of every "
            "DB Pulse process taken out", labels=["target", "redis"])
        state = GaugeMetricFamily("dbpulse_check_state", "A check's state: 0 green, 1 amber, "
                                  "2 red, 3 unknown (it could not run)",
                                  labels=["target", "check"])
        found = GaugeMetricFamily("dbpulse_check_findings", "Objects a check found",
                                  labels=["target", "check"])
        slow = CounterMetricFamily("dbpulse_slow_calls", "Calls slower than the KPI threshold, "
                                   "as bounds from per-statement min/mean/max (lower, upper)",
                                   labels=["target", "bound"])
        calls = CounterMetricFamily("dbpulse_calls", "Calls of every statement tracked",
                                    labels=["target"])
        exec_all = CounterMetricFamily("dbpulse_exec_seconds", "Execution time of every "
                                       "statement tracked", labels=["target"])
        top_calls = CounterMetricFamily("dbpulse_statement_calls", "Calls of the top statements "
                                        "by time, by query id", labels=["target", "queryid"])
        top_exec = CounterMetricFamily("dbpulse_statement_exec_seconds", "Execution time of the "
                                       "top statements by time, by query id",
                                       labels=["target", "queryid"])
        ages = GaugeMetricFamily("dbpulse_matview_age_seconds", "Seconds since a materialized "
                                 "view's last known refresh (absent when unknown)",
                                 labels=["target", "view"])
        scans = CounterMetricFamily("dbpulse_table_scans", "Index and sequential scans of user "
                                    "tables", labels=["target", "kind"])
        refreshed = CounterMetricFamily("dbpulse_matview_refreshes", "Refreshes of stale views "
                                        "the agent ran, by outcome (ok, failed)",
                                        labels=["target", "outcome"])
        for name, fig in targets.items():
            _target(name, fig, up, hits, reads, redis_hits, redis_misses, state, found, slow,
                    calls, exec_all, top_calls, top_exec, ages, scans)
        for name, value in seconds.items():
            took.add_metric([name], value)
        for name, value in finished.items():
            last.add_metric([name], value)
        for name, value in errors.items():
            failed.add_metric([name], float(value))
        for (name, outcome), value in refreshes.items():
            refreshed.add_metric([name, outcome], float(value))
        yield from (up, last, took, failed, hits, reads, redis_hits, redis_misses, state, found,
                    slow, calls, exec_all, top_calls, top_exec, ages, scans, refreshed)
        yield from self._probe_families(probes, probe_failures)


def _target(name, fig, up, hits, reads, redis_hits, redis_misses, state, found, slow, calls,
            exec_all, top_calls, top_exec, ages, scans) -> None:
    pg = fig.report.get("postgres", {})
    up.add_metric([name], 0.0 if "error" in pg else 1.0)
    if pg.get("blocks_hit") is not None:
        hits.add_metric([name], float(pg["blocks_hit"]))
        reads.add_metric([name], float(pg["blocks_read"]))
    for entry in fig.report.get("redis", []):
        if entry.get("keyspace_hits") is not None:
            redis_hits.add_metric([name, entry["url"]], float(entry["keyspace_hits"]))
            redis_misses.add_metric([name, entry["url"]], float(entry["keyspace_misses"]))
    for f in fig.report.get("findings", []):
        state.add_metric([name, f["check"]], float(CHECK_STATES.get(f["severity"], 3)))
        found.add_metric([name, f["check"]], float(f["count"]))
    if fig.slow_calls:
        low, high, total = fig.slow_calls
        slow.add_metric([name, "lower"], float(low))
        slow.add_metric([name, "upper"], float(high))
        calls.add_metric([name], float(total))
    if fig.exec_ms is not None:
        exec_all.add_metric([name], fig.exec_ms / 1000)
    for s in fig.statements:
        top_calls.add_metric([name, str(s["queryid"])], float(s["calls"]))
        top_exec.add_metric([name, str(s["queryid"])], s["exec_ms"] / 1000)
    for view, minutes in fig.view_ages.items():
        if minutes is not None:
            ages.add_metric([name, view], float(minutes) * 60)
    if fig.index_scans is not None:
        scans.add_metric([name, "index"], float(fig.index_scans))
        scans.add_metric([name, "sequential"], float(fig.seq_scans))


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # a scrape every 15 s is not news
        pass


def serve(last: LastCycle, port: int, address: str = "127.0.0.1"):
    """Serve /metrics from the last cycle (and the agent process's own CPU, memory and open
    files), and /fleet.json, on a thread; returns the server."""
    registry = CollectorRegistry()
    registry.register(last)
    ProcessCollector(registry=registry)
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/fleet.json":
            body = json.dumps(last.fleet(), default=str).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)

    server = make_server(address, port, app, _Server, _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
