"""Materialized views: freshness (when last refreshed, how many writes to their source tables
since), whether they can be refreshed CONCURRENTLY, and the refresh action itself.

PostgreSQL records no refresh time. DB Pulse logs every refresh it performs in
dbpulse.matview_refresh_log; an optional event trigger logs everyone else's; pg_cron's run
history is read where it exists. Where nothing is known, the time is None ("unknown").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql

from foundation.columns import SCHEMA, SIZE, Column
from foundation.frames import to_frame
from foundation.identifiers import qualified
from foundation.roles import Actor, Refused
from reads import schedules

EVENT_TRIGGER_SQL = (Path(__file__).resolve().parent.parent / "sql" / "dbpulse" / "optional"
                     / "matview_event_trigger.sql")
EVENT_TRIGGER_NAME = "dbpulse_log_matview_refresh"
REFRESH_LOCK_CLASS = 0x0DB9_0002  # advisory lock (class, view oid): one refresh per view


class RefreshRefused(Refused):
    """The refresh was not started; the message says why."""


class BlockingNotConfirmed(RefreshRefused):
    """Only a plain, reader-blocking refresh is possible and it was not confirmed."""

    kind = "not_confirmed"


def log_available(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('dbpulse.matview_refresh_log') IS NOT NULL"
                        ).fetchone()[0]


def event_trigger_installed(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = %s "
                        "AND evtenabled <> 'D')", (EVENT_TRIGGER_NAME,)).fetchone()[0]


def list_matviews(conn: psycopg.Connection, max_age_minutes: float = 15.0) -> pd.DataFrame:
    """Every materialized view with its size, whether it is populated, the unique index that
    allows REFRESH CONCURRENTLY (or why there is none), its last refresh as logged, its age and
    the writes to its source tables since that refresh."""
    logged = log_available(conn)
    last_refresh = """
        LEFT JOIN LATERAL (
            SELECT l.finished_at, l.started_at, l.refreshed_by, l.recorded_by, l.was_concurrent,
                   l.source_writes
            FROM dbpulse.matview_refresh_log l
            WHERE l.view_oid = c.oid AND l.outcome = 'ok'
            ORDER BY l.finished_at DESC LIMIT 1) AS last ON true""" if logged else """
        LEFT JOIN LATERAL (
            SELECT NULL::timestamptz AS finished_at, NULL::timestamptz AS started_at,
                   NULL::text AS refreshed_by, NULL::text AS recorded_by,
                   NULL::boolean AS was_concurrent, NULL::bigint AS source_writes) AS last ON true"""
    writes_now = ("dbpulse.matview_source_writes(c.oid)" if logged else "NULL::bigint")
    # the refreshes that failed since the last one that worked (DB Pulse logs its failures;
    # the event trigger sees only refreshes that worked)
    failures = ("""(SELECT count(*) FROM dbpulse.matview_refresh_log f
                    WHERE f.view_oid = c.oid AND f.outcome = 'error'
                      AND f.finished_at > coalesce(last.finished_at, '-infinity'))"""
                if logged else "0")
    frame = to_frame(conn.execute(f"""
        SELECT c.oid                                            AS view_oid,
               n.nspname                                        AS schema_name,
               c.relname                                        AS view_name,
               pg_total_relation_size(c.oid)                    AS size_bytes,
               c.relispopulated                                 AS populated,
               (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
                  AND i.indpred IS NULL AND i.indexprs IS NULL
                ORDER BY ic.relname LIMIT 1)                    AS unique_index,
               (SELECT string_agg(DISTINCT quote_ident(sn.nspname) || '.' || quote_ident(s.relname),
                                  ', ')
                FROM pg_rewrite r
                JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                AND d.refclassid = 'pg_class'::regclass
                JOIN pg_class s ON s.oid = d.refobjid AND s.relkind IN ('r', 'm', 'p')
                JOIN pg_namespace sn ON sn.oid = s.relnamespace
                WHERE r.ev_class = c.oid AND d.refobjid <> c.oid) AS source_tables,
               last.finished_at                                 AS last_refresh,
               extract(epoch FROM last.finished_at - last.started_at) * 1000
                                                                AS last_duration_ms,
               last.refreshed_by, last.recorded_by, last.was_concurrent AS last_concurrently,
               -- the function (planned anew in each backend) only where its figure is used
               CASE WHEN last.source_writes IS NOT NULL
                    THEN {writes_now} - last.source_writes END  AS writes_since_refresh,
               extract(epoch FROM now() - last.finished_at) / 60 AS age_minutes,
               {failures}                                       AS failures_in_a_row
        -- from the views' rules (every materialized view has one): a few hundred rows where
        -- pg_class has one per table, index and sequence (40,000 at 25,000 indexes: 6 ms)
        FROM pg_rewrite rw
        JOIN pg_class c ON c.oid = rw.ev_class
        JOIN pg_namespace n ON n.oid = c.relnamespace
        {last_refresh}
        WHERE rw.rulename = '_RETURN' AND c.relkind = 'm'
        ORDER BY n.nspname, c.relname
        """))
    if frame.empty:
        return frame
    frame["concurrent_refresh"] = frame["populated"] & frame["unique_index"].notna()
    frame["why_not_concurrent"] = [
        "" if ok else "not populated yet: the first refresh cannot be concurrent" if not pop
        else "no unique index on plain columns (without WHERE): REFRESH CONCURRENTLY needs one"
        for ok, pop in zip(frame["concurrent_refresh"], frame["populated"])]
    # a counter reset (or a restart without stats) makes the difference negative: unknown
    writes = pd.to_numeric(frame["writes_since_refresh"], errors="coerce")
    frame["writes_since_refresh"] = writes.where(writes >= 0)
    cron = schedules.cron_here(conn)  # once for both: pg_cron's last runs and its streaks
    _merge_cron_refreshes(frame, cron_last_refreshes(conn, cron))
    streaks = cron_failure_streaks(conn, cron)
    frame["failures_in_a_row"] = [max(int(n), streaks.get(int(oid), 0))
                                  for n, oid in zip(frame["failures_in_a_row"],
                                                    frame["view_oid"])]
    others_logged = event_trigger_installed(conn)
    states = [_freshness(populated, age, changed, max_age_minutes, others_logged)
              for populated, age, changed
              in zip(frame["populated"], pd.to_numeric(frame["age_minutes"], errors="coerce"),
                     frame["writes_since_refresh"])]
    frame["stale"] = [stale for stale, _, _ in states]
    frame["freshness"] = [text for _, text, _ in states]
    # an age DB Pulse cannot vouch for is unknown, not a number
    frame["age_minutes"] = [age if known else None for (_, _, known), age
                            in zip(states, frame["age_minutes"])]
    return frame


def cron_last_refreshes(conn: psycopg.Connection,
                        cron: schedules.Cron | None) -> dict[int, tuple]:
    """view oid -> (start, end) of pg_cron's last successful run of a command that refreshes
    it by name (a job that calls a function is not matched: its command names no view). Read
    where pg_cron is installed in this database (cron: schedules.cron_here's); with pg_cron in
    another database, the event trigger logs its refreshes here."""
    if cron is None:
        return {}
    runs = schedules.last_refreshes(cron)
    latest: dict[int, tuple] = {}
    for command, started, ended in runs:
        oid = _refreshed_view(conn, command)
        if oid is not None and (oid not in latest or latest[oid][1] < ended):
            latest[oid] = (started, ended)
    return latest


def cron_failure_streaks(conn: psycopg.Connection,
                         cron: schedules.Cron | None) -> dict[int, int]:
    """view oid -> how many of pg_cron's runs in a row failed to refresh it (its job's failure
    streak), where pg_cron is installed in this database (cron: schedules.cron_here's)."""
    if cron is None:
        return {}
    streaks: dict[int, int] = {}
    for job in schedules.schedules(cron).itertuples():
        oid = _refreshed_view(conn, job.command)
        if oid is not None and job.failure_streak:
            streaks[oid] = max(streaks.get(oid, 0), int(job.failure_streak))
    return streaks


def _refreshed_view(conn: psycopg.Connection, command: str) -> int | None:
    """The oid of the view a REFRESH MATERIALIZED VIEW command names, else None."""
    try:
        parsed = parse_sql(command)
    except ParseError:
        return None
    for raw in parsed:
        if isinstance(raw.stmt, ast.RefreshMatViewStmt):
            rel = raw.stmt.relation
            return conn.execute("SELECT to_regclass(%s)::oid", (
                qualified(rel.schemaname or "public", rel.relname),)).fetchone()[0]
    return None


def _merge_cron_refreshes(frame: pd.DataFrame, cron: dict[int, tuple]) -> None:
    """Where pg_cron refreshed a view after the last logged refresh, that run is the last one
    (the writes since it are unknown: pg_cron does not record them)."""
    now = datetime.now(timezone.utc)
    for i, oid in enumerate(frame["view_oid"]):
        run = cron.get(int(oid))
        logged = frame.at[i, "last_refresh"]
        if run is None or (pd.notna(logged) and logged >= run[1]):
            continue
        frame.at[i, "last_refresh"] = run[1]
        frame.at[i, "last_duration_ms"] = (run[1] - run[0]).total_seconds() * 1000
        frame.at[i, "recorded_by"] = "pg_cron"
        frame.at[i, "refreshed_by"] = "pg_cron"
        frame.at[i, "writes_since_refresh"] = None
        frame.at[i, "age_minutes"] = (now - run[1]).total_seconds() / 60


def _freshness(populated: bool, age: float, writes: float, max_age: float,
               others_logged: bool = True) -> tuple[bool, str, bool]:
    """(stale, description, age known). Older than the maximum is stale unless its sources are
    known to have had no writes since; an unknown refresh time counts as stale. Without the
    event trigger a refresh by anyone else is not logged: the logged age is only the longest
    it can be, so "older than the maximum" becomes "unknown", never a confident "stale".

    >>> _freshness(True, 30.0, 5, 15.0, others_logged=False)[1]
    'unknown: DB Pulse refreshed it 30 min ago; refreshes by others are not recorded without the event trigger'
    >>> _freshness(True, 3.0, 5, 15.0, others_logged=False)
    (False, 'fresh: 3 min old', True)
    """
    if not populated:
        return True, "not populated", False
    if pd.isna(age):
        return True, "unknown: no refresh recorded", False
    if age > max_age and writes != 0:
        if not others_logged:
            return True, (f"unknown: DB Pulse refreshed it {age:.0f} min ago; refreshes by "
                          "others are not recorded without the event trigger"), False
        return True, f"stale: {age:.0f} min old (max {max_age:g})", True
    return False, f"fresh: {age:.0f} min old" + (", no writes since" if writes == 0 else ""), True


def refresh_history(conn: psycopg.Connection, limit: int = 500) -> pd.DataFrame:
    if not log_available(conn):
        return pd.DataFrame(columns=["schema_name", "view_name", "started_at", "finished_at",
                                     "duration_ms", "concurrently", "refreshed_by",
                                     "recorded_by", "outcome", "detail"])
    return to_frame(conn.execute("""
        SELECT schema_name, view_name, started_at, finished_at,
               extract(epoch FROM finished_at - started_at) * 1000 AS duration_ms,
               was_concurrent AS concurrently, refreshed_by, recorded_by, outcome, detail
        FROM dbpulse.matview_refresh_log
        ORDER BY finished_at DESC
        LIMIT %s
        """, (limit,)))


@dataclass
class RefreshResult:
    schema_name: str
    view_name: str
    concurrently: bool
    duration_ms: float


def blocking_reason(populated: bool, has_unique: bool) -> str | None:
    """Why REFRESH … CONCURRENTLY is impossible for a view, or None when it is possible.

    >>> blocking_reason(True, True), blocking_reason(False, True)
    (None, 'it is not populated yet')
    """
    if populated and has_unique:
        return None
    return ("it is not populated yet" if not populated
            else "it has no unique index on plain columns")


def view_state(conn: psycopg.Connection, schema: str, name: str) -> tuple[int, bool, bool]:
    """(oid, populated, has a unique index usable by REFRESH … CONCURRENTLY)."""
    row = conn.execute("""
        SELECT c.oid, c.relispopulated,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
                         AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'm'
        """, (schema, name)).fetchone()
    if row is None:
        raise RefreshRefused(f"There is no materialized view {qualified(schema, name)}.")
    return row


def refresh(conn: psycopg.Connection, who: Actor, *, schema: str, name: str,
            allow_blocking: bool = False, lock_timeout_ms: int | None = None) -> RefreshResult:
    """Refresh one view (DBA action, on the admin connection in autocommit; audited by the
    caller, operations/actions.py).

    CONCURRENTLY when the view is populated and has a usable unique index; otherwise a plain
    refresh, which takes an ACCESS EXCLUSIVE lock that blocks readers for its duration, only
    with allow_blocking. A second refresh of the same view while one runs is refused.
    Every attempt that starts is written to the refresh log."""
    who.require_dba("Refreshing a materialized view")
    view_oid, populated, has_unique = view_state(conn, schema, name)
    reason = blocking_reason(populated, has_unique)
    concurrently = reason is None
    if not concurrently and not allow_blocking:
        raise BlockingNotConfirmed(
            f"{qualified(schema, name)} cannot be refreshed CONCURRENTLY ({reason}). A plain "
            "refresh takes an ACCESS EXCLUSIVE lock: every reader of the view waits until it "
            "finishes. Confirm to run it anyway.")
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s::int)",
                       (REFRESH_LOCK_CLASS, view_oid)).fetchone()[0]
    if not got:
        raise RefreshRefused(f"A refresh of {qualified(schema, name)} is already running.")
    statement = sql.SQL("REFRESH MATERIALIZED VIEW {}{}.{}").format(
        sql.SQL("CONCURRENTLY ") if concurrently else sql.SQL(""),
        sql.Identifier(schema), sql.Identifier(name))
    # both ends on the server's clock, so the result and the log hold one duration
    started_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    timeout = who.settings.admin_lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms
    try:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true), "
                             "set_config('dbpulse.refreshing', 'on', true)", (str(timeout),))
                conn.execute(statement)
        except psycopg.Error as exc:
            _log(conn, view_oid, schema, name, started_at, concurrently, who.person, "error",
                 str(exc).strip().splitlines()[0])
            raise
        took_ms = _log(conn, view_oid, schema, name, started_at, concurrently, who.person, "ok",
                       None)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s::int)", (REFRESH_LOCK_CLASS, view_oid))
    return RefreshResult(schema, name, concurrently, took_ms)


def _log(conn, view_oid, schema, name, started_at, concurrently, actor, outcome,
         detail) -> float:
    """Writes the refresh log row; returns its duration in ms (the one every page shows)."""
    return conn.execute("""
        INSERT INTO dbpulse.matview_refresh_log
            (view_oid, schema_name, view_name, started_at, finished_at, was_concurrent,
             refreshed_by, recorded_by, outcome, detail, source_writes)
        VALUES (%s, %s, %s, %s, clock_timestamp(), %s, %s, 'dbpulse', %s, %s,
                dbpulse.matview_source_writes(%s))
        RETURNING extract(epoch FROM finished_at - started_at)::float8 * 1000
        """, (view_oid, schema, name, started_at, concurrently, actor, outcome, detail,
              view_oid)).fetchone()[0]


# What refresh_stale did with each stale view: callers branch on the type, never on the text.
@dataclass(frozen=True)
class Refreshed:
    view: str
    result: RefreshResult

    def __str__(self) -> str:
        return (f"refreshed in {self.result.duration_ms:.0f} ms"
                + (" (concurrently)" if self.result.concurrently else ""))


@dataclass(frozen=True)
class LeftToCron:
    view: str
    job: str

    def __str__(self) -> str:
        return f"left to pg_cron ({self.job})"


@dataclass(frozen=True)
class NotRefreshed:
    view: str
    reason: str

    def __str__(self) -> str:
        return f"not refreshed: {self.reason}"


@dataclass(frozen=True)
class Waiting:
    """A view whose refreshes failed lately, not tried again before `until` (back-off)."""
    view: str
    until: datetime

    def __str__(self) -> str:
        return f"not tried: failed before, next try after {self.until:%H:%M:%S} UTC"


RefreshOutcome = Refreshed | LeftToCron | NotRefreshed | Waiting


def refresh_stale(conn: psycopg.Connection, who: Actor, allow_blocking: bool = False,
                  leave_scheduled: bool = False,
                  waiting: dict[str, datetime] | None = None) -> list[RefreshOutcome]:
    """Refresh every view older than the settings' maximum age; one outcome per stale view,
    going on past failures so one bad view does not keep the others stale. With
    leave_scheduled, a view an active pg_cron job refreshes is left to it (the agent: two
    refreshers would only wait for each other's lock). waiting: views (qualified names) not to
    try now, with when they will be (the agent's back-off after failures)."""
    who.require_dba("Refreshing materialized views")
    scheduled = (schedules.scheduled_views(conn, who.target.admin_url, who.settings)
                 if leave_scheduled else {})
    outcomes: list[RefreshOutcome] = []
    for row in list_matviews(conn, who.settings.matview_max_age_minutes).itertuples():
        if not row.stale:
            continue
        view = qualified(row.schema_name, row.view_name)
        job = scheduled.get((row.schema_name, row.view_name))
        if job:
            outcomes.append(LeftToCron(view, job))
        elif view in (waiting or {}):
            outcomes.append(Waiting(view, waiting[view]))
        else:
            try:
                outcomes.append(Refreshed(view, refresh(
                    conn, who, schema=row.schema_name, name=row.view_name,
                    allow_blocking=allow_blocking)))
            except (RefreshRefused, psycopg.Error) as exc:
                outcomes.append(NotRefreshed(view, str(exc).strip().splitlines()[0]))
    return outcomes


def install_event_trigger(conn: psycopg.Connection, who: Actor) -> None:
    """DBA action; needs a superuser (Supabase: the postgres role)."""
    who.require_dba("Installing the refresh event trigger")
    with conn.transaction():
        conn.execute(EVENT_TRIGGER_SQL.read_text())


# How these frames are shown (ui/tables.py)
VIEW_COLUMNS = {
    "view_name": Column("View", pinned=True), "schema_name": SCHEMA,
    "freshness": Column("Freshness", width="medium"),
    "last_refresh": Column("Last refresh", "time"),
    "last_duration_ms": Column("Took", "number", unit="ms", digits=0),
    "refreshed_by": Column("By", missing="unknown"),
    "writes_since_refresh": Column("Source writes since", "count",
                                   help="Rows inserted, updated or deleted in the tables the "
                                        "view reads, since its last refresh"),
    "size_bytes": SIZE,
    "unique_index": Column("Unique index", missing="none",
                           help="Needed for REFRESH … CONCURRENTLY"),
    "why_not_concurrent": Column("Why not concurrently", explains=True),
    "source_tables": Column("Reads", "list"),
}
HISTORY_COLUMNS = {
    "view_name": Column("View", pinned=True), "finished_at": Column("Finished", "time"),
    "duration_ms": Column("Took", "number", unit="ms", digits=0),
    "concurrently": Column("Concurrently", "flag"), "refreshed_by": Column("By"),
    "recorded_by": Column("Logged by", width="small"), "outcome": Column("Outcome", width="small"),
    "detail": Column("Detail", explains=True),
}
