"""Snapshots: cumulative counters read at one moment and stored in the history tables
(sql/dbpulse/004_history.sql), so that later any two moments can be compared by difference.

Collecting reads the watched database (and Redis) on the monitoring connection; storing writes to
the history database, which is the watched one's dbpulse schema unless configured otherwise. A
part that cannot be read (no pg_stat_statements, an unreachable Redis) is left out and named in
`problems`; the rest is still stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from foundation import capabilities
from foundation.connections import OWN_STATEMENT_TAG
from foundation.frames import to_frame
from foundation.roles import Actor
from foundation.secrets import redact_text
from reads import bloat, cache, indexes, matviews, probes, redis_cache, statements

STATEMENT_COUNTERS = ["calls", "total_exec_ms", "total_plan_ms", "rows", "shared_blks_hit",
                      "shared_blks_read", "shared_blks_dirtied", "shared_blks_written",
                      "temp_blks", "io_ms", "wal_bytes"]
# kept beside the counters: when the entry started counting, and its fastest and slowest call
# with since when those two were kept (they bound the slow-call share over a period)
STATEMENT_MARKS = ["stats_since", "min_exec_ms", "max_exec_ms", "minmax_since"]
TABLE_COLUMNS = ["schema_name", "table_name", "total_bytes", "live_rows", "dead_rows", "seq_scans",
                 "index_scans", "rows_inserted", "rows_updated", "rows_deleted", "heap_blks_hit",
                 "heap_blks_read", "bloat_bytes"]
INDEX_COLUMNS = ["schema_name", "index_name", "table_name", "size_bytes", "scans",
                 "backs_constraint", "is_valid", "bloat_bytes"]
MATVIEW_COLUMNS = ["schema_name", "view_name", "populated", "last_refresh", "age_minutes",
                   "size_bytes"]
REDIS_COLUMNS = ["instance", "run_id", "uptime_s", "keyspace_hits", "keyspace_misses", "commands",
                 "evicted_keys", "expired_keys", "used_memory", "keys", "error"]


@dataclass
class Snapshot:
    source: str
    taken_at: datetime
    server_version_num: int
    server_started_at: datetime
    pss_version: str | None = None
    pss_stats_reset: datetime | None = None
    pss_dealloc: int | None = None
    db_stats_reset: datetime | None = None
    data_blks_hit: int | None = None     # reads/cache.py DATA_BLOCKS
    data_blks_read: int | None = None
    xact_commit: int | None = None
    xact_rollback: int | None = None
    statements: pd.DataFrame = field(default_factory=pd.DataFrame)  # + queryid, userid, role, query
    tables: pd.DataFrame = field(default_factory=pd.DataFrame)
    indexes: pd.DataFrame = field(default_factory=pd.DataFrame)
    matviews: pd.DataFrame = field(default_factory=pd.DataFrame)
    redis: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    collect_ms: float = 0.0


# --- collecting -------------------------------------------------------------------------------

def _statement_counters(conn: psycopg.Connection, ext: capabilities.Extension) -> pd.DataFrame:
    """This database's entries, one row per (queryid, role): top-level and nested entries of the
    same statement are added up. DB Pulse's own statements and entries this role may not see
    (no queryid) are left out."""
    frame = to_frame(conn.execute(sql.SQL("""
        WITH entries AS ({entries})
        SELECT e.queryid, e.userid, r.rolname AS role_name, min(e.query) AS query,
               sum(e.calls)::bigint AS calls, sum(e.total_exec_ms) AS total_exec_ms,
               sum(e.total_plan_ms) AS total_plan_ms, sum(e.rows)::bigint AS rows,
               sum(e.shared_blks_hit)::bigint AS shared_blks_hit,
               sum(e.shared_blks_read)::bigint AS shared_blks_read,
               sum(e.shared_blks_dirtied)::bigint AS shared_blks_dirtied,
               sum(e.shared_blks_written)::bigint AS shared_blks_written,
               sum(e.temp_blks)::bigint AS temp_blks, sum(e.io_ms) AS io_ms,
               sum(e.wal_bytes) AS wal_bytes, max(e.stats_since) AS stats_since,
               min(e.min_exec_ms) AS min_exec_ms, max(e.max_exec_ms) AS max_exec_ms,
               max(e.minmax_since) AS minmax_since
        FROM entries e
        LEFT JOIN pg_roles r ON r.oid = e.userid
        WHERE e.queryid IS NOT NULL
          AND e.query NOT LIKE %(own_tag)s
          AND e.query NOT LIKE '%%dbpulse.%%'  -- untagged parts of DB Pulse's schema scripts
        GROUP BY e.queryid, e.userid, r.rolname
        """).format(entries=statements.entries_query(ext, this_database=True)),
        {"own_tag": "%" + OWN_STATEMENT_TAG}))
    frame["query"] = frame["query"].map(redact_text)  # stored texts carry no password
    return frame


def _bloat_by_oid(estimate: pd.DataFrame) -> pd.Series:
    """Estimated bloat per relation oid; kept even where statistics are stale (the trend still
    tells), left out where the relation was never analyzed (there is no estimate)."""
    if estimate.empty:
        return pd.Series(dtype=float)
    estimate = estimate.set_index("relid")
    return estimate["bloat_bytes"].where(estimate["estimated_rows"] >= 0)


def _tables(conn: psycopg.Connection, stats: pd.DataFrame,
            probed: dict[int, probes.Reads]) -> pd.DataFrame:
    """Each table's counters, the scans and blocks of DB Pulse's latency probes (`probed`,
    their ledger) taken out."""
    frame = to_frame(conn.execute(f"""
        WITH {probes.PROBED_TABLES}
        SELECT s.schemaname AS schema_name, s.relname AS table_name,
               pg_total_relation_size(s.relid) AS total_bytes,
               s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
               s.seq_scan - coalesce(p.seq_scans, 0) AS seq_scans,
               s.idx_scan - coalesce(p.index_scans, 0) AS index_scans,
               s.n_tup_ins AS rows_inserted, s.n_tup_upd AS rows_updated,
               s.n_tup_del AS rows_deleted,
               io.heap_blks_hit - coalesce(p.heap_hit, 0) AS heap_blks_hit,
               io.heap_blks_read - coalesce(p.heap_read, 0) AS heap_blks_read, s.relid
        FROM pg_stat_user_tables s
        JOIN pg_statio_user_tables io ON io.relid = s.relid
        LEFT JOIN probed_tables p ON p.relid = s.relid
        WHERE s.schemaname <> %(own_schema)s
        """, {"probed": probes.ledger_parameter(probed), "own_schema": indexes.OWN_SCHEMA}))
    frame["bloat_bytes"] = frame["relid"].map(_bloat_by_oid(bloat.table_bloat(conn, stats)))
    return frame[TABLE_COLUMNS]


def _indexes(conn: psycopg.Connection, stats: pd.DataFrame) -> pd.DataFrame:
    frame = indexes.list_indexes(conn)
    frame = frame[frame["schema_name"] != "dbpulse"]
    frame = frame.assign(bloat_bytes=frame["index_oid"].map(
        _bloat_by_oid(bloat.index_bloat(conn, stats))))
    return frame[INDEX_COLUMNS]


def _redis(urls: tuple[str, ...]) -> list[dict]:
    rows = []
    for url in urls:
        row = dict.fromkeys(REDIS_COLUMNS)
        row["instance"] = redis_cache.redact_url(url)
        try:
            client = redis_cache.connect(url)
            try:  # the lookups of every DB Pulse process taken out (the observer ledger)
                counters = redis_cache.read_counters(client, url)
            finally:
                client.close()
        except Exception as exc:  # redis raises several kinds; all are reported the same way
            row["error"] = str(redis_cache.describe_error(exc, url))
            rows.append(row)
            continue
        info = counters.info
        row.update(run_id=info.get("run_id"), uptime_s=info.get("uptime_in_seconds"),
                   keyspace_hits=info.get("keyspace_hits", 0) - counters.own_hits,
                   keyspace_misses=info.get("keyspace_misses", 0) - counters.own_misses,
                   commands=info.get("total_commands_processed"),
                   evicted_keys=info.get("evicted_keys"), expired_keys=info.get("expired_keys"),
                   used_memory=info.get("used_memory"),
                   keys=sum(v.get("keys", 0) for k, v in info.items()
                            if k.startswith("db") and isinstance(v, dict)))
        rows.append(row)
    return rows


def collect(conn: psycopg.Connection, source: str, redis_urls: tuple[str, ...] = (),
            max_age_minutes: float = 15.0) -> Snapshot:
    """Read every counter a snapshot keeps (monitoring connection: reads only)."""
    t0 = time.monotonic()
    taken_at, version, started, db_reset, commit, rollback = conn.execute("""
        SELECT now(), current_setting('server_version_num')::int, pg_postmaster_start_time(),
               d.stats_reset, d.xact_commit, d.xact_rollback
        FROM pg_stat_database d WHERE d.datname = current_database()""").fetchone()
    probed = probes.own_reads(conn)  # once, for the hit rate and the tables' counters
    hit, read = cache.data_blocks(conn, probed)
    snap = Snapshot(source, taken_at, version, started, db_stats_reset=db_reset,
                    data_blks_hit=hit, data_blks_read=read, xact_commit=commit,
                    xact_rollback=rollback)
    ext = capabilities.detect(conn).extension("pg_stat_statements")
    try:
        info = statements.statements_info(conn, ext) if ext.installed else None
        snap.statements = _statement_counters(conn, ext)
        snap.pss_version = ext.installed_version
        snap.pss_stats_reset, snap.pss_dealloc = info.stats_reset, info.dealloc
    except statements.StatementsUnavailable as exc:
        snap.problems.append(f"statements not recorded: {exc}")
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:  # installed but not preloaded
        snap.problems.append(f"statements not recorded: {str(exc).splitlines()[0]}")
    stats = bloat.column_stats(conn)
    snap.tables = _tables(conn, stats, probed)
    snap.indexes = _indexes(conn, stats)
    views = matviews.list_matviews(conn, max_age_minutes)
    snap.matviews = (views.reindex(columns=MATVIEW_COLUMNS) if not views.empty
                     else pd.DataFrame(columns=MATVIEW_COLUMNS))
    snap.redis = _redis(redis_urls)
    snap.problems += [f"Redis {r['instance']} not recorded: {r['error']}"
                      for r in snap.redis if r["error"]]
    snap.collect_ms = (time.monotonic() - t0) * 1000
    return snap


# --- storing ----------------------------------------------------------------------------------

FLOAT_COLUMNS = {"total_exec_ms", "total_plan_ms", "io_ms", "age_minutes", "min_exec_ms",
                 "max_exec_ms"}


def _plain(value, column: str):
    """A Python value COPY accepts: NaN, NaT and NA as NULL, and whole floats as int (pandas
    turns an integer column with a NULL into floats)."""
    if isinstance(value, float):
        if value != value:
            return None
        if column not in FLOAT_COLUMNS and value.is_integer():
            return int(value)
    elif value is pd.NaT or value is pd.NA:
        return None
    return value


def _plain_column(series: pd.Series, column: str) -> list:
    """_plain of every value of a column; a numpy integer or boolean column is plain already
    (not pandas' nullable ones: their missing values are pd.NA).

    >>> _plain_column(pd.Series([3, 4]), "calls"), _plain_column(pd.Series([1.0, None]), "calls")
    ([3, 4], [1, None])
    >>> _plain_column(pd.Series([5, None], dtype="Int64"), "calls")
    [5, None]
    """
    values = series.tolist()
    plain = isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub"
    return values if plain else [_plain(v, column) for v in values]


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    # column by column: tolist() unwraps numpy scalars at C speed (per cell, pandas is 10× slower)
    if frame.empty:
        return []
    return list(zip(*(_plain_column(frame[c], c) for c in columns)))


def _copy(conn: psycopg.Connection, table: str | sql.Composable, columns: list[str],
          rows: list[tuple]) -> None:
    """COPY into a dbpulse table (by name) or any other (a composable)."""
    if not rows:
        return
    target = sql.SQL("dbpulse.") + sql.Identifier(table) if isinstance(table, str) else table
    # tagged by hand: COPY does not go through TaggedConnection.execute
    statement = sql.SQL("COPY {} ({}) FROM STDIN\n" + OWN_STATEMENT_TAG).format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


# a complete snapshot (every statement stored) at least this often: a period's baseline is
# then at most this far back, and pruning keeps one
COMPLETE_EVERY = timedelta(days=1)


def _stores_every_statement(conn: psycopg.Connection, snap: Snapshot, synthetic: bool) -> bool:
    """Whether this snapshot must hold every statement: the source's first, one whose
    counters cannot be compared with the snapshot before (pg_stat_statements reset, upgraded
    or evicting entries, a server restart, a switch between demo and real history, a snapshot
    older than the last one), or the last complete one is COMPLETE_EVERY old."""
    before = conn.execute("""
        SELECT taken_at, synthetic, server_started_at, pss_version, pss_stats_reset, pss_dealloc,
               (SELECT max(taken_at) FROM dbpulse.snapshots
                WHERE source = %(source)s AND statements_complete) AS last_complete
        FROM dbpulse.snapshots WHERE source = %(source)s
        ORDER BY taken_at DESC, id DESC LIMIT 1""", {"source": snap.source}).fetchone()
    if before is None:
        return True
    taken_at, was_synthetic, started, version, reset, dealloc, last_complete = before
    return (snap.taken_at <= taken_at or was_synthetic != synthetic
            or started != snap.server_started_at or version != snap.pss_version
            or reset != snap.pss_stats_reset or (snap.pss_dealloc or 0) > (dealloc or 0)
            or last_complete is None or snap.taken_at - last_complete >= COMPLETE_EVERY)


def _store_statements(conn: psycopg.Connection, snapshot_id: int, snap: Snapshot,
                      complete: bool) -> int:
    """Every statement of a complete snapshot, else only those whose counters changed since
    the row stored before for this source (or that are new). Returns how many were stored."""
    columns = ["snapshot_id", "queryid", "userid"] + STATEMENT_COUNTERS + STATEMENT_MARKS
    # marks a snapshot does not carry (synthetic history) are unknown, stored as NULL
    frame = snap.statements.reindex(columns=list(snap.statements.columns) + [
        c for c in STATEMENT_MARKS if c not in snap.statements.columns])
    rows = _rows(frame.assign(snapshot_id=snapshot_id), columns)
    if complete:
        _copy(conn, "snapshot_statements", columns, rows)
        return len(rows)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dbpulse_new_statements "
                 "(LIKE dbpulse.snapshot_statements) ON COMMIT DELETE ROWS")
    conn.execute("TRUNCATE dbpulse_new_statements")  # several snapshots may share a transaction
    _copy(conn, sql.Identifier("dbpulse_new_statements"), columns, rows)

    def values(alias: str) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, c)
                                  for c in STATEMENT_COUNTERS + STATEMENT_MARKS)
    return conn.execute(sql.SQL("""
        WITH last AS MATERIALIZED (  -- each statement's last row since the last complete snapshot
            SELECT DISTINCT ON (t.queryid, t.userid) t.*
            FROM dbpulse.snapshot_statements t
            JOIN dbpulse.snapshots s ON s.id = t.snapshot_id
            WHERE s.source = %(source)s AND s.id <> %(id)s
              AND s.taken_at >= (SELECT max(taken_at) FROM dbpulse.snapshots
                                 WHERE source = %(source)s AND statements_complete
                                   AND id <> %(id)s)
            ORDER BY t.queryid, t.userid, s.taken_at DESC, s.id DESC)
        INSERT INTO dbpulse.snapshot_statements
        SELECT n.* FROM dbpulse_new_statements n
        WHERE NOT EXISTS (  -- an anti-join: one pass over each side
            SELECT 1 FROM last l WHERE l.queryid = n.queryid AND l.userid = n.userid
              AND ROW({last}) IS NOT DISTINCT FROM ROW({new}))
        """).format(last=values("l"), new=values("n")),
        {"source": snap.source, "id": snapshot_id}).rowcount


@dataclass
class Stored:
    snapshot_id: int
    statements: int           # statement rows written: the changed ones, or all when complete
    complete: bool


def store(conn: psycopg.Connection, snap: Snapshot, who: Actor, *,
          synthetic: bool = False) -> Stored:
    """Write one snapshot in one transaction (all of it or nothing) on the history connection.
    Query texts already known are not stored again; statements only when they changed, unless
    the snapshot must be complete (_stores_every_statement)."""
    who.require_dba("Taking a snapshot")
    with conn.transaction():
        # durable even where the server commits asynchronously: a crash must not lose history
        conn.execute("SET LOCAL synchronous_commit = on")
        complete = _stores_every_statement(conn, snap, synthetic)
        snapshot_id = conn.execute("""
            INSERT INTO dbpulse.snapshots (taken_at, source, taken_by, synthetic,
                server_version_num, server_started_at, pss_version, pss_stats_reset, pss_dealloc,
                db_stats_reset, data_blks_hit, data_blks_read, xact_commit, xact_rollback,
                collect_ms, statements_complete)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING id""",
            (snap.taken_at, snap.source, who.person, synthetic, snap.server_version_num,
             snap.server_started_at, snap.pss_version, snap.pss_stats_reset, snap.pss_dealloc,
             snap.db_stats_reset, snap.data_blks_hit, snap.data_blks_read, snap.xact_commit,
             snap.xact_rollback, snap.collect_ms, complete)).fetchone()[0]
        if not snap.statements.empty:
            # one statement for all texts (executemany would lose the own-statement tag)
            ids, users, roles, texts = zip(*_rows(snap.statements,
                                                  ["queryid", "userid", "role_name", "query"]))
            conn.execute("""
                INSERT INTO dbpulse.statement_texts (queryid, userid, role_name, query, first_seen)
                SELECT t.*, %s FROM unnest(%s::bigint[], %s::oid[], %s::text[], %s::text[]) AS t
                ON CONFLICT DO NOTHING""", (snap.taken_at, list(ids), list(users), list(roles),
                                            list(texts)))
        stored = (_store_statements(conn, snapshot_id, snap, complete)
                  if not snap.statements.empty else 0)
        tagged = lambda frame: frame.assign(snapshot_id=snapshot_id)  # noqa: E731
        for table, frame, cols in (("snapshot_tables", snap.tables, TABLE_COLUMNS),
                                   ("snapshot_indexes", snap.indexes, INDEX_COLUMNS),
                                   ("snapshot_matviews", snap.matviews, MATVIEW_COLUMNS),
                                   ("snapshot_redis", pd.DataFrame(snap.redis, columns=REDIS_COLUMNS),
                                    REDIS_COLUMNS)):
            if not frame.empty:
                _copy(conn, table, ["snapshot_id"] + cols, _rows(tagged(frame),
                                                                 ["snapshot_id"] + cols))
    return Stored(snapshot_id, stored, complete)


def prune(conn: psycopg.Connection, retention_days: int, now: datetime | None = None) -> int:
    """Delete snapshots older than the retention (their rows go with them), the statement
    texts no remaining snapshot refers to, and the events and alerts past the retention. When
    a source's first snapshot inside the retention holds only changed statements, the last
    complete one before it stays, with those between: its statements are carried from them.
    Returns how many snapshots were deleted."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    with conn.transaction():
        deleted = conn.execute("""
            DELETE FROM dbpulse.snapshots s
            WHERE s.taken_at < least(%(cutoff)s, (
                SELECT max(c.taken_at) FROM dbpulse.snapshots c
                WHERE c.source = s.source AND c.statements_complete
                  AND c.taken_at <= (SELECT min(f.taken_at) FROM dbpulse.snapshots f
                                     WHERE f.source = s.source AND f.taken_at >= %(cutoff)s)))
            """, {"cutoff": cutoff}).rowcount
        if deleted:
            conn.execute("""
                DELETE FROM dbpulse.statement_texts t
                WHERE NOT EXISTS (SELECT 1 FROM dbpulse.snapshot_statements s
                                  WHERE s.queryid = t.queryid AND s.userid = t.userid)""")
            conn.execute("DELETE FROM dbpulse.history_events WHERE at < %s", (cutoff,))
            conn.execute("DELETE FROM dbpulse.alert_log WHERE raised_at < %s", (cutoff,))
        # the agent's samples between snapshots: past the retention too
        for table in ("probe_samples", "connection_samples"):
            conn.execute(sql.SQL("DELETE FROM dbpulse.{} WHERE taken_at < %s").format(
                sql.Identifier(table)), (cutoff,))
    return deleted


@dataclass
class SnapshotResult:
    snapshot_id: int
    taken_at: datetime
    statements: int          # read from pg_stat_statements
    problems: list[str]
    pruned: int
    collect_ms: float
    store_ms: float
    statements_stored: int = 0   # of them, those that changed (all in a complete snapshot)
    complete: bool = True


def take(monitor_conn: psycopg.Connection, history_conn: psycopg.Connection, who: Actor, *,
         source: str | None = None, redis_urls: tuple[str, ...] | None = None) -> SnapshotResult:
    """Collect, store and prune (the target's source and Redis unless others are given): what
    `cli.py snapshot`, the agent and the dashboard's button run, through operations/actions.py."""
    who.require_dba("Taking a snapshot")
    snap = collect(monitor_conn, source or who.target.history_source,
                   who.target.redis_urls if redis_urls is None else redis_urls,
                   who.settings.matview_max_age_minutes)
    t0 = time.monotonic()
    stored = store(history_conn, snap, who)
    pruned = prune(history_conn, who.settings.history_retention_days)
    return SnapshotResult(stored.snapshot_id, snap.taken_at, len(snap.statements), snap.problems,
                          pruned, snap.collect_ms, (time.monotonic() - t0) * 1000,
                          stored.statements, stored.complete)
