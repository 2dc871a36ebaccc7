"""Two weeks of synthetic history for the demo, so the weekly review means something on the
first run. Every snapshot it writes is marked synthetic, and the review page says so.

It starts from one real snapshot of the demo as it is now (its statements, tables, indexes,
views and Redis) and plays counters forward hour by hour:
- call volume follows a working day and grows a little each day;
- each statement keeps its real mean time, with noise;
- phase 1 (the indexes of migration 0001) is applied in the middle: from then on Q1's mean
  drops by 80 % and Q9's by 20 % (bench/migration_gain.py measured -66..-97 % and +19..-34 %),
  and the single-column index on message_events.user_id it supersedes gets no more scans;
- the unified inbox (Q5) slows down through the second week while dm_conversations bloats;
- Redis restarts once (the review must not show that as a negative rate);
- the planted stale view is never refreshed.
None of it touches the demo's tables: only DB Pulse's history tables.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg

from foundation.roles import Actor
from operations import snapshots
from reads.plan_tracker import hot_query_label

DAYS = 14
PHASE1_LABEL = "apply 0001 phase1_indexes (synthetic demo history)"
PHASE1_EFFECT = {"Q1 message events list": 0.2, "Q9 hot leads": 0.8}
SUPERSEDED_INDEX = "idx_message_events_user_id"
CALLS_PER_HOUR = 20_000


def has_synthetic_history(conn: psycopg.Connection, source: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM dbpulse.snapshots WHERE source = %s "
                        "AND synthetic)", (source,)).fetchone()[0]


def _volume(at: datetime, day: float) -> float:
    """Calls per hour: a working day (quiet at night) growing 2 % a day."""
    hour = at.hour + at.minute / 60
    working = 0.25 + 0.75 * max(0.0, np.sin(np.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.25
    return CALLS_PER_HOUR * working * (1 + 0.02 * day)


def _matches(query: str, name: str) -> bool:
    return hot_query_label(query) == name


def generate(template: snapshots.Snapshot, end: datetime, seed: int = 7, days: int = DAYS
             ) -> tuple[list[snapshots.Snapshot], datetime]:
    """Hourly snapshots over `days` days ending at `end`; returns them and phase 1's time."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    phase1_at = start + timedelta(days=days / 2, hours=-6)
    redis_restart_at = start + timedelta(days=3, hours=4)
    hours = days * 24
    base = template.statements.copy()
    base = base[base["calls"].astype(float) > 0].reset_index(drop=True)
    calls_real = base["calls"].astype(float)
    weight = (calls_real / calls_real.sum()).to_numpy()
    per_call = {c: (base[c].astype(float) / calls_real).fillna(0).to_numpy()
                for c in snapshots.STATEMENT_COUNTERS if c != "calls"}
    phase1 = np.ones(len(base))
    for name, factor in PHASE1_EFFECT.items():
        phase1[base["query"].map(lambda q, n=name: _matches(q, n)).to_numpy()] = factor
    inbox = base["query"].map(lambda q: _matches(q, "Q5 unified inbox")).to_numpy()
    cumulative = {c: np.zeros(len(base)) for c in snapshots.STATEMENT_COUNTERS}
    tables, indexes = template.tables.copy(), template.indexes.copy()
    table_counters = ["seq_scans", "index_scans", "rows_inserted", "rows_updated", "rows_deleted",
                      "heap_blks_hit", "heap_blks_read"]
    growth_per_day = tables["table_name"].map(
        {"message_events": 0.015, "dm_conversations": 0.025}).fillna(0.005).to_numpy()
    hits = misses = 0.0
    blks_hit = blks_read = 0.0
    run_id = "synthetic-redis-1"
    out = []
    for h in range(hours + 1):
        at = start + timedelta(hours=h)
        day = h / 24
        frac = h / hours
        calls = rng.poisson(_volume(at, day) * weight).astype(float) if h else np.zeros(len(base))
        effect = np.where(at >= phase1_at, phase1, 1.0)
        effect = effect * np.where(inbox, 1 + 0.35 * max(0.0, (day - days / 2) / (days / 2)), 1.0)
        noise = rng.lognormal(0, 0.08, len(base))
        cumulative["calls"] += calls
        for c, unit in per_call.items():
            scale = effect * noise if c in ("total_exec_ms", "io_ms", "shared_blks_read") else 1.0
            cumulative[c] += calls * unit * scale
        # one frame from whole columns (a column set at a time costs 0.4 ms each, 20 an hour)
        statements = pd.DataFrame({
            **{c: base[c] for c in ("queryid", "userid", "role_name", "query")},
            **{c: np.round(values) if c not in snapshots.FLOAT_COLUMNS else values.copy()
               for c, values in cumulative.items()},
            "stats_since": start})

        shrink = np.maximum(1 - growth_per_day * (days - day), 0.1)
        t = tables.copy()
        t["total_bytes"] = (tables["total_bytes"].astype(float) * shrink).round()
        t["bloat_bytes"] = np.where(tables["table_name"] == "dm_conversations",
                                    (tables["bloat_bytes"].astype(float) * (0.4 + 0.6 * frac)),
                                    tables["bloat_bytes"].astype(float)).round()
        for c in table_counters:
            t[c] = (tables[c].astype(float) * frac).round()
        i = indexes.copy()
        scans = indexes["scans"].astype(float)
        until_phase1 = min(at, phase1_at) - start
        superseded = indexes["index_name"] == SUPERSEDED_INDEX
        i["scans"] = np.where(superseded,
                              (scans + 5000) * until_phase1.total_seconds() / (days * 86400),
                              scans * frac).round()
        views = template.matviews.copy()
        if not views.empty:
            stale = views["age_minutes"].astype(float) > 15
            # a stale view was last refreshed a day before the history starts; the others
            # every 10 minutes
            views["age_minutes"] = np.where(stale, 60 * 24 + (at - start).total_seconds() / 60,
                                            rng.uniform(0, 10, len(views)))
            views["last_refresh"] = [at - timedelta(minutes=float(m)) for m in views["age_minutes"]]
        if h:
            requests = _volume(at, day) * 0.6
            rate = 0.52 + 0.04 * np.sin(2 * np.pi * day) + rng.normal(0, 0.01)
            hits += requests * rate
            misses += requests * (1 - rate)
            reads = _volume(at, day) * (0.004 if at < phase1_at else 0.0025)
            blks_hit += _volume(at, day) * 12
            blks_read += reads
        if at >= redis_restart_at and run_id.endswith("1"):
            run_id, hits, misses = "synthetic-redis-2", 0.0, 0.0
        redis_rows = [dict(row, run_id=run_id, keyspace_hits=round(hits),
                           keyspace_misses=round(misses), commands=round(3 * (hits + misses)),
                           uptime_s=None, evicted_keys=0) for row in template.redis
                      if not row.get("error")]
        out.append(dataclasses.replace(
            template, taken_at=at, statements=statements, tables=t, indexes=i, matviews=views,
            redis=redis_rows, problems=[], data_blks_hit=round(blks_hit), data_blks_read=round(blks_read),
            xact_commit=round(cumulative["calls"].sum() / 3), xact_rollback=0,
            server_started_at=start - timedelta(days=1), pss_stats_reset=start, pss_dealloc=0,
            db_stats_reset=None, collect_ms=0.0))
    return out, phase1_at


def create(monitor_conn: psycopg.Connection, history_conn: psycopg.Connection, who: Actor, *,
           source: str, redis_urls: tuple[str, ...], end: datetime | None = None,
           days: int = DAYS) -> int:
    """Write the synthetic history unless this source has one already; returns how many
    snapshots were written."""
    if has_synthetic_history(history_conn, source):
        return 0
    template = snapshots.collect(monitor_conn, source, redis_urls,
                                 who.settings.matview_max_age_minutes)
    if template.statements.empty:
        return 0
    end = end or datetime.now(timezone.utc) - timedelta(minutes=5)
    generated, phase1_at = generate(template, end, days=days)
    with history_conn.transaction():
        for snap in generated:
            snapshots.store(history_conn, snap, who, synthetic=True)
        history_conn.execute("""
            INSERT INTO dbpulse.history_events (source, at, kind, label, synthetic)
            VALUES (%s, %s, 'migration', %s, true)""", (source, phase1_at, PHASE1_LABEL))
    return len(generated)


def remove(history_conn: psycopg.Connection, source: str) -> int:
    """Delete the synthetic history (real snapshots stay)."""
    with history_conn.transaction():
        history_conn.execute("DELETE FROM dbpulse.history_events WHERE source = %s AND synthetic",
                             (source,))
        return history_conn.execute("DELETE FROM dbpulse.snapshots WHERE source = %s AND "
                                    "synthetic", (source,)).rowcount

