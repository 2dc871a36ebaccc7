"""The two connections of DESIGN.md, and errors that say what went wrong and how to fix it.

- monitoring: read-only session, short statement and lock timeouts, application_name
  "dbpulse-monitor" so DB Pulse's own statements can be told apart in pg_stat_statements;
- admin: for DBA actions only, application_name "dbpulse-admin", its own lock timeout.

This module knows nothing about Streamlit: the CLI, the tests and the pages all use it.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg import conninfo, sql

from foundation.config import Settings
from foundation.problems import Problem
from foundation.secrets import redact_text

MONITOR_APPLICATION_NAME = "dbpulse-monitor"
ADMIN_APPLICATION_NAME = "dbpulse-admin"
PLAN_APPLICATION_NAME = "dbpulse-plan"  # foundation/plan_login.py
OWN_APPLICATION_PREFIX = "dbpulse"
# Every statement DB Pulse sends ends with this comment. pg_stat_statements keeps a trailing
# comment in the text it stores (a leading one is cut off with the whitespace before the first
# token; neither changes the queryid), so DB Pulse can hide its own statements.
OWN_STATEMENT_TAG = "/* dbpulse */"


def _tagged(query):
    """query with OWN_STATEMENT_TAG appended, in whichever form psycopg was given it."""
    tag = "\n" + OWN_STATEMENT_TAG
    if isinstance(query, str):
        return query + tag
    if isinstance(query, sql.Composable):
        return query + sql.SQL(tag)
    if isinstance(query, bytes):
        return query + tag.encode()
    return query


class TaggedConnection(psycopg.Connection):
    """A connection that appends OWN_STATEMENT_TAG to every statement."""

    def execute(self, query, params=None, **kwargs):
        return super().execute(_tagged(query), params, **kwargs)

    def _exec_command(self, command, *args, **kwargs):
        # psycopg's own statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE of
        # conn.transaction()) tagged too: untagged, pg_stat_statements listed them as the
        # application's, and their calls counted in its figures (psycopg's internal hook:
        # test_connections checks that the tag still reaches them)
        return super()._exec_command(_tagged(command), *args, **kwargs)


class DatabaseProblem(Problem):
    """A database could not be used; kind: bad_dsn | unreachable | auth | no_database |
    timeout | privilege | read_only | history | error."""


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return redact_text(dsn)
    host = parts.get("host", "localhost")
    return f"{parts.get('user', '?')}@{host}:{parts.get('port', 5432)}/{parts.get('dbname', '?')}"


def describe_error(exc: Exception, dsn: str = "") -> DatabaseProblem:
    """Turn a psycopg exception into a DatabaseProblem with a way out."""
    where = f" ({redact(dsn)})" if dsn else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if isinstance(exc, DatabaseProblem):
        return exc
    if isinstance(exc, psycopg.ProgrammingError) and ("conninfo" in lowered or "invalid dsn" in lowered
                                                      or "missing \"=\"" in lowered
                                                      or "invalid connection option" in lowered
                                                      or "invalid uri" in lowered):
        return DatabaseProblem("bad_dsn", f"The database URL is malformed: {text}",
                               "Use the form postgresql://user:password@host:5432/dbname.")
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return DatabaseProblem("auth", f"Authentication failed{where}.",
                               "Check the user name and password in the database URL.")
    if re.search(r"role \".*\" does not exist", lowered):
        return DatabaseProblem("auth", f"The database user does not exist{where}.",
                               "Check the user name in the database URL.")
    if re.search(r"database \".*\" does not exist", lowered):
        return DatabaseProblem("no_database", f"The database does not exist{where}.",
                               "Check the database name at the end of the database URL.")
    if isinstance(exc, psycopg.errors.QueryCanceled) or "statement timeout" in lowered:
        return DatabaseProblem("timeout", f"A query took longer than the time limit{where}.",
                               "The server is busy or the catalogue is large; try again, or raise "
                               "DBPULSE_STATEMENT_TIMEOUT_MS.")
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return DatabaseProblem("timeout", f"Could not get a lock in time{where}: {text}",
                               "Another session holds a conflicting lock; try again later.")
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return DatabaseProblem("read_only", f"Refused: the monitoring session is read-only{where}.",
                               "Writes go through DBA actions on the admin connection.")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        # PostgreSQL names the object in the message; the hint says what DB Pulse expects
        # without guessing which grant is missing
        return DatabaseProblem("privilege", f"Permission denied{where}: {text}",
                               "DB Pulse's monitoring role needs pg_monitor and CONNECT (README, "
                               "\"A monitoring role\"); DB Pulse's own schema becomes readable "
                               "to it when a DBA runs `.venv/bin/python cli.py schema install`.")
    if isinstance(exc, psycopg.OperationalError):
        if "timeout expired" in lowered:
            return DatabaseProblem("unreachable", f"The database did not answer in time{where}.",
                                   "Check host, port and firewall, and that the server is up.")
        return DatabaseProblem("unreachable", f"Cannot connect to the database{where}: {text}",
                               "Check that the server is running and the host and port are right.")
    return DatabaseProblem("error", f"Database error{where}: {text}", "")


def _connect(dsn: str, settings: Settings, application_name: str) -> psycopg.Connection:
    try:
        conninfo.conninfo_to_dict(dsn)
        return TaggedConnection.connect(dsn, connect_timeout=settings.connect_timeout_s,
                                        application_name=application_name, autocommit=True)
    except Exception as exc:  # psycopg raises several kinds; all become one DatabaseProblem
        raise describe_error(exc, dsn) from exc


def open_monitoring(dsn: str, settings: Settings) -> psycopg.Connection:
    conn = _connect(dsn, settings, MONITOR_APPLICATION_NAME)
    try:
        # SET rather than startup options, so it also works through poolers that drop options.
        conn.execute("SELECT set_config('default_transaction_read_only', 'on', false), "
                     "set_config('statement_timeout', %s, false), "
                     "set_config('lock_timeout', %s, false), "
                     "set_config('idle_in_transaction_session_timeout', '60s', false)",
                     (str(settings.statement_timeout_ms), str(settings.lock_timeout_ms)))
    except Exception as exc:
        conn.close()
        raise describe_error(exc, dsn) from exc
    return conn


def open_admin(dsn: str, settings: Settings) -> psycopg.Connection:
    conn = _connect(dsn, settings, ADMIN_APPLICATION_NAME)
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, false), "
                     "set_config('lock_timeout', %s, false)",
                     (str(settings.admin_statement_timeout_ms), str(settings.admin_lock_timeout_ms)))
    except Exception as exc:
        conn.close()
        raise describe_error(exc, dsn) from exc
    return conn


def open_plan(dsn: str, settings: Settings) -> psycopg.Connection:
    """The plan login's connection: autocommit, tagged; each plan sets its own limits."""
    return _connect(dsn, settings, PLAN_APPLICATION_NAME)


@contextmanager
def monitoring_connection(dsn: str, settings: Settings) -> Iterator[psycopg.Connection]:
    conn = open_monitoring(dsn, settings)
    try:
        yield conn
    except psycopg.Error as exc:
        raise describe_error(exc, dsn) from exc
    finally:
        conn.close()


@contextmanager
def admin_connection(dsn: str, settings: Settings) -> Iterator[psycopg.Connection]:
    conn = open_admin(dsn, settings)
    try:
        yield conn
    finally:
        conn.close()


def _alive(conn: psycopg.Connection) -> bool:
    """A pooled connection still answers (one round trip): after a server restart an idle
    connection looks fine until it is used."""
    if conn.closed or conn.broken:
        return False
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        conn.close()
        return False


class MonitoringPool:
    """Keeps a few monitoring connections alive between page views: a new connection's first
    catalogue queries are several times slower (its relation cache is cold), and connecting
    costs a round trip or a TLS handshake each time."""

    def __init__(self, dsn: str, settings: Settings, max_idle: int = 4):
        self.dsn, self.settings, self.max_idle = dsn, settings, max_idle
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and not _alive(conn):
            self.close()  # the server restarted or dropped us: every idle one is dead too
            conn = None
        if conn is None:
            conn = open_monitoring(self.dsn, self.settings)
        healthy = False
        try:
            yield conn
            healthy = True
        except psycopg.Error as exc:
            raise describe_error(exc, self.dsn) from exc
        finally:
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if healthy and idle and not conn.closed and not conn.broken:
                with self._lock:
                    if len(self._idle) < self.max_idle:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._idle:
                conn.close()
            self._idle.clear()
