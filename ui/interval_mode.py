"""The slow-query page's interval mode: statements between two snapshots, from differences."""

from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from foundation.config import Settings, Target
from foundation.format import human_duration
from operations import history
from operations.review import slow_calls
from reads import statements
from ui import loaders, tables
from ui.widgets import show_problem, slow_share_metric, top_statements_chart

PRESETS = ["last hour", "last day", "last week", "two snapshots"]


def _choose_period(target: Target, settings: Settings) -> history.Period | None:
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    choice = st.radio("Interval", PRESETS, index=1, horizontal=True)
    if choice != "two snapshots":
        return history.window_period(choice, now)
    times = loaders.snapshot_times(target, settings)
    if not times.ok:
        show_problem("No snapshots to choose from", times)
        return None
    frame = times.value
    if len(frame) < 2:
        st.info("Choosing an interval needs at least two snapshots.")
        return None
    labels = {row.taken_at: f"{row.taken_at:%Y-%m-%d %H:%M:%S}"
              + (" (synthetic demo)" if row.synthetic else "") for row in frame.itertuples()}
    options = list(labels)
    cols = st.columns(2)
    start = cols[0].selectbox("From snapshot", options[1:], format_func=labels.get)
    end = cols[1].selectbox("To snapshot", [t for t in options if t > start],
                            format_func=labels.get)
    return history.Period(start, end)


def show(target: Target, settings: Settings, flt: statements.StatementFilter,
         order_by: str):
    """The interval's statements, listed; returns them for the detail below (None: nothing)."""
    period = _choose_period(target, settings)
    if period is None:
        return None
    loaded = loaders.interval_statements(target, settings, period)
    if not loaded.ok:
        show_problem("Nothing to compare in this interval", loaded)
        return None
    cov, deltas = loaded.value["coverage"], loaded.value["statements"]
    st.caption(f"Between the snapshots of {cov.baseline_at:%Y-%m-%d %H:%M} and "
               f"{cov.last_at:%Y-%m-%d %H:%M} UTC ({human_duration(cov.last_at - cov.baseline_at)},"
               f" {cov.snapshots} snapshots). Counted from differences; "
               "DB Pulse's own statements are not stored.")
    if cov.synthetic:
        st.warning("This interval includes synthetic demo history, not measurements.",
                   icon=":material/science:")
    for note in cov.notes:
        st.caption("⚠ " + note)

    kpi = slow_calls(deltas, settings)
    cols = st.columns(3)
    slow_share_metric(cols[0], kpi, settings)
    cols[1].metric("Calls in the interval", f"{deltas['calls'].astype(float).sum():,.0f}"
                   if not deltas.empty else "0")
    cols[2].metric("Statement time", f"{deltas['total_exec_ms'].astype(float).sum() / 1000:,.1f} s"
                   if not deltas.empty else "0 s")

    top = history.filter_statements(deltas, flt)
    if top.empty:
        st.info("No statement ran in this interval, or none matches the filters.")
        return None
    top_statements_chart(top, order_by, f"Top statements by {order_by}, in the interval")
    tables.show(top, history.INTERVAL_COLUMNS)
    return top
