"""What runs now: long-running statements, blocked sessions, connections against the limit."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from foundation.columns import DATABASE, ROLE, Column
from foundation.connections import OWN_APPLICATION_PREFIX
from foundation.frames import to_frame
from foundation.identifiers import quote_ident
from foundation.looks import read_once
from foundation.roles import ActionError, Actor

# The wait events a DBA meets most, in a line each (the rest: the PostgreSQL manual's table
# "Wait Events", by type and name)
WAIT_EVENTS = {
    ("Client", "ClientRead"): "the application's next command: idle, holding whatever "
                              "its transaction locked",
    ("Client", "ClientWrite"): "the application to read a result it was sent",
    ("Lock", "transactionid"): "another transaction to end: it changed a row this one wants",
    ("Lock", "tuple"): "a row lock another session holds",
    ("Lock", "relation"): "a table lock another session holds (DDL, LOCK, VACUUM FULL)",
    ("Lock", "advisory"): "an advisory lock the application or a tool took",
    ("IO", "DataFileRead"): "a data page read from disk: not in shared buffers",
    ("IO", "WALSync"): "the WAL to reach disk at commit",
    ("LWLock", "WALWrite"): "its turn to write WAL: many commits at once",
    ("LWLock", "BufferMapping"): "shared buffers' mapping: pages replaced quickly",
    ("LWLock", "LockManager"): "the lock table: many locks taken at once",
    ("IPC", "SyncRep"): "a synchronous standby to confirm the commit",
    ("Timeout", "PgSleep"): "pg_sleep(): the statement sleeps on purpose",
}


def wait_meaning(kind: str | None, event: str | None) -> str:
    """
    >>> wait_meaning("Lock", "transactionid")
    'another transaction to end: it changed a row this one wants'
    >>> wait_meaning(None, None), wait_meaning("IO", "SLRURead")
    ('', 'IO: SLRURead')
    """
    if not event:
        return ""
    return WAIT_EVENTS.get((kind, event), f"{kind}: {event}")


def sessions(conn: psycopg.Connection) -> pd.DataFrame:
    """Client sessions other than this one, with how long their statement or transaction has
    run and who blocks them."""
    cur = conn.execute("""
        SELECT pid, usename AS role_name, datname AS database_name, application_name,
               client_addr::text AS client, state, wait_event_type, wait_event,
               extract(epoch FROM now() - query_start)::float8 AS query_seconds,
               extract(epoch FROM now() - xact_start)::float8  AS transaction_seconds,
               pg_blocking_pids(pid)                   AS blocked_by,
               left(query, 1000)                       AS query
        FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        ORDER BY query_start NULLS LAST
        """)
    frame = to_frame(cur)
    frame["own"] = frame["application_name"].fillna("").str.startswith(
        OWN_APPLICATION_PREFIX).astype(bool)
    frame["waiting_for"] = [wait_meaning(k, e) for k, e in
                            zip(frame["wait_event_type"], frame["wait_event"])]
    return frame


def long_running(frame: pd.DataFrame, min_seconds: float) -> pd.DataFrame:
    active = frame[((frame["state"] != "idle") & ~frame["own"]).astype(bool)]
    return active[active["query_seconds"].astype(float) >= min_seconds]


def idle_in_transaction(frame: pd.DataFrame, min_seconds: float) -> pd.DataFrame:
    idle = frame[frame["state"].fillna("").str.startswith("idle in transaction").astype(bool)]
    return idle[idle["transaction_seconds"].astype(float) >= min_seconds]


def blocked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["blocked_by"].map(lambda pids: bool(pids)).astype(bool)]


def blocking_tree(frame: pd.DataFrame) -> pd.DataFrame:
    """Who blocks whom, root blockers first: one row per session that blocks another or is
    blocked, with its depth (0: blocks others and waits for nobody), what it waits for, since
    when, its statement, the sessions it blocks directly, and the statement that ends the
    block (end_sql). Blocked sessions are ordered under their blocker."""
    columns = ["depth", "pid", "state", "role_name", "transaction_seconds", "query_seconds",
               "waits_for", "blocks", "query", "end_sql"]
    waits = {int(p): [int(b) for b in bs] for p, bs in zip(frame["pid"], frame["blocked_by"])
             if bs is not None and len(bs)}
    if not waits:
        return pd.DataFrame(columns=columns)  # the usual case: nobody waits
    blocks: dict[int, list[int]] = {}
    for pid, blockers in waits.items():
        for b in blockers:
            blocks.setdefault(b, []).append(pid)
    rows = frame.set_index("pid")
    ordered, seen = [], set()

    def visit(pid: int, depth: int) -> None:
        if pid in seen:
            return  # a lock cycle: the deadlock detector ends it
        seen.add(pid)
        ordered.append((pid, depth))
        for child in sorted(blocks.get(pid, [])):
            visit(child, depth + 1)

    for root in sorted(p for p in blocks if not waits.get(p)):
        visit(root, 0)
    for pid in sorted(set(blocks) | {p for p, w in waits.items() if w}):
        visit(pid, 0)  # blockers themselves blocked in a cycle, or not visible to this role
    out = []
    for pid, depth in ordered:
        known = pid in rows.index
        r = rows.loc[pid] if known else None
        state = r["state"] if known else None
        out.append({"depth": depth, "pid": pid,
                    "state": state if isinstance(state, str) else "unknown",
                    "role_name": r["role_name"] if known else None,
                    "transaction_seconds": r["transaction_seconds"] if known else None,
                    "query_seconds": r["query_seconds"] if known else None,
                    "waits_for": waits.get(pid, []), "blocks": sorted(blocks.get(pid, [])),
                    "query": r["query"] if known else None,
                    "end_sql": end_session_sql(pid, state) if blocks.get(pid) else ""})
    return pd.DataFrame(out, columns=columns)


def end_session_sql(pid: int, state: str | None) -> str:
    """What ends a session's hold on its locks. Cancelling stops the running statement; a
    session idle in a transaction runs none, so only terminating it releases its locks.

    >>> end_session_sql(7, "active")
    'SELECT pg_cancel_backend(7);  -- cancels its statement; if the block stays, pg_terminate_backend(7)'
    >>> end_session_sql(8, "idle in transaction")
    'SELECT pg_terminate_backend(8);  -- idle in a transaction: cancelling would not release its locks; this rolls it back'
    """
    if isinstance(state, str) and state.startswith("idle"):
        return (f"SELECT pg_terminate_backend({pid});  -- idle in a transaction: cancelling "
                "would not release its locks; this rolls it back")
    return (f"SELECT pg_cancel_backend({pid});  -- cancels its statement; if the block stays, "
            f"pg_terminate_backend({pid})")


@dataclass
class ConnectionUse:
    used: int
    max_connections: int
    reserved: int   # superuser_reserved_connections (+ reserved_connections on 16+)
    own: int = 0    # DB Pulse's own connections among those used

    @property
    def available(self) -> int:
        return self.max_connections - self.reserved

    @property
    def share(self) -> float:
        return self.used / max(self.available, 1)


@read_once
def connection_use(conn: psycopg.Connection) -> ConnectionUse:
    used, max_conn, reserved, own = conn.execute("""
        SELECT count(*),
               current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
                 + coalesce(current_setting('reserved_connections', true)::int, 0),
               count(*) FILTER (WHERE application_name LIKE %s)
        FROM pg_stat_activity WHERE backend_type = 'client backend'
        """, (OWN_APPLICATION_PREFIX + "%",)).fetchone()
    return ConnectionUse(used, max_conn, reserved, own)


def store_use(history: psycopg.Connection, source: str, at, use: ConnectionUse) -> None:
    history.execute("INSERT INTO dbpulse.connection_samples (source, taken_at, in_use, own, "
                    "max_connections, reserved) VALUES (%s, %s, %s, %s, %s, %s)",
                    (source, at, use.used, use.own, use.max_connections, use.reserved))


@dataclass
class PeakUse:
    share: float         # the application's connections over those available, at the peak
    used: int
    available: int
    at: object           # when
    samples: int


def peak_use(history: psycopg.Connection, source: str, start, end) -> PeakUse | None:
    """The largest share of the available connections the application (DB Pulse's own left
    out) held in [start, end), from the agent's samples; None without samples (or before the
    agent's first)."""
    if not history.execute("SELECT to_regclass('dbpulse.connection_samples') IS NOT NULL"
                           ).fetchone()[0]:
        return None
    row = history.execute("""
        SELECT (in_use - own)::float8 / greatest(max_connections - reserved, 1), in_use - own,
               max_connections - reserved, taken_at, count(*) OVER ()
        FROM dbpulse.connection_samples
        WHERE source = %s AND taken_at >= %s AND taken_at < %s
        ORDER BY 1 DESC, taken_at DESC LIMIT 1""", (source, start, end)).fetchone()
    return None if row is None else PeakUse(*row)


def connections_by_client(conn: psycopg.Connection) -> pd.DataFrame:
    """Client connections grouped by role, application and address, with their states: who
    holds the connections (DB Pulse's own are marked)."""
    return to_frame(conn.execute("""
        SELECT usename AS role_name, application_name,
               coalesce(host(client_addr), 'local socket') AS client,
               count(*) AS connections,
               count(*) FILTER (WHERE state = 'active') AS active,
               count(*) FILTER (WHERE state = 'idle') AS idle,
               count(*) FILTER (WHERE state LIKE 'idle in transaction%%') AS idle_in_transaction,
               extract(epoch FROM now() - min(backend_start)) AS oldest_seconds,
               application_name LIKE %s AS own
        FROM pg_stat_activity
        WHERE backend_type = 'client backend'
        GROUP BY usename, application_name, client_addr
        ORDER BY connections DESC, role_name""", (OWN_APPLICATION_PREFIX + "%",)))


def connection_limits(conn: psycopg.Connection) -> pd.DataFrame:
    """Every login role and database with a connection limit of its own (CONNECTION LIMIT),
    with the client connections it holds: at its limit the next one is refused, however many
    max_connections leaves."""
    return to_frame(conn.execute("""
        SELECT 'role' AS kind, r.rolname AS name, r.rolconnlimit AS connection_limit,
               (SELECT count(*) FROM pg_stat_activity a
                WHERE a.usesysid = r.oid AND a.backend_type = 'client backend') AS connections
        FROM pg_roles r WHERE r.rolcanlogin AND r.rolconnlimit >= 0
        UNION ALL
        SELECT 'database', d.datname, d.datconnlimit,
               (SELECT count(*) FROM pg_stat_activity a
                WHERE a.datid = d.oid AND a.backend_type = 'client backend')
        FROM pg_database d WHERE d.datallowconn AND d.datconnlimit >= 0
        ORDER BY 4 DESC, 2"""))


def raise_limit_sql(kind: str, name: str, limit: int) -> str:
    """
    >>> raise_limit_sql("role", "app", 10)
    'ALTER ROLE app CONNECTION LIMIT 20;  -- or fewer connections: a pooler in front'
    """
    what = "ROLE" if kind == "role" else "DATABASE"
    return (f"ALTER {what} {quote_ident(name)} CONNECTION LIMIT {max(2 * limit, limit + 1)};"
            "  -- or fewer connections: a pooler in front")


class SessionGone(ActionError):
    """The session to cancel or terminate is no longer there (or is not a client session)."""

    kind = "gone"


def end_session(admin_conn: psycopg.Connection, who: Actor, pid: int, terminate: bool) -> str:
    """Cancel a session's statement or terminate the session (DBA action). Checked again at
    the moment of the action: the pid must still be a client backend other than this one."""
    who.require_dba("Terminating a session" if terminate else "Cancelling a statement")
    row = admin_conn.execute("""
        SELECT state FROM pg_stat_activity
        WHERE pid = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()""",
                             (pid,)).fetchone()
    if row is None:
        raise SessionGone(f"session {pid} is gone (or is not a client session): nothing done")
    function = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    done = admin_conn.execute(f"SELECT {function}(%s)", (pid,)).fetchone()[0]
    if not done:
        raise SessionGone(f"{function}({pid}) returned false: the session ended meanwhile")
    return (f"terminated session {pid} (its transaction rolled back)" if terminate
            else f"cancelled the statement of session {pid} (it was {row[0]})")


# How these frames are shown (ui/tables.py)
SESSION_COLUMNS = {
    "pid": Column("Session", width="small", pinned=True),
    "state": Column("State", width="small"),
    "role_name": ROLE, "database_name": DATABASE,
    "application_name": Column("Application"), "client": Column("Client", missing="local"),
    "waiting_for": Column("Waiting for", width="medium",
                          help="The session's wait event, in words (its name when rare)"),
    "query_seconds": Column("Statement running", "number", unit="s", digits=0),
    "transaction_seconds": Column("Transaction open", "number", unit="s", digits=0),
    "blocked_by": Column("Blocked by", "list"),
    "query": Column("Statement", width="large"),
}
BLOCKING_COLUMNS = {
    "session": Column("Session", pinned=True, help="Root blockers first, each followed by the "
                                                  "sessions waiting for it"),
    "state": Column("State", width="small"), "role_name": ROLE,
    "transaction_seconds": Column("Transaction open", "number", unit="s", digits=0),
    "waits_for": Column("Waits for", "list"), "blocks": Column("Blocks", "list"),
    "query": Column("Statement", explains=True), "end_sql": Column("Ends it", explains=True),
}
LIMIT_COLUMNS = {
    "kind": Column("Limit on", width="small"), "name": Column("Name", pinned=True),
    "connections": Column("Connections", "count"),
    "connection_limit": Column("Its limit", "count", help="CONNECTION LIMIT of the role or "
                               "database: the next connection past it is refused"),
}
CONNECTION_COLUMNS = {
    "role_name": Column("Role", pinned=True), "application_name": Column("Application"),
    "client": Column("Client address"), "connections": Column("Connections", "count"),
    "active": Column("Active", "count"), "idle": Column("Idle", "count"),
    "idle_in_transaction": Column("Idle in transaction", "count"),
    "oldest_seconds": Column("Oldest", "number", unit="s", digits=0,
                             help="Age of the oldest of these connections"),
    "own": Column("DB Pulse", "flag", help="DB Pulse's own connections"),
}
