"""Replication: on a primary, its standbys (state, lag in bytes and seconds, sync state) and its
replication slots (active or not, WAL they hold back, whether it is still there); on a standby,
its own recovery (paused or not, how far behind, the primary it follows, conflicts with
queries). Everything from the statistics views pg_monitor may read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd
import psycopg

from foundation.columns import Column
from foundation.config import Settings
from foundation.connections import DatabaseProblem, monitoring_connection, redact
from foundation.frames import rows, to_frame
from foundation.looks import read_once

# WAL position of "now" on either side: a standby has no current insert position
NOW_LSN = ("CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() "
           "ELSE pg_current_wal_lsn() END")


@read_once
def is_standby(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


@read_once
def standbys(conn: psycopg.Connection) -> pd.DataFrame:
    """The standbys (and other WAL receivers) streaming from this server, most behind first."""
    return to_frame(conn.execute(f"""
        SELECT coalesce(nullif(application_name, ''), 'pid ' || pid)  AS standby,
               host(client_addr)                                     AS client_address,
               state, sync_state,
               pg_wal_lsn_diff({NOW_LSN}, sent_lsn)                  AS sent_lag_bytes,
               pg_wal_lsn_diff({NOW_LSN}, flush_lsn)                 AS flush_lag_bytes,
               pg_wal_lsn_diff({NOW_LSN}, replay_lsn)                AS replay_lag_bytes,
               extract(epoch FROM write_lag)                         AS write_lag_s,
               extract(epoch FROM flush_lag)                         AS flush_lag_s,
               extract(epoch FROM replay_lag)                        AS replay_lag_s,
               reply_time
        FROM pg_stat_replication
        ORDER BY pg_wal_lsn_diff({NOW_LSN}, replay_lsn) DESC NULLS FIRST, 1"""))


def slots(conn: psycopg.Connection) -> pd.DataFrame:
    """Every replication slot with the WAL it holds back from removal, largest first."""
    return to_frame(conn.execute(f"""
        SELECT slot_name, slot_type, database, active, temporary,
               wal_status,
               pg_wal_lsn_diff({NOW_LSN}, restart_lsn)               AS retained_bytes,
               safe_wal_size                                         AS safe_wal_bytes
        FROM pg_replication_slots
        ORDER BY pg_wal_lsn_diff({NOW_LSN}, restart_lsn) DESC NULLS LAST, slot_name"""))


def subscriptions(conn: psycopg.Connection) -> pd.DataFrame:
    """The logical subscriptions of this database: whether their apply worker runs, how long
    since the publisher was last heard, and their errors (PostgreSQL 15+)."""
    errors = ("coalesce(e.apply_error_count, 0) + coalesce(e.sync_error_count, 0)"
              if conn.info.server_version >= 150000 else "NULL::bigint")
    stats = ("LEFT JOIN pg_stat_subscription_stats e ON e.subid = s.oid"
             if conn.info.server_version >= 150000 else "")
    return to_frame(conn.execute(f"""
        SELECT s.subname AS subscription, s.subenabled AS enabled,
               w.pid IS NOT NULL AS receiving,
               extract(epoch FROM now() - w.last_msg_receipt_time) AS heard_s,
               w.latest_end_time, {errors} AS errors
        FROM pg_subscription s
        LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL
        {stats}
        WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY (w.pid IS NULL) DESC, s.subname"""))


@dataclass(frozen=True)
class Recovery:
    """A standby's own view of its replication."""
    paused: bool
    receive_behind_bytes: float | None   # received but not yet replayed
    replay_delay_s: float | None         # since the last replayed transaction's commit
    receiver_status: str | None          # streaming, or why not (None: no WAL receiver)
    primary: str | None                  # host:port it follows, as its receiver says
    conflicts: int                       # queries cancelled by recovery in this database


def recovery(conn: psycopg.Connection) -> Recovery | None:
    """None on a primary."""
    if not is_standby(conn):
        return None
    pause = ("pg_get_wal_replay_pause_state() <> 'not paused'"
             if conn.info.server_version >= 140000 else "pg_is_wal_replay_paused()")
    row = conn.execute(f"""
        SELECT {pause},
               pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
               extract(epoch FROM now() - pg_last_xact_replay_timestamp()),
               (SELECT status FROM pg_stat_wal_receiver),
               (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver),
               (SELECT confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin
                       + confl_deadlock
                FROM pg_stat_database_conflicts WHERE datname = current_database())
        """).fetchone()
    return Recovery(bool(row[0]), row[1], row[2], row[3], row[4], int(row[5] or 0))


def drop_slot_sql(name: str) -> str:
    """
    >>> drop_slot_sql("old_replica")
    "SELECT pg_drop_replication_slot('old_replica');  -- only once its standby or subscriber is gone for good: it cannot resume without the slot"
    """
    literal = "'" + name.replace("'", "''") + "'"
    return (f"SELECT pg_drop_replication_slot({literal});  -- only once its standby or "
            "subscriber is gone for good: it cannot resume without the slot")


@dataclass
class ReplicaScans:
    """What the declared read replicas of a primary add to its index statistics: each one's
    scans per index oid (a physical standby keeps the primary's oids), summed."""
    scans: dict[int, int] = field(default_factory=dict)
    read: list[str] = field(default_factory=list)        # replicas whose scans are in
    recent_reset: list[str] = field(default_factory=list)  # "name: reset at …" (too recent)
    problems: list[str] = field(default_factory=list)    # replicas that could not be read


def replica_scans(primary: psycopg.Connection, replica_urls: tuple[str, ...],
                  settings: Settings, min_age: timedelta) -> ReplicaScans:
    """Read each declared replica on the monitoring login: it must be in recovery and a copy
    of this server (same system identifier, where the login may read it); its statistics
    must reach back min_age, or its zero scans prove nothing yet."""
    found = ReplicaScans()
    if not replica_urls:
        return found
    system_id = _system_identifier(primary)
    for url in replica_urls:
        name = redact(url)
        try:
            with monitoring_connection(url, settings) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    found.problems.append(f"{name} is not a standby (not in recovery)")
                    continue
                other = _system_identifier(conn)
                if system_id is not None and other is not None and other != system_id:
                    found.problems.append(f"{name} is a standby of another server")
                    continue
                now, reset = conn.execute(
                    "SELECT now(), stats_reset FROM pg_stat_database "
                    "WHERE datname = current_database()").fetchone()
                for oid, n in conn.execute("SELECT indexrelid, pg_stat_get_numscans(indexrelid) "
                                           "FROM pg_index"):
                    found.scans[oid] = found.scans.get(oid, 0) + int(n)
        except DatabaseProblem as problem:
            found.problems.append(f"{name} could not be read: {problem.message}")
            continue
        found.read.append(name)
        if reset is not None and now - reset < min_age:
            found.recent_reset.append(f"{name}: its statistics were reset at "
                                      f"{reset:%Y-%m-%d %H:%M}")
    return found


def _system_identifier(conn: psycopg.Connection) -> int | None:
    """pg_control_system()'s identifier, or None where the login may not read it."""
    try:
        with conn.transaction():
            return conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        return None


def standby_names(frame: pd.DataFrame) -> list[str]:
    """The streaming standbys of a standbys() frame, as people know them."""
    return [f"{r.standby} ({r.client_address})" if r.client_address else str(r.standby)
            for r in rows(frame)]


# How these frames are shown (ui/tables.py)
STANDBY_COLUMNS = {
    "standby": Column("Standby", pinned=True, help="Its application_name (primary_conninfo)"),
    "client_address": Column("Address", width="small"),
    "state": Column("State", width="small"),
    "sync_state": Column("Sync", width="small", help="async, sync, quorum or potential"),
    "sent_lag_bytes": Column("Not yet sent", "bytes"),
    "flush_lag_bytes": Column("Not yet on its disk", "bytes"),
    "replay_lag_bytes": Column("Not yet replayed", "bytes",
                               help="WAL the standby has not applied: its reads are this far "
                                    "behind"),
    "replay_lag_s": Column("Replay lag", "number", unit="s", digits=1,
                           help="How long the last replayed commit took to become visible "
                                "there; unknown while nothing is written"),
    "reply_time": Column("Last reply", "time"),
}
SUBSCRIPTION_COLUMNS = {
    "subscription": Column("Subscription", pinned=True), "enabled": Column("Enabled", "flag"),
    "receiving": Column("Worker running", "flag",
                        help="Its apply worker is connected to the publisher"),
    "heard_s": Column("Last heard", "number", unit="s", digits=0,
                      help="Seconds since the last message from the publisher"),
    "latest_end_time": Column("Last confirmed", "time"),
    "errors": Column("Errors", "count", help="Apply and table-sync errors since the "
                     "statistics reset (PostgreSQL 15+)"),
}
SLOT_COLUMNS = {
    "slot_name": Column("Slot", pinned=True), "slot_type": Column("Type", width="small"),
    "database": Column("Database", width="small", help="Logical slots only"),
    "active": Column("In use", "flag"),
    "wal_status": Column("WAL", width="small",
                         help="reserved or extended: kept; unreserved: about to be removed; "
                              "lost: removed, the consumer cannot resume"),
    "retained_bytes": Column("WAL held back", "bytes",
                             help="WAL the server keeps on disk for this slot's consumer"),
    "safe_wal_bytes": Column("Until max_slot_wal_keep_size", "bytes"),
}


def slot_check_rows(frame: pd.DataFrame, max_retained_bytes: int) -> tuple[list, list]:
    """(lost slots, inactive slots over the limit) of a slots() frame."""
    lost = [r.slot_name for r in rows(frame) if r.wal_status == "lost"]
    idle = [r.slot_name for r in rows(frame)
            if not r.active and r.wal_status != "lost"
            and (r.retained_bytes or 0) > max_retained_bytes]
    return lost, idle
