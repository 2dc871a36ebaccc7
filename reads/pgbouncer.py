"""PgBouncer, read from its admin console (the `pgbouncer` database) as one of its stats_users:
per pool the clients served and waiting, the server connections in use against the pool size,
the longest wait. The plan's KPI: pool utilisation under 70 % at peak."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from foundation.columns import Column
from foundation.config import Settings
from foundation.connections import DatabaseProblem, describe_error

# the plan: "connection pool < 70 % utilization at peak"
POOL_TARGET = 0.70


NOT_A_STATS_USER = ("The pooler URL's user must be in PgBouncer's stats_users (or "
                    "admin_users), and its database must be pgbouncer.")


def connect(url: str, settings: Settings) -> psycopg.Connection:
    """The console speaks only the simple query protocol: a client-side cursor, autocommit."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=settings.connect_timeout_s,
                               cursor_factory=psycopg.ClientCursor)
    except psycopg.Error as exc:
        if "not allowed" in str(exc):  # PgBouncer's answer to a user without console rights
            raise DatabaseProblem("privilege", f"PgBouncer refused its console: {exc}",
                                  NOT_A_STATS_USER) from exc
        raise describe_error(exc, url) from exc


def _show(conn: psycopg.Connection, what: str) -> pd.DataFrame:
    cur = conn.execute(f"SHOW {what}")
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


@dataclass
class PoolerState:
    pools: pd.DataFrame          # one row per database/user pool, the fullest first
    waiting_clients: int
    longest_wait_s: float
    utilisation: float | None    # the fullest pool's server connections in use / its size

    def state(self, target: float = POOL_TARGET) -> str:
        if self.utilisation is None:
            return "grey"
        if self.waiting_clients and self.longest_wait_s >= 1:
            return "red"
        return "amber" if self.utilisation >= target else "green"


def pooler_state(conn: psycopg.Connection) -> PoolerState:
    """SHOW POOLS against SHOW DATABASES' pool sizes (the console's own database left out)."""
    pools = _show(conn, "POOLS")
    sizes = _show(conn, "DATABASES")[["name", "pool_size"]].rename(columns={"name": "database"})
    pools = pools[pools["database"] != "pgbouncer"].merge(sizes, on="database", how="left")
    if pools.empty:
        return PoolerState(pools, 0, 0.0, None)
    pools["in_use"] = pools["sv_active"].astype(int)
    pools["utilisation"] = pools["in_use"] / pools["pool_size"].where(pools["pool_size"] > 0)
    pools["wait_s"] = pools["maxwait"].astype(float) + pools.get(
        "maxwait_us", pd.Series(0, index=pools.index)).astype(float) / 1e6
    pools = pools.sort_values(["utilisation", "cl_waiting"], ascending=False,
                              ignore_index=True)
    return PoolerState(pools[["database", "user", "pool_mode", "cl_active", "cl_waiting",
                              "in_use", "sv_idle", "pool_size", "utilisation", "wait_s"]],
                       int(pools["cl_waiting"].astype(int).sum()), float(pools["wait_s"].max()),
                       float(pools["utilisation"].max()))


def read(url: str, settings: Settings) -> PoolerState:
    conn = connect(url, settings)
    try:
        return pooler_state(conn)
    except psycopg.Error as exc:
        raise DatabaseProblem("error", f"PgBouncer's console could not be read: {exc}",
                              NOT_A_STATS_USER) from exc
    finally:
        conn.close()


POOL_COLUMNS = {
    "database": Column("Database", pinned=True), "user": Column("User"),
    "pool_mode": Column("Mode", width="small"),
    "cl_active": Column("Clients served", "count"),
    "cl_waiting": Column("Clients waiting", "count",
                         help="Clients with a query and no server connection: the pool is full"),
    "in_use": Column("Server connections in use", "count"),
    "sv_idle": Column("Idle server connections", "count"),
    "pool_size": Column("Pool size", "count"),
    "utilisation": Column("Utilisation", "percent", digits=0,
                          help="Server connections in use of the pool size; the plan wants it "
                               "under 70 % at peak"),
    "wait_s": Column("Longest wait", "number", unit="s", digits=2),
}
