"""One agent per target database. The agent holds an advisory lock for every target it watches,
for as long as it runs; a second agent is refused the target, and takes it over when the first
one's session goes.

The locks of all the targets of one server are held in one session, in the server's lock
database (the setting `agent_lock_database`, "postgres" unless set), keyed by the target
database's OID: 200 databases on one server cost one idle session, not 200 (which was past
`max_connections` on a default server). A login that may not connect to that database holds
each target's lock in the target's own database instead, one session per target; every agent on
that login does the same, so they still exclude each other."""

from __future__ import annotations

from typing import Callable

import psycopg
from psycopg import conninfo

from foundation.config import Settings, Target

AGENT_LOCK_KEY = 0x44425041  # "DBPA"; the second key is the target database's OID
APPLICATION_NAME = "dbpulse-agent-lock"


class AlreadyRunning(RuntimeError):
    pass


def _server(url: str) -> str:
    """The URL with no database: every target of one server and login shares it.

    >>> _server("postgresql://mon@db:5432/a") == _server("postgresql://mon@db:5432/b")
    True
    """
    parts = conninfo.conninfo_to_dict(url)
    parts.pop("dbname", None)
    return conninfo.make_conninfo(**parts)


class Locks:
    """The agent's lock sessions: one per server, or one per target where the lock database
    cannot be reached by the login."""

    def __init__(self, settings: Settings, log: Callable[[str], None] = print):
        self.settings = settings
        self.log = log
        self.sessions: dict[str, psycopg.Connection] = {}  # server (or target URL) -> session
        self.held: dict[str, set[int]] = {}                 # the same key -> OIDs locked
        self.own_database: set[str] = set()  # servers whose lock database this login cannot use

    def take(self, target: Target) -> None:
        """Hold the target's lock (kept if held already). AlreadyRunning when another agent
        holds it; psycopg.OperationalError when the server cannot be reached."""
        key, conn, reused = self._session(target)
        try:
            self._lock(key, conn, target)
        except psycopg.OperationalError:
            if not (conn.broken or conn.closed):
                raise
            self._drop(key)  # its locks went with it
            if not reused:
                raise
            key, conn, _ = self._session(target)  # the server dropped it (restarted): anew
            self._lock(key, conn, target)

    def _lock(self, key: str, conn: psycopg.Connection, target: Target) -> None:
        name = target.database_name
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if row is None:
            raise psycopg.OperationalError(f"database {name} does not exist")
        oid = row[0]
        if oid in self.held[key]:
            return
        if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                            (AGENT_LOCK_KEY, oid)).fetchone()[0]:
            raise AlreadyRunning(f"another agent already runs on target {target.name}"
                                 + self._holder(conn, oid))
        self.held[key].add(oid)

    def _session(self, target: Target) -> tuple[str, psycopg.Connection, bool]:
        """The session the target's lock is held in, and whether it was open already."""
        server = _server(target.database_url)
        if server in self.own_database:
            key, url = target.database_url, target.database_url
        else:
            key = server
            url = conninfo.make_conninfo(target.database_url,
                                         dbname=self.settings.agent_lock_database)
        conn = self.sessions.get(key)
        if conn is not None and not conn.closed and not conn.broken:
            return key, conn, True
        self._drop(key)
        try:
            conn = self._connect(url)
        except psycopg.OperationalError:
            if key != server:
                raise
            self._connect(target.database_url).close()  # down: raises as it should
            # the server answers, but not in its lock database, for this login
            self.own_database.add(server)
            self.log(f"{target.name}: cannot connect to the lock database "
                     f"{self.settings.agent_lock_database}; the agent's locks on this server "
                     "are held in each target's own database (one session per target)")
            return self._session(target)
        self.sessions[key], self.held[key] = conn, set()
        return key, conn, False

    def _connect(self, url: str) -> psycopg.Connection:
        return psycopg.connect(url, autocommit=True, application_name=APPLICATION_NAME,
                               connect_timeout=self.settings.connect_timeout_s)

    @staticmethod
    def _holder(conn: psycopg.Connection, oid: int) -> str:
        row = conn.execute(
            "SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2",
            (AGENT_LOCK_KEY, oid)).fetchone()
        if row is None:
            return ""
        return (f" (session {row[0]} from {row[1] or 'a local socket'}, "
                f"since {row[2]:%Y-%m-%d %H:%M} UTC)")

    def _drop(self, key: str) -> None:
        conn = self.sessions.pop(key, None)
        self.held.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Let every lock go (as the agent's end does). Released before the sessions close:
        a closed session's backend lets its locks go only when it has exited, a moment later,
        and an agent taking over in that moment would be refused."""
        for key, conn in list(self.sessions.items()):
            if not (conn.closed or conn.broken):
                try:
                    conn.execute("SELECT pg_advisory_unlock_all()")
                except psycopg.Error:
                    pass  # the session is going anyway; its locks go with it
            self._drop(key)
