"""Latency probes: the plan's hot queries (plan/plan.toml, `probe` and `probe_params`), run by
the agent at a low fixed rate and timed, so p50/p95/p99 can be set against the plan's targets
(pg_stat_statements keeps means, not percentiles).

They run on the target's probe login (DATABASE_PROBE_URL), never on the monitoring or admin
login: before each round its session_user is checked (no superuser, no server-file roles, no
CREATEROLE/CREATEDB/BYPASSRLS/REPLICATION). Each probe runs in a READ ONLY transaction, under a
statement timeout, and is rolled back. So that DB Pulse's own activity does not change what it
reports, the probe's text carries DB Pulse's statement tag (pg_stat_statements figures leave it
out), and what its reads added to each relation's statistics (scans, rows, blocks) is read
inside its own transaction (pg_stat_get_xact_*) and kept in a ledger (dbpulse.probe_reads)
that the scan counts, the unused-index verdicts and the buffer cache hit rates take out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from foundation.columns import Column
from foundation.config import Settings, Target
from foundation.connections import DatabaseProblem, TaggedConnection, describe_error
from foundation.frames import to_frame
from foundation.looks import read_once
from foundation.plan import HotQuery
from foundation.plan_login import SERVER_FILE_ROLES
from foundation.roles import Refused

PROBE_APPLICATION_NAME = "dbpulse-probe"


class ProbeRefused(Refused):
    """The probe login has more rights than reading the application's tables needs."""


@dataclass(frozen=True)
class Reads:
    """What reads added to one relation's statistics: a table's sequential scans and the rows
    they read, or an index's scans and the entries they returned; the blocks read, and of them
    those found in shared buffers."""
    scans: int = 0
    tuples_read: int = 0
    blocks_fetched: int = 0
    blocks_hit: int = 0
    # the ledger's: when the probes last scanned it, on the server's clock (None: unknown)
    last_scan_at: datetime | None = None


@dataclass
class ProbeSample:
    name: str
    seconds: float | None            # None: it failed (error says why)
    error: str | None = None
    reads: dict[int, Reads] = field(default_factory=dict)   # relation oid -> its reads added


_CHECK = """
SELECT r.rolname, r.rolsuper,
       ARRAY(SELECT f FROM unnest(%(file_roles)s::text[]) f WHERE pg_has_role(r.oid, f, 'MEMBER')),
       ARRAY(SELECT m.rolname FROM pg_roles m
             WHERE m.rolsuper AND m.oid <> r.oid AND pg_has_role(r.oid, m.oid, 'MEMBER')),
       ARRAY(SELECT a FROM (VALUES ('CREATEROLE', r.rolcreaterole), ('CREATEDB', r.rolcreatedb),
                                   ('BYPASSRLS', r.rolbypassrls),
                                   ('REPLICATION', r.rolreplication)) v(a, has) WHERE has)
FROM pg_roles r WHERE r.rolname = session_user
"""


def check_login(conn: psycopg.Connection) -> None:
    """ProbeRefused unless the authenticated login is an ordinary one."""
    login, is_super, file_roles, super_roles, attributes = conn.execute(
        _CHECK, {"file_roles": list(SERVER_FILE_ROLES)}).fetchone()
    problems = (["it is a superuser"] if is_super else []) \
        + ([f"it is a member of {', '.join(file_roles + super_roles)}"]
           if file_roles or super_roles else []) \
        + ([f"it has {', '.join(attributes)}"] if attributes else [])
    if problems:
        raise ProbeRefused(
            f"Refused: the probe login {login} has more rights than reading the application's "
            f"tables needs ({'; '.join(problems)}). Latency probes run only on a login that can "
            "read those tables and nothing more, e.g.:\nCREATE ROLE dbpulse_probe LOGIN "
            "PASSWORD '…';\nGRANT USAGE ON SCHEMA public TO dbpulse_probe;\nGRANT SELECT ON ALL "
            "TABLES IN SCHEMA public TO dbpulse_probe;\nALTER ROLE dbpulse_probe SET "
            "default_transaction_read_only = on;")


def connect(target: Target, settings: Settings) -> psycopg.Connection:
    """The probe login's connection (checked), or DatabaseProblem/ProbeRefused."""
    if not target.probe_url:
        raise DatabaseProblem("privilege", "No probe login is configured for this target.",
                              "Set DATABASE_PROBE_URL (or database_probe_url) to a read-only "
                              "login; the README's least-privilege recipe creates one.")
    try:
        # every statement tagged (the check's too): pg_stat_statements figures leave them out
        conn = TaggedConnection.connect(target.probe_url,
                                        connect_timeout=settings.connect_timeout_s,
                                        application_name=PROBE_APPLICATION_NAME, autocommit=True)
    except psycopg.Error as exc:
        raise describe_error(exc, target.probe_url) from exc
    try:
        check_login(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def run_one(conn: psycopg.Connection, query: HotQuery, timeout_ms: int) -> ProbeSample:
    """One timed run of a hot query's probe, read-only and rolled back."""
    params = [list(p) if isinstance(p, tuple) else p for p in query.probe_params]
    text = query.probe.rstrip().rstrip(";")  # the connection tags it
    try:
        # A session's counts wait up to a second before they are shared, and until then the
        # transaction functions below include them: flushed first, another probe's scans
        # (the one before, on the same index) are not counted as this one's too
        conn.execute("SELECT pg_stat_force_next_flush()")
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))
            started = time.perf_counter()
            conn.execute(text, params).fetchall()
            seconds = time.perf_counter() - started
            # this transaction's own reads, not yet in the shared statistics, of the
            # database's data (the catalogues' are left out of every figure anyway)
            reads = {oid: Reads(*counts) for oid, *counts in conn.execute("""
                SELECT c.oid, pg_stat_get_xact_numscans(c.oid),
                       pg_stat_get_xact_tuples_returned(c.oid),
                       pg_stat_get_xact_blocks_fetched(c.oid), pg_stat_get_xact_blocks_hit(c.oid)
                FROM pg_class c
                WHERE c.oid >= 16384 AND c.relkind IN ('r', 'm', 'i', 't')
                  AND pg_stat_get_xact_numscans(c.oid) + pg_stat_get_xact_blocks_fetched(c.oid) > 0
                """).fetchall()}
        return ProbeSample(query.name, seconds, reads=reads)
    except psycopg.Error as exc:
        return ProbeSample(query.name, None, str(exc).strip().splitlines()[0])


@dataclass
class Round:
    samples: list[ProbeSample]
    stats_reset: datetime | None     # the target's statistics reset the scans count against
    # the server's clock once the round's counts were shared: a last scan of theirs
    # (pg_stat_get_lastscan) is never later
    scans_until: datetime | None = None


def run_round(target: Target, settings: Settings, queries: tuple[HotQuery, ...]) -> Round:
    """Each probe once, on one checked connection."""
    with connect(target, settings) as conn:
        stats_reset = conn.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = "
                                   "current_database()").fetchone()[0]
        samples = [run_one(conn, q, settings.probe_timeout_ms) for q in queries]
        # shared as this statement ends, each scan's time set at or before its end
        conn.execute("SELECT pg_stat_force_next_flush()")
        until = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        return Round(samples, stats_reset, until)


# --- the history: samples, percentiles, and the scans the probes caused -----------------------

def store(history: psycopg.Connection, source: str, at: datetime, done: Round) -> None:
    """The samples, and the probes' reads added to the ledger, in one transaction."""
    with history.transaction():
        for s in done.samples:
            history.execute("INSERT INTO dbpulse.probe_samples (source, taken_at, name, seconds, "
                            "error) VALUES (%s, %s, %s, %s, %s)",
                            (source, at, s.name, s.seconds, s.error))
            for oid, r in s.reads.items():
                history.execute("""
                    INSERT INTO dbpulse.probe_reads AS l (source, relation_oid, stats_reset,
                        scans, tuples_read, blocks_fetched, blocks_hit, last_scan_at)
                    VALUES (%s, %s, coalesce(%s, '-infinity'::timestamptz), %s, %s, %s, %s, %s)
                    ON CONFLICT (source, relation_oid, stats_reset)
                    DO UPDATE SET scans = l.scans + excluded.scans,
                                  tuples_read = l.tuples_read + excluded.tuples_read,
                                  blocks_fetched = l.blocks_fetched + excluded.blocks_fetched,
                                  blocks_hit = l.blocks_hit + excluded.blocks_hit,
                                  last_scan_at = greatest(l.last_scan_at,
                                                          excluded.last_scan_at)""",
                                (source, oid, done.stats_reset, r.scans, r.tuples_read,
                                 r.blocks_fetched, r.blocks_hit,
                                 done.scans_until if r.scans else None))


def percentiles(history: psycopg.Connection, source: str, start: datetime,
                end: datetime) -> pd.DataFrame:
    """Per probe over [start, end): runs, failures, p50/p95/p99 in ms (of the runs that
    finished; a timed-out run counts as a failure, so a tail past the timeout shows there).
    Empty where no probe ever ran (no table yet)."""
    if not history.execute("SELECT to_regclass('dbpulse.probe_samples') IS NOT NULL"
                           ).fetchone()[0]:
        return pd.DataFrame(columns=["name", "runs", "failures", "p50_ms", "p95_ms", "p99_ms"])
    return to_frame(history.execute("""
        SELECT name, count(*) AS runs, count(*) FILTER (WHERE seconds IS NULL) AS failures,
               1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50_ms,
               1000 * percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95_ms,
               1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99_ms
        FROM dbpulse.probe_samples
        WHERE source = %s AND taken_at >= %s AND taken_at < %s
        GROUP BY name ORDER BY name
        """, (source, start, end)))


def p95_by_name(history: psycopg.Connection, source: str, start: datetime,
                end: datetime) -> dict[str, float]:
    """Each probe's p95 in ms over [start, end); empty where no probe ever ran."""
    found = percentiles(history, source, start, end)
    return {n: float(v) for n, v in zip(found.get("name", []), found.get("p95_ms", []))
            if v is not None and v == v}


@read_once
def own_reads(conn: psycopg.Connection) -> dict[int, Reads]:
    """What the probes' reads added to each relation's statistics since the connected
    database's statistics were last reset, per relation oid (empty where no ledger is kept or
    readable)."""
    if not conn.execute("SELECT to_regclass('dbpulse.probe_reads') IS NOT NULL").fetchone()[0]:
        return {}
    try:
        rows = conn.execute("""
            SELECT relation_oid, scans, tuples_read, blocks_fetched, blocks_hit, last_scan_at
            FROM dbpulse.probe_reads
            WHERE source = current_database()
              AND stats_reset = coalesce((SELECT stats_reset FROM pg_stat_database
                                          WHERE datname = current_database()),
                                         '-infinity'::timestamptz)""").fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return {}
    return {int(oid): Reads(*map(int, counts), last_scan_at=at) for oid, *counts, at in rows}


# Per table, what the probes' reads added to its statistics (%(probed)s: probed_parameter):
# its own sequential scans, their rows and its blocks; its indexes' scans and blocks. CTEs to
# put after WITH, joined by relid (a TOAST relation's counts stay under its own oid, which no
# table's row matches: PROBED_TOAST gives them to their table)
PROBED_TABLES = """
    probed AS (SELECT key::oid AS relid, (value ->> 0)::bigint AS scans,
                      (value ->> 1)::bigint AS tuples_read, (value ->> 2)::bigint AS fetched,
                      (value ->> 3)::bigint AS hit
               FROM jsonb_each(%(probed)s::jsonb)),
    probed_tables AS (
        SELECT coalesce(i.indrelid, p.relid) AS relid,
               coalesce(sum(p.scans) FILTER (WHERE i.indexrelid IS NULL), 0) AS seq_scans,
               coalesce(sum(p.tuples_read) FILTER (WHERE i.indexrelid IS NULL), 0) AS seq_rows,
               coalesce(sum(p.fetched - p.hit) FILTER (WHERE i.indexrelid IS NULL), 0)
                   AS heap_read,
               coalesce(sum(p.hit) FILTER (WHERE i.indexrelid IS NULL), 0) AS heap_hit,
               coalesce(sum(p.scans) FILTER (WHERE i.indexrelid IS NOT NULL), 0) AS index_scans,
               coalesce(sum(p.fetched - p.hit) FILTER (WHERE i.indexrelid IS NOT NULL), 0)
                   AS index_read,
               coalesce(sum(p.hit) FILTER (WHERE i.indexrelid IS NOT NULL), 0) AS index_hit
        FROM probed p LEFT JOIN pg_index i ON i.indexrelid = p.relid
        GROUP BY 1)"""

# After PROBED_TABLES: per table, the blocks the probes read from disk in its TOAST table and
# that table's index (probed_tables' row of the TOAST table); a TOAST table's owner is the
# table its internal dependency points at (found by index, not by scanning pg_class)
PROBED_TOAST = """
    probed_toast AS (
        SELECT d.refobjid AS relid, sum(p.heap_read + p.index_read) AS toast_read
        FROM probed_tables p
        JOIN pg_class t ON t.oid = p.relid AND t.relkind = 't'
        JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = t.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i'
        GROUP BY 1)"""


def ledger_parameter(probed: dict[int, Reads]) -> Jsonb:
    """The ledger (own_reads) as a statement's JSON parameter: oid -> [scans, tuples_read,
    blocks_fetched, blocks_hit], as PROBED_TABLES and cache.USER_TABLE_BLOCKS read it."""
    return Jsonb({str(oid): [r.scans, r.tuples_read, r.blocks_fetched, r.blocks_hit]
                  for oid, r in probed.items()})


def probed_parameter(conn: psycopg.Connection) -> Jsonb:
    """PROBED_TABLES' %(probed)s: the ledger read now (ledger_parameter)."""
    return ledger_parameter(own_reads(conn))


def latency(history: psycopg.Connection, source: str, queries: tuple[HotQuery, ...],
            start: datetime, end: datetime) -> pd.DataFrame:
    """The probes' percentiles over [start, end) beside their targets (the plan page)."""
    return against_targets(percentiles(history, source, start, end), queries)


def against_targets(found: pd.DataFrame, queries: tuple[HotQuery, ...]) -> pd.DataFrame:
    """The percentiles beside each probe's target: met when p95 is within it (the plan sets
    p95 targets), unknown without runs that finished.

    >>> import re
    >>> q = HotQuery("Q1", re.compile("x"), 200.0, probe="SELECT 1")
    >>> row = against_targets(pd.DataFrame({"name": ["Q1"], "runs": [20], "failures": [0],
    ...     "p50_ms": [40.0], "p95_ms": [250.0], "p99_ms": [260.0]}), (q,)).iloc[0]
    >>> float(row["target_ms"]), row["state"]
    (200.0, 'red')
    """
    targets = pd.DataFrame({"name": [q.name for q in queries],
                            "target_ms": [q.target_ms for q in queries]})
    frame = targets.merge(found, on="name", how="left") if len(found) else \
        targets.assign(runs=0, failures=0, p50_ms=None, p95_ms=None, p99_ms=None)
    p95 = pd.to_numeric(frame["p95_ms"], errors="coerce")
    frame["state"] = ["grey" if p != p or t != t or t is None else
                      "green" if p <= t else "red"
                      for p, t in zip(p95, pd.to_numeric(frame["target_ms"], errors="coerce"))]
    return frame


PROBE_COLUMNS = {
    "name": Column("Hot query", pinned=True),
    "p50_ms": Column("p50", "number", unit="ms", digits=1),
    "p95_ms": Column("p95", "number", unit="ms", digits=1,
                     help="The plan sets its targets on p95."),
    "p99_ms": Column("p99", "number", unit="ms", digits=1),
    "target_ms": Column("Target (p95)", "number", unit="ms", digits=0),
    "state": Column("State"),
    "runs": Column("Runs", "count"),
    "failures": Column("Failed or timed out", "count"),
}
