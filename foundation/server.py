"""Who the server is: version, uptime, database size, when statistics were last reset."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg


@dataclass
class ServerIdentity:
    version: str                 # e.g. "18.6"
    version_num: int             # e.g. 180006
    full_version: str
    database: str
    database_size_bytes: int | None  # read only when asked: it visits every file
    started_at: datetime
    now: datetime
    stats_reset: datetime | None  # pg_stat_database.stats_reset of this database
    in_recovery: bool

    @property
    def uptime(self) -> timedelta:
        return self.now - self.started_at

    @property
    def stats_age(self) -> timedelta | None:
        return None if self.stats_reset is None else self.now - self.stats_reset

    def stats_window(self) -> str:
        """Since when the cumulative statistics count, in words.

        >>> start, now = datetime(2026, 11, 20, 8, 0), datetime(2026, 11, 22, 8, 0)
        >>> ServerIdentity("18.6", 180006, "", "db", 0, start, now, None, False).stats_window()
        'since 2026-11-20 08:00 (server start) or before: no reset is recorded, and PostgreSQL 15 and later keep statistics across clean restarts'
        >>> ServerIdentity("14.9", 140009, "", "db", 0, start, now, None, False).stats_window()
        'since 2026-11-20 08:00 (server start; no reset is recorded)'
        >>> ServerIdentity("18.6", 180006, "", "db", 0, start, now, now, False).stats_window()
        'since 2026-11-22 08:00 (last reset)'
        """
        if self.stats_reset is not None:
            return f"since {self.stats_reset:%Y-%m-%d %H:%M} (last reset)"
        start = f"{self.started_at:%Y-%m-%d %H:%M}"
        if self.version_num >= 150000:
            return (f"since {start} (server start) or before: no reset is recorded, and "
                    "PostgreSQL 15 and later keep statistics across clean restarts")
        return f"since {start} (server start; no reset is recorded)"


# pg_database_size() visits every file of the database: 1.3 ms on the small demo, tens of
# milliseconds on a catalogue of tens of thousands of relations
DATABASE_SIZE = "pg_database_size(current_database())"


def server_identity(conn: psycopg.Connection, with_size: bool = False) -> ServerIdentity:
    """With `with_size`, also the database's size (DATABASE_SIZE)."""
    size = DATABASE_SIZE if with_size else "NULL::bigint"
    row = conn.execute(
        f"""
        SELECT current_setting('server_version')               AS version,
               current_setting('server_version_num')::int      AS version_num,
               version()                                       AS full_version,
               current_database()                              AS database,
               {size}                                          AS database_size_bytes,
               pg_postmaster_start_time()                      AS started_at,
               now()                                           AS now,
               d.stats_reset                                   AS stats_reset,
               pg_is_in_recovery()                             AS in_recovery
        FROM pg_stat_database d
        WHERE d.datname = current_database()
        """).fetchone()
    version, *rest = row
    return ServerIdentity(version.split()[0], *rest)


def database_size(conn: psycopg.Connection) -> int:
    """The database's size on disk in bytes (DATABASE_SIZE)."""
    return conn.execute(f"SELECT {DATABASE_SIZE}").fetchone()[0]


def login_roles(conn: psycopg.Connection) -> list[str]:
    """Roles that can log in: the choices of the slow-query page's role filter."""
    return sorted(r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolcanlogin"))


def connectable_databases(conn: psycopg.Connection) -> list[str]:
    """Databases that accept connections: the choices of the database filter."""
    return sorted(r[0] for r in conn.execute(
        "SELECT datname FROM pg_database WHERE datallowconn"))


# A server's page size is fixed when it is built: read once per connection, not by each of
# the three reads of a run of the checks that need it
_block_sizes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def block_size(conn: psycopg.Connection) -> int:
    """The server's page size, passed to catalogue queries as a number: current_setting() in a
    query is called again for every row."""
    size = _block_sizes.get(conn)
    if size is None:
        size = _block_sizes[conn] = int(
            conn.execute("SELECT current_setting('block_size')").fetchone()[0])
    return size
