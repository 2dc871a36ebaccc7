"""Plotly figures of the review's trends, with migrations and refreshes marked on them, and the
axes every chart of DB Pulse shares: time spans a reader can read, hit-rate ranges that do not
draw noise as a cliff."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from foundation.format import known
from operations.review import Review

MAX_REFRESH_MARKS = 300   # a view refreshed every few minutes would bury the chart
MIN_TIME_SPAN = pd.Timedelta(hours=1)   # one point would otherwise get ticks a millisecond apart
LABEL_ROWS = 3            # migration labels close together take turns on three heights


def time_range(times, min_span: pd.Timedelta = MIN_TIME_SPAN) -> list | None:
    """The x range for points at `times`: theirs, widened about its middle to at least
    `min_span`, so plotly's ticks fall on minutes, not on fractions of a second.

    >>> [str(t) for t in time_range(["2026-01-05 10:00:00"])]
    ['2026-01-05 09:30:00+00:00', '2026-01-05 10:30:00+00:00']
    >>> time_range(["2026-01-05", "2026-01-06"]) is None, time_range([]) is None
    (True, True)
    """
    stamps = pd.to_datetime(pd.Series(list(times), dtype=object), utc=True).dropna()
    if stamps.empty or stamps.max() - stamps.min() >= min_span:
        return None
    middle = stamps.min() + (stamps.max() - stamps.min()) / 2
    return [middle - min_span / 2, middle + min_span / 2]


def rate_range(values, target: float, top: float = 1.0) -> list[float]:
    """The y range of a hit rate: from a little under the lower of its lowest value and the
    target up to 100 %, so that 99.97 against 99.99 % is drawn as the flat line it is. `top` is
    100 % in the chart's unit (1 or 100).

    >>> rate_range([0.9997, 0.9999], 0.99)
    [0.9875, 1.0]
    >>> rate_range([40.0, 95.0], 0.90, top=100)
    [25.0, 100.0]
    """
    lowest = min([float(v) / top for v in values if known(v)] + [target])
    bottom = max(0.0, lowest - max(1 - lowest, 0.01) / 4)
    return [round(bottom * top, 6), float(top)]


def _title(review: Review, text: str) -> str:
    return text + (" — synthetic demo history" if review.synthetic else "")


def _mark_events(fig: go.Figure, events: pd.DataFrame) -> go.Figure:
    """Migrations as labelled vertical lines; refreshes as small ticks along the bottom;
    alerts only in the lists (a flapping check would hide the lines). Shapes and annotations
    are added separately: add_vline's label fails on datetime axes."""
    if events.empty:
        return fig
    start, end = (pd.Timestamp(x) for x in fig.layout.xaxis.range)
    marked = events[~events["kind"].isin(["refresh", "alert"])]
    for n, row in enumerate(marked.itertuples()):
        fig.add_shape(type="line", x0=row.at, x1=row.at, y0=0, y1=1, yref="paper",
                      line={"dash": "dash", "color": "#7b2cbf", "width": 1.5})
        # a label reads away from the nearer edge, so the chart's edge does not cut it
        late = pd.Timestamp(row.at) > start + (end - start) / 2
        fig.add_annotation(x=row.at, y=1, yref="paper", text=row.label, showarrow=False,
                           xanchor="right" if late else "left", yanchor="bottom",
                           yshift=14 * (n % LABEL_ROWS),
                           font={"size": 10, "color": "#7b2cbf"})
    refreshes = events[events["kind"] == "refresh"].tail(MAX_REFRESH_MARKS)
    if not refreshes.empty:
        fig.add_trace(go.Scatter(x=refreshes["at"], y=[0] * len(refreshes), yaxis="y2",
                                 mode="markers", name="view refresh", text=refreshes["label"],
                                 marker={"symbol": "line-ns-open", "size": 8, "color": "#888"}))
        fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False})
    return fig


def _boundary(fig: go.Figure, review: Review) -> go.Figure:
    """The line between the two periods; the time axis covers exactly the two periods (marks of
    refreshes or the last snapshot must not stretch it past the review)."""
    fig.update_xaxes(range=[review.previous.start, review.current.end])
    fig.add_shape(type="line", x0=review.current.start, x1=review.current.start, y0=0, y1=1,
                  yref="paper", line={"color": "#999", "width": 1})
    fig.add_annotation(x=review.current.start, y=0, yref="paper", text="this period →",
                       showarrow=False, xanchor="left", yanchor="bottom",
                       font={"size": 10, "color": "#666"})
    return fig


def _mean_axis(means: pd.Series | None) -> dict:
    """Logarithmic only when the statements' means span more than two decades, and then with a
    labelled tick per decade only (plotly labels minor log ticks 2…9 by their first digit)."""
    values = pd.to_numeric(means, errors="coerce").dropna() if means is not None else []
    values = [v for v in values if v > 0]
    if len(values) and max(values) / min(values) > 100:
        return {"title": "mean ms (log scale)", "type": "log", "dtick": 1,
                "exponentformat": "none"}
    return {"title": "mean ms", "rangemode": "tozero"}


def statement_trend(review: Review) -> go.Figure:
    fig = go.Figure()
    trend = review.statement_trend
    for label, part in (trend.groupby("label") if not trend.empty else []):
        fig.add_trace(go.Scatter(x=part["bucket"], y=part["mean_exec_ms"].astype(float),
                                 mode="lines", name=label[:60]))
    fig.update_layout(title=_title(review, "Mean time of the statements that changed most"),
                      yaxis=_mean_axis(trend["mean_exec_ms"] if not trend.empty else None),
                      height=380,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    return _mark_events(_boundary(fig, review), review.events)


def redis_trend(review: Review, target: float) -> go.Figure:
    """The Redis hit rate per instance, named by the database the review is of, as its title
    is (and by its address when there are several)."""
    fig = go.Figure()
    trend = review.redis_trend
    if not trend.empty:
        hourly = (trend.assign(bucket=pd.to_datetime(trend["taken_at"], utc=True).dt.floor("6h"))
                  .groupby(["instance", "bucket"])[["keyspace_hits", "keyspace_misses"]].sum()
                  .reset_index())
        total = hourly["keyspace_hits"] + hourly["keyspace_misses"]
        hourly["hit_rate"] = 100 * hourly["keyspace_hits"] / total.where(total > 0)
        several = hourly["instance"].nunique() > 1
        for instance, part in hourly.groupby("instance"):
            name = f"{review.source}: {instance.split('://')[-1]}" if several else review.source
            fig.add_trace(go.Scatter(x=part["bucket"], y=part["hit_rate"], mode="lines",
                                     name=f"Redis of {name}", showlegend=True))
    fig.add_hline(y=100 * target, line={"dash": "dot", "color": "green"})
    fig.update_layout(title=_title(review, "Redis hit rate (6-hour buckets)"),
                      yaxis={"title": "%", "range": [0, 100]}, height=340,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    return _mark_events(_boundary(fig, review), review.events)


def buffer_trend(review: Review, target: float) -> go.Figure:
    """The buffer cache hit rate against its target, on a range from under the target to 100 %
    (a few hundredths of a point are not a cliff)."""
    fig = go.Figure()
    trend = review.buffer_trend
    rates = 100 * trend["hit_rate"].astype(float) if not trend.empty else pd.Series([], float)
    if not trend.empty:
        fig.add_trace(go.Scatter(x=trend["taken_at"], y=rates, mode="lines",
                                 name="buffer cache hit rate"))
    fig.add_hline(y=100 * target, line={"dash": "dot", "color": "green"})
    fig.update_layout(title=_title(review, "PostgreSQL buffer cache hit rate"),
                      yaxis={"title": "%", "range": rate_range(rates, target, top=100)},
                      height=300, margin={"t": 60})
    return _mark_events(_boundary(fig, review), review.events)
