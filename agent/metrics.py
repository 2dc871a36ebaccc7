"""Metrics for Prometheus from the agent's last cycle: a scrape reads what the cycle stored and
never queries a database. Labels are bounded: targets, checks, the top statements by time (a
fixed number), views."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

SEVERITIES = ("red", "amber", "grey", "green")


@dataclass
class TargetFigures:
    """What one cycle measured on one target (the figures the dashboard shows)."""
    report: dict                                  # queries.fleet.target_report
    slow_calls: tuple[int, int, int] | None = None  # low, high, total calls
    statements: list[dict] = field(default_factory=list)  # queryid, label, calls, exec_ms
    view_ages: dict[str, float | None] = field(default_factory=dict)  # view -> minutes
    index_scans: int | None = None
    seq_scans: int | None = None


class LastCycle:
    """The figures of the last cycle per target, and DB Pulse's own cost."""

    def __init__(self):
        self.lock = threading.Lock()
        self.targets: dict[str, TargetFigures] = {}
        self.cycle_seconds: dict[str, float] = {}
        self.errors: dict[str, int] = {}

    def store(self, target: str, figures: TargetFigures | None, seconds: float,
              failed: bool) -> None:
        with self.lock:
            if figures is not None:
                self.targets[target] = figures
            self.cycle_seconds[target] = seconds
            self.errors[target] = self.errors.get(target, 0) + int(failed)

    def collect(self):
        with self.lock:
            targets = dict(self.targets)
            seconds, errors = dict(self.cycle_seconds), dict(self.errors)
        up = GaugeMetricFamily("dbpulse_up", "1 when PostgreSQL answered in the last cycle",
                               labels=["target"])
        buffer = GaugeMetricFamily("dbpulse_buffer_cache_hit_ratio",
                                   "Shared-buffer hit ratio since the statistics reset",
                                   labels=["target"])
        redis = GaugeMetricFamily("dbpulse_redis_hit_ratio",
                                  "Redis keyspace hit ratio since its start, DB Pulse's own "
                                  "lookups taken out", labels=["target", "instance"])
        findings = GaugeMetricFamily("dbpulse_findings", "Objects a check found, by severity",
                                     labels=["target", "check", "severity"])
        slow = GaugeMetricFamily("dbpulse_slow_calls", "Calls slower than the KPI threshold "
                                 "(bounds) and all calls, since the pg_stat_statements reset",
                                 labels=["target", "bound"])
        calls = CounterMetricFamily("dbpulse_statement_calls", "Calls of the top statements",
                                    labels=["target", "queryid", "statement"])
        exec_s = CounterMetricFamily("dbpulse_statement_exec_seconds",
                                     "Execution time of the top statements",
                                     labels=["target", "queryid", "statement"])
        ages = GaugeMetricFamily("dbpulse_matview_age_minutes", "Minutes since a materialized "
                                 "view's last known refresh (absent when unknown)",
                                 labels=["target", "view"])
        scans = CounterMetricFamily("dbpulse_table_scans", "Index and sequential scans of user "
                                    "tables", labels=["target", "kind"])
        took = GaugeMetricFamily("dbpulse_cycle_seconds", "Duration of DB Pulse's last cycle",
                                 labels=["target"])
        failed = CounterMetricFamily("dbpulse_cycle_errors", "Cycles that could not read the "
                                     "target", labels=["target"])
        for name, fig in targets.items():
            pg = fig.report.get("postgres", {})
            up.add_metric([name], 0.0 if "error" in pg else 1.0)
            if pg.get("buffer_hit_rate") is not None:
                buffer.add_metric([name], float(pg["buffer_hit_rate"]))
            for entry in fig.report.get("redis", []):
                if entry.get("hit_rate") is not None:
                    redis.add_metric([name, entry["url"]], float(entry["hit_rate"]))
            for f in fig.report.get("findings", []):
                findings.add_metric([name, f["check"], f["severity"]], float(f["count"]))
            if fig.slow_calls:
                for bound, value in zip(("low", "high", "total"), fig.slow_calls):
                    slow.add_metric([name, bound], float(value))
            for s in fig.statements:
                calls.add_metric([name, str(s["queryid"]), s["label"]], float(s["calls"]))
                exec_s.add_metric([name, str(s["queryid"]), s["label"]], s["exec_ms"] / 1000)
            for view, minutes in fig.view_ages.items():
                if minutes is not None:
                    ages.add_metric([name, view], float(minutes))
            if fig.index_scans is not None:
                scans.add_metric([name, "index"], float(fig.index_scans))
                scans.add_metric([name, "sequential"], float(fig.seq_scans))
        for name, value in seconds.items():
            took.add_metric([name], value)
        for name, value in errors.items():
            failed.add_metric([name], float(value))
        yield from (up, buffer, redis, findings, slow, calls, exec_s, ages, scans, took, failed)


def serve(last: LastCycle, port: int, address: str = "127.0.0.1"):
    """Serve /metrics from the last cycle on a thread; returns the server."""
    registry = CollectorRegistry()
    registry.register(last)
    server, _ = start_http_server(port, addr=address, registry=registry)
    return server
