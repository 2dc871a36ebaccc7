"""The optimization plan tracker: the objects the prepared migrations create, whether they are
there, valid and used, and the plan's hot queries (foundation/plan.py) before and after each
applied migration."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
from pglast import ast, parse_sql
from psycopg import sql

from foundation.capabilities import Extension
from foundation.columns import Column
from foundation.connections import OWN_STATEMENT_TAG
from foundation.frames import to_frame
from foundation.identifiers import qualified
from foundation.migration_files import Migration
from foundation.plan import Plan
from foundation.plan import current as current_plan
from reads import indexes

MIN_CALLS_FOR_A_TREND = 100  # fewer calls before or after: the change may be noise


def hot_query_label(text: str, plan: Plan | None = None) -> str | None:
    """The plan's hot query a statement text is (foundation/plan.py), or None (never for an
    EXPLAIN of one)."""
    return (plan or current_plan()).label(text)


def planned_objects(migrations: list[Migration]) -> list[dict]:
    """What each migration creates: indexes, materialized views, functions."""
    objects = []
    for m in migrations:
        for s in m.statements:
            stmt = parse_sql(s.text)[0].stmt
            if isinstance(stmt, ast.IndexStmt) and stmt.idxname:
                objects.append({"version": m.version, "kind": "index",
                                "name": qualified(stmt.relation.schemaname or "public",
                                                  stmt.idxname)})
            elif isinstance(stmt, ast.CreateTableAsStmt):
                rel = stmt.into.rel
                objects.append({"version": m.version, "kind": "materialized view",
                                "name": qualified(rel.schemaname or "public", rel.relname)})
            elif isinstance(stmt, ast.CreateFunctionStmt):
                parts = [p.sval for p in stmt.funcname]
                objects.append({"version": m.version, "kind": "function",
                                "name": qualified(*parts) if len(parts) == 2
                                else qualified("public", parts[0])})
    return objects


def object_status(conn: psycopg.Connection, migrations: list[Migration]) -> pd.DataFrame:
    """Each planned object: present, valid, size, and use since the statistics began (scans of
    an index, or of a view and its indexes, calls of a function; functions need
    track_functions = pl or all).
    An index's size and scans as the Indexes page has them (indexes.SIZE_BYTES, SCANS): its
    pages, and its scans less the latency probes' (which run the very statements the plan's
    indexes are for); a view's size as the Materialized views page has it."""
    planned = planned_objects(migrations)
    if not planned:
        return pd.DataFrame()
    frame = to_frame(conn.execute(f"""
        WITH planned AS (
            SELECT * FROM jsonb_to_recordset(%(planned)s::jsonb)
                AS p(version text, kind text, name text)
        )
        SELECT p.version, p.kind, p.name,
               CASE WHEN p.kind = 'function'
                    THEN to_regproc(p.name) IS NOT NULL
                    ELSE to_regclass(p.name) IS NOT NULL END               AS present,
               CASE WHEN p.kind = 'index'
                    THEN (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(p.name))
               END                                                          AS valid,
               CASE p.kind
                    WHEN 'index' THEN ix.size_bytes
                    WHEN 'materialized view' THEN pg_total_relation_size(to_regclass(p.name))
               END                                                          AS size_bytes,
               CASE p.kind
                    WHEN 'index' THEN ix.scans
                    -- a view's own scans and its indexes' (it is read through either)
                    WHEN 'materialized view' THEN (
                        SELECT sum(pg_stat_get_numscans(r.oid) - coalesce(
                                   (%(own_scans)s::jsonb ->> r.oid::text)::bigint, 0))
                        FROM (SELECT to_regclass(p.name)::oid AS oid
                              UNION ALL SELECT indexrelid FROM pg_index
                                        WHERE indrelid = to_regclass(p.name)) r)
                    ELSE (SELECT calls FROM pg_stat_user_functions
                          WHERE funcid = to_regproc(p.name)::oid) END       AS uses
        FROM planned p
        LEFT JOIN LATERAL (
            SELECT {indexes.SIZE_BYTES} AS size_bytes, {indexes.SCANS} AS scans
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE p.kind = 'index' AND i.indexrelid = to_regclass(p.name)) ix ON true
        """, {"planned": json.dumps(planned), **indexes.size_and_scans_parameters(conn)}))
    frame["used"] = frame["uses"].fillna(0) > 0
    return frame


def hot_queries_before_after(conn: psycopg.Connection, pss: Extension,
                             run: dict | None, plan: Plan | None = None) -> pd.DataFrame:
    """Mean time of each hot query: cumulative up to the migration's start (before), and over
    the calls since it finished (after), from the counters DB Pulse stored with the run."""
    if not pss.installed:
        return pd.DataFrame()
    # the application's statements, as the migration run stored them: each query id's entries
    # of every role added up, DB Pulse's own (its probes run the hot statements) left out
    cur = conn.execute(sql.SQL("""
        SELECT queryid::text, query, calls, total_exec_time FROM {}.pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND queryid IS NOT NULL AND query NOT LIKE %s
        """).format(sql.Identifier(pss.schema)), ("%" + OWN_STATEMENT_TAG,))
    now: dict[str, list] = {}
    for q, text, calls, total in cur.fetchall():
        entry = now.setdefault(q, [text, 0, 0.0])
        entry[1] += calls
        entry[2] += total
    before = (run or {}).get("statements_before") or {}
    after = (run or {}).get("statements_after") or {}
    rows = []
    plan = plan or current_plan()
    labels = {q: plan.label(text) for q, (text, _, _) in now.items()}
    for label in plan.names:
        ids = [q for q, found in labels.items() if found == label]
        b_calls = sum(before.get(q, [0, 0])[0] for q in ids)
        b_total = sum(before.get(q, [0, 0])[1] for q in ids)
        a_calls = sum(now[q][1] - after.get(q, [0, 0])[0] for q in ids)
        a_total = sum(now[q][2] - after.get(q, [0, 0])[1] for q in ids)
        mean_before = b_total / b_calls if b_calls else None
        mean_after = a_total / a_calls if a_calls and after else None
        few = min(b_calls, a_calls if after else b_calls) < MIN_CALLS_FOR_A_TREND
        rows.append({"query": label, "calls_before": b_calls, "mean_ms_before": mean_before,
                     "calls_after": a_calls if after else None, "mean_ms_after": mean_after,
                     "change": None if not (mean_before and mean_after)
                     else mean_after / mean_before - 1,
                     "caveat": (f"few calls (under {MIN_CALLS_FOR_A_TREND} on a side): the "
                                "change may be noise" if few and mean_before and mean_after
                                else "")})
    return pd.DataFrame(rows)


def latest_apply(conn: psycopg.Connection, version: str) -> dict | None:
    if conn.execute("SELECT to_regclass('dbpulse.migration_runs')").fetchone()[0] is None:
        return None
    row = conn.execute("""
        SELECT finished_at, statements_before, statements_after FROM dbpulse.migration_runs
        WHERE version = %s AND direction = 'apply' AND outcome = 'ok'
        ORDER BY id DESC LIMIT 1""", (version,)).fetchone()
    return None if row is None else {"finished_at": row[0], "statements_before": row[1],
                                     "statements_after": row[2]}


# How these frames are shown (ui/tables.py)
OBJECT_COLUMNS = {
    "version": Column("Migration", width="small"), "kind": Column("Kind", width="small"),
    "name": Column("Object", pinned=True), "present": Column("Present", "flag"),
    "valid": Column("Valid", "flag"),
    "size_bytes": Column("Size", "bytes", help="An index: its pages as of the last VACUUM, "
                                               "ANALYZE or build; a materialized view: on disk "
                                               "now, with its indexes"),
    "uses": Column("Uses", "count", help="Scans of an index, or of a view and its indexes "
                                        "(less DB Pulse's latency probes'), or calls of a "
                                        "function since the statistics began"),
}
BEFORE_AFTER_COLUMNS = {
    "query": Column("Hot query", pinned=True),
    "calls_before": Column("Calls before", "count"),
    "mean_ms_before": Column("Mean before", "number", unit="ms", digits=2),
    "calls_after": Column("Calls after", "count"),
    "mean_ms_after": Column("Mean after", "number", unit="ms", digits=2),
    "change": Column("Change", "percent", digits=0),
    "caveat": Column("Caveat", width="large"),
}
