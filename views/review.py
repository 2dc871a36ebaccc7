"""Weekly review: a period against the one before, from snapshot differences; exports."""

from datetime import datetime, time, timedelta, timezone

import streamlit as st

from foundation.markup import md
from operations import history
from reports import charts, weekly
from ui import actions, loaders, tables
from ui.widgets import BADGES, disabled_for, page, show_problem, value_or_stop

who = page("Weekly review")
target, settings = who.target, who.settings

# to the end of the current minute: a stable cache key that still holds a snapshot just taken
now = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
PRESETS = ["Last 7 days", "Last calendar week", "The calendar week before", "Ending on a day"]
cols = st.columns([2, 1, 1, 2])
preset = cols[0].selectbox("Period", PRESETS, help="Calendar weeks run Monday 00:00 to Monday "
                           "00:00 UTC and are compared with the week before.")
if preset == "Ending on a day":
    days = cols[2].number_input("Days per period", min_value=1, max_value=90, value=7)
    end_day = cols[1].date_input("Ends on", value=now.date(), max_value=now.date(),
                                 help="The period ends at the end of this day (or now, today).")
    end = now if end_day == now.date() else datetime.combine(
        end_day + timedelta(days=1), time.min, tzinfo=timezone.utc)
    current = history.Period(end - timedelta(days=int(days)), end)
elif preset == "Last 7 days":
    current = history.Period(now - timedelta(days=7), now)
else:
    current = history.calendar_week(now, 1 if preset == "Last calendar week" else 2)
length = current.end - current.start
previous = history.Period(current.start - length, current.start)
cols[3].caption(f"This period: {current.label()} UTC  \nCompared with: {previous.label()} UTC")

with st.sidebar:
    if not who.is_dba:
        disabled_for(who, "Take a snapshot now", "Taking a snapshot")
    elif st.button("Take a snapshot now", help="Store the counters now (cron does it "
                   "regularly: .venv/bin/python cli.py snapshot)"):
        result = actions.take_snapshot(who)
        if result.ok:
            st.success(f"Snapshot {result.value.snapshot_id} stored "
                       f"({result.value.statements} statements).")
            for problem in result.value.problems:
                st.warning(md(problem))
            st.cache_data.clear()
        else:
            show_problem("No snapshot taken", result)

review = value_or_stop(loaders.review_data(target, settings, previous, current),
                       "No review for this period")
for label, cov in (("This period", review.coverage_current),
                   ("The one before", review.coverage_previous)):
    st.caption(f"{label}: {cov.snapshots} snapshots"
               + (f", {cov.baseline_at:%Y-%m-%d %H:%M} to {cov.last_at:%Y-%m-%d %H:%M} UTC"
                  if cov.snapshots else ""))

if review.synthetic:
    st.warning("**Synthetic demo data.** " + weekly.SYNTHETIC_NOTE, icon=":material/science:")
st.info(md(review.headline), icon=":material/insights:")

st.subheader("KPI scorecard")
KPI_PER_ROW = 3  # at 1280 px (a projector's width) four a row cut a range such as 0.00–0.08 %
for row in range(0, len(review.kpis), KPI_PER_ROW):
    for column, kpi in zip(st.columns(KPI_PER_ROW), review.kpis[row:row + KPI_PER_ROW]):
        change = weekly.kpi_change(kpi)
        with column.container(border=True, height="stretch"):
            # the name as text above the figure: a metric's own label is cut to one line
            st.markdown(f"**{md(kpi.name)}**",
                        help=f"Previous period: {weekly.kpi_value(kpi, kpi.previous)}"
                             + (f"; target {kpi.target_text}" if kpi.target_text else ""))
            figure, method = weekly.kpi_figure(kpi, kpi.current)
            st.metric(md(kpi.name), figure, label_visibility="collapsed",
                      delta=change or ("no change" if kpi.trend == "same" else None),
                      delta_color=("normal" if kpi.higher_is_better else "inverse") if change
                      else "off", delta_arrow="auto" if change else "off")
            if method:  # said under the figure: in it, the figure would not fit the card
                st.caption(f"{method}: the true value lies between them",
                           help=weekly.BOUNDS_NOTE)
            if kpi.target_text:
                color, icon, word = BADGES[kpi.state]
                st.badge(f"{word} ({kpi.target_text})", color=color, icon=icon)

sections = weekly.sections(review, settings)
st.plotly_chart(charts.statement_trend(review), width="stretch")
for title, header, rows in sections[1:]:
    st.subheader(md(title))
    tables.show_text(header, rows, "Nothing in this period.")
left, right = st.columns(2)
left.plotly_chart(charts.redis_trend(review, settings.redis_hit_rate_target), width="stretch")
right.plotly_chart(charts.buffer_trend(review, settings.buffer_cache_hit_threshold),
                   width="stretch")

if review.notes:
    with st.expander("Notes on the data"):
        for note in review.notes:
            st.markdown("- " + md(note))

st.subheader("Export")
name = f"dbpulse-review-{review.source}-{history.last_day(current):%Y-%m-%d}"
cols = st.columns(2)
# rendered on click only: the HTML carries plotly.js (a few MB)
cols[0].download_button("HTML report (self-contained)",
                        lambda: weekly.render_html(review, settings), file_name=f"{name}.html",
                        mime="text/html", icon=":material/download:", on_click="ignore")
cols[1].download_button("Markdown summary", lambda: weekly.render_markdown(review, settings),
                        file_name=f"{name}.md", mime="text/markdown", icon=":material/download:",
                        on_click="ignore")
