"""Every configured target's health side by side: the checks, the hit rates and the worst
findings, read concurrently, each target within its own time limit, so a target that is down
shows as down without delaying the others. Used by `cli.py check --all-targets` and the Fleet
page."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Callable, ContextManager

import pandas as pd
import psycopg

from foundation import capabilities, server
from foundation.columns import Column
from foundation.config import Settings, Target
from foundation.connections import DatabaseProblem, monitoring_connection
from foundation.looks import one_look
from operations import checks
from reads import cache, redis_cache, replication, statements

SEVERITY_RANK = {"down": -1, **checks.SEVERITY_ORDER}
WORKERS = 8  # targets read at once, so as many connections: most of a read is waiting
# how a target's report gets its connection: a new one by default, or one the caller keeps
Connect = Callable[[], ContextManager[psycopg.Connection]]


def topology(conn: psycopg.Connection, target: Target) -> str:
    """Where the target stands in its replication: a standby, or a primary with the standbys
    streaming from it (and how many the target declares as its read replicas)."""
    if replication.is_standby(conn):
        return "standby"
    streaming = replication.standby_names(replication.standbys(conn))
    declared = f"; {len(target.replica_urls)} declared as replicas" if target.replica_urls else ""
    return (f"primary, {len(streaming)} standby{'s' if len(streaming) != 1 else ''} streaming"
            + (f" ({', '.join(streaming)})" if streaming else "") + declared)


def target_report(target: Target, settings: Settings,
                  also: Callable[[psycopg.Connection, capabilities.Capabilities,
                                  statements.SlowQueryKpi | None, pd.DataFrame | None],
                                 object] | None = None,
                  with_size: bool = True,
                  connect: Connect | None = None) -> dict:
    """One target's health: PostgreSQL identity, checks and buffer hit rate, each Redis's hit
    rate; a server that cannot be reached is an error entry, and makes the target red. `also`
    reads more on the same connection (the agent's KPIs), given what the checks read that it
    wants too: the slow-query KPI and the materialized views (each None where it could not be
    read); its result is report["also"]. Without `with_size` the database's size is not read
    (it visits every file of the database): None. `connect` gives the connection (the agent's
    kept one); by default a new one. The reads are one look (one_look): what several of them
    need (the standbys, the probes' ledger, the connection count) is read once."""
    t0 = time.monotonic()
    report: dict = {"target": target.name, "findings": [],
                    "measured_at": datetime.now(timezone.utc)}
    failed = False
    try:
        with (connect() if connect else
              monitoring_connection(target.database_url, settings)) as conn, one_look(conn):
            identity = server.server_identity(conn, with_size=with_size)
            caps = capabilities.detect(conn)
            hit = cache.cache_hit_rates(conn, per_kind=False)  # the report has the database's
            # read once for the checks and for `also`: each read of pg_stat_statements builds
            # every entry of the server
            kpi = checks.slow_query_kpi(conn, caps, settings)
            views = checks.matview_list(conn, settings)
            findings = checks.run_all(conn, caps, settings, rates=hit,
                                      replica_urls=target.replica_urls, kpi=kpi, views=views)
            report["topology"] = topology(conn, target)
            if also is not None:
                report["also"] = also(conn, caps, kpi, views)
        report["postgres"] = {
            "version": identity.version, "database": identity.database,
            "uptime_s": round(identity.uptime.total_seconds()),
            "database_size_bytes": identity.database_size_bytes,
            "stats_reset": identity.stats_reset.isoformat() if identity.stats_reset else None,
            "buffer_hit_rate": hit.database,
            "blocks_hit": hit.blocks_hit, "blocks_read": hit.blocks_read,
            "extensions": {n: e.installed_version for n, e in caps.extensions.items()},
            "can_read_all_stats": caps.can_read_all_stats,
            "capability_issues": [dataclasses.asdict(i) for i in caps.issues],
        }
        report["findings"] = [f.as_dict() for f in findings]
        failed |= checks.worst_severity(findings) == "red"
    except DatabaseProblem as problem:
        report["postgres"] = {"error": problem.message, "hint": problem.hint}
        failed = True
    for url in target.redis_urls:
        entry: dict = {"url": redis_cache.redact_url(url)}
        try:
            client = redis_cache.connect(url)
            overview = redis_cache.redis_overview(client, url)
            client.close()
            entry.update(version=overview.version, hit_rate=overview.hit_rate, keys=overview.keys,
                         keyspace_hits=overview.keyspace_hits,
                         keyspace_misses=overview.keyspace_misses)
        except redis_cache.RedisProblem as problem:
            entry.update(error=problem.message, hint=problem.hint)
            failed = True
        report.setdefault("redis", []).append(entry)
    report["status"] = "red" if failed else checks.worst_severity(
        [checks.Finding(**f) for f in report["findings"]])
    report["seconds"] = round(time.monotonic() - t0, 3)
    return report


def fleet_reports(targets: list[Target], settings: Settings, time_limit_s: float = 10.0,
                  workers: int = WORKERS) -> list[dict]:
    """Every target's report, read `workers` at a time (so as many connections); a target
    that has not answered within time_limit_s of its own read starting is "down" with the
    reason, and its place goes to the next target (its thread ends with its connection's
    timeouts). A target waiting its turn is never called down. Worst first."""
    reports: dict[str, dict] = {}
    lock = threading.Lock()
    changed = threading.Event()
    places = threading.Semaphore(max(1, workers))

    def read(target: Target) -> None:
        try:
            report = target_report(target, settings)
        except Exception as exc:  # a bug in a check must not hang the fleet
            report = _down(target, f"failed: {type(exc).__name__}")
        with lock:
            if target.name not in reports:  # else it was called down already
                reports[target.name] = report
                places.release()
        changed.set()

    waiting, running = list(targets), {}   # running: name -> (target, when its read started)
    while waiting or running:
        while waiting and places.acquire(blocking=False):
            target = waiting.pop(0)
            running[target.name] = (target, time.monotonic())
            threading.Thread(target=read, args=(target,), daemon=True).start()
        changed.wait(0.05)
        changed.clear()
        now = time.monotonic()
        with lock:
            for name, (target, started) in list(running.items()):
                if name in reports:
                    del running[name]
                elif now - started >= time_limit_s:
                    reports[name] = _down(target, f"no answer within {time_limit_s:g} s")
                    del running[name]
                    places.release()
    return worst_first(list(map(mark_down, reports.values())))


def worst_first(reports_or_rows: list[dict]) -> list[dict]:
    """Down, then red, amber, green; by target name within each."""
    return sorted(reports_or_rows,
                  key=lambda r: (SEVERITY_RANK.get(r["status"], 9), r["target"]))


def answered(report: dict) -> bool:
    """PostgreSQL answered: the report holds no error of its."""
    return "error" not in report.get("postgres", {})


def mark_down(report: dict) -> dict:
    """The report, "down" when its server was unreachable, whatever else it found."""
    if not answered(report):
        report["status"] = "down"
    return report


def agent_rows(agent_url: str, targets: list[Target], max_age_s: float,
               timeout_s: float = 2.0) -> tuple[list[dict], list[Target], str]:
    """The Fleet rows the agent at agent_url (its /fleet.json) measured within max_age_s; the
    targets it has no such row for, to be read here; and why none came from it, when none did
    ("" otherwise). Rows of targets not asked for are left out."""
    try:
        with urllib.request.urlopen(f"{agent_url.rstrip('/')}/fleet.json",
                                    timeout=timeout_s) as answer:
            measured = json.load(answer)
    except (OSError, ValueError) as exc:  # down, refused, not an agent, not JSON
        return [], list(targets), f"the agent at {agent_url} did not answer ({exc})"
    now, rows, left = datetime.now(timezone.utc), [], []
    for target in targets:
        row = measured.get(target.name)
        at = datetime.fromisoformat(row["measured_at"]) if row and row["measured_at"] else None
        if at is None or (now - at).total_seconds() > max_age_s:
            left.append(target)
            continue
        rows.append({**row, "measured_at": at})
    return rows, left, "" if rows else f"the agent at {agent_url} has no recent figures"


def current_rows(targets: list[Target], settings: Settings,
                 read: Callable[[list[Target]], list[dict]]) -> tuple[list[dict], int, str]:
    """The Fleet's rows, worst first: what the agent at settings.agent_url measured within
    agent_max_age_s, and the other targets' reports from `read`; how many rows came from the
    agent, and why none did when it was asked."""
    from_agent, to_read, note = (agent_rows(settings.agent_url, targets,
                                            settings.agent_max_age_s)
                                 if settings.agent_url else ([], list(targets), ""))
    rows = from_agent + summary_rows(read(to_read) if to_read else [])
    return worst_first(rows), len(from_agent), note


def _down(target: Target, reason: str) -> dict:
    return {"target": target.name, "findings": [], "status": "down",
            "postgres": {"error": reason, "hint": ""}, "seconds": None,
            "measured_at": datetime.now(timezone.utc)}


def summary_rows(reports: list[dict]) -> list[dict]:
    """One row per target for a table: status, versions, hit rates, counts and the worst
    findings in words."""
    rows = []
    for r in reports:
        pg = r.get("postgres", {})
        bad = [f for f in r["findings"] if f["severity"] in ("red", "amber")]
        bad.sort(key=lambda f: checks.SEVERITY_ORDER[f["severity"]])
        redis_rates = [e["hit_rate"] for e in r.get("redis", []) if e.get("hit_rate") is not None]
        rows.append({
            "target": r["target"], "status": r["status"],
            "postgres": "unreachable" if pg.get("error") else f"PostgreSQL {pg.get('version')}",
            "down_reason": pg.get("error"),
            "topology": r.get("topology"),
            "buffer_hit_rate": pg.get("buffer_hit_rate"),
            "redis_hit_rate": min(redis_rates) if redis_rates else None,
            "red": sum(f["severity"] == "red" for f in r["findings"]),
            "amber": sum(f["severity"] == "amber" for f in r["findings"]),
            "worst": "; ".join(f"{f['title']} ({f['count']})" for f in bad[:3]),
            "seconds": r.get("seconds"),
            "measured_at": r.get("measured_at"),
        })
    return rows


# How these rows are shown (ui/tables.py)
FLEET_COLUMNS = {
    "target": Column("Target", pinned=True), "status": Column("Status", width="small"),
    "postgres": Column("Server", width="medium"),
    "topology": Column("Replication", width="medium",
                       help="A standby, or a primary with the standbys streaming from it"),
    "buffer_hit_rate": Column("Buffer hit rate", "percent", digits=2),
    "redis_hit_rate": Column(redis_cache.HIT_RATE_LABEL, "percent", digits=1,
                             help="The lowest of the target's Redis instances. "
                                  + redis_cache.HIT_RATE_MEANING),
    "red": Column("Red", "count", width="small"), "amber": Column("Amber", "count", width="small"),
    "worst": Column("Worst findings", explains=True),
    "down_reason": Column("Down", explains=True),
    "seconds": Column("Read in", "number", unit="s", digits=2),
    "measured_at": Column("Measured", "time",
                          help="When these figures were read: by the agent, or by this page"),
}
