"""Every DBA action, for the pages and the CLI alike, with one ceremony (`perform`): open the
admin connection, refuse and audit a person without the DBA role, install DB Pulse's schema
(the audit log), run the action audited with its parameters, and turn every failure into a
DatabaseProblem, a refusal included. The functions they call check the role again."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator, TypeVar

import psycopg

from foundation import capabilities, migration_files, plan_login
from foundation.connections import (
    DatabaseProblem,
    admin_connection,
    describe_error,
    monitoring_connection,
)
from foundation.identifiers import qualified
from foundation.roles import ActionError, Actor, PermissionDenied, Refused
from foundation.secrets import redact_text
from operations import alerts, audit, dbpulse_schema, migrations, snapshots
from reads import activity, bloat, matviews, schedules, statements, whatif

T = TypeVar("T")


@contextmanager
def _ceremony(who: Actor, action: str, what: str, object_name: str | None,
              parameters: dict | None, dsn: str | None, viewers: bool = False) -> Iterator[tuple]:
    """The admin connection of `dsn` (the target's admin URL unless given), after the role
    check (a refusal is written there, when DB Pulse's schema exists, and nothing else happens)
    and DB Pulse's schema install; yields (connection, schema files applied now). Every failure
    inside leaves as a DatabaseProblem."""
    dsn = dsn or who.target.admin_url
    try:
        with admin_connection(dsn, who.settings) as conn:
            if not who.is_dba and not viewers:
                _refuse(conn, who, action, object_name, parameters, who.denial(what))
            yield conn, dbpulse_schema.install(conn, who) if who.is_dba else []
    except (Refused, ActionError) as exc:
        raise DatabaseProblem(exc.kind, str(exc)) from exc
    except DatabaseProblem:
        raise
    except psycopg.Error as exc:
        raise describe_error(exc, dsn) from exc


def perform(who: Actor, action: str, what: str, fn: Callable[[psycopg.Connection], T], *,
            object_name: str | None = None, parameters: dict | None = None,
            describe: Callable[[T], str] | None = None, dsn: str | None = None,
            viewers: bool = False) -> T:
    """Run fn(admin connection) as `who`, audited with its parameters and, when `describe`
    says it, a note on the result; `what` names the action in a refusal ("Refreshing a
    materialized view"). `viewers`: a viewer may do it too (audited where DB Pulse's schema
    exists; a viewer installs nothing)."""
    with _ceremony(who, action, what, object_name, parameters, dsn, viewers) as (conn, _):
        if not who.is_dba and not audit.log_exists(conn):
            return fn(conn)
        with audit.audited(conn, who, action, object_name, parameters) as note:
            value = fn(conn)
            note["detail"] = describe(value) if describe else None
        return value


def _refuse(conn: psycopg.Connection, who: Actor, action: str, object_name: str | None,
            parameters: dict | None, reason: str) -> None:
    if audit.log_exists(conn):
        audit.record(conn, who, action=action, object_name=object_name,
                     started_at=datetime.now(timezone.utc), duration_ms=0, outcome="refused",
                     detail=reason, parameters=parameters)
    else:  # a viewer's click installs nothing; the refusal is still said
        reason += " (Not recorded: DB Pulse's schema is not installed on this target.)"
    raise PermissionDenied(reason)


# -- the actions -------------------------------------------------------------------------------
def install_schema(who: Actor) -> list[str]:
    # the install writes its own row: it creates the table the row goes to
    with _ceremony(who, "install_schema", "Installing the DB Pulse schema", "dbpulse", None,
                   None) as (_, applied):
        return applied


def refresh_view(who: Actor, schema: str, name: str, allow_blocking: bool = False):
    return perform(who, "refresh_matview", "Refreshing a materialized view",
                   lambda conn: matviews.refresh(conn, who, schema=schema, name=name,
                                                 allow_blocking=allow_blocking),
                   object_name=qualified(schema, name),
                   parameters={"allow_blocking": allow_blocking},
                   describe=lambda r: f"{r.duration_ms:.0f} ms, "
                   + ("concurrently" if r.concurrently else "plain (blocking readers)"))


def _on_cron(who: Actor, change: Callable) -> Callable[[psycopg.Connection], T]:
    """change(target connection, pg_cron) on the target's admin connection, with pg_cron where
    it lives: this database or cron.database_name's."""

    def run(conn: psycopg.Connection) -> T:
        with schedules.open_cron(conn, who.target.admin_url, who.settings,
                                 for_changes=True) as cron:
            return change(conn, cron)
    return run


def schedule_refresh(who: Actor, schema: str, name: str, expression: str,
                     allow_blocking: bool = False) -> int:
    return perform(who, "schedule_refresh", "Scheduling a refresh",
                   _on_cron(who, lambda conn, cron: schedules.schedule(
                       cron, who, schema, name, matviews.blocking_reason(
                           *matviews.view_state(conn, schema, name)[1:]),
                       expression, allow_blocking)),
                   object_name=qualified(schema, name),
                   parameters={"schedule": expression, "allow_blocking": allow_blocking},
                   describe=lambda job: f"pg_cron job {job}")


def pause_schedule(who: Actor, schema: str, name: str, active: bool) -> None:
    return perform(who, "resume_schedule" if active else "pause_schedule",
                   "Resuming a schedule" if active else "Pausing a schedule",
                   _on_cron(who, lambda _, cron: schedules.set_active(cron, who, schema, name,
                                                                      active)),
                   object_name=qualified(schema, name))


def remove_schedule(who: Actor, schema: str, name: str) -> None:
    return perform(who, "unschedule_refresh", "Removing a schedule",
                   _on_cron(who, lambda _, cron: schedules.unschedule(cron, who, schema, name)),
                   object_name=qualified(schema, name))


def send_test_alert(who: Actor, config: dict) -> list[tuple[str, str]]:
    """A test message through every alert channel of `config` ([alerts]), audited: it reaches
    people. When no channel took it, the action failed (and is audited so)."""

    def send(_) -> list[tuple[str, str]]:
        outcomes = alerts.send_test(config, who.target.name, datetime.now(timezone.utc))
        if outcomes and not any(outcome == "sent" for _, outcome in outcomes):
            raise ActionError("No channel took the test message: "
                              + "; ".join(f"{c}: {o}" for c, o in outcomes))
        return outcomes

    return perform(who, "test_alert", "Sending a test alert", send,
                   parameters={"channels": alerts.describe_channels(config)},
                   describe=lambda outcomes: "; ".join(f"{c}: {o}" for c, o in outcomes))


def refresh_stale(who: Actor, allow_blocking: bool = False, leave_scheduled: bool = False,
                  waiting: dict | None = None) -> list:
    """matviews.refresh_stale, audited once with every view's outcome."""

    return perform(who, "refresh_stale", "Refreshing materialized views",
                   lambda conn: matviews.refresh_stale(conn, who, allow_blocking,
                                                       leave_scheduled, waiting),
                   parameters={"allow_blocking": allow_blocking,
                               "leave_scheduled": leave_scheduled,
                               "max_age_minutes": who.settings.matview_max_age_minutes},
                   describe=lambda outcomes: "; ".join(f"{o.view}: {o}" for o in outcomes)
                   or "no stale view")


def install_event_trigger(who: Actor) -> None:
    return perform(who, "install_event_trigger", "Installing the refresh event trigger",
                   lambda conn: matviews.install_event_trigger(conn, who),
                   object_name=matviews.EVENT_TRIGGER_NAME)


def migrate(who: Actor, direction: str, until: str | None = None, progress=print) -> list[str]:
    """Apply (up to a version) or roll back (to a version, else the last one)."""

    found = migration_files.discover(migration_files.migrations_dir(who.settings))
    if direction == "apply":
        run = lambda conn: migrations.apply(conn, who, found, up_to=until,  # noqa: E731
                                            progress=progress)
        parameters = {"up_to": until}
    else:
        run = lambda conn: migrations.rollback(conn, who, found, to=until,  # noqa: E731
                                               progress=progress)
        parameters = {"to": until}
    target = (f"up to {until}" if until else "every pending") if direction == "apply" else (
        f"back to {until}" if until else "the last applied")
    return perform(who, f"migrate_{direction}", "Running migrations", run,
                   object_name=f"migrations {target}", parameters=parameters,
                   describe=lambda done: (("applied " if direction == "apply" else "rolled back ")
                                          + ", ".join(done)) if done else "nothing to do")


def take_snapshot(who: Actor):
    """One snapshot into the target's history database, where its audit row goes too; pruning
    past the retention gets a row of its own."""

    def run(history: psycopg.Connection):
        t0 = time.monotonic()
        with monitoring_connection(who.target.database_url, who.settings) as monitor:
            result = snapshots.take(monitor, history, who)
        if result.pruned:
            audit.record(history, who, action="prune_history", object_name="dbpulse.snapshots",
                         started_at=datetime.now(timezone.utc),
                         duration_ms=(time.monotonic() - t0) * 1000, outcome="ok",
                         detail=f"pruned {result.pruned} snapshots older than "
                                f"{who.settings.history_retention_days} days",
                         parameters={"retention_days": who.settings.history_retention_days})
        return result
    return perform(who, "snapshot", "Taking a snapshot", run,
                   object_name=who.target.history_source, dsn=who.target.history_write_url,
                   describe=lambda r: f"snapshot {r.snapshot_id}: {r.statements} statements, "
                   f"{r.statements_stored} stored"
                   + (f"; pruned {r.pruned}" if r.pruned else ""))


def _planned(who: Actor, run_as: int,
             plan: Callable[[psycopg.Connection, str | None], T]) -> Callable:
    """plan(plan connection, role) on the target's checked plan login (foundation/plan_login.py),
    never on the admin connection, which only writes the audit row."""
    def run(_admin: psycopg.Connection) -> T:
        with plan_login.connect(who.target, who.settings, run_as) as (conn, role):
            return plan(conn, role)
    return run


def explain_generic(who: Actor, query: str, run_as: int) -> str:
    """The generic plan (not executed): a viewer may ask for it; planning runs code."""
    return perform(who, "explain_generic", "Showing a generic plan",
                   _planned(who, run_as, lambda conn, role: statements.explain_generic(
                       conn, query, conn.info.server_version,
                       who.settings.statement_timeout_ms, role)),
                   object_name=redact_text(query)[:200], parameters={"run_as_oid": run_as},
                   viewers=True)


def what_if(who: Actor, query: str, candidate: str, run_as: int):
    def plan(conn: psycopg.Connection, role: str | None):
        hypopg = capabilities.detect(conn).extension("hypopg")
        return whatif.what_if(conn, hypopg, query, candidate, conn.info.server_version,
                              who.settings.statement_timeout_ms, role)
    return perform(who, "what_if", "Trying a candidate index", _planned(who, run_as, plan),
                   object_name=redact_text(query)[:200],
                   parameters={"run_as_oid": run_as, "candidate": redact_text(candidate)})


def explain_analyze(who: Actor, query: str, params: list, run_as: int) -> str:
    return perform(who, "explain_analyze", "EXPLAIN ANALYZE",
                   _planned(who, run_as, lambda conn, role: statements.explain_analyze(
                       conn, who, query, params, role)),
                   object_name=redact_text(query)[:200],
                   parameters={"run_as_oid": run_as, "values": len(params)})


def measure_bloat(who: Actor, schema: str, name: str, is_index: bool,
                  extension_schema: str) -> dict:
    measure = bloat.exact_index_bloat if is_index else bloat.exact_table_bloat
    return perform(who, "measure_bloat", "Measuring exact bloat",
                   lambda conn: measure(conn, who, schema, name, extension_schema),
                   object_name=qualified(schema, name), parameters={"index": is_index})


def end_session(who: Actor, pid: int, terminate: bool) -> str:
    return perform(who, "terminate_backend" if terminate else "cancel_backend",
                   "Terminating a session" if terminate else "Cancelling a statement",
                   lambda conn: activity.end_session(conn, who, pid, terminate),
                   object_name=f"pid {pid}", parameters={"pid": pid}, describe=str)
