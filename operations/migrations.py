"""Prepared migrations: plan, apply and roll back, with a ledger.

A migration is NNNN_name.sql with an optional NNNN_name.rollback.sql beside it. Statements are
split with PostgreSQL's own parser (pglast), so dollar-quoted bodies stay whole. Statements that
cannot run in a transaction (CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM,
ALTER SYSTEM) run alone in autocommit; consecutive other statements run together in one
transaction. The ledger (dbpulse.migration_runs) records after each step how far a run got; a
failed run is resumed after its last completed statement.
"""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import pandas as pd
import psycopg
from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from psycopg import conninfo, sql

from foundation.columns import Column
from foundation.config import Settings
from foundation.connections import OWN_STATEMENT_TAG
from foundation.frames import to_frame
from foundation.identifiers import qualified
from foundation.migration_files import Migration, MigrationError, Statement, version_number
from foundation.roles import Actor, Refused
from operations import dbpulse_schema

RUN_LOCK_KEY = 0x0DB9_0003  # session advisory lock: one runner at a time
POOLER_PORTS = {6543}        # Supabase's transaction pooler


class RunInProgress(MigrationError, Refused):
    """Another runner holds the run lock: refused, not failed."""

    kind = "refused"


# --- state ------------------------------------------------------------------------------------

def ledger(conn: psycopg.Connection) -> pd.DataFrame:
    if conn.execute("SELECT to_regclass('dbpulse.migration_runs')").fetchone()[0] is None:
        return pd.DataFrame(columns=["version", "name", "direction", "checksum", "run_by",
                                     "started_at", "finished_at", "outcome", "statements_total",
                                     "statements_completed", "error", "statement_checksums"])
    # statement_checksums arrived with schema file 005: read it so that older schemas work too
    return to_frame(conn.execute("""
        SELECT version, name, direction, checksum, run_by, started_at, finished_at, outcome,
               statements_total, statements_completed, error,
               to_jsonb(r) -> 'statement_checksums' AS statement_checksums
        FROM dbpulse.migration_runs r ORDER BY id DESC"""))


def runner_active(conn: psycopg.Connection) -> bool:
    """A migration runner holds the run lock right now (possibly in another process)."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s AND granted)", (RUN_LOCK_KEY,)).fetchone()[0]


def statement_checksums(statements: list[Statement]) -> list[str]:
    return [hashlib.sha256(s.text.strip().encode()).hexdigest()[:16] for s in statements]


def status(conn: psycopg.Connection, migrations: list[Migration]) -> pd.DataFrame:
    """Per migration: pending, applied, running, interrupted (its runner is gone), failed (with
    how far it got) or changed since applied."""
    runs = ledger(conn)
    rows = []
    for m in migrations:
        mine = runs[runs["version"] == m.version]
        last = mine.iloc[0] if len(mine) else None
        if last is None or (last["direction"] == "rollback" and last["outcome"] == "ok"):
            state = "pending"
        elif last["outcome"] == "running":
            # the runner holds the run lock for as long as it lives: without it, it is gone
            state = (f"running ({last['direction']})" if runner_active(conn)
                     else f"interrupted ({last['direction']})")
        elif last["outcome"] == "failed":
            state = f"failed ({last['direction']})"
        elif last["checksum"] != m.checksum:
            state = "changed since applied"
        else:
            state = "applied"
        rows.append({"version": m.version, "name": m.name, "state": state,
                     "statements": len(m.statements),
                     "completed": None if last is None else last["statements_completed"],
                     "last_run_by": None if last is None else last["run_by"],
                     "last_run_at": None if last is None else last["finished_at"],
                     "error": "" if last is None or not isinstance(last["error"], str)
                     else last["error"],
                     "has_rollback": m.rollback_path is not None})
    return pd.DataFrame(rows)


def plan(conn: psycopg.Connection, migration: Migration, rollback: bool = False) -> pd.DataFrame:
    """Every statement with its lock, how it runs, and the size of the table it touches."""
    rows = []
    for number, s in enumerate(migration.rollback_statements if rollback
                               else migration.statements, 1):
        size = rows_estimate = None
        if s.table and "," not in s.table:
            found = conn.execute("""
                SELECT pg_total_relation_size(c.oid), c.reltuples::bigint
                FROM pg_class c WHERE c.oid = to_regclass(%s)""", (s.table,)).fetchone()
            if found:
                size, rows_estimate = found
        rows.append({"#": number, "statement": s.text.strip().splitlines()[0][:120],
                     "runs": "alone, autocommit" if s.autocommit else "in a transaction",
                     "lock": s.lock, "table": s.table, "table_bytes": size,
                     "table_rows": rows_estimate,
                     "note": "" if rollback else overlap_note(conn, s.text)})
    return pd.DataFrame(rows)


def overlap_note(conn: psycopg.Connection, text: str) -> str:
    """For a plain CREATE INDEX on columns (no expression, no WHERE): the existing valid indexes
    of its table on exactly the same columns in the same order and directions (applying it
    builds a twin), or that lead with its columns (it adds nothing they do not serve), or whose
    columns lead it (it makes them redundant). Compared by columns and directions only."""
    try:
        stmt = parse_sql(text)[0].stmt
    except ParseError:
        return ""
    if not isinstance(stmt, ast.IndexStmt) or stmt.whereClause is not None \
            or any(e.name is None for e in stmt.indexParams):
        return ""
    mine = [(e.name, e.ordering == enums.SortByDir.SORTBY_DESC) for e in stmt.indexParams]
    table = qualified(stmt.relation.schemaname or "public", stmt.relation.relname)
    existing = conn.execute("""
        SELECT c.relname, i.indisunique,
               array_agg(a.attname ORDER BY k.ord), array_agg((o.opt & 1) = 1 ORDER BY k.ord)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]::int2[], i.indoption::int2[])
                   WITH ORDINALITY AS k(attnum, opt, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        CROSS JOIN LATERAL (SELECT k.opt::int AS opt) o
        WHERE i.indrelid = to_regclass(%s) AND i.indisvalid AND i.indexprs IS NULL
          AND i.indpred IS NULL AND c.relname <> %s
        GROUP BY c.relname, i.indisunique""", (table, stmt.idxname or "")).fetchall()
    notes = []
    for name, _, columns, descending in existing:
        theirs = list(zip(columns, descending))
        if theirs == mine:
            notes.append(f"the same columns as {name}, which exists: this builds a twin")
        elif theirs[:len(mine)] == mine:
            notes.append(f"{name} already leads with these columns")
        elif mine[:len(theirs)] == theirs:
            notes.append(f"makes {name} redundant (its columns lead this one)")
    return "; ".join(notes)


# --- running ----------------------------------------------------------------------------------

def refuse_pooler(dsn: str) -> None:
    try:
        port = int(conninfo.conninfo_to_dict(dsn).get("port") or 5432)
    except (ValueError, psycopg.ProgrammingError):
        return
    if port in POOLER_PORTS:
        raise MigrationError(
            f"the admin connection uses port {port}, a transaction pooler (Supabase: Supavisor). "
            "Migrations need a direct connection (port 5432): advisory locks, lock_timeout and "
            "CONCURRENTLY index builds do not survive a pooler switching sessions.")


@contextmanager
def _run_lock(conn: psycopg.Connection) -> Iterator[None]:
    """The session advisory lock that keeps two runners apart, or who holds it."""
    if conn.execute("SELECT pg_try_advisory_lock(%s)", (RUN_LOCK_KEY,)).fetchone()[0]:
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RUN_LOCK_KEY,))
        return
    holder = conn.execute("""
        SELECT a.usename, a.application_name, a.client_addr::text, a.backend_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted LIMIT 1
        """, (RUN_LOCK_KEY,)).fetchone()
    who = (f"{holder[0]} ({holder[1] or 'unknown application'}"
           f"{', ' + holder[2] if holder[2] else ''})") if holder else "another session"
    raise RunInProgress(f"a migration run is in progress by {who}; wait for it to finish")


def _statement_counters(conn: psycopg.Connection) -> dict | None:
    """queryid -> [calls, total ms] for the hot statements, for before/after comparisons: the
    application's, each query id's entries of every role added up. DB Pulse's own (tagged)
    are left out: its latency probes run the hot statements, same query id, on their login."""
    schema = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                          "WHERE extname = 'pg_stat_statements'").fetchone()
    if schema is None:
        return None
    try:
        rows = conn.execute(f"""
            SELECT queryid, sum(calls)::bigint AS calls, sum(total_exec_time) AS total_ms
            FROM {schema[0]}.pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND queryid IS NOT NULL AND query NOT LIKE %s
            GROUP BY queryid
            ORDER BY calls DESC LIMIT 300""", ("%" + OWN_STATEMENT_TAG,)).fetchall()
    except psycopg.Error:  # installed but not preloaded
        return None
    return {str(q): [c, round(t, 3)] for q, c, t in rows}


Progress = Callable[[str], None]


class IndexBuildProgress:
    """While an index builds, report pg_stat_progress_create_index from a second connection
    every second: the build's phase and how many blocks or tuples of how many are done."""

    def __init__(self, dsn: str, builder_pid: int, progress: Progress):
        self.dsn, self.pid, self.progress = dsn, builder_pid, progress
        self.waiting_for: str | None = None   # the last session the build waited for
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)

    def _poll(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                while not self.stop.wait(1.0):
                    row = conn.execute("""
                        SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done,
                               p.tuples_total, p.current_locker_pid, a.state, a.usename,
                               extract(epoch FROM now() - a.xact_start)::int,
                               left(a.query, 80)
                        FROM pg_stat_progress_create_index p
                        LEFT JOIN pg_stat_activity a ON a.pid = nullif(p.current_locker_pid, 0)
                        WHERE p.pid = %s""", (self.pid,)).fetchone()
                    if row:
                        phase, bd, bt, td, tt, locker, state, user, age, query = row
                        done = (f"{bd:,} of {bt:,} blocks" if bt else
                                f"{td:,} of {tt:,} tuples" if tt else "")
                        self.progress(f"    index build: {phase} {done}".rstrip())
                        if locker:
                            self.waiting_for = (f"session {locker} ({user or '?'}, {state or '?'}"
                                                f", transaction open {age or 0} s: "
                                                f"{(query or '').strip()})")
                            self.progress(f"    waiting for {self.waiting_for}; it must end "
                                          "first (terminate it on the Activity page, or wait)")
        except psycopg.Error:
            return  # progress is a nicety; the build itself is what counts


def _index_is_valid(conn: psycopg.Connection, index: str) -> bool | None:
    row = conn.execute("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
                       (index,)).fetchone()
    return None if row is None else row[0]


def _groups(statements: list[Statement], start: int) -> list[tuple[int, list[Statement]]]:
    """Consecutive transactional statements together, autocommit ones alone; each group with
    the index of its first statement."""
    groups: list[tuple[int, list[Statement]]] = []
    for i in range(start, len(statements)):
        s = statements[i]
        if s.autocommit or not groups or groups[-1][1][-1].autocommit:
            groups.append((i, [s]))
        else:
            groups[-1][1].append(s)
    return groups


def _run_alone(conn, settings: Settings, s: Statement, progress: Progress,
               dsn: str | None) -> None:
    """One statement outside a transaction. A CONCURRENTLY build waits as long as older
    transactions need (no lock timeout: nobody waits behind it), reporting who it waits for;
    if it fails, the INVALID index it leaves is dropped and the message says what it waited
    for."""
    if not s.waits_for_snapshots:
        conn.execute(s.text)
        return
    existed = s.index_name is not None and _index_is_valid(conn, s.index_name) is not None
    conn.execute("SELECT set_config('lock_timeout', '0', false)")
    watcher = IndexBuildProgress(dsn, conn.info.backend_pid, progress) if dsn else None
    try:
        if watcher:
            with watcher:
                conn.execute(s.text)
        else:
            conn.execute(s.text)
    except psycopg.Error as exc:
        cause = str(exc).strip().splitlines()[0]
        waited = (f" It was waiting for {watcher.waiting_for}." if watcher and
                  watcher.waiting_for else "")
        if s.index_name and not existed and _index_is_valid(conn, s.index_name) is False:
            raise MigrationError(f"{cause}; {_drop_leftover(conn, settings, s.index_name)}"
                                 f"{waited}") from exc
        raise MigrationError(cause + waited) from exc
    finally:
        if not conn.closed:
            conn.execute("SELECT set_config('lock_timeout', %s, false)",
                         (str(settings.admin_lock_timeout_ms),))


def _drop_leftover(conn, settings: Settings, index: str) -> str:
    """Drop the INVALID index a failed build left; that drop waits for old transactions too, so
    within the short lock timeout: if it cannot, say how to finish it."""
    drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.SQL(index))
    try:
        conn.execute("SELECT set_config('lock_timeout', %s, false)",
                     (str(settings.admin_lock_timeout_ms),))
        conn.execute(drop)
        return f"the INVALID index {index} the build left was dropped."
    except psycopg.Error:
        return (f"the INVALID index {index} the build left is still there (dropping it waits "
                f"for the same transactions): run {drop.as_string(conn)}; once they end.")


def _resume_point(last, migration: Migration, statements: list[Statement], direction: str,
                  progress: Progress) -> int:
    """Where a run continues: after the statements the last failed or interrupted run of the
    same direction committed, when those are unchanged; else from the start (or refused)."""
    if last is None or last["direction"] != direction or last["outcome"] not in ("failed",
                                                                                 "running"):
        return 0
    done = int(last["statements_completed"])
    if last["checksum"] == migration.checksum:
        if done:
            progress(f"{migration.version}: continuing after statement {done}")
        return done
    before = last["statement_checksums"] if isinstance(last["statement_checksums"], list) else None
    now = statement_checksums(statements)
    if before is None:
        raise MigrationError(f"{migration.path.name} changed since its last run stopped after "
                             f"{done} of {last['statements_total']} statements, and that run "
                             "did not record its statements: check by hand what is applied")
    changed = [i + 1 for i in range(done) if i >= len(now) or before[i] != now[i]]
    if changed:
        raise MigrationError(
            f"{migration.path.name} changed since its last run, in statement(s) "
            f"{', '.join(map(str, changed))} that already ran ({done} of "
            f"{last['statements_total']} were done): restore them, or undo them by hand")
    edited = [i + 1 for i in range(done, max(len(before), len(now)))
              if i >= len(before) or i >= len(now) or before[i] != now[i]]
    progress(f"{migration.version}: the file changed after the last run (statement(s) "
             f"{', '.join(map(str, edited)) or 'none'}); statements 1-{done} are unchanged and "
             f"done, continuing after them")
    return done


def _run(conn, who: Actor, migration: Migration, direction: str, progress: Progress,
         dsn: str | None = None) -> None:
    statements = migration.statements if direction == "apply" else migration.rollback_statements
    runs = ledger(conn)
    last = runs[runs["version"] == migration.version]
    last = last.iloc[0] if len(last) else None
    start = _resume_point(last, migration, statements, direction, progress)
    run_id = conn.execute("""
        INSERT INTO dbpulse.migration_runs (version, name, direction, checksum, run_by,
                                            statements_total, statements_completed,
                                            statements_before, statement_checksums)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (migration.version, migration.name, direction, migration.checksum, who.person,
         len(statements), start, json.dumps(_statement_counters(conn)),
         json.dumps(statement_checksums(statements)))).fetchone()[0]
    completed = current = start

    def mark(done: int) -> None:
        conn.execute("UPDATE dbpulse.migration_runs SET statements_completed = %s "
                     "WHERE id = %s", (done, run_id))

    try:
        for first, group in _groups(statements, start):
            for offset, s in enumerate(group):
                progress(f"{migration.version} [{first + offset + 1}/{len(statements)}] "
                         f"{s.text.strip().splitlines()[0][:100]}")
            if group[0].autocommit:
                current = first
                s = group[0]
                if first == start and start and s.index_name \
                        and _index_is_valid(conn, s.index_name):
                    # resumed right after a crash that came between the build and the ledger
                    progress(f"    {s.index_name} exists and is valid: already done")
                else:
                    _run_alone(conn, who.settings, s, progress, dsn)
                if s.index_name and _index_is_valid(conn, s.index_name) is False:
                    raise MigrationError(
                        f"index {s.index_name} was left INVALID by the concurrent build. "
                        f"Fix the cause, then DROP INDEX CONCURRENTLY IF EXISTS "
                        f"{s.index_name}; and run again: the run continues here.")
                mark(first + 1)
            else:
                # the group and its ledger line commit together: after a crash the ledger says
                # exactly which statements took effect
                with conn.transaction():
                    for offset, s in enumerate(group):
                        current = first + offset
                        conn.execute(s.text)
                    mark(first + len(group))
            completed = first + len(group)
    except (psycopg.Error, MigrationError) as exc:
        message = str(exc).strip().splitlines()[0]
        conn.execute("UPDATE dbpulse.migration_runs SET outcome = 'failed', finished_at = now(), "
                     "statements_completed = %s, error = %s WHERE id = %s",
                     (completed, f"statement {current + 1}: {message}", run_id))
        raise MigrationError(f"{migration.path.name if direction == 'apply' else 'rollback of ' + migration.version}: "
                             f"statement {current + 1} failed: {message}. {completed} of "
                             f"{len(statements)} statements are done; the ledger says so, and "
                             "the next run continues after them.") from exc
    conn.execute("UPDATE dbpulse.migration_runs SET outcome = 'ok', finished_at = now(), "
                 "statements_after = %s WHERE id = %s",
                 (json.dumps(_statement_counters(conn)), run_id))


def _prepare(conn, who: Actor, dsn: str) -> None:
    who.require_dba("Running migrations")
    refuse_pooler(dsn)
    if not conn.autocommit:
        raise MigrationError("migrations need an autocommit admin connection")
    dbpulse_schema.install(conn, who)
    conn.execute("SELECT set_config('lock_timeout', %s, false), "
                 "set_config('statement_timeout', '0', false)",  # index builds take long
                 (str(who.settings.admin_lock_timeout_ms),))


def apply(conn: psycopg.Connection, who: Actor, migrations: list[Migration], *,
          up_to: str | None = None, progress: Progress = lambda message: None) -> list[str]:
    """Apply the pending (or failed) migrations in order, up to a version if given, on the
    target's admin connection. Stops at the first failure. Returns the versions applied."""
    limit = None if up_to is None else version_number(up_to, "--up-to")
    dsn = who.target.admin_url
    _prepare(conn, who, dsn)
    applied = []
    with _run_lock(conn):
        states = status(conn, migrations).set_index("version")["state"]
        for m in migrations:
            if limit is not None and int(m.version) > limit:
                break
            state = states[m.version]
            if state == "applied":
                continue
            if state == "changed since applied":
                raise MigrationError(f"{m.path.name} changed since it was applied (checksum "
                                     "differs): roll it back first or restore the file")
            _run(conn, who, m, "apply", progress, dsn)
            applied.append(m.version)
    return applied


def rollback(conn: psycopg.Connection, who: Actor, migrations: list[Migration], *,
             to: str | None = None, progress: Progress = lambda message: None) -> list[str]:
    """Roll back the last applied migration, or every applied one after version `to`."""
    after = None if to is None else version_number(to, "--to")
    dsn = who.target.admin_url
    _prepare(conn, who, dsn)
    done = []
    with _run_lock(conn):
        states = status(conn, migrations).set_index("version")["state"]
        candidates = [m for m in reversed(migrations)
                      if states[m.version] != "pending"
                      and (after is None or int(m.version) > after)]
        if to is None:
            candidates = candidates[:1]
        for m in candidates:
            if m.rollback_path is None:
                raise MigrationError(f"{m.path.name} has no rollback file")
            _run(conn, who, m, "rollback", progress, dsn)
            done.append(m.version)
    return done


# How these frames are shown (ui/tables.py)
STATUS_COLUMNS = {
    "version": Column("Version", width="small", pinned=True), "name": Column("Migration"),
    "state": Column("State"),
    "completed": Column("Statements done", "count", help="Of the last run"),
    "statements": Column("Statements", "count"),
    "last_run_by": Column("Last run by", missing="never"),
    "last_run_at": Column("Last run", "time"),
}
LEDGER_COLUMNS = {
    "version": Column("Version", width="small", pinned=True), "name": Column("Migration"),
    "direction": Column("Direction", width="small"), "outcome": Column("Outcome", width="small"),
    "statements_completed": Column("Statements done", "count"),
    "statements_total": Column("Statements", "count"),
    "run_by": Column("Run by"), "started_at": Column("Started", "time"),
    "finished_at": Column("Finished", "time"), "error": Column("Error", width="large"),
}
PLAN_COLUMNS = {
    "#": Column("#", "count", width="small"), "statement": Column("Statement", width="large"),
    "runs": Column("Runs"), "lock": Column("Lock it takes", width="medium"),
    "table": Column("On", missing="its own objects"),
    "table_bytes": Column("Table size", "bytes"), "table_rows": Column("Table rows", "count"),
    "note": Column("Against the indexes there", width="large",
                   help="An index of the same columns exists already, leads with them, or is "
                        "made redundant by this one"),
}
