"""Uncached calls the pages make on request: statement detail, EXPLAIN, and DBA actions.
DBA actions open the admin connection, make sure DB Pulse's schema (and so the audit log) is
there, and are audited; the role check itself happens in the core function."""

from __future__ import annotations

import getpass

from queries import dbpulse_schema, statements
from queries.audit import audited
from queries.config import Settings, Target
from queries.connections import DatabaseProblem, admin_connection
from queries.secrets import redact_text
from ui.loaders import Loaded, _load


def actor() -> str:
    return f"dashboard:{getpass.getuser()}"


def statement_detail(target: Target, settings: Settings, queryid: int, userid: int,
                     dbid: int) -> Loaded:
    def load(conn):
        from queries import capabilities

        ext = capabilities.detect(conn).extension("pg_stat_statements")
        return statements.statement_detail(conn, ext, queryid, userid, dbid)
    return _load(target.database_url, settings, load)


def explain_generic(target: Target, settings: Settings, query: str) -> Loaded:
    def load(conn):
        try:
            return statements.explain_generic(conn, query, conn.info.server_version,
                                              settings.statement_timeout_ms)
        except statements.ExplainError as exc:
            raise DatabaseProblem("explain", str(exc)) from exc
    return _load(target.database_url, settings, load)


def _audited_action(target: Target, settings: Settings, action: str, object_name: str,
                    fn) -> Loaded:
    """A DBA action that writes no log of its own: DB Pulse's schema first, then audited."""
    def run(conn):
        dbpulse_schema.install(conn, settings, actor=actor(), target=target.name)
        with audited(conn, actor=actor(), role=settings.role, action=action,
                     target=target.name, object_name=object_name):
            return fn(conn)
    return _admin_action(target, settings, run)


def explain_analyze(target: Target, settings: Settings, query: str, params: list,
                    run_as: int) -> Loaded:
    return _audited_action(target, settings, "explain_analyze", redact_text(query)[:200],
                           lambda conn: statements.explain_analyze(conn, settings, query, params,
                                                                   run_as))


def exact_bloat(target: Target, settings: Settings, schema: str, name: str, is_index: bool,
                extension_schema: str) -> Loaded:
    from queries import bloat

    measure = bloat.exact_index_bloat if is_index else bloat.exact_table_bloat
    return _audited_action(target, settings, "measure_bloat", f"{schema}.{name}", lambda conn:
                           measure(conn, settings, schema, name, extension_schema))


def end_session(target: Target, settings: Settings, pid: int, terminate: bool) -> Loaded:
    from queries import activity

    def run(conn):
        try:
            return activity.end_session(conn, settings, pid, terminate)
        except activity.SessionGone as exc:
            raise DatabaseProblem("gone", str(exc)) from exc
    return _audited_action(target, settings,
                           "terminate_backend" if terminate else "cancel_backend", f"pid {pid}",
                           run)


def what_if(target: Target, settings: Settings, query: str, candidate: str) -> Loaded:
    from queries import capabilities, whatif

    def load(conn):
        hypopg = capabilities.detect(conn).extension("hypopg")
        try:
            return whatif.what_if(conn, hypopg, query, candidate, conn.info.server_version,
                                  settings.statement_timeout_ms)
        except statements.ExplainError as exc:
            raise DatabaseProblem("explain", str(exc)) from exc
    return _load(target.database_url, settings, load)


def _admin_action(target: Target, settings: Settings, fn) -> Loaded:
    """Run a DBA action on the admin connection; refusals and database errors come back as
    the Loaded's problem (the action itself wrote the audit and refresh logs)."""
    import psycopg

    from queries.connections import describe_error
    from queries.matviews import RefreshRefused

    try:
        with admin_connection(target.admin_url, settings) as conn:
            return Loaded(fn(conn))
    except RefreshRefused as exc:
        return Loaded(problem=DatabaseProblem("refused", str(exc)))
    except statements.ExplainError as exc:
        return Loaded(problem=DatabaseProblem("explain", str(exc)))
    except DatabaseProblem as exc:
        return Loaded(problem=exc)
    except psycopg.Error as exc:
        return Loaded(problem=describe_error(exc))


def refresh_matview(target: Target, settings: Settings, schema: str, name: str,
                    allow_blocking: bool) -> Loaded:
    from queries import matviews

    return _admin_action(target, settings, lambda conn: matviews.refresh(
        conn, settings, actor=actor(), target=target.name, schema=schema, name=name,
        allow_blocking=allow_blocking))


def refresh_stale(target: Target, settings: Settings, allow_blocking: bool) -> Loaded:
    from queries import matviews

    return _admin_action(target, settings, lambda conn: matviews.refresh_stale(
        conn, settings, actor=actor(), target=target.name,
        max_age_minutes=settings.matview_max_age_minutes, allow_blocking=allow_blocking))


def install_event_trigger(target: Target, settings: Settings) -> Loaded:
    from queries import matviews

    return _admin_action(target, settings, lambda conn: matviews.install_event_trigger(
        conn, settings, actor=actor(), target=target.name))


def run_migrations(target: Target, settings: Settings, direction: str, until: str | None,
                   progress) -> Loaded:
    """Apply (up to a version) or roll back (to a version, or the last one)."""
    from queries import migrations

    try:
        found = migrations.discover(migrations.migrations_dir(settings))
        with admin_connection(target.admin_url, settings) as conn:
            if direction == "apply":
                return Loaded(migrations.apply(conn, settings, found, actor=actor(),
                                               target=target.name, dsn=target.admin_url,
                                               up_to=until, progress=progress))
            return Loaded(migrations.rollback(conn, settings, found, actor=actor(),
                                              target=target.name, dsn=target.admin_url,
                                              to=until, progress=progress))
    except migrations.MigrationError as exc:
        return Loaded(problem=DatabaseProblem("migration", str(exc)))
    except DatabaseProblem as exc:
        return Loaded(problem=exc)


def take_snapshot(target: Target, settings: Settings) -> Loaded:
    """A snapshot now (DBA): stored in the history database, pruned by the retention."""
    from queries import snapshots
    from queries.redis_cache import RedisProblem
    from queries.roles import PermissionDenied

    try:
        return Loaded(snapshots.snapshot_target(target, settings, actor()))
    except PermissionDenied as exc:
        return Loaded(problem=DatabaseProblem("refused", str(exc)))
    except (DatabaseProblem, RedisProblem) as exc:
        return Loaded(problem=exc)
