"""What happened between two moments, from the stored snapshots (operations/snapshots.py).

Every figure is a sum of differences between consecutive snapshots. A pair of snapshots counts
as a plain difference only when nothing restarted the counters in between; otherwise:

- the counter went down (pg_stat_statements_reset, pg_stat_reset, CONFIG RESETSTAT, a crash),
  the entry is new, or it was evicted and re-added (pg_stat_statements 1.11+ says so with
  stats_since; before that a drop in calls does): the later value alone is what happened since,
  so it is counted as is — a lower bound, never negative, never the whole history;
- the two snapshots cannot be compared (the first one of a range, a change of the
  pg_stat_statements version after an upgrade, a switch between synthetic demo history and real
  snapshots): the pair counts nothing and the period says so.

A period is measured from the last snapshot at or before its start (the baseline) to the last
one at or before its end; `Coverage` says which snapshots that actually was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg
from psycopg import sql

from foundation.columns import STATEMENT, Column
from foundation.frames import to_frame
from operations import alert_log
from operations.snapshots import STATEMENT_COUNTERS
from reads.statements import ORDER_BY


class HistoryUnavailable(RuntimeError):
    """The history cannot answer for this period; the message says why and what to do."""


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M}"


def weekly_periods(now: datetime, days: int = 7) -> tuple[Period, Period]:
    """The last `days` against the `days` before (previous, current)."""
    current = Period(now - timedelta(days=days), now)
    return Period(current.start - timedelta(days=days), current.start), current


def calendar_week(now: datetime, weeks_back: int = 1) -> Period:
    """A whole ISO week in UTC, Monday 00:00 to the next Monday 00:00: 1 is the last finished
    week, 2 the one before, 0 the week so far.

    >>> p = calendar_week(datetime(2026, 11, 22, 20, 5, tzinfo=timezone.utc))  # a Sunday
    >>> p.start.isoformat(), p.end.isoformat()
    ('2026-11-09T00:00:00+00:00', '2026-11-16T00:00:00+00:00')
    >>> calendar_week(datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)).start.day  # Monday
    16
    """
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), datetime.min.time(),
                              tzinfo=timezone.utc)
    start = monday - timedelta(weeks=weeks_back)
    return Period(start, min(start + timedelta(weeks=1), now))


def last_day(period: Period):
    """The last day a period covers (one ending at midnight covers the day before).

    >>> last_day(Period(datetime(2026, 11, 9, tzinfo=timezone.utc),
    ...                 datetime(2026, 11, 16, tzinfo=timezone.utc))).isoformat()
    '2026-11-15'
    """
    return (period.end - timedelta(microseconds=1)).date()


@dataclass
class Coverage:
    snapshots: int                       # snapshots inside the period (baseline included)
    baseline_at: datetime | None         # the snapshot the differences start from
    last_at: datetime | None
    synthetic: bool = False              # any of them synthetic demo history
    notes: list[str] = field(default_factory=list)  # resets, restarts, upgrades met on the way

    @property
    def usable(self) -> bool:
        return self.snapshots >= 2


def history_installed(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('dbpulse.snapshots') IS NOT NULL").fetchone()[0]


def _snaps(complete: str = "true") -> str:
    """The snapshots of a period, each with what changed since the one before it.

    `complete` says which snapshots hold every row of a kind (statements: only some do, the
    others only what changed; tables and indexes: every one). The window starts at the last
    complete snapshot at or before the period's baseline, so a value stored before the period
    is carried into it; only the snapshots after the baseline are `counted`, and
    `complete_before` is when the last complete one before each was taken."""
    return f"""
    bounds AS (
        SELECT lo, coalesce((SELECT max(s.taken_at) FROM dbpulse.snapshots s
                             WHERE s.source = %(source)s AND s.taken_at <= lo AND {complete}),
                            lo) AS base
        FROM (SELECT coalesce((SELECT max(taken_at) FROM dbpulse.snapshots
                               WHERE source = %(source)s AND taken_at <= %(start)s),
                              %(start)s) AS lo) period),
    snaps AS (
        SELECT s.id, s.taken_at, s.synthetic, s.taken_at > bounds.lo AS counted,
               row_number() OVER w                                    AS seq,
               lag(s.taken_at) OVER w                                 AS prev_taken_at,
               max(s.taken_at) FILTER (WHERE {complete})
                   OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS complete_before,
               -- the first snapshot only sets the baseline; demo and real never mix
               coalesce(lag(s.synthetic) OVER w <> s.synthetic, true) AS incomparable,
               lag(s.pss_version) OVER w IS DISTINCT FROM s.pss_version AS pss_changed,
               lag(s.pss_stats_reset) OVER w IS DISTINCT FROM s.pss_stats_reset AS pss_reset,
               lag(s.db_stats_reset) OVER w IS DISTINCT FROM s.db_stats_reset AS db_reset,
               lag(s.server_started_at) OVER w IS DISTINCT FROM s.server_started_at AS restarted,
               s.pss_dealloc - lag(s.pss_dealloc) OVER w             AS evicted,
               s.pss_version, s.data_blks_hit, s.data_blks_read, s.xact_commit,
               s.xact_rollback
        FROM dbpulse.snapshots s, bounds
        WHERE s.source = %(source)s AND s.taken_at >= bounds.base AND s.taken_at <= %(end)s
        WINDOW w AS (ORDER BY s.taken_at, s.id))
"""


SNAPS = _snaps()  # every snapshot holds every row of these kinds

# per kind of row: its table, key, counters, what makes a pair unusable or a fresh start, and
# the snapshots that hold every row of it
KINDS = {
    "statements": ("snapshot_statements", ["queryid", "userid"], STATEMENT_COUNTERS,
                   "sn.pss_changed", "sn.pss_reset OR t.stats_since > sn.prev_taken_at",
                   "s.statements_complete"),
    "indexes": ("snapshot_indexes", ["schema_name", "index_name"], ["scans"],
                "false", "sn.db_reset", "true"),
    "tables": ("snapshot_tables", ["schema_name", "table_name"],
               ["seq_scans", "index_scans", "rows_inserted", "rows_updated", "rows_deleted",
                "heap_blks_hit", "heap_blks_read"], "false", "sn.db_reset", "true"),
}
# per kind: what restarts every row's counters at once (a restart of one row alone is a reset
# of that one statement, or its eviction), and the columns carried along beside the counters
WHOLE_RESET = {"statements": "sn.pss_reset OR sn.restarted",
               "indexes": "sn.db_reset OR sn.restarted", "tables": "sn.db_reset OR sn.restarted"}
CARRIED = {"statements": ["stats_since", "min_exec_ms", "max_exec_ms", "minmax_since"]}


def _kind_snaps(kind: str) -> sql.Composable:
    return sql.SQL(_snaps(KINDS[kind][5]))


def _deltas_cte(kind: str) -> sql.Composable:
    """CTE `deltas`: one row per (key, snapshot) with each counter's difference to the row
    before and `how` it was counted: diff, fresh (restarted: the value itself) or skip. A row
    stored before is the value until this one (statements are stored only when they change),
    unless a complete snapshot came between without the key: then it was gone (evicted) and
    this row counts as fresh."""
    table, keys, counters, skip_if, fresh_if, _ = KINDS[kind]
    carried = sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(c))
                               for c in CARRIED.get(kind, []))
    carried_names = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(c))
                                     for c in CARRIED.get(kind, []))
    key_list = sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(k) for k in keys)
    part_keys = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    values = sql.SQL(", ").join(
        sql.SQL("t.{c}, lag(t.{c}) OVER e AS {p}").format(c=sql.Identifier(c),
                                                         p=sql.Identifier("prev_" + c))
        for c in counters)
    went_down = sql.SQL(" OR ").join(
        sql.SQL("coalesce(t.{c} < lag(t.{c}) OVER e, false)").format(c=sql.Identifier(c))
        for c in counters)
    differences = sql.SQL(", ").join(
        sql.SQL("CASE how WHEN 'diff' THEN greatest({c} - {p}, 0) WHEN 'fresh' THEN {c} "
                "ELSE 0 END AS {c}").format(c=sql.Identifier(c), p=sql.Identifier("prev_" + c))
        for c in counters)
    return sql.SQL("""
    pairs AS (
        SELECT {key_list}, sn.seq, sn.taken_at, sn.synthetic,
               NOT sn.counted OR sn.incomparable OR {skip_if} AS skip,
               coalesce({fresh_if}, false) AS fresh,
               -- the key was there all along since its row before
               coalesce(lag(sn.taken_at) OVER e >= coalesce(sn.complete_before, '-infinity'),
                        false) AS continued,
               coalesce({whole_reset}, false) AS whole_reset,
               lag(sn.taken_at) OVER e AS prev_row_at{carried},
               -- here, once per row: a later CASE would repeat it for every counter
               {went_down} AS went_down,
               {values}
        FROM snaps sn JOIN dbpulse.{table} t ON t.snapshot_id = sn.id
        WINDOW e AS (PARTITION BY {key_list} ORDER BY sn.seq)),
    classified AS (
        SELECT *, CASE WHEN skip THEN 'skip'
                       WHEN continued AND NOT fresh AND NOT went_down THEN 'diff'
                       ELSE 'fresh' END AS how
        FROM pairs),
    deltas AS (
        SELECT {part_keys}, seq, taken_at, synthetic, how, prev_row_at{carried_names},
               how = 'fresh' AND continued AS restarted,
               how = 'fresh' AND continued AND NOT whole_reset AS restarted_alone, {differences}
        FROM classified)
    """).format(key_list=key_list, skip_if=sql.SQL(skip_if), fresh_if=sql.SQL(fresh_if),
                values=values, table=sql.Identifier(table), went_down=went_down,
                part_keys=part_keys, differences=differences, carried=carried,
                carried_names=carried_names, whole_reset=sql.SQL(WHOLE_RESET[kind]))


def _params(source: str, period: Period) -> dict:
    return {"source": source, "start": period.start, "end": period.end}


def coverage(conn: psycopg.Connection, source: str, period: Period) -> Coverage:
    frame = to_frame(conn.execute(sql.SQL("WITH {snaps} SELECT * FROM snaps ORDER BY seq").format(
        snaps=sql.SQL(SNAPS)), _params(source, period)))
    if frame.empty:
        return Coverage(0, None, None)
    result = Coverage(len(frame), frame["taken_at"].iloc[0], frame["taken_at"].iloc[-1],
                      bool(frame["synthetic"].any()))
    later = frame.iloc[1:]
    for row in later.itertuples():
        when = f"{row.taken_at:%Y-%m-%d %H:%M}"
        if row.incomparable:
            result.notes.append(f"{when}: the synthetic demo history ends here; the real "
                                "snapshots are compared only with each other")
        elif row.pss_changed:
            result.notes.append(f"{when}: pg_stat_statements changed to {row.pss_version} "
                                "(server upgrade?): the statements of the interval before it "
                                "are left out")
        if row.restarted and not row.incomparable:
            result.notes.append(f"{when}: the server restarted; counters that went back are "
                                "counted from zero")
        if row.pss_reset and not row.incomparable and not row.pss_changed:
            result.notes.append(f"{when}: pg_stat_statements was reset; its counters are "
                                "counted from zero")
        if row.evicted and row.evicted > 0:
            result.notes.append(f"{when}: {int(row.evicted)} statement entries were evicted "
                                "(pg_stat_statements.max reached); rarely run statements may be "
                                "undercounted")
    return result


def require_usable(cov: Coverage, period: Period) -> None:
    if cov.snapshots == 0:
        raise HistoryUnavailable(f"No snapshots for {period.label()}. Take them regularly with "
                                 "`.venv/bin/python cli.py snapshot` (cron) or the dashboard's button.")
    if cov.snapshots == 1:
        raise HistoryUnavailable(f"Only one snapshot ({cov.baseline_at:%Y-%m-%d %H:%M}) covers "
                                 f"{period.label()}: a difference needs two. Take another one "
                                 "later.")


def statement_deltas(conn: psycopg.Connection, source: str, period: Period) -> pd.DataFrame:
    """Per statement: every counter summed over the period, the mean time from those sums,
    the fastest and slowest call known (extremes_cover: for every call counted), how often
    its counters restarted on the way, and how often alone (a reset of that statement, or its
    eviction: its calls since the snapshot before went uncounted)."""
    sums = sql.SQL(", ").join(sql.SQL("sum({c}) AS {c}").format(c=sql.Identifier(c))
                              for c in STATEMENT_COUNTERS)
    frame = to_frame(conn.execute(sql.SQL("""
        WITH {snaps}, {deltas},
        summed AS (
            SELECT queryid, userid, {sums}, count(*) FILTER (WHERE restarted) AS restarts,
                   count(*) FILTER (WHERE restarted_alone) AS restarts_alone,
                   -- the fastest and slowest call known, and whether they cover every call
                   -- counted: kept since before the interval each row counts (or, for a row
                   -- counted from zero, since the entry started)
                   min(min_exec_ms) AS min_exec_ms, max(max_exec_ms) AS max_exec_ms,
                   coalesce(bool_and(min_exec_ms IS NOT NULL AND (
                       minmax_since IS NULL
                       OR (how = 'fresh' AND minmax_since <= coalesce(stats_since, minmax_since))
                       OR (how = 'diff' AND minmax_since <= prev_row_at))), false)
                       AS extremes_cover
            FROM deltas WHERE how <> 'skip' GROUP BY queryid, userid)
        SELECT s.*, t.query, t.role_name,
               s.total_exec_ms / nullif(s.calls, 0) AS mean_exec_ms,
               s.total_exec_ms / nullif(sum(s.total_exec_ms) OVER (), 0) AS share_of_total_time,
               s.shared_blks_hit::float8 / nullif(s.shared_blks_hit + s.shared_blks_read, 0)
                                                    AS cache_hit_rate
        FROM summed s
        LEFT JOIN dbpulse.statement_texts t USING (queryid, userid)
        WHERE s.calls > 0
        ORDER BY s.total_exec_ms DESC
        """).format(snaps=_kind_snaps("statements"), deltas=_deltas_cte("statements"), sums=sums),
        _params(source, period)))
    return frame


def statement_series(conn: psycopg.Connection, source: str, period: Period,
                     queryids: list[int], bucket_hours: int = 6) -> pd.DataFrame:
    """Calls and mean time per time bucket for the chosen statements (for trend charts)."""
    if not queryids:
        return pd.DataFrame(columns=["queryid", "bucket", "calls", "mean_exec_ms"])
    return to_frame(conn.execute(sql.SQL("""
        WITH {snaps}, {deltas}
        SELECT queryid,
               to_timestamp(floor(extract(epoch FROM taken_at) / %(bucket)s) * %(bucket)s) AS bucket,
               sum(calls) AS calls, sum(total_exec_ms) / nullif(sum(calls), 0) AS mean_exec_ms
        FROM deltas
        WHERE how <> 'skip' AND queryid = ANY(%(ids)s)
        GROUP BY queryid, bucket ORDER BY bucket
        """).format(snaps=_kind_snaps("statements"), deltas=_deltas_cte("statements")),
        {**_params(source, period), "ids": list(queryids), "bucket": bucket_hours * 3600}))


def index_scans(conn: psycopg.Connection, source: str, period: Period) -> pd.DataFrame:
    """Per index: scans in the period, and its size, constraint and validity at the end;
    in_baseline: it was already in the period's first snapshot (zero scans of an index built
    during the period say little about it)."""
    return to_frame(conn.execute(sql.SQL("""
        WITH {snaps}, {deltas},
        summed AS (SELECT schema_name, index_name, sum(scans) FILTER (WHERE how <> 'skip') AS scans,
                          max(seq) FILTER (WHERE how <> 'skip') AS last_seq, min(seq) AS first_seq
                   FROM deltas GROUP BY schema_name, index_name
                   HAVING count(*) FILTER (WHERE how <> 'skip') > 0)
        SELECT s.schema_name, s.index_name, i.table_name, s.scans, i.size_bytes,
               i.backs_constraint, i.is_valid, i.bloat_bytes, s.first_seq = 1 AS in_baseline
        FROM summed s
        JOIN snaps sn ON sn.seq = s.last_seq
        JOIN dbpulse.snapshot_indexes i ON i.snapshot_id = sn.id
             AND i.schema_name = s.schema_name AND i.index_name = s.index_name
        """).format(snaps=_kind_snaps("indexes"), deltas=_deltas_cte("indexes")), _params(source, period)))


def table_changes(conn: psycopg.Connection, source: str, period: Period) -> pd.DataFrame:
    """Per table: size and estimated bloat at the baseline and at the end, and its activity."""
    sums = sql.SQL(", ").join(sql.SQL("sum({c}) AS {c}").format(c=sql.Identifier(c))
                              for c in KINDS["tables"][2])
    return to_frame(conn.execute(sql.SQL("""
        WITH {snaps}, {deltas},
        activity AS (SELECT schema_name, table_name, {sums} FROM deltas WHERE how <> 'skip'
                     GROUP BY schema_name, table_name),
        ends AS (SELECT (SELECT id FROM snaps ORDER BY seq LIMIT 1) AS first_id,
                        (SELECT id FROM snaps ORDER BY seq DESC LIMIT 1) AS last_id)
        SELECT b.schema_name, b.table_name,
               a.total_bytes AS bytes_before, b.total_bytes AS bytes_after,
               b.total_bytes - a.total_bytes AS bytes_growth,
               a.bloat_bytes AS bloat_before, b.bloat_bytes AS bloat_after,
               b.bloat_bytes - a.bloat_bytes AS bloat_growth,
               b.dead_rows, act.*
        FROM ends
        JOIN dbpulse.snapshot_tables b ON b.snapshot_id = ends.last_id
        LEFT JOIN dbpulse.snapshot_tables a ON a.snapshot_id = ends.first_id
             AND a.schema_name = b.schema_name AND a.table_name = b.table_name
        LEFT JOIN activity act ON act.schema_name = b.schema_name AND act.table_name = b.table_name
        """).format(snaps=_kind_snaps("tables"), deltas=_deltas_cte("tables"), sums=sums),
        _params(source, period))).loc[:, lambda f: ~f.columns.duplicated()]


def matview_ages(conn: psycopg.Connection, source: str, period: Period,
                 max_age_minutes: float) -> pd.DataFrame:
    """Per materialized view: in how many snapshots of the period it was older than allowed
    (or not populated), the oldest it was seen, and in how many its age was unknown."""
    return to_frame(conn.execute(sql.SQL("""
        WITH {snaps}
        SELECT m.schema_name, m.view_name, count(*) AS snapshots,
               count(*) FILTER (WHERE NOT m.populated OR m.last_refresh IS NULL
                                   OR m.age_minutes > %(max_age)s) AS over_max_age,
               max(m.age_minutes) AS oldest_minutes,
               count(*) FILTER (WHERE m.age_minutes IS NULL) AS age_unknown
        FROM snaps sn JOIN dbpulse.snapshot_matviews m ON m.snapshot_id = sn.id
        WHERE sn.seq > 1
        GROUP BY m.schema_name, m.view_name ORDER BY over_max_age DESC, m.view_name
        """).format(snaps=sql.SQL(SNAPS)), {**_params(source, period), "max_age": max_age_minutes}))


def _gauge_pairs(frame: pd.DataFrame, counters: list[str], group: str | None = None
                 ) -> pd.DataFrame:
    """Differences between consecutive rows of snapshot-level counters, with the same rules as
    the SQL above: a counter that went back (or a new run_id) counts from zero."""
    out = []
    groups = frame.groupby(group) if group else [(None, frame)]
    for _, rows in groups:
        rows = rows.sort_values("seq")
        prev = rows.shift(1)
        adjacent = prev["seq"] == rows["seq"] - 1
        went_back = pd.Series(False, index=rows.index)
        for c in counters:
            went_back |= (rows[c] < prev[c]).fillna(False)
        if "run_id" in rows:
            went_back |= (rows["run_id"] != prev["run_id"]) & prev["run_id"].notna()
        if "db_reset" in rows:
            went_back |= rows["db_reset"].astype(bool)
        usable = ~rows["incomparable"].astype(bool) & adjacent
        part = rows[["seq", "taken_at", "synthetic"] + ([group] if group else [])].copy()
        for c in counters:
            diff = (rows[c] - prev[c]).clip(lower=0)
            part[c] = diff.where(~went_back, rows[c]).where(usable, 0).fillna(0)
        out.append(part[usable])
    return pd.concat(out) if out else pd.DataFrame(columns=["seq", "taken_at"] + counters)


def buffer_cache_series(conn: psycopg.Connection, source: str, period: Period) -> pd.DataFrame:
    frame = to_frame(conn.execute(sql.SQL("WITH {snaps} SELECT * FROM snaps").format(
        snaps=sql.SQL(SNAPS)), _params(source, period)))
    if len(frame) < 2:
        return pd.DataFrame(columns=["taken_at", "data_blks_hit", "data_blks_read", "hit_rate"])
    pairs = _gauge_pairs(frame, ["data_blks_hit", "data_blks_read", "xact_commit",
                                 "xact_rollback"])
    total = pairs["data_blks_hit"] + pairs["data_blks_read"]
    return pairs.assign(hit_rate=(pairs["data_blks_hit"] / total.where(total > 0)))


def redis_series(conn: psycopg.Connection, source: str, period: Period) -> pd.DataFrame:
    frame = to_frame(conn.execute(sql.SQL("""
        WITH {snaps}
        SELECT sn.seq, sn.taken_at, sn.synthetic, sn.incomparable, r.instance, r.run_id,
               r.keyspace_hits, r.keyspace_misses, r.commands, r.evicted_keys, r.used_memory
        FROM snaps sn JOIN dbpulse.snapshot_redis r ON r.snapshot_id = sn.id
        WHERE r.error IS NULL
        """).format(snaps=sql.SQL(SNAPS)), _params(source, period)))
    if frame.empty:
        return pd.DataFrame(columns=["taken_at", "instance", "keyspace_hits", "keyspace_misses",
                                     "hit_rate"])
    pairs = _gauge_pairs(frame, ["keyspace_hits", "keyspace_misses", "commands", "evicted_keys"],
                         group="instance")
    total = pairs["keyspace_hits"] + pairs["keyspace_misses"]
    return pairs.assign(hit_rate=pairs["keyspace_hits"] / total.where(total > 0))


def ratio(series_hits: pd.Series, series_misses: pd.Series) -> float | None:
    hits, misses = float(series_hits.sum()), float(series_misses.sum())
    return None if hits + misses == 0 else hits / (hits + misses)


EVENT_COLUMNS = ["at", "kind", "label", "synthetic"]


def target_events(target_conn: psycopg.Connection, period: Period) -> pd.DataFrame:
    """Migrations and refreshes of the period, from their logs in the watched database."""
    rows = []
    if target_conn.execute("SELECT to_regclass('dbpulse.migration_runs')").fetchone()[0]:
        rows.append(to_frame(target_conn.execute("""
            SELECT finished_at AS at, 'migration' AS kind,
                   direction || ' ' || version || ' ' || name AS label, false AS synthetic
            FROM dbpulse.migration_runs
            WHERE outcome = 'ok' AND finished_at BETWEEN %s AND %s""",
            (period.start, period.end))))
    if target_conn.execute("SELECT to_regclass('dbpulse.matview_refresh_log')").fetchone()[0]:
        rows.append(to_frame(target_conn.execute("""
            SELECT finished_at AS at, 'refresh' AS kind, 'refresh ' || view_name AS label,
                   false AS synthetic
            FROM dbpulse.matview_refresh_log
            WHERE outcome = 'ok' AND finished_at BETWEEN %s AND %s""",
            (period.start, period.end))))
    return _concat_events(rows)


def events(history_conn: psycopg.Connection, source: str, period: Period,
           from_target: pd.DataFrame | None = None) -> pd.DataFrame:
    """What happened in the period: the history's own events (e.g. the synthetic demo's phase
    1), the agent's alerts and, when given, the watched database's migrations and refreshes
    (target_events)."""
    own = to_frame(history_conn.execute("""
        SELECT at, kind, label, synthetic FROM dbpulse.history_events
        WHERE source = %s AND at BETWEEN %s AND %s""", (source, period.start, period.end)))
    raised = alert_log.events(history_conn, source, period.start, period.end)
    return _concat_events([own, raised] + ([from_target] if from_target is not None else []))


def _concat_events(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values("at").reset_index(drop=True)


def snapshot_times(conn: psycopg.Connection, source: str, limit: int = 2000) -> pd.DataFrame:
    """The most recent snapshots, newest first (for choosing an interval)."""
    return to_frame(conn.execute("""
        SELECT id, taken_at, synthetic, taken_by FROM dbpulse.snapshots WHERE source = %s
        ORDER BY taken_at DESC LIMIT %s""", (source, limit)))


def filter_statements(frame: pd.DataFrame, flt) -> pd.DataFrame:
    """statement_deltas narrowed and ranked like the live list (a statements.StatementFilter;
    the database is the history's source, DB Pulse's own statements were never stored)."""

    if frame.empty:
        return frame
    keep = frame["calls"].astype(float) >= flt.min_calls
    if flt.role:
        keep &= frame["role_name"] == flt.role
    if flt.text:
        keep &= frame["query"].fillna("").str.lower().str.contains(flt.text.lower(), regex=False)
    column = ORDER_BY[flt.order_by]
    return (frame[keep].assign(_rank=lambda f: f[column].astype(float))
            .sort_values("_rank", ascending=False).drop(columns="_rank").head(flt.limit))


def window_period(choice: str, now: datetime) -> Period:
    """The interval-mode presets."""
    spans = {"last hour": timedelta(hours=1), "last day": timedelta(days=1),
             "last week": timedelta(days=7)}
    return Period(now - spans[choice], now)


# How these frames are shown (ui/tables.py)
INTERVAL_COLUMNS = {
    "query": STATEMENT,
    "calls": Column("Calls", "count"),
    "total_exec_ms": Column("Total time", "number", unit="ms", digits=0),
    "mean_exec_ms": Column("Mean", "number", unit="ms", digits=2),
    "share_of_total_time": Column("Share of time", "share"),
    "rows": Column("Rows", "count"),
    "shared_blks_read": Column("Blocks read", "count"),
    "temp_blks": Column("Temp blocks", "count"),
    "io_ms": Column("I/O time", "number", unit="ms", digits=0),
    "restarts": Column("Counter restarts", "count",
                       help="Times this statement's counters started again inside the interval "
                            "(a reset or eviction); calls between the snapshot before a restart "
                            "and the restart itself are not counted, so the figure is a lower "
                            "bound."),
    "role_name": Column("Role", width="small"),
    "queryid": Column("Query id", width="small"),
}
