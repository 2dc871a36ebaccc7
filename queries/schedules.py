"""Refresh schedules with pg_cron: one job per materialized view, named after it, created,
changed, paused and removed by a DBA; each listed with its next run (from the cron expression),
its last runs from cron.job_run_details and its current failure streak."""

from __future__ import annotations

import re

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
import psycopg
from croniter import croniter

from queries.columns import Column
from queries.frames import to_frame
from queries.identifiers import qualified
from queries.roles import ActionError, Actor

DEFAULT_EVERY = "*/10 * * * *"  # the plan: every 10 to 15 minutes
JOB_PREFIX = "dbpulse-refresh-"
HOW_TO_ENABLE = (
    "pg_cron is not available in this database. On Supabase: Database → Extensions → pg_cron "
    "(it lives in the postgres database). Self-hosted: add pg_cron to shared_preload_libraries, "
    "set cron.database_name, restart, then CREATE EXTENSION pg_cron; in that database. "
    "Without it, refresh stale views from cron: DBPULSE_ROLE=dba python cli.py refresh --stale.")


class ScheduleError(ActionError):
    """pg_cron refused a schedule, or none can be made here; the message says why."""

    kind = "schedule"


@dataclass(frozen=True)
class CronPlace:
    """Where pg_cron runs its jobs, seen from the target database."""
    installed: bool          # the extension exists in this database
    readable: bool           # this role may read cron.job and its run history
    cron_database: str | None  # cron.database_name, when pg_cron is preloaded
    here: str                # the target database

    @property
    def elsewhere(self) -> bool:
        return not self.installed and bool(self.cron_database) and self.cron_database != self.here


def cron_place(conn: psycopg.Connection) -> CronPlace:
    installed = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')").fetchone()[0]
    readable = installed and conn.execute(
        "SELECT has_schema_privilege('cron', 'USAGE') AND "
        "has_table_privilege('cron.job', 'SELECT')").fetchone()[0]
    cron_db = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    return CronPlace(installed, readable, cron_db or None,
                     conn.execute("SELECT current_database()").fetchone()[0])


def job_name(schema: str, view: str) -> str:
    """
    >>> job_name("public", "mv_deal_pipeline")
    'dbpulse-refresh-public.mv_deal_pipeline'
    """
    return f"{JOB_PREFIX}{schema}.{view}"


def refresh_command(schema: str, view: str, concurrently: bool) -> str:
    """
    >>> refresh_command("public", "Odd View", True)
    'REFRESH MATERIALIZED VIEW CONCURRENTLY public."Odd View"'
    """
    return ("REFRESH MATERIALIZED VIEW " + ("CONCURRENTLY " if concurrently else "")
            + qualified(schema, view))


def next_run(expression: str, after: datetime) -> datetime | None:
    """The next time a cron expression fires after `after` (UTC, as pg_cron reads it); None
    for what croniter cannot read (pg_cron's '30 seconds' form, for one).

    >>> next_run("*/10 * * * *", datetime(2026, 11, 22, 21, 3, tzinfo=timezone.utc)).isoformat()
    '2026-11-22T21:10:00+00:00'
    >>> next_run("30 seconds", datetime(2026, 11, 22, tzinfo=timezone.utc)) is None
    True
    """
    if not croniter.is_valid(expression):
        return None
    return croniter(expression, after).get_next(datetime)


def schedules(conn: psycopg.Connection, now: datetime | None = None) -> pd.DataFrame:
    """Every pg_cron job that refreshes a materialized view (DB Pulse's and others'), with its
    last run, how long it took, its last error and how many runs in a row failed."""
    now = now or datetime.now(timezone.utc)
    frame = to_frame(conn.execute("""
        WITH runs AS (
            SELECT jobid, status, start_time, end_time, return_message,
                   row_number() OVER (PARTITION BY jobid ORDER BY start_time DESC) AS n
            FROM cron.job_run_details),
        streak AS (  -- failures since the last success
            SELECT r.jobid, count(*) AS failures
            FROM runs r
            WHERE r.status = 'failed' AND r.start_time > coalesce(
                (SELECT max(s.start_time) FROM runs s
                 WHERE s.jobid = r.jobid AND s.status = 'succeeded'), '-infinity')
            GROUP BY r.jobid)
        SELECT j.jobid, j.jobname, j.schedule, j.command, j.active, j.database, j.username,
               last.status AS last_status, last.start_time AS last_start,
               extract(epoch FROM last.end_time - last.start_time) * 1000 AS last_ms,
               CASE WHEN last.status = 'failed' THEN last.return_message END AS last_error,
               coalesce(streak.failures, 0) AS failure_streak
        FROM cron.job j
        LEFT JOIN runs last ON last.jobid = j.jobid AND last.n = 1
        LEFT JOIN streak ON streak.jobid = j.jobid
        WHERE j.command ~* 'refresh\\s+materialized\\s+view'
        ORDER BY j.jobname""", prepare=False))
    frame["next_run"] = [next_run(s, now) if active else None
                         for s, active in zip(frame["schedule"], frame["active"])]
    frame["managed"] = frame["jobname"].fillna("").str.startswith(JOB_PREFIX)
    return frame


def _require_cron(conn: psycopg.Connection) -> CronPlace:
    place = cron_place(conn)
    if not place.installed:
        raise ScheduleError(unavailable_text(place))
    return place


def unavailable_text(place: CronPlace) -> str:
    """Why no schedule can be made from this database, and what to do.

    >>> unavailable_text(CronPlace(False, False, "postgres", "app"))[:60]
    'pg_cron runs its jobs from the database postgres, not app: a'
    """
    if place.elsewhere:  # its jobs can run here, but they are made from that database
        return (f"pg_cron runs its jobs from the database {place.cron_database}, not "
                f"{place.here}: add a target for {place.cron_database} and schedule there "
                f"with cron.schedule_in_database(name, schedule, command, '{place.here}'), "
                "or refresh from cron: DBPULSE_ROLE=dba python cli.py refresh --stale.")
    return HOW_TO_ENABLE


def _existing(conn: psycopg.Connection, name: str):
    return conn.execute("SELECT jobid, username FROM cron.job WHERE jobname = %s",
                        (name,)).fetchone()


def schedule(admin_conn: psycopg.Connection, who: Actor, schema: str, view: str,
             expression: str = DEFAULT_EVERY, allow_blocking: bool = False) -> int:
    """Create or change the view's refresh job (DBA action), CONCURRENTLY when the view allows
    it; a blocking one only when allowed. Returns the job id. A job of that name owned by
    another role is refused: pg_cron would make a second one."""
    from queries import matviews

    who.require_dba("Scheduling a refresh")
    _require_cron(admin_conn)
    reason = matviews.blocking_reason(*matviews.view_state(admin_conn, schema, view)[1:])
    concurrently = reason is None
    if not concurrently and not allow_blocking:
        raise ScheduleError(
            f"{qualified(schema, view)} cannot be refreshed CONCURRENTLY ({reason}): every "
            "scheduled run would lock its readers out; allow a blocking refresh explicitly, or "
            "add a unique index first")
    name = job_name(schema, view)
    command = refresh_command(schema, view, concurrently)
    user = admin_conn.execute("SELECT current_user").fetchone()[0]
    existing = _existing(admin_conn, name)
    if existing and existing[1] != user:
        raise ScheduleError(f"a pg_cron job named {name} already exists, owned by {existing[1]}: "
                            f"change or remove it as that role (this connection is {user})")
    try:
        return admin_conn.execute("SELECT cron.schedule(%s, %s, %s)",
                                  (name, expression, command)).fetchone()[0]
    except psycopg.errors.InvalidParameterValue as exc:
        raise ScheduleError(f"pg_cron refused the schedule {expression!r}: "
                            f"{exc.diag.message_primary}") from exc


def set_active(admin_conn: psycopg.Connection, who: Actor, schema: str, view: str,
               active: bool) -> None:
    """Pause or resume the view's job (DBA action)."""
    who.require_dba("Pausing a schedule" if not active else "Resuming a schedule")
    _require_cron(admin_conn)
    existing = _existing(admin_conn, job_name(schema, view))
    if existing is None:
        raise ScheduleError(f"{qualified(schema, view)} has no refresh schedule")
    admin_conn.execute("SELECT cron.alter_job(%s, active := %s)", (existing[0], active))


def unschedule(admin_conn: psycopg.Connection, who: Actor, schema: str, view: str) -> None:
    """Remove the view's job (DBA action)."""
    who.require_dba("Removing a schedule")
    _require_cron(admin_conn)
    if _existing(admin_conn, job_name(schema, view)) is None:
        raise ScheduleError(f"{qualified(schema, view)} has no refresh schedule")
    admin_conn.execute("SELECT cron.unschedule(%s)", (job_name(schema, view),))


# How these frames are shown (ui/tables.py)
SCHEDULE_COLUMNS = {
    "jobname": Column("pg_cron job", pinned=True), "schedule": Column("Schedule", width="small"),
    "active": Column("Active", "flag"), "next_run": Column("Next run", "time"),
    "last_status": Column("Last run", width="small", missing="not yet"),
    "last_start": Column("Last started", "time"),
    "last_ms": Column("Took", "number", unit="ms", digits=0),
    "failure_streak": Column("Failures in a row", "count"),
    "last_error": Column("Last error", width="large"),
    "command": Column("Command", width="medium"),
}


REFRESH_TARGET = re.compile(r"^\s*refresh\s+materialized\s+view\s+(?:concurrently\s+)?(.+?)\s*;?\s*$",
                            re.IGNORECASE | re.DOTALL)


def refreshed_view(command: str) -> tuple[str, str] | None:
    """The (schema, view) a job's command refreshes, when it is one plain REFRESH; a name
    without a schema is taken as public, an unquoted one folded to lower case as PostgreSQL
    does.

    >>> refreshed_view("REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv_deal_pipeline")
    ('public', 'mv_deal_pipeline')
    >>> refreshed_view('refresh materialized view "Sales"."Odd View";')
    ('Sales', 'Odd View')
    >>> refreshed_view("REFRESH MATERIALIZED VIEW MV_Totals"), refreshed_view("SELECT 1")
    (('public', 'mv_totals'), None)
    """
    match = REFRESH_TARGET.match(command or "")
    if not match:
        return None
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."\s]+)', match.group(1))
    names = [quoted.replace('""', '"') if quoted else plain.lower() for quoted, plain in parts]
    if len(names) == 1:
        return ("public", names[0])
    return (names[0], names[1]) if len(names) == 2 else None


def scheduled_views(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    """(schema, view) -> the name (or id) of an active pg_cron job that refreshes it in this
    database; empty where pg_cron is not installed here or not readable."""
    place = cron_place(conn)
    if not (place.installed and place.readable):
        return {}
    jobs = schedules(conn)
    jobs = jobs[jobs["active"].astype(bool) & (jobs["database"] == place.here)]
    found = {}
    for name, jobid, command in zip(jobs["jobname"], jobs["jobid"], jobs["command"]):
        view = refreshed_view(command)
        if view:
            found[view] = name or f"job {jobid}"
    return found
