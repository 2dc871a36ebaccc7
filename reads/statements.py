"""Slow queries from pg_stat_statements.

The view's columns follow the *installed extension's* version (pg_extension.extversion, which can
lag the server after an upgrade), so the per-version part lives in sql/statements/entries_X.Y.sql,
named by the minimum version it needs; the filtering and ranking around it is shared.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from foundation import plan_login
from foundation.capabilities import Extension, version_tuple
from foundation.columns import DATABASE, ROLE, STATEMENT, Column
from foundation.connections import OWN_STATEMENT_TAG
from foundation.format import known
from foundation.frames import to_frame
from foundation.roles import ActionError, Actor
from foundation.secrets import redact_text

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "statements"

# what the list can be ranked by: option -> output column
ORDER_BY = {
    "total time": "total_exec_ms", "mean time": "mean_exec_ms", "calls": "calls",
    "rows": "rows", "shared blocks read": "shared_blks_read", "temp blocks": "temp_blks",
    "I/O time": "io_ms",
}
INSUFFICIENT_PRIVILEGE = "<insufficient privilege>"


class StatementsUnavailable(RuntimeError):
    """pg_stat_statements cannot be read here; the message says why and what to do."""


def entries_file(extversion: str) -> Path:
    """The file for the highest minimum version not above the installed one."""
    installed = version_tuple(extversion)
    candidates = sorted((version_tuple(p.stem.split("_", 1)[1]), p)
                        for p in SQL_DIR.glob("entries_*.sql"))
    usable = [p for v, p in candidates if v <= installed]
    if not usable:
        raise StatementsUnavailable(f"pg_stat_statements {extversion} is too old; "
                                    "run ALTER EXTENSION pg_stat_statements UPDATE;")
    return usable[-1]


def entries_query(ext: Extension, this_database: bool = False,
                  texts: bool = True) -> sql.Composable:
    """The version-specific entries SELECT, for a CTE (PostgreSQL materializes it whole, every
    column, as the function is volatile: for a query reading it twice) or a subquery (only the
    columns used are computed); with this_database, only the connected database's entries (the
    function returns every database's); without texts, `query` is NULL and the file holding
    the texts is not read."""
    if not ext.installed:
        raise StatementsUnavailable("pg_stat_statements is not installed in this database: "
                                    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
    text = "\n".join(line for line in entries_file(ext.installed_version).read_text().splitlines()
                     if not line.startswith("--"))
    query = sql.SQL(text).format(pss=sql.SQL("{}.{}" if texts else "{}.{}(false)").format(
        sql.Identifier(ext.schema), sql.Identifier("pg_stat_statements")))
    if this_database:
        query += sql.SQL("\nWHERE s.dbid = (SELECT oid FROM pg_database "
                         "WHERE datname = current_database())")
    return query


@dataclass
class StatementFilter:
    database: str | None = None      # None: the connected database; "*": all databases
    role: str | None = None
    min_calls: int = 1
    text: str | None = None          # case-insensitive substring of the statement text
    hide_own: bool = True            # DB Pulse's own statements
    order_by: str = "total time"
    limit: int = 50


def top_statements(conn: psycopg.Connection, ext: Extension,
                   flt: StatementFilter = StatementFilter()) -> pd.DataFrame:
    """The top statements by the chosen measure, each with its share of the total execution
    time of the chosen database(s) (computed before the role, calls and text filters)."""
    if flt.order_by not in ORDER_BY:
        raise ValueError(f"order_by must be one of {', '.join(ORDER_BY)}")
    query = sql.SQL("""
        -- the database's entries, kept once for the total and the top rows (only the
        -- columns shown: every entry is stored)
        WITH scoped AS (
            SELECT e.queryid, e.userid, e.dbid, e.query, e.calls, e.total_exec_ms,
                   e.mean_exec_ms, e.max_exec_ms, e.stddev_exec_ms, e.total_plan_ms, e.rows,
                   e.shared_blks_hit, e.shared_blks_read, e.temp_blks, e.io_ms
            FROM ({entries}) e
            WHERE %(database)s = '*' OR e.dbid = (SELECT oid FROM pg_database
                                                  WHERE datname = coalesce(%(database)s,
                                                                           current_database()))
        ),
        -- an aggregate beside the top rows, not a window over every row and its text
        total AS (SELECT nullif(sum(total_exec_ms), 0) AS ms FROM scoped),
        top AS (
            SELECT * FROM scoped
            WHERE calls >= %(min_calls)s
              AND (%(role)s::text IS NULL
                   OR userid = (SELECT oid FROM pg_roles WHERE rolname = %(role)s))
              AND (%(text)s::text IS NULL OR strpos(lower(query), lower(%(text)s)) > 0)
              AND NOT (%(hide_own)s AND query LIKE %(own_tag)s)
            ORDER BY {order} DESC NULLS LAST
            LIMIT %(limit)s
        )
        -- names only for the rows kept
        SELECT queryid, userid, dbid, r.rolname AS role_name, d.datname AS database_name,
               left(query, 2000)  AS query,
               length(query)      AS query_length,
               calls, total_exec_ms, mean_exec_ms, max_exec_ms, stddev_exec_ms, total_plan_ms,
               rows, shared_blks_hit, shared_blks_read, temp_blks, io_ms,
               total_exec_ms / (SELECT ms FROM total) AS share_of_total_time,
               shared_blks_hit::float8 / nullif(shared_blks_hit + shared_blks_read, 0)
                                  AS cache_hit_rate
        FROM top
        LEFT JOIN pg_roles r ON r.oid = top.userid
        LEFT JOIN pg_database d ON d.oid = top.dbid
        ORDER BY {order} DESC NULLS LAST
        """).format(entries=entries_query(ext), order=sql.Identifier(ORDER_BY[flt.order_by]))
    params = {"database": flt.database, "role": flt.role, "min_calls": flt.min_calls,
              "text": flt.text or None, "hide_own": flt.hide_own,
              "own_tag": "%" + OWN_STATEMENT_TAG, "limit": flt.limit}
    cur = conn.execute(query, params)
    frame = to_frame(cur)
    frame["query"] = frame["query"].map(redact_text)  # CREATE ROLE … PASSWORD '…' and such
    frame.attrs["insufficient_privilege"] = int((frame["query"] == INSUFFICIENT_PRIVILEGE).sum()) \
        if len(frame) else 0
    return frame


@dataclass
class StatementsInfo:
    dealloc: int | None           # entries evicted since the reset (1.9+)
    stats_reset: datetime | None  # when pg_stat_statements was last reset (1.9+)
    max_entries: int | None       # pg_stat_statements.max
    entries: int                  # how many it holds now (all databases)


def statements_info(conn: psycopg.Connection, ext: Extension) -> StatementsInfo:
    has_info = version_tuple(ext.installed_version) >= (1, 9)
    dealloc = reset = None
    if has_info:
        dealloc, reset = conn.execute(sql.SQL("SELECT dealloc, stats_reset FROM {}.{}").format(
            sql.Identifier(ext.schema), sql.Identifier("pg_stat_statements_info"))).fetchone()
    # without the texts: the view loads the whole file of them to count the entries
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}(false)").format(
        sql.Identifier(ext.schema), sql.Identifier("pg_stat_statements"))).fetchone()[0]
    max_entries = conn.execute("SELECT current_setting('pg_stat_statements.max', true)").fetchone()[0]
    return StatementsInfo(dealloc, reset, int(max_entries) if max_entries else None, count)


def slow_call_bounds(calls, mean, low, high, extremes_cover, threshold_ms: float,
                     extremes_are_calls: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per statement, the fewest and the most of its calls that can have been slower than the
    threshold T. pg_stat_statements keeps no per-call times, only calls n, the mean and, for
    the calls since min/max last restarted, min and max. Where min and max cover the calls
    counted: none slow when max <= T, all when min > T; else at least n·(mean − T)/(max − T)
    (the others at most T, none above max) and at most n·(mean − min)/(T − min). When the
    extremes are themselves among the calls counted (a cumulative entry, not a period's
    difference), the max is one slow call and the min one that is not. Without extremes:
    at least one slow call when the mean is over T, at most n·mean/T.

    >>> lo, hi = slow_call_bounds([720, 10, 10, 4], [50, 2, 2000, 800], [5, 1, 1500, 100],
    ...                           [3000, 3, 2500, 1200], [True, True, True, False], 1000, True)
    >>> lo.tolist(), hi.tolist()
    ([1.0, 0.0, 10.0, 0.0], [32.0, 0.0, 10.0, 3.0])
    >>> lo, hi = slow_call_bounds([100], [1000], [1000], [1000], [True], 1000, False)
    >>> lo.tolist(), hi.tolist()
    ([0.0], [0.0])
    """
    n, mean, low, high = (np.asarray(v, dtype=float) for v in (calls, mean, low, high))
    covered = np.asarray(extremes_cover, dtype=bool) & ~np.isnan(low) & ~np.isnan(high)
    t = threshold_ms
    with np.errstate(divide="ignore", invalid="ignore"):
        least = np.ceil(n * (mean - t) / (high - t))
        most = np.floor(n * (mean - low) / (t - low))
    most = np.nan_to_num(most, nan=0.0, posinf=np.inf)  # mean = min = T: every call is T
    if extremes_are_calls:
        least, most = np.maximum(least, 1), np.minimum(most, n - 1)
    least = np.where(high <= t, 0, np.where(low > t, n, least))
    most = np.where(high <= t, 0, np.where(low > t, n, most))
    with np.errstate(divide="ignore", invalid="ignore"):
        unbounded_most = np.floor(n * mean / t) if t > 0 else n
    least = np.where(covered, least, np.where(mean > t, 1, 0))
    most = np.where(covered, most, unbounded_most)
    least = np.clip(np.nan_to_num(least, nan=0.0), 0, n)
    return least, np.clip(np.maximum(most, least), 0, n)


@dataclass
class SlowQueryKpi:
    """The plan's KPI, the share of calls slower than the threshold, as the bounds
    slow_call_bounds allows summed over the statements: exact where every statement's calls
    are all on one side of the threshold."""
    slow_calls_low: int
    slow_calls_high: int
    total_calls: int
    uncertain_statements: int    # statements whose calls straddle the threshold
    threshold_ms: float
    # when asked for: the statements averaging at least slow_mean_ms over at least min_calls
    # calls, and the ids of the slowest 20 of them (None: another role's, unreadable)
    slow_statements: int = 0
    slowest_queryids: tuple = ()
    total_exec_ms: float = 0.0   # every call's execution time together
    # the statements counted, read from pg_stat_statements (queryid, calls, total_exec_ms):
    # the agent's busiest statements come from the same read
    entries: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, frame: pd.DataFrame | dict[str, np.ndarray], threshold_ms: float,
           extremes_are_calls: bool) -> "SlowQueryKpi":
        """From columns (a frame's, or arrays by name) calls, mean_exec_ms, min_exec_ms,
        max_exec_ms, extremes_cover."""
        if len(frame["calls"]) == 0:
            return cls(0, 0, 0, 0, threshold_ms)
        least, most = slow_call_bounds(frame["calls"], frame["mean_exec_ms"],
                                       frame["min_exec_ms"], frame["max_exec_ms"],
                                       frame["extremes_cover"], threshold_ms, extremes_are_calls)
        calls = frame["calls"].astype(float)
        return cls(int(least.sum()), int(most.sum()), int(calls.sum()),
                   int((least != most).sum()), threshold_ms,
                   total_exec_ms=float((calls * frame["mean_exec_ms"].astype(float)).sum()))

    @property
    def exact(self) -> bool:
        return self.slow_calls_low == self.slow_calls_high

    @property
    def share_low(self) -> float | None:
        return None if self.total_calls == 0 else self.slow_calls_low / self.total_calls

    @property
    def share_high(self) -> float | None:
        return None if self.total_calls == 0 else self.slow_calls_high / self.total_calls

    def state(self, target: float) -> str:
        """red only when even the lower bound misses the target; amber when only the upper
        one does (it may or may not); grey without calls."""
        if self.total_calls == 0:
            return "grey"
        return ("red" if self.share_low > target else "amber" if self.share_high > target
                else "green")

    def text(self) -> str:
        """
        >>> SlowQueryKpi(1, 60, 720, 1, 1000).text()
        '0.1–8.3 % (bounds from min/mean/max)'
        >>> SlowQueryKpi(40, 40, 720, 0, 1000).text()
        '5.6 % (exact)'
        """
        figure, bounds = self.figure()
        return figure if self.total_calls == 0 else f"{figure} ({bounds or 'exact'})"

    def figure(self) -> tuple[str, str | None]:
        """The share, and how its bounds were found when it is a range (None when exact, or
        without calls): a page says that under the figure, in which the card's width cut it.

        >>> SlowQueryKpi(1, 60, 720, 1, 1000).figure()
        ('0.1–8.3 %', 'bounds from min/mean/max')
        >>> SlowQueryKpi(40, 40, 720, 0, 1000).figure(), SlowQueryKpi(0, 0, 0, 0, 1000).figure()
        (('5.6 %', None), ('n/a', None))
        """
        if self.total_calls == 0:
            return "n/a", None
        if self.exact:
            return f"{100 * self.share_low:.1f} %", None
        return (f"{100 * self.share_low:.1f}–{100 * self.share_high:.1f} %",
                "bounds from min/mean/max")


def slow_query_kpi(conn: psycopg.Connection, ext: Extension, threshold_ms: float = 1000.0,
                   slow_mean_ms: float | None = None, min_calls: int = 1) -> SlowQueryKpi:
    """The plan's KPI "slow queries (> 1 s) under 5 %" in the connected database, without DB
    Pulse's own statements (SlowQueryKpi over every entry); with slow_mean_ms, also the
    statements slow on average (the slow-query check), from the same read. Read without the
    statements' texts: which entries are DB Pulse's comes from own_entries."""
    # a subquery, not a CTE: only the columns used are computed (a CTE over the volatile
    # function is materialized whole: 7 ms against 4.4 at 4,800 entries)
    rows = conn.execute(sql.SQL("""
        SELECT calls::float8 AS calls, mean_exec_ms, min_exec_ms, max_exec_ms, queryid, userid,
               dbid, NOT coalesce(minmax_partial, false) AS extremes_cover
        FROM ({entries}) entries
        WHERE calls > 0
        """).format(entries=entries_query(ext, this_database=True, texts=False)),
        binary=True).fetchall()
    # columns as arrays, not a frame: a frame of every entry cost 2-3 of this read's 13-15 ms
    # at 4,900 entries; a hidden query id stays None
    calls, mean, low, high, queryid, userid, dbid, cover = zip(*rows) if rows else [()] * 8
    entries = list(zip(userid, queryid))
    own = own_entries(conn, ext, dbid[0], entries) if entries else frozenset()
    keep = np.fromiter((entry not in own for entry in entries), dtype=bool, count=len(entries))

    def kept(values: tuple, dtype) -> np.ndarray:
        return np.array(values, dtype=dtype)[keep]

    counted = {"calls": kept(calls, float), "mean_exec_ms": kept(mean, float),
               "min_exec_ms": kept(low, float), "max_exec_ms": kept(high, float),
               "extremes_cover": kept(cover, bool)}
    kpi = SlowQueryKpi.of(counted, threshold_ms, extremes_are_calls=True)
    queryids = kept(queryid, object)
    # each statement's time as the KPI's total counts it (calls x mean)
    kpi.entries = pd.DataFrame({"queryid": queryids, "calls": counted["calls"],
                                "total_exec_ms": counted["calls"] * counted["mean_exec_ms"]})
    is_slow = (slow_on_average(counted["mean_exec_ms"], counted["calls"], slow_mean_ms, min_calls)
               if slow_mean_ms is not None else np.zeros(len(queryids), dtype=bool))
    kpi.slow_statements = int(is_slow.sum())
    slowest = np.argsort(-counted["mean_exec_ms"][is_slow], kind="stable")[:20]
    kpi.slowest_queryids = tuple(None if q is None else int(q)
                                 for q in queryids[is_slow][slowest])
    return kpi


# DB Pulse's own entries are told by their text (the tag), and the texts live in a file that a
# read with them loads whole (15 ms of the server's at 5,000 entries, on every look). An
# entry's text is fixed while it lives, so each entry's verdict is kept, per database: the texts
# are read again only when an entry not seen before appears (one evicted comes back as seen),
# and every verdict is renewed at least every OWN_VERDICTS_TTL_S (an entry evicted and created
# again by another statement with the same query id, a rare case, is then judged anew; a
# database created again under the same name has another dbid, so its entries are new).
OWN_VERDICTS_TTL_S = 600.0
_own_verdicts: dict[tuple, tuple[float, frozenset[tuple], frozenset[tuple]]] = {}


def temp_written_bytes(conn: psycopg.Connection, ext: Extension) -> tuple[int, int]:
    """What the connected database's entries in pg_stat_statements wrote to temporary files, in
    bytes: (the application's statements, DB Pulse's own: own_entries), each entry since it
    began counting (a reset or an eviction restarts it). Read without the texts."""
    rows = conn.execute(sql.SQL("""
        SELECT userid, queryid, dbid,
               temp_blks_written * current_setting('block_size')::bigint AS temp_bytes
        FROM ({entries}) e
        WHERE temp_blks_written > 0
        """).format(entries=entries_query(ext, this_database=True, texts=False))).fetchall()
    if not rows:
        return 0, 0
    own = own_entries(conn, ext, rows[0][2], [(userid, queryid) for userid, queryid, *_ in rows])
    mine = sum(int(b) for userid, queryid, _, b in rows if (userid, queryid) in own)
    return sum(int(b) for *_, b in rows) - mine, mine


def own_entries(conn: psycopg.Connection, ext: Extension, dbid: int,
                entries: list[tuple]) -> frozenset[tuple[int, int]]:
    """Which of `entries` ((userid, queryid) of the connected database's, whose oid is dbid; the
    query id None where it is hidden, as for other roles' statements without pg_read_all_stats,
    whose texts are hidden too: never DB Pulse's) are DB Pulse's own statements."""
    key = (conn.info.host, conn.info.port, dbid)
    read_at, seen, own = _own_verdicts.get(key, (-OWN_VERDICTS_TTL_S, frozenset(), frozenset()))
    fresh = time.monotonic() - read_at < OWN_VERDICTS_TTL_S
    # a missing query id (hidden) is never among those judged
    if fresh and seen.issuperset(e for e in entries if known(e[1])):
        return own
    started = time.monotonic()
    verdicts = conn.execute(sql.SQL("""
        SELECT s.userid, s.queryid, s.query LIKE %s
        FROM {}.{}(true) s
        WHERE s.dbid = %s AND s.queryid IS NOT NULL
        """).format(sql.Identifier(ext.schema), sql.Identifier("pg_stat_statements")),
        ("%" + OWN_STATEMENT_TAG, dbid), binary=True).fetchall()
    judged = frozenset((userid, queryid) for userid, queryid, _ in verdicts)
    mine = frozenset((userid, queryid) for userid, queryid, is_own in verdicts if is_own)
    if fresh:
        # an entry gone since (evicted by a full pg_stat_statements, to come back under the
        # same id) keeps its verdict until the TTL: its return reads no texts again
        judged, mine = seen | judged, (own - judged) | mine
    else:
        read_at = started
    _own_verdicts[key] = (read_at, judged, mine)
    return mine


def slow_statements(frame: pd.DataFrame, mean_ms: float, min_calls: int) -> pd.DataFrame:
    """The rows of a top_statements frame that count as slow by the configured threshold."""
    return frame[slow_on_average(frame["mean_exec_ms"], frame["calls"], mean_ms, min_calls)]


def slow_on_average(mean_exec_ms, calls, mean_ms: float, min_calls: int):
    """Which statements count as slow (the slow-query check's rule): a mean of at least mean_ms
    over at least min_calls calls; arrays or series in, the same out.

    >>> slow_on_average(np.array([150.0, 150.0, 20.0]), np.array([100, 3, 500]), 100, 10)
    array([ True, False, False])
    """
    return (mean_exec_ms >= mean_ms) & (calls >= min_calls)


def statement_detail(conn: psycopg.Connection, ext: Extension, queryid: int, userid: int,
                     dbid: int | None = None) -> dict | None:
    """Every counter of one statement, with its full text; without a database id (a statement
    from the stored history), the one in the connected database."""
    cur = conn.execute(sql.SQL(
        "SELECT * FROM {}.{} WHERE queryid = %s AND userid = %s AND dbid = coalesce(%s::oid, "
        "(SELECT oid FROM pg_database WHERE datname = current_database()))").format(
            sql.Identifier(ext.schema), sql.Identifier("pg_stat_statements")),
        (queryid, userid, dbid))
    row = cur.fetchone()
    if row is None:
        return None
    detail = dict(zip([c.name for c in cur.description], row))
    detail["query"] = redact_text(detail.get("query"))
    return detail


def queryid_text(queryid) -> str:
    """A query id as PostgreSQL prints it, also when pandas holds it as a float.

    >>> queryid_text(-1118924422343236163), queryid_text(42.0), queryid_text(None)
    ('-1118924422343236163', '42', 'hidden')
    """
    if queryid is None or queryid != queryid:
        return "hidden"
    return str(int(queryid))


def chart_labels(texts: pd.Series, queryids: pd.Series, width: int = 60) -> list[str]:
    """A label per statement for a chart's axis: the start of its text, and where two starts
    are alike the end of its query id, so two statements are never drawn as one bar.

    >>> chart_labels(pd.Series(["SELECT a FROM t WHERE x", "SELECT a FROM t WHERE y", "SELECT 1"]),
    ...              pd.Series([111, 222, 333]), width=15)
    ['SELECT a FROM t… #111', 'SELECT a FROM t… #222', 'SELECT 1']
    """
    starts = [" ".join(str(t or "?").split()) for t in texts]
    cut = [s if len(s) <= width else s[:width] + "…" for s in starts]
    twins = {c for c in cut if cut.count(c) > 1}
    return [c + f" #{queryid_text(q)[-6:]}" if c in twins else c
            for c, q in zip(cut, queryids)]


def counter_rows(detail: dict) -> list[dict]:
    """pg_stat_statements' counters of one statement in words, times in ms, for a table.

    >>> counter_rows({"query": "SELECT 1", "calls": 1200, "mean_exec_time": 0.25, "toplevel": True})
    [{'counter': 'calls', 'value': '1,200'}, {'counter': 'mean exec time', 'value': '0.25 ms'}, {'counter': 'toplevel', 'value': 'yes'}]
    """
    rows = []
    for name, value in detail.items():
        if name in ("query", "queryid", "userid", "dbid"):
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, float):
            text = f"{value:,.2f}" + (" ms" if name.endswith("_time") else "")
        elif isinstance(value, datetime):
            text = f"{value:%Y-%m-%d %H:%M} UTC"
        else:
            text = "" if value is None else str(value)
        rows.append({"counter": name.replace("_", " "), "value": text})
    return rows


EXPLAINABLE = re.compile(r"^\s*(/\*.*?\*/\s*)*(WITH|SELECT|INSERT|UPDATE|DELETE|MERGE|VALUES|TABLE)\b",
                         re.I | re.S)


class ExplainError(ActionError):
    """A plan cannot be made or the statement may not run; the message says why."""

    kind = "explain"


def parameter_count(query: str) -> int:
    return max((int(n) for n in re.findall(r"\$(\d+)", query)), default=0)


def explain_generic(conn: psycopg.Connection, query: str, server_version_num: int,
                    timeout_ms: int = 3000, role: str | None = None) -> str:
    """The generic plan of a normalized statement ($1, $2 ... left as parameters), on the plan
    login's connection (foundation/plan_login.py) as `role`, inside a read-only transaction that is
    always rolled back. EXPLAIN without ANALYZE does not run it, but planning may run its
    IMMUTABLE functions: hence the plan login."""
    if not EXPLAINABLE.match(query):
        raise ExplainError("Only SELECT, INSERT, UPDATE, DELETE and MERGE statements have a plan.")
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            plan_login.take_role(conn, role, timeout_ms)
            return plan_in_transaction(conn, query, server_version_num)
    except psycopg.Error as exc:
        raise ExplainError(f"EXPLAIN failed: {str(exc).strip().splitlines()[0]}") from exc


def plan_in_transaction(conn: psycopg.Connection, query: str, server_version_num: int) -> str:
    """The generic plan, inside the caller's transaction (which must roll back)."""
    if server_version_num >= 160000:
        rows = conn.execute("EXPLAIN (GENERIC_PLAN) " + query).fetchall()
    else:  # before 16: a prepared statement forced to its generic plan
        conn.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
        conn.execute("PREPARE dbpulse_explain AS " + query)
        nulls = ", ".join(["NULL"] * parameter_count(query))
        rows = conn.execute("EXPLAIN EXECUTE dbpulse_explain"
                            + (f"({nulls})" if nulls else "")).fetchall()
        conn.execute("DEALLOCATE dbpulse_explain")
    return "\n".join(r[0] for r in rows)


def explain_analyze(conn: psycopg.Connection, who: Actor, query: str, params: list,
                    role: str | None, timeout_ms: int = 10_000) -> str:
    """EXPLAIN ANALYZE executes the statement: DBA only, with the given parameter values, in a
    transaction that is always rolled back, on the plan login's connection (checked to have no
    more rights than the role that ran the statement) as that role (`role`; None: the login is
    that role)."""
    who.require_dba("EXPLAIN ANALYZE")
    if not EXPLAINABLE.match(query):
        raise ExplainError("Only SELECT, INSERT, UPDATE, DELETE and MERGE statements have a plan.")
    if len(params) != parameter_count(query):
        raise ExplainError(f"The statement has {parameter_count(query)} parameters; "
                           f"{len(params)} values were given.")
    try:
        with conn.transaction(force_rollback=True):
            plan_login.take_role(conn, role, timeout_ms)
            if params:
                rows = _explain_with_values(conn, query, params)
            else:
                rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query).fetchall()
    except psycopg.Error as exc:
        raise ExplainError(f"EXPLAIN ANALYZE failed: {str(exc).strip().splitlines()[0]}") from exc
    return "\n".join(r[0] for r in rows)


def _explain_with_values(conn: psycopg.Connection, query: str, params: list) -> list:
    conn.execute("PREPARE dbpulse_analyze AS " + query)
    placeholders = sql.SQL(", ").join(sql.Literal(v) for v in params)
    rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE dbpulse_analyze ({})").format(
        placeholders)).fetchall()
    conn.execute("DEALLOCATE dbpulse_analyze")
    return rows


# How these frames are shown (ui/tables.py)
TOP_COLUMNS = {
    "query": STATEMENT,
    "calls": Column("Calls", "count"),
    "total_exec_ms": Column("Total time", "number", unit="ms", digits=0,
                            help="Execution time of all calls together"),
    "mean_exec_ms": Column("Mean", "number", unit="ms", digits=2),
    "max_exec_ms": Column("Slowest call", "number", unit="ms", digits=1),
    "share_of_total_time": Column("Share of time", "share",
                                  help="Of the execution time of every statement tracked"),
    "rows": Column("Rows", "count", help="Rows returned or changed, all calls together"),
    "shared_blks_read": Column("Blocks read", "count",
                               help="8 kB blocks read from disk or the OS cache, not shared "
                                    "buffers"),
    "temp_blks": Column("Temp blocks", "count",
                        help="Blocks written to temporary files: work_mem was too small"),
    "io_ms": Column("I/O time", "number", unit="ms", digits=0,
                    help="Needs track_io_timing; otherwise 0"),
    "role_name": ROLE,
    "database_name": DATABASE,
    "queryid": Column("Query id", width="small"),
}
LIST_COLUMNS = {"slow": Column("Slow", "flag", help="Mean over the slow-query threshold"),
                **TOP_COLUMNS}
COUNTER_COLUMNS = {"counter": Column("Counter"), "value": Column("Value")}
