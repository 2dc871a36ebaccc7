"""Refresh schedules with pg_cron: one job per materialized view, named after it, created,
changed, paused and removed by a DBA; each listed with its next run (from the cron expression),
its last runs from cron.job_run_details and its current failure streak."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd
import psycopg
from croniter import croniter
from psycopg import conninfo

from foundation.columns import Column
from foundation.config import Settings
from foundation.connections import DatabaseProblem, open_admin, open_monitoring
from foundation.frames import to_frame
from foundation.identifiers import qualified
from foundation.roles import ActionError, Actor

DEFAULT_EVERY = "*/10 * * * *"  # the plan: every 10 to 15 minutes
JOB_PREFIX = "dbpulse-refresh-"
HOW_TO_ENABLE = (
    "pg_cron is not available in this database. On Supabase: Database → Extensions → pg_cron "
    "(it lives in the postgres database). Self-hosted: add pg_cron to shared_preload_libraries, "
    "set cron.database_name, restart, then CREATE EXTENSION pg_cron; in that database. "
    "Without it, let DB Pulse's agent refresh stale views: DBPULSE_ROLE=dba .venv/bin/python cli.py "
    "agent --refresh-stale (or from cron: .venv/bin/python cli.py refresh --stale).")


NOT_READABLE = ("pg_cron is installed but this role may not read its jobs. A superuser runs "
                "`DBPULSE_ROLE=dba cli.py schema install` with the admin URL: it lets pg_monitor "
                "read every job and run through DB Pulse's functions (a GRANT SELECT ON "
                "cron.job would show a role only its own jobs: pg_cron's row security).")


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
    settings_visible: bool = True  # this role may see cron.database_name (when it is set)

    @property
    def elsewhere(self) -> bool:
        return not self.installed and bool(self.cron_database) and self.cron_database != self.here


def _readable(conn: psycopg.Connection) -> bool:
    # the table names are looked up only once the schema's USAGE is known: the lookup itself
    # would fail without it
    return _through_dbpulse(conn) or conn.execute(
        "SELECT has_schema_privilege('cron', 'USAGE') AND "
        "has_table_privilege('cron.job', 'SELECT') AND "
        "has_table_privilege('cron.job_run_details', 'SELECT')").fetchone()[0]


def _through_dbpulse(conn: psycopg.Connection) -> bool:
    """DB Pulse's readers of every job and run (sql/dbpulse/optional/cron_readers.sql) exist
    here and this role may call them: pg_cron's own tables would show it only its own jobs."""
    return conn.execute("""
        SELECT coalesce((SELECT has_function_privilege(p, 'EXECUTE')
                         FROM to_regprocedure('dbpulse.cron_jobs()') p), false)
           AND coalesce((SELECT has_function_privilege(p, 'EXECUTE')
                         FROM to_regprocedure('dbpulse.cron_job_runs(integer)') p), false)
        """).fetchone()[0]


def _installed(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')").fetchone()[0]


def cron_place(conn: psycopg.Connection) -> CronPlace:
    installed = _installed(conn)
    # pg_settings hides cron.database_name from a role without pg_read_all_settings, where
    # current_setting() would fail
    cron_db = conn.execute(
        "SELECT setting FROM pg_settings WHERE name = 'cron.database_name'").fetchone()
    here, visible = conn.execute(
        "SELECT current_database(), pg_has_role('pg_read_all_settings', 'USAGE')").fetchone()
    return CronPlace(installed, installed and _readable(conn), cron_db[0] if cron_db else None,
                     here, visible)


@dataclass(frozen=True)
class Cron:
    """pg_cron for one target: the connection to the database its tables live in (the
    target's own, or cron.database_name's on the same server) and the target database its jobs
    run in. Every read and change of schedules goes through it."""
    conn: psycopg.Connection
    database: str
    elsewhere: bool
    readable: bool
    # every job and run through DB Pulse's readers, else pg_cron's tables as this role sees them
    through_dbpulse: bool = False

    @property
    def jobs(self) -> str:
        return "dbpulse.cron_jobs()" if self.through_dbpulse else "cron.job"

    @property
    def recent_runs(self) -> str:
        """pg_cron's latest RECENT_RUNS runs, backwards on the run id: never the whole history."""
        return ("dbpulse.cron_job_runs(%(recent)s)" if self.through_dbpulse else
                "(SELECT * FROM cron.job_run_details ORDER BY runid DESC LIMIT %(recent)s)")

    def job_name(self, schema: str, view: str) -> str:
        """A job made from another database names its database too: one pg_cron serves every
        database of the server, and a name is one job per role."""
        return job_name(schema, view, self.database if self.elsewhere else None)


def cron_here(conn: psycopg.Connection) -> Cron | None:
    """pg_cron in this very database when this role may read it, else None (no look for it
    elsewhere: for the views' freshness, read on every Overview)."""
    if not (_installed(conn) and _readable(conn)):
        return None
    return Cron(conn, conn.info.dbname, False, True, _through_dbpulse(conn))


@contextmanager
def open_cron(conn: psycopg.Connection, dsn: str, settings: Settings,
              for_changes: bool = False) -> Iterator[Cron]:
    """pg_cron seen from the target connection `conn` (of `dsn`): itself when the extension is
    installed here; else a connection to cron.database_name with the same credentials (an
    admin one `for_changes`, else a read-only one). ScheduleError says why there is none."""
    place = cron_place(conn)
    if place.installed:
        yield Cron(conn, place.here, False, place.readable, _through_dbpulse(conn))
        return
    if not place.elsewhere:
        raise ScheduleError(unavailable_text(place))
    there = conninfo.make_conninfo(dsn, dbname=place.cron_database)
    try:
        cron_conn = (open_admin if for_changes else open_monitoring)(there, settings)
    except DatabaseProblem as problem:
        raise ScheduleError(unavailable_text(place) + f" DB Pulse could not connect there with "
                            f"this target's credentials: {problem}") from problem
    try:
        if not _installed(cron_conn):
            raise ScheduleError(f"cron.database_name is {place.cron_database}, but pg_cron is "
                                f"not installed there: CREATE EXTENSION pg_cron; in "
                                f"{place.cron_database}, or see: {HOW_TO_ENABLE}")
        yield Cron(cron_conn, place.here, True, _readable(cron_conn), _through_dbpulse(cron_conn))
    finally:
        cron_conn.close()


def job_name(schema: str, view: str, database: str | None = None) -> str:
    """
    >>> job_name("public", "mv_deal_pipeline")
    'dbpulse-refresh-public.mv_deal_pipeline'
    >>> job_name("public", "mv_deal_pipeline", "crm")
    'dbpulse-refresh-crm.public.mv_deal_pipeline'
    """
    return f"{JOB_PREFIX}{database + '.' if database else ''}{schema}.{view}"


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


# pg_cron keeps every run unless someone purges cron.job_run_details: DB Pulse reads only the
# latest runs, backwards on the run id's primary key, never the whole history.
RECENT_RUNS = 10_000
REFRESHES = "command ~* 'refresh\\s+materialized\\s+view'"


def schedules(cron: Cron, now: datetime | None = None) -> pd.DataFrame:
    """Every pg_cron job that refreshes a materialized view in the target database (DB
    Pulse's and others'), with its last run, how long it took, its last error and how many
    runs in a row failed (counted within pg_cron's latest RECENT_RUNS runs)."""
    now = now or datetime.now(timezone.utc)
    frame = to_frame(cron.conn.execute(f"""
        WITH jobs AS (
            SELECT * FROM {cron.jobs} WHERE database = %(database)s AND {REFRESHES}),
        runs AS (
            SELECT r.jobid, r.status, r.start_time, r.end_time, r.return_message,
                   row_number() OVER (PARTITION BY r.jobid ORDER BY r.runid DESC) AS n
            FROM {cron.recent_runs} r JOIN jobs USING (jobid)),
        streak AS (  -- failures since the last success
            SELECT r.jobid, count(*) AS failures
            FROM runs r
            WHERE r.status = 'failed' AND NOT EXISTS (
                SELECT 1 FROM runs s
                WHERE s.jobid = r.jobid AND s.status = 'succeeded' AND s.n < r.n)
            GROUP BY r.jobid)
        SELECT j.jobid, j.jobname, j.schedule, j.command, j.active, j.database, j.username,
               last.status AS last_status, last.start_time AS last_start,
               extract(epoch FROM last.end_time - last.start_time) * 1000 AS last_ms,
               CASE WHEN last.status = 'failed' THEN last.return_message END AS last_error,
               coalesce(streak.failures, 0) AS failure_streak
        FROM jobs j
        LEFT JOIN runs last ON last.jobid = j.jobid AND last.n = 1
        LEFT JOIN streak ON streak.jobid = j.jobid
        ORDER BY j.jobname""", {"database": cron.database, "recent": RECENT_RUNS},
        prepare=False))
    frame["next_run"] = [next_run(s, now) if active else None
                         for s, active in zip(frame["schedule"], frame["active"])]
    frame["managed"] = frame["jobname"].fillna("").str.startswith(JOB_PREFIX)
    return frame


def refresh_runs(cron: Cron, limit: int = 200) -> pd.DataFrame:
    """pg_cron's latest runs of commands that refresh a materialized view in the target
    database."""
    return to_frame(cron.conn.execute(f"""
        SELECT j.jobname, d.command, d.status, d.start_time, d.end_time, d.return_message
        FROM {cron.recent_runs} d
        LEFT JOIN {cron.jobs} j ON j.jobid = d.jobid
        WHERE d.database = %(database)s AND d.{REFRESHES}
        ORDER BY d.runid DESC
        LIMIT %(limit)s""", {"database": cron.database, "recent": RECENT_RUNS, "limit": limit},
        prepare=False))


def last_refreshes(cron: Cron) -> list[tuple[str, datetime, datetime]]:
    """(command, start, end) of the latest successful run of each command that refreshes a
    view in the target database."""
    return cron.conn.execute(f"""
        SELECT command, max(start_time), max(end_time) FROM {cron.recent_runs} d
        WHERE status = 'succeeded' AND database = %(database)s AND {REFRESHES}
        GROUP BY command""", {"database": cron.database, "recent": RECENT_RUNS},
        prepare=False).fetchall()


def unavailable_text(place: CronPlace) -> str:
    """Why no schedule can be made from this database, and what to do.

    >>> unavailable_text(CronPlace(False, False, "postgres", "app"))[:60]
    'pg_cron runs its jobs from the database postgres, not app: D'
    """
    if place.cron_database is None and not place.installed and not place.settings_visible:
        return ("pg_cron is not installed in this database, and this role cannot see whether "
                "it runs from another one (cron.database_name is shown only to members of "
                "pg_read_all_settings or pg_monitor). " + HOW_TO_ENABLE)
    if place.elsewhere:  # its jobs can run here, but they are made from that database
        return (f"pg_cron runs its jobs from the database {place.cron_database}, not "
                f"{place.here}: DB Pulse makes this target's jobs there with "
                f"cron.schedule_in_database(…, '{place.here}'), which a superuser may grant: "
                f"GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, "
                f"text, boolean) TO your role; (and cron.alter_job to pause). Without it, "
                "let DB Pulse's agent refresh stale views: .venv/bin/python cli.py agent --refresh-stale.")
    return HOW_TO_ENABLE


def _existing(cron: Cron, name: str):
    return cron.conn.execute("SELECT jobid, username, active FROM cron.job WHERE jobname = %s",
                             (name,)).fetchone()


def _granted(cron: Cron, call: str, args: tuple, function: str):
    """Run a pg_cron function that a superuser must grant to other roles (pg_cron revokes
    alter_job and schedule_in_database from PUBLIC); say which grant is missing."""
    try:
        return cron.conn.execute(call, args).fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        user = cron.conn.execute("SELECT current_user").fetchone()[0]
        database = cron.conn.info.dbname
        raise ScheduleError(f"this role ({user}) may not call {function}: a superuser can "
                            f"GRANT EXECUTE ON FUNCTION {function} TO {user}; in the database "
                            f"{database} ({exc.diag.message_primary})") from exc


def schedule(cron: Cron, who: Actor, schema: str, view: str, reason: str | None,
             expression: str = DEFAULT_EVERY, allow_blocking: bool = False) -> int:
    """Create or change the view's refresh job (DBA action), CONCURRENTLY when the view allows
    it (`reason` says why it does not: matviews.blocking_reason, read at the moment of the
    action); a blocking one only when allowed. Returns the job id. A job of that name owned by
    another role is refused: pg_cron would make a second one."""
    who.require_dba("Scheduling a refresh")
    concurrently = reason is None
    if not concurrently and not allow_blocking:
        raise ScheduleError(
            f"{qualified(schema, view)} cannot be refreshed CONCURRENTLY ({reason}): every "
            "scheduled run would lock its readers out; allow a blocking refresh explicitly, or "
            "add a unique index first")
    name = cron.job_name(schema, view)
    command = refresh_command(schema, view, concurrently)
    user = cron.conn.execute("SELECT current_user").fetchone()[0]
    existing = _existing(cron, name)
    if existing and existing[1] != user:
        raise ScheduleError(f"a pg_cron job named {name} already exists, owned by {existing[1]}: "
                            f"change or remove it as that role (this connection is {user})")
    try:
        if cron.elsewhere:
            return _granted(cron, "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                            (name, expression, command, cron.database),
                            "cron.schedule_in_database(text, text, text, text, text, boolean)")[0]
        return cron.conn.execute("SELECT cron.schedule(%s, %s, %s)",
                                 (name, expression, command)).fetchone()[0]
    except psycopg.errors.InvalidParameterValue as exc:
        raise ScheduleError(f"pg_cron refused the schedule {expression!r}: "
                            f"{exc.diag.message_primary}") from exc


def _job_of(cron: Cron, schema: str, view: str) -> int:
    existing = _existing(cron, cron.job_name(schema, view))
    if existing is None:
        raise ScheduleError(f"{qualified(schema, view)} has no refresh schedule")
    return existing[0]


def set_active(cron: Cron, who: Actor, schema: str, view: str, active: bool) -> None:
    """Pause or resume the view's job (DBA action)."""
    who.require_dba("Pausing a schedule" if not active else "Resuming a schedule")
    _granted(cron, "SELECT cron.alter_job(%s, active := %s)",
             (_job_of(cron, schema, view), active),
             "cron.alter_job(bigint, text, text, text, text, boolean)")


def unschedule(cron: Cron, who: Actor, schema: str, view: str) -> None:
    """Remove the view's job (DBA action)."""
    who.require_dba("Removing a schedule")
    cron.conn.execute("SELECT cron.unschedule(%s::bigint)", (_job_of(cron, schema, view),))


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
RUN_COLUMNS = {
    "jobname": Column("pg_cron job", pinned=True), "command": Column("Command", width="large"),
    "status": Column("Status", width="small"), "start_time": Column("Started", "time"),
    "end_time": Column("Ended", "time"), "return_message": Column("Message", width="medium"),
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


def scheduled_views(conn: psycopg.Connection, dsn: str,
                    settings: Settings) -> dict[tuple[str, str], str]:
    """(schema, view) -> the name (or id) of an active pg_cron job that refreshes it in this
    database; empty where pg_cron cannot be reached or read from here."""
    try:
        with open_cron(conn, dsn, settings) as cron:
            if not cron.readable:
                return {}
            jobs = schedules(cron)
    except ScheduleError:
        return {}
    jobs = jobs[jobs["active"].astype(bool)]
    found = {}
    for name, jobid, command in zip(jobs["jobname"], jobs["jobid"], jobs["command"]):
        view = refreshed_view(command)
        if view:
            found[view] = name or f"job {jobid}"
    return found
