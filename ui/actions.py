"""Uncached calls the pages make on request: statement detail and EXPLAIN (reads), and the DBA
actions of operations/actions.py, whose problems (a refusal included) come back as the Loaded's
problem like any other failure."""

from __future__ import annotations

from foundation import capabilities
from foundation.config import Settings, Target
from foundation.connections import DatabaseProblem
from foundation.roles import Actor
from operations import actions
from reads import statements
from reads.redis_cache import RedisProblem
from ui.loaders import Loaded, _load


def _outcome(fn, *args, **kwargs) -> Loaded:
    try:
        return Loaded(fn(*args, **kwargs))
    except DatabaseProblem as exc:
        return Loaded(problem=exc)


def statement_detail(target: Target, settings: Settings, queryid: int, userid: int,
                     dbid: int) -> Loaded:
    def load(conn):
        ext = capabilities.detect(conn).extension("pg_stat_statements")
        return statements.statement_detail(conn, ext, queryid, userid, dbid)
    return _load(target.database_url, settings, load)


def explain_generic(who: Actor, query: str, run_as: int) -> Loaded:
    return _outcome(actions.explain_generic, who, query, run_as)


def what_if(who: Actor, query: str, candidate: str, run_as: int) -> Loaded:
    return _outcome(actions.what_if, who, query, candidate, run_as)


def explain_analyze(who: Actor, query: str, params: list, run_as: int) -> Loaded:
    return _outcome(actions.explain_analyze, who, query, params, run_as)


def exact_bloat(who: Actor, schema: str, name: str, is_index: bool,
                extension_schema: str) -> Loaded:
    return _outcome(actions.measure_bloat, who, schema, name, is_index, extension_schema)


def end_session(who: Actor, pid: int, terminate: bool) -> Loaded:
    return _outcome(actions.end_session, who, pid, terminate)


def refresh_matview(who: Actor, schema: str, name: str, allow_blocking: bool) -> Loaded:
    return _outcome(actions.refresh_view, who, schema, name, allow_blocking)


def schedule_refresh(who: Actor, schema: str, name: str, expression: str,
                     allow_blocking: bool) -> Loaded:
    return _outcome(actions.schedule_refresh, who, schema, name, expression, allow_blocking)


def pause_schedule(who: Actor, schema: str, name: str, active: bool) -> Loaded:
    return _outcome(actions.pause_schedule, who, schema, name, active)


def remove_schedule(who: Actor, schema: str, name: str) -> Loaded:
    return _outcome(actions.remove_schedule, who, schema, name)


def refresh_stale(who: Actor, allow_blocking: bool) -> Loaded:
    return _outcome(actions.refresh_stale, who, allow_blocking)


def install_event_trigger(who: Actor) -> Loaded:
    return _outcome(actions.install_event_trigger, who)


def run_migrations(who: Actor, direction: str, until: str | None, progress) -> Loaded:
    """Apply (up to a version) or roll back (to a version, or the last one)."""
    return _outcome(actions.migrate, who, direction, until, progress)


def take_snapshot(who: Actor) -> Loaded:
    """A snapshot now (DBA): stored in the history database, pruned by the retention."""

    try:
        return _outcome(actions.take_snapshot, who)
    except RedisProblem as exc:
        return Loaded(problem=exc)


def send_test_alert(who: Actor, config: dict) -> Loaded:
    return _outcome(actions.send_test_alert, who, config)
