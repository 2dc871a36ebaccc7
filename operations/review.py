"""The weekly performance review: one period against the one before, from the history.

Everything here is computed from snapshot differences (operations/history.py); nothing is reset.
The result is plain data (frames and small dataclasses) that the review page, the HTML report
and the Markdown summary all draw from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import psycopg

from foundation.config import Settings
from foundation.format import known
from foundation.plan import current as current_plan
from foundation.threads import work_beside
from operations import history
from operations.checks import counted
from operations.history import Period
from reads import activity, probes, redis_cache
from reads.plan_tracker import hot_query_label
from reads.statements import EXPLAINABLE, SlowQueryKpi, slow_on_average

MIN_CALLS_TO_COMPARE = 10   # fewer calls in either period: too noisy to call it a change
MIN_MEAN_CHANGE = 0.10      # a smaller change of the mean is noise, not an improvement


@dataclass(frozen=True)
class Bounds:
    """A value known only to lie between two bounds (the slow-call share)."""
    low: float
    high: float


def bounded(low: float, high: float) -> float | Bounds:
    """
    >>> bounded(0.5, 0.5), bounded(0.5, 2.0)
    (0.5, Bounds(low=0.5, high=2.0))
    """
    return low if low == high else Bounds(low, high)


def low_high(value: float | Bounds) -> tuple[float, float]:
    return (value.low, value.high) if isinstance(value, Bounds) else (value, value)


@dataclass
class Kpi:
    name: str
    previous: float | Bounds | None
    current: float | Bounds | None
    unit: str                  # "%", "ms", "min", "bytes", "count"
    higher_is_better: bool
    target: float | None = None
    target_text: str = ""

    @property
    def state(self) -> str:
        """green/red against the target, grey when unknown or without one; amber for bounds
        that straddle it (it may or may not be met)."""
        if self.current is None or self.target is None:
            return "grey"
        meets = [v >= self.target if self.higher_is_better else v <= self.target
                 for v in low_high(self.current)]
        return "green" if all(meets) else "red" if not any(meets) else "amber"

    @property
    def trend(self) -> str:
        """better / worse / same / unknown, against the previous period (unknown too when
        bounds overlap: either may be larger)."""
        if self.previous is None or self.current is None:
            return "unknown"
        (prev_low, prev_high), (cur_low, cur_high) = low_high(self.previous), low_high(self.current)
        if isinstance(self.previous, Bounds) or isinstance(self.current, Bounds):
            if cur_low > prev_high or cur_high < prev_low:
                up = cur_low > prev_high
                return "better" if up == self.higher_is_better else "worse"
            return "unknown"
        scale = max(abs(self.previous), abs(self.current), 1e-12)
        if abs(self.current - self.previous) / scale < 0.02:
            return "same"
        up = self.current > self.previous
        return "better" if up == self.higher_is_better else "worse"

    @property
    def went_up(self) -> bool:
        return low_high(self.current)[0] > low_high(self.previous)[0]


@dataclass
class Review:
    source: str
    previous: Period
    current: Period
    coverage_previous: history.Coverage
    coverage_current: history.Coverage
    synthetic: bool
    kpis: list[Kpi]
    improved: pd.DataFrame       # statements, most time saved first
    regressed: pd.DataFrame      # statements, most time lost first
    new_slow: pd.DataFrame
    newly_unused_indexes: pd.DataFrame
    table_growth: pd.DataFrame
    matview_breaches: pd.DataFrame
    statement_trend: pd.DataFrame   # per bucket mean time of the most changed statements
    redis_trend: pd.DataFrame
    buffer_trend: pd.DataFrame
    events: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        parts = []
        if not self.improved.empty:
            top = self.improved.iloc[0]
            parts.append(f"Biggest improvement: {top['label']}, mean {top['mean_ms_previous']:.2f}"
                         f" → {top['mean_ms_current']:.2f} ms ({top['mean_change']:+.0%}), "
                         f"{top['time_saved_ms'] / 1000:,.1f} s of database time saved"
                         + (f" — {self.attribution}" if self.attribution else ""))
        if not self.regressed.empty:
            worst = self.regressed.iloc[0]
            parts.append(f"Biggest regression: {worst['label']}, mean "
                         f"{worst['mean_ms_previous']:.2f} → {worst['mean_ms_current']:.2f} ms "
                         f"({worst['mean_change']:+.0%})")
        return ". ".join(parts) + "." if parts else "No statement changed enough to compare."

    @property
    def attribution(self) -> str:
        """To which migration the biggest improvement is owed, if one precedes it in time."""
        if self.improved.empty:
            return ""
        top = self.improved.iloc[0]
        series = self.statement_trend[self.statement_trend["queryid"] == top["queryid"]] \
            if not self.statement_trend.empty else self.statement_trend
        return attribute_change(series, top["mean_ms_previous"], top["mean_ms_current"],
                                self.events)


def statement_label(query: str | None) -> str:
    """The plan's name of a hot query, else the start of its text."""
    text = query or "?"
    return hot_query_label(text) or " ".join(text.split())[:80]


def slow_calls(deltas: pd.DataFrame, settings: Settings) -> SlowQueryKpi:
    """The plan's slow-call KPI over a period: the Slow queries page's bounds, from the calls
    and mean of the period and the fastest and slowest call the snapshots kept."""
    return SlowQueryKpi.of(deltas, settings.kpi_slow_ms, extremes_are_calls=False)


def slow_share_bounds(deltas: pd.DataFrame, settings: Settings) -> float | Bounds | None:
    """The slow-call share in percent: a value where exact, else its bounds."""
    kpi = slow_calls(deltas, settings)
    if kpi.total_calls == 0:
        return None
    return bounded(100 * kpi.share_low, 100 * kpi.share_high)


def lone_restart_notes(deltas: pd.DataFrame) -> list[str]:
    """Statements whose counters restarted alone (pg_stat_statements_reset of that one
    statement, or its eviction): their calls between the snapshot before and the restart are
    not counted.

    >>> lone_restart_notes(pd.DataFrame({"restarts_alone": [2, 0, 1]}))
    ['Counters restarted on their own 3 times in 2 statements (a reset of one statement, or an \
eviction): calls between the snapshot before and each restart are not counted']
    """
    if deltas.empty or "restarts_alone" not in deltas:
        return []
    alone = deltas["restarts_alone"].astype(int)
    times, count = int(alone.sum()), int((alone > 0).sum())
    if times == 0:
        return []
    return [f"Counters restarted on their own {counted(times, 'time')} in "
            f"{counted(count, 'statement')} (a reset of one statement, or an eviction): calls "
            "between the snapshot before and each restart are not counted"]


def hot_query_mean(deltas: pd.DataFrame, name: str) -> float | None:
    if deltas.empty:
        return None
    mine = deltas[deltas["query"].map(hot_query_label) == name]
    calls = mine["calls"].astype(float).sum()
    return None if calls == 0 else float(mine["total_exec_ms"].astype(float).sum() / calls)


def attribute_change(series: pd.DataFrame, mean_before: float, mean_after: float,
                     events: pd.DataFrame, bucket_hours: int = 6) -> str:
    """Which migration a statement's change follows, with how sure that is. The change is put
    in the first time bucket from which every later bucket's mean is on the new side of the
    midpoint between the two periods' means; a migration that finished within that bucket or
    the one before it is credited. Otherwise none is, and the text says when it changed.

    >>> t = pd.Timestamp("2026-11-10", tz="UTC"); h = pd.Timedelta(hours=6)
    >>> series = pd.DataFrame({"bucket": [t, t + h, t + 2 * h, t + 3 * h],
    ...                        "mean_exec_ms": [40.0, 41.0, 9.0, 10.0]})
    >>> moved = pd.DataFrame({"at": [t + 2 * h + pd.Timedelta(hours=1)], "kind": ["migration"],
    ...                       "label": ["apply 0001 phase1_indexes"]})
    >>> attribute_change(series, 40.5, 9.5, moved)
    'after apply 0001 phase1_indexes (2026-11-10 13:00): the change appeared between 2026-11-10 06:00 and 2026-11-10 18:00'
    >>> late = moved.assign(at=[t + 3 * h + pd.Timedelta(hours=5)])
    >>> attribute_change(series, 40.5, 9.5, late)
    'no migration precedes it closely: it changed between 2026-11-10 06:00 and 2026-11-10 18:00'
    """
    if series.empty or not (mean_before == mean_before and mean_after == mean_after):
        return ""
    series = series.sort_values("bucket").reset_index(drop=True)
    midpoint = (mean_before + mean_after) / 2
    on_new_side = (series["mean_exec_ms"] <= midpoint) if mean_after < mean_before \
        else (series["mean_exec_ms"] >= midpoint)
    settled = on_new_side[::-1].cummin()[::-1]  # from here on, always on the new side
    if not settled.any() or settled.iloc[0]:
        return ""  # never settled, or already changed before the first bucket
    first = int(settled.idxmax())
    width = pd.Timedelta(hours=bucket_hours)
    window_start, window_end = series["bucket"].iloc[first - 1], series["bucket"].iloc[first] + width
    migrations = events[(events["kind"] == "migration") & (events["at"] >= window_start)
                        & (events["at"] < window_end)] if not events.empty else events
    if migrations.empty:
        return (f"no migration precedes it closely: it changed between "
                f"{window_start:%Y-%m-%d %H:%M} and {window_end:%Y-%m-%d %H:%M}")
    last = migrations.sort_values("at").iloc[-1]
    return (f"after {last['label']} ({last['at']:%Y-%m-%d %H:%M}): the change appeared between "
            f"{window_start:%Y-%m-%d %H:%M} and {window_end:%Y-%m-%d %H:%M}")


def compare_statements(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Statements run in both periods, with the change of mean and total time. time_saved_ms is
    the mean's change at the current volume: positive is an improvement."""
    keys = ["queryid", "userid"]
    cols = keys + ["calls", "total_exec_ms", "mean_exec_ms"]
    both = previous[cols].merge(current[cols + ["query", "role_name"]], on=keys,
                                suffixes=("_previous", "_current"))
    for c in ("calls_previous", "calls_current", "total_exec_ms_previous", "total_exec_ms_current",
              "mean_exec_ms_previous", "mean_exec_ms_current"):
        both[c] = both[c].astype(float)
    both = both[(both["calls_previous"] >= MIN_CALLS_TO_COMPARE)
                & (both["calls_current"] >= MIN_CALLS_TO_COMPARE)]
    both = both.rename(columns={"mean_exec_ms_previous": "mean_ms_previous",
                                "mean_exec_ms_current": "mean_ms_current",
                                "total_exec_ms_previous": "total_ms_previous",
                                "total_exec_ms_current": "total_ms_current"})
    both["mean_change"] = both["mean_ms_current"] / both["mean_ms_previous"] - 1
    both["time_saved_ms"] = (both["mean_ms_previous"] - both["mean_ms_current"]) \
        * both["calls_current"]
    both["label"] = both["query"].map(statement_label)
    return both.reset_index(drop=True)


def new_slow_statements(previous: pd.DataFrame, current: pd.DataFrame,
                        settings: Settings) -> pd.DataFrame:
    """Slow now (by the configured threshold), and absent or not slow in the previous period."""
    def slow(frame):
        return frame[slow_on_average(frame["mean_exec_ms"].astype(float),
                                     frame["calls"].astype(float), settings.slow_query_mean_ms,
                                     settings.slow_query_min_calls)]
    was_slow = set(zip(slow(previous)["queryid"], slow(previous)["userid"])) \
        if not previous.empty else set()
    now = slow(current) if not current.empty else current
    fresh = now[pd.Series([(q, u) not in was_slow for q, u in zip(now["queryid"], now["userid"])],
                          index=now.index, dtype=bool)]
    return fresh.assign(label=fresh["query"].map(statement_label)).reset_index(drop=True)


def newly_unused(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Indexes scanned in the previous period and not at all in this one."""
    if previous.empty or current.empty:
        return pd.DataFrame(columns=["schema_name", "index_name", "table_name", "scans_previous",
                                     "size_bytes", "backs_constraint"])
    keys = ["schema_name", "index_name"]
    both = previous[keys + ["scans"]].merge(current, on=keys, suffixes=("_previous", ""))
    gone = both[(both["scans_previous"].astype(float) > 0) & (both["scans"].astype(float) == 0)]
    return gone.sort_values("size_bytes", ascending=False).reset_index(drop=True)


NOT_SCANNED_LABEL = "Indexes not scanned all period (constraints aside)"


def _unused_totals(index_scans: pd.DataFrame) -> tuple[float | None, float | None]:
    """Indexes without a scan all period long: only those watched the whole period (built
    during it, zero scans prove nothing yet), never one backing a constraint."""
    if index_scans.empty:
        return None, None
    unused = index_scans[(index_scans["scans"].astype(float) == 0)
                         & ~index_scans["backs_constraint"].astype(bool)
                         & index_scans["in_baseline"].astype(bool)]
    return float(len(unused)), float(unused["size_bytes"].astype(float).sum())


def span(previous: Period, current: Period) -> Period:
    """Both periods: what the trend charts and their event marks cover."""
    return Period(previous.start, current.end)


def statement_periods(conn: psycopg.Connection, spare_conn: psycopg.Connection | None,
                      source: str, previous: Period | None,
                      current: Period) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both periods' statement figures (history.statement_deltas); with spare_conn the
    previous period is read on it while conn reads the current one. Without a previous period
    its frame is empty."""
    if previous is None:
        return (pd.DataFrame(columns=["queryid", "userid", "calls", "query", "total_exec_ms",
                                      "mean_exec_ms"]),
                history.statement_deltas(conn, source, current))
    if spare_conn is None:
        return (history.statement_deltas(conn, source, previous),
                history.statement_deltas(conn, source, current))
    with work_beside() as pool:
        earlier = pool.submit(history.statement_deltas, spare_conn, source, previous)
        now = history.statement_deltas(conn, source, current)  # meanwhile, on this one
        return earlier.result(), now


def build_review(history_conn: psycopg.Connection, source: str, previous: Period,
                 current: Period, settings: Settings,
                 target_events: pd.DataFrame | None = None,
                 spare_conn: psycopg.Connection | None = None) -> Review:
    """target_events: the watched database's migrations and refreshes over span(previous,
    current) (history.target_events), when it could be read. spare_conn: a second connection
    to the history database, which reads the previous period's statements while history_conn
    reads the current one's (each is most of the review's time). Raises HistoryUnavailable
    when the current period cannot be measured at all."""
    if not history.history_installed(history_conn):
        raise history.HistoryUnavailable(
            "There is no history yet: DB Pulse's snapshot tables are not installed. Take a first "
            "snapshot with `.venv/bin/python cli.py snapshot` (it installs them).")
    cov_prev = history.coverage(history_conn, source, previous)
    cov_cur = history.coverage(history_conn, source, current)
    history.require_usable(cov_cur, current)
    notes = []
    if not cov_prev.usable:
        notes.append(f"The previous period ({previous.label()}) has "
                     f"{'no snapshots' if cov_prev.snapshots == 0 else 'only one snapshot'}: "
                     "nothing to compare with, so only this period's figures are shown.")
    notes += [f"Previous period: {n}" for n in cov_prev.notes]
    notes += [f"This period: {n}" for n in cov_cur.notes]

    statements_prev, statements_cur = statement_periods(
        history_conn, spare_conn, source, previous if cov_prev.usable else None, current)
    for label, frame in (("Previous period", statements_prev), ("This period", statements_cur)):
        notes += [f"{label}: {n}" for n in lone_restart_notes(frame)]
    # with nothing to compare with, the comparison is empty but has all its columns
    compared = compare_statements(statements_prev, statements_cur)
    changed = compared[compared["mean_change"].abs() >= MIN_MEAN_CHANGE]
    improved = changed[changed["time_saved_ms"] > 0].sort_values("time_saved_ms", ascending=False)
    regressed = changed[changed["time_saved_ms"] < 0].sort_values("time_saved_ms")
    indexes_prev = history.index_scans(history_conn, source, previous) if cov_prev.usable \
        else pd.DataFrame()
    indexes_cur = history.index_scans(history_conn, source, current)
    tables_cur = history.table_changes(history_conn, source, current)
    tables_prev = history.table_changes(history_conn, source, previous) if cov_prev.usable \
        else pd.DataFrame()
    views_cur = history.matview_ages(history_conn, source, current,
                                     settings.matview_max_age_minutes)
    views_prev = history.matview_ages(history_conn, source, previous,
                                      settings.matview_max_age_minutes) if cov_prev.usable \
        else pd.DataFrame()
    both = span(previous, current)
    redis_trend = history.redis_series(history_conn, source, both)
    buffer_trend = history.buffer_cache_series(history_conn, source, both)
    charted = pd.concat([improved.head(3), regressed.head(2)])
    statement_trend = history.statement_series(history_conn, source, both,
                                               [int(q) for q in charted["queryid"]]) \
        if not charted.empty else pd.DataFrame()
    if not statement_trend.empty:
        statement_trend = statement_trend.merge(charted[["queryid", "label"]], on="queryid")
    events = history.events(history_conn, source, both, target_events)

    def in_period(frame, period, column="taken_at"):
        if frame.empty:
            return frame
        return frame[(frame[column] > period.start) & (frame[column] <= period.end)]

    def redis_rate(period):
        part = in_period(redis_trend, period)
        return None if part.empty else history.ratio(part["keyspace_hits"],
                                                     part["keyspace_misses"])

    def buffer_rate(period):
        part = in_period(buffer_trend, period)
        return None if part.empty else history.ratio(part["data_blks_hit"],
                                                     part["data_blks_read"])

    def oldest_view(frame):
        # a view whose age was unknown in a snapshot may have been the oldest: then so is this
        if frame.empty or (frame["age_unknown"].astype(float) > 0).any():
            return None
        return float(frame["oldest_minutes"].astype(float).max())

    def bloat_total(frame):
        return None if frame.empty else float(frame["bloat_after"].astype(float).sum())

    p95_prev = probes.p95_by_name(history_conn, source, previous.start, previous.end) \
        if cov_prev.usable else {}
    p95_cur = probes.p95_by_name(history_conn, source, current.start, current.end)
    def peak_share(period):
        found = activity.peak_use(history_conn, source, period.start, period.end)
        return None if found is None else 100 * found.share

    unused_prev = _unused_totals(indexes_prev)
    unused_cur = _unused_totals(indexes_cur)
    pct = lambda v: None if v is None else 100 * v  # noqa: E731
    kpis = [
        Kpi(f"Calls slower than {settings.kpi_slow_ms / 1000:g} s",
            slow_share_bounds(statements_prev, settings) if cov_prev.usable else None,
            slow_share_bounds(statements_cur, settings), "%", False,
            100 * settings.kpi_slow_share_target,
            f"< {100 * settings.kpi_slow_share_target:g} %"),
        *[Kpi(f"{q.name}, mean", hot_query_mean(statements_prev, q.name),
              hot_query_mean(statements_cur, q.name), "ms", False, q.target_ms,
              f"< {q.target_ms:g} ms") for q in current_plan(settings).hot_queries
          if q.review and q.target_ms is not None],
        *[Kpi(f"{q.name}, p95 (probes)", p95_prev.get(q.name), p95_cur.get(q.name), "ms",
              False, q.target_ms, f"< {q.target_ms:g} ms")
          for q in current_plan(settings).probes if q.target_ms is not None],
        Kpi("Connections in use at peak", peak_share(previous) if cov_prev.usable else None,
            peak_share(current), "%", False, 100 * settings.kpi_connection_peak_share,
            f"< {100 * settings.kpi_connection_peak_share:g} %"),
        Kpi(redis_cache.HIT_RATE_LABEL, pct(redis_rate(previous)), pct(redis_rate(current)), "%", True,
            100 * settings.redis_hit_rate_target, f"≥ {100 * settings.redis_hit_rate_target:g} %"),
        Kpi("Oldest materialized view seen", oldest_view(views_prev), oldest_view(views_cur),
            "min", False, settings.matview_max_age_minutes,
            f"≤ {settings.matview_max_age_minutes:g} min"),
        Kpi("Buffer cache hit rate", pct(buffer_rate(previous)), pct(buffer_rate(current)), "%",
            True, 100 * settings.buffer_cache_hit_threshold,
            f"≥ {100 * settings.buffer_cache_hit_threshold:g} %"),
        # not the Indexes page's "unused" (drop candidates judged now): a period's fact
        Kpi(NOT_SCANNED_LABEL, unused_prev[0], unused_cur[0], "count", False),
        Kpi(NOT_SCANNED_LABEL + ", their size", unused_prev[1], unused_cur[1], "bytes", False),
        Kpi("Estimated table bloat", bloat_total(tables_prev), bloat_total(tables_cur), "bytes",
            False),
        Kpi("Statement time", float(statements_prev["total_exec_ms"].astype(float).sum())
            if cov_prev.usable else None,
            float(statements_cur["total_exec_ms"].astype(float).sum()), "ms", False),
    ]
    growth = tables_cur.sort_values("bytes_growth", ascending=False, na_position="last") \
        if not tables_cur.empty else tables_cur
    return Review(
        source=source, previous=previous, current=current, coverage_previous=cov_prev,
        coverage_current=cov_cur, synthetic=cov_prev.synthetic or cov_cur.synthetic, kpis=kpis,
        improved=improved.reset_index(drop=True), regressed=regressed.reset_index(drop=True),
        new_slow=new_slow_statements(statements_prev, statements_cur, settings),
        newly_unused_indexes=newly_unused(indexes_prev, indexes_cur),
        table_growth=growth.head(10).reset_index(drop=True),
        matview_breaches=views_cur[views_cur["over_max_age"] > 0].reset_index(drop=True)
        if not views_cur.empty else views_cur,
        statement_trend=statement_trend, redis_trend=redis_trend, buffer_trend=buffer_trend,
        events=events, notes=notes)


def statement_texts(review: Review, limit: int = 10, width: int = 400) -> list[dict]:
    """The statements behind the labels of the review's tables (Q1 …, or a text's start), with
    the calls each side so a reader can weigh the change."""
    seen, rows = set(), []
    for frame in (review.improved, review.regressed, review.new_slow):
        for r in frame.head(limit).itertuples():
            if r.label in seen:
                continue
            seen.add(r.label)
            rows.append({"label": r.label, "calls_before": getattr(r, "calls_previous", None),
                         "calls_now": getattr(r, "calls_current", getattr(r, "calls", None)),
                         "text": " ".join(str(r.query or "?").split())[:width]})
    return rows


def _where_to_look(query: str | None, at_the_plan: str) -> str:
    """`at_the_plan`, unless the statement is a command without a plan (pg_stat_statements
    counts DDL, VACUUM, COPY ... too): then when it runs and what it waits for. A hidden text
    (another role's) is taken to have one.

    >>> _where_to_look("VACUUM (ANALYZE) big", "check its plan.")[:22]
    'a command with no plan'
    >>> _where_to_look("SELECT 1", "check its plan."), _where_to_look(None, "check its plan.")
    ('check its plan.', 'check its plan.')
    """
    if not known(query) or EXPLAINABLE.match(query):
        return at_the_plan
    return ("a command with no plan: look at when it runs, how often, and what it waits for "
            "(the Activity page while it runs).")


def next_steps(review: Review, settings: Settings, limit: int = 8) -> list[str]:
    """A short list for the meeting, most pressing first: the KPIs that miss their target, the
    regressions, new slow statements, indexes no longer used, views left stale, thin data."""
    steps = [f"{k.name} misses its target ({k.target_text}): {_short(k)}."
             for k in review.kpis if k.state == "red"]
    for r in review.regressed.head(3).itertuples():
        steps.append(f"Find out why {r.label} slowed down (mean {r.mean_ms_previous:.2f} → "
                     f"{r.mean_ms_current:.2f} ms over {r.calls_current:,.0f} calls): "
                     + _where_to_look(r.query, "look at its plan on the Slow queries page."))
    for r in review.new_slow.head(3).itertuples():
        steps.append(f"New slow statement {r.label} ({float(r.mean_exec_ms):,.1f} ms mean over "
                     f"{float(r.calls):,.0f} calls): "
                     + _where_to_look(r.query, "check its plan and indexes."))
    for r in review.newly_unused_indexes.head(3).itertuples():
        steps.append(f"Index {r.schema_name}.{r.index_name} was not scanned this period "
                     f"({float(r.scans_previous):,.0f} scans before): check whether the code "
                     "that used it changed before dropping it.")
    for r in review.matview_breaches.head(3).itertuples():
        steps.append(f"View {r.schema_name}.{r.view_name} was older than "
                     f"{settings.matview_max_age_minutes:g} min in {int(r.over_max_age)} of "
                     f"{int(r.snapshots)} snapshots: refresh it more often (pg_cron).")
    if review.coverage_current.snapshots < 24:
        steps.append(f"Only {review.coverage_current.snapshots} snapshots in this period: take "
                     "one every hour (.venv/bin/python cli.py snapshot from cron) so the next review "
                     "compares more.")
    return steps[:limit] or ["Nothing needs action: every KPI with a target meets it and no "
                             "statement regressed."]


def _short(kpi: Kpi) -> str:
    """
    >>> _short(Kpi("Calls slower than 1 s", None, Bounds(4.5, 6.25), "%", False))
    'now 4.50–6.25 %'
    """
    if kpi.current is None:
        return "now n/a"
    low, high = (f"{v:.2f}" if kpi.unit == "%" else f"{v:,.1f}" for v in low_high(kpi.current))
    return f"now {low if low == high else f'{low}–{high}'} {kpi.unit}"
