"""The server settings that matter for performance, each with plain advice from what the server
itself shows (temporary files, connection use, I/O timing). DB Pulse cannot see the machine's
memory or disks: where advice depends on them it says so instead of guessing."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from foundation.capabilities import Extension
from foundation.columns import Column
from foundation.format import human_bytes
from foundation.frames import to_frame
from reads import statements

SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
            "random_page_cost", "effective_io_concurrency", "max_connections",
            "track_io_timing", "autovacuum", "autovacuum_max_workers", "autovacuum_naptime",
            "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_cost_limit",
            "checkpoint_completion_target", "max_wal_size", "idle_in_transaction_session_timeout",
            "statement_timeout")


@dataclass(frozen=True)
class Evidence:
    """What the server shows about its own load, the ground for the advice."""
    temp_files: int            # temporary files written since the statistics reset
    temp_bytes: int
    connections_used: int
    max_connections: int
    idle_connections: int
    # what the database's statements in pg_stat_statements wrote to temporary files (bytes):
    # the application's (None where pg_stat_statements cannot be read) and DB Pulse's own
    statements_temp_bytes: int | None = None
    own_temp_bytes: int = 0


def read_settings(conn: psycopg.Connection) -> pd.DataFrame:
    return to_frame(conn.execute("""
        SELECT name, current_setting(name) AS value, unit, boot_val, setting, source,
               pending_restart, context, short_desc
        FROM pg_settings WHERE name = ANY(%s) ORDER BY array_position(%s, name)""",
                                 (list(SETTINGS), list(SETTINGS))))


def read_evidence(conn: psycopg.Connection, ext: Extension | None = None) -> Evidence:
    """The server's load; with ext (pg_stat_statements, installed and readable), also what its
    statements wrote to temporary files."""
    row = conn.execute("""
        SELECT coalesce(sum(temp_files), 0), coalesce(sum(temp_bytes), 0),
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
               current_setting('max_connections')::int,
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
                  AND state = 'idle')
        FROM pg_stat_database WHERE datname = current_database()""").fetchone()
    written = (None, 0)
    if ext is not None:
        try:
            written = statements.temp_written_bytes(conn, ext)
        except statements.StatementsUnavailable:
            pass  # too old a pg_stat_statements: the advice says nothing of the statements
    return Evidence(*(int(v) for v in row), *written)


def default_text(boot_val: str | None, unit: str | None) -> str:
    """PostgreSQL's built-in default in the unit people write it in.

    >>> default_text("16384", "8kB"), default_text("4096", "kB"), default_text("4", None)
    ('128MB', '4MB', '4')
    >>> default_text("-1", "kB"), default_text("60", "s"), default_text("0", "ms")
    ('-1', '60s', '0')
    """
    if boot_val is None or not unit or not boot_val.lstrip("-").isdigit() or int(boot_val) <= 0:
        return boot_val or ""
    if unit in ("8kB", "kB", "MB"):
        kb = int(boot_val) * {"8kB": 8, "kB": 1, "MB": 1024}[unit]
        for size, name in ((1024 * 1024, "GB"), (1024, "MB")):
            if kb % size == 0:
                return f"{kb // size}{name}"
        return f"{kb}kB"
    return f"{boot_val}{unit}"


def _advice(name: str, value: str, numeric: float, changed: bool, ev: Evidence
            ) -> tuple[str, str]:
    """(state, advice) for one setting: state is ok, consider or unknown (depends on what DB
    Pulse cannot see)."""
    if name == "shared_buffers":
        return ("consider" if not changed else "unknown",
                "Still the built-in 128MB: usually about 25 % of the server's memory. "
                if not changed else
                "Usually about 25 % of the server's memory; DB Pulse cannot see the memory, "
                "so check it against the machine (or the Supabase compute size).")
    if name == "effective_cache_size":
        return ("unknown", "Tells the planner how much the OS and PostgreSQL cache together: "
                "about 50–75 % of the server's memory. It allocates nothing.")
    if name == "work_mem":
        if ev.temp_files:
            return ("consider", f"{ev.temp_files:,} temporary files "
                    f"({human_bytes(ev.temp_bytes)}) written since the statistics reset: "
                    f"sorts and hashes spill to disk.{_temp_writers(ev)} Raise it for the "
                    "statements that spill (the Slow queries page, ordered by temp blocks; "
                    "SET work_mem per role or session) rather than globally: each sort "
                    "of each connection may use this much.")
        return ("ok", "No temporary files since the statistics reset: sorts and hashes fit.")
    if name == "maintenance_work_mem":
        return ("consider" if numeric <= 64 * 1024 else "ok",
                "Used by CREATE INDEX and VACUUM; 64MB (the default) makes index builds on big "
                "tables slow. 256MB–1GB is common." if numeric <= 64 * 1024 else
                "Used by CREATE INDEX and VACUUM.")
    if name == "random_page_cost":
        return ("consider" if numeric >= 4 else "ok",
                "4 assumes spinning disks: on SSD or cloud storage 1.1 lets the planner choose "
                "index scans where they pay." if numeric >= 4 else
                "Already set for fast storage.")
    if name == "effective_io_concurrency":
        return ("consider" if numeric <= 1 else "ok",
                "On SSD 200 lets bitmap heap scans prefetch." if numeric <= 1 else
                "Prefetching is on.")
    if name == "max_connections":
        share = ev.connections_used / max(ev.max_connections, 1)
        if ev.max_connections > 200 and ev.idle_connections > ev.connections_used / 2:
            return ("consider", f"{ev.connections_used} in use ({share:.0%}), "
                    f"{ev.idle_connections} idle: each connection costs memory; a pooler "
                    "(PgBouncer, Supavisor) serves more clients with fewer.")
        return ("consider" if share >= 0.8 else "ok",
                f"{ev.connections_used} in use now ({share:.0%}).")
    if name == "track_io_timing":
        return ("consider" if value == "off" else "ok",
                "Off: the I/O time of statements is 0 on the Slow queries page. Its cost is "
                "small on most systems (pg_test_timing shows it)." if value == "off" else
                "I/O time per statement is measured.")
    if name == "autovacuum":
        return ("consider" if value == "off" else "ok",
                "Off: dead rows pile up and transaction IDs are not frozen (wraparound). Turn "
                "it on." if value == "off" else "On.")
    if name == "autovacuum_vacuum_scale_factor":
        return ("consider" if numeric >= 0.2 else "ok",
                "0.2 waits for 20 % of a table to be dead rows: on tables of millions of rows "
                "set it lower per table (ALTER TABLE … SET (autovacuum_vacuum_scale_factor = "
                "0.02))." if numeric >= 0.2 else "Vacuums large tables earlier than the default.")
    if name == "autovacuum_vacuum_cost_limit":
        return ("consider" if numeric == -1 or numeric <= 200 else "ok",
                "The default throttles autovacuum to about 200 pages per round: on busy "
                "servers raise it (1000–2000) so it keeps up." if numeric == -1 or numeric <= 200
                else "Autovacuum may work faster than the default.")
    if name == "checkpoint_completion_target":
        return ("consider" if numeric < 0.9 else "ok",
                "Spread checkpoints over the interval: 0.9." if numeric < 0.9 else
                "Checkpoints are spread out.")
    if name == "idle_in_transaction_session_timeout":
        return ("consider" if numeric == 0 else "ok",
                "0: a session left idle in a transaction holds its locks and stops vacuum "
                "for ever. A limit (e.g. 5min) ends it." if numeric == 0 else
                "Sessions idle in a transaction are ended.")
    if name == "statement_timeout":
        return ("ok", "0 lets a runaway statement run for ever; many set it per role for the "
                "application (ALTER ROLE … SET statement_timeout = '30s')." if numeric == 0
                else "Statements are stopped after this long.")
    return ("ok", "")


def _temp_writers(ev: Evidence) -> str:
    """Which statements wrote the temporary files, as far as pg_stat_statements knows: its
    blocks written count every write (a sort's merge passes rewrite blocks), so they are not
    set against the files' size.

    >>> _temp_writers(Evidence(6, 1048576, 5, 100, 2, 3 * 1048576, own_temp_bytes=1048576))
    " The statements pg_stat_statements holds wrote 3.0 MB to temporary files (every block written), DB Pulse's own 1.0 MB more."
    >>> _temp_writers(Evidence(6, 1048576, 5, 100, 2, 0))[:60]
    ' No statement pg_stat_statements holds wrote to a temporary '
    >>> _temp_writers(Evidence(6, 1048576, 5, 100, 2))
    ''
    """
    if ev.statements_temp_bytes is None:
        return ""
    if ev.statements_temp_bytes + ev.own_temp_bytes == 0:
        return (" No statement pg_stat_statements holds wrote to a temporary file: those that "
                "did are gone from it (a reset, an eviction) or not tracked (maintenance "
                "such as an index build, or a load that turned tracking off).")
    return (" The statements pg_stat_statements holds wrote "
            f"{human_bytes(ev.statements_temp_bytes)} to temporary files (every block written)"
            + (f", DB Pulse's own {human_bytes(ev.own_temp_bytes)} more"
               if ev.own_temp_bytes else "") + ".")


def advise(settings: pd.DataFrame, ev: Evidence) -> pd.DataFrame:
    """The settings with their default, where they were set, a state and the advice, those to
    consider first."""
    rows = []
    for r in settings.itertuples():
        numeric = float(r.setting) if _is_number(r.setting) else float("nan")
        changed = r.source not in ("default", "override")
        state, advice = _advice(r.name, r.value, numeric, changed, ev)
        rows.append({"name": r.name, "value": r.value,
                     "default": default_text(r.boot_val, r.unit),
                     "source": ("built-in default" if r.source == "default" else r.source)
                     + (" (restart pending)" if r.pending_restart else ""),
                     "state": state, "advice": advice,
                     "needs": "restart" if r.context == "postmaster" else "reload"})
    frame = pd.DataFrame(rows)
    order = {"consider": 0, "unknown": 1, "ok": 2}
    return frame.sort_values("state", key=lambda s: s.map(order), kind="stable")


def _is_number(text: str | None) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


# How these frames are shown (ui/tables.py)
ADVICE_COLUMNS = {
    "name": Column("Setting", pinned=True), "value": Column("Now", width="small"),
    "default": Column("Default", width="small"), "state": Column("Verdict", width="small",
                                                                  help="consider: worth a look; "
                                                                       "unknown: depends on the "
                                                                       "machine, which DB Pulse "
                                                                       "cannot see"),
    "advice": Column("Advice", explains=True),
    "source": Column("Set in", width="small"),
    "needs": Column("A change needs", width="small"),
}
