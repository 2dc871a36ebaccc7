"""What runs now: long-running statements, blocked sessions, connections against the limit."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from queries.connections import OWN_APPLICATION_PREFIX
from queries.frames import to_frame


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
    return frame


def long_running(frame: pd.DataFrame, min_seconds: float) -> pd.DataFrame:
    active = frame[((frame["state"] != "idle") & ~frame["own"]).astype(bool)]
    return active[active["query_seconds"].astype(float) >= min_seconds]


def idle_in_transaction(frame: pd.DataFrame, min_seconds: float) -> pd.DataFrame:
    idle = frame[frame["state"].fillna("").str.startswith("idle in transaction").astype(bool)]
    return idle[idle["transaction_seconds"].astype(float) >= min_seconds]


def blocked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["blocked_by"].map(lambda pids: bool(pids)).astype(bool)]


@dataclass
class ConnectionUse:
    used: int
    max_connections: int
    reserved: int   # superuser_reserved_connections (+ reserved_connections on 16+)

    @property
    def available(self) -> int:
        return self.max_connections - self.reserved

    @property
    def share(self) -> float:
        return self.used / max(self.available, 1)


def connection_use(conn: psycopg.Connection) -> ConnectionUse:
    used, max_conn, reserved = conn.execute("""
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
               current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
                 + coalesce(current_setting('reserved_connections', true)::int, 0)
        """).fetchone()
    return ConnectionUse(used, max_conn, reserved)
