"""The optimization plan tracker: its phases, the objects it creates (present, valid, used),
the seeds' KPIs next to the measured values, and the hot queries before and after."""

import streamlit as st

from foundation.format import amount, percent, state_for_ratio
from foundation.markup import md
from operations import migrations
from reads import plan_tracker, probes, redis_cache
from ui import loaders, tables
from ui.widgets import judged_metric, page, show_problem, slow_share_metric, value_or_stop

who = page("Optimization plan")
target, settings = who.target, who.settings
data = value_or_stop(loaders.plan_data(target.database_url, settings),
                     "The plan cannot be tracked")

st.subheader("KPIs")
# three a row: five in one cut their names, figures and targets to a few characters each
cols = [*st.columns(3), *st.columns(3)]
slow_share_metric(cols[0], data["kpi"], settings)
redis_rate = None
if target.redis_url:
    redis = loaders.redis_overview(target.redis_url)
    redis_rate = redis.value.hit_rate if redis.ok else None
judged_metric(cols[1], redis_cache.HIT_RATE_LABEL, percent(redis_rate),
              state_for_ratio(redis_rate, settings.redis_hit_rate_target, 0.10),
              f"> {percent(settings.redis_hit_rate_target, 0)}",
              help=redis_cache.HIT_RATE_MEANING)
views = data["views"]
unknown_age = int(views["age_minutes"].isna().sum()) if len(views) else 0
oldest = views["age_minutes"].max() if len(views) and not unknown_age else None
view_state = ("grey" if oldest is None else
              "green" if oldest <= settings.matview_max_age_minutes else "red")
judged_metric(cols[2], "Oldest plan view",
              f"unknown ({unknown_age} of {len(views)})" if unknown_age
              else amount(oldest, "min"),
              view_state, f"≤ {settings.matview_max_age_minutes:g} min",
              help="A view whose last refresh DB Pulse cannot know (refreshed by someone else "
                   "without the event trigger or pg_cron history) makes the oldest unknown.")

peak = loaders.connection_peak(target, settings)
peak_use = peak.value if peak.ok else None
judged_metric(cols[3], "Connections at peak, 24 h",
              "n/a" if peak_use is None else percent(peak_use.share, 0),
              "grey" if peak_use is None else
              "green" if peak_use.share < settings.kpi_connection_peak_share else "red",
              f"< {percent(settings.kpi_connection_peak_share, 0)}",
              help="The application's connections (DB Pulse's own left out) over those "
                   "available (max_connections less the reserved ones) at the busiest of the "
                   "agent's samples, one a cycle"
                   + ("" if peak_use is None else
                      f": {peak_use.used} of {peak_use.available} at {peak_use.at:%Y-%m-%d %H:%M} "
                      f"UTC, {peak_use.samples} samples") + ". With PgBouncer in front, its pools "
                   "are on the Activity page.")

status = data["status"]
done = int((status["state"] == "applied").sum())
with cols[4].container(border=True, height="stretch"):  # a card like the judged ones beside
    st.metric("Migrations applied", f"{done} / {len(status)}",
              help="Dashboard p95 < 500 ms is measured by the application, not the database.")

st.subheader("Hot query latency, last 24 h")
latency = loaders.probe_latency(target, settings)
if not latency.ok:
    show_problem("Latency probes cannot be read", latency)
elif latency.value.empty:
    st.caption("The plan file declares no probe: add `probe` and `probe_params` to a hot query.")
else:
    st.caption("Percentiles of the agent's probes: each hot query the plan gives a `probe` runs "
               f"once every {settings.probe_interval_s:g} s with its representative parameters "
               "on the read-only probe login (DATABASE_PROBE_URL), stopped after "
               f"{amount(settings.probe_timeout_ms, 'ms')}. pg_stat_statements keeps only "
               "means; these are measured. Without the agent or a probe login there are no "
               "runs.")
    tables.show(latency.value, probes.PROBE_COLUMNS)

st.subheader("Phases")
tables.show(status, migrations.STATUS_COLUMNS)
st.page_link("views/migrations.py", label="Apply or roll back on the Migrations page",
             icon=":material/arrow_forward:")

st.subheader("Planned objects")
objects = data["objects"]
if not objects.empty:
    present = objects[objects["present"]]
    unused = present[~present["used"]]
    cols = st.columns(3)
    cols[0].metric("Present", f"{len(present)} / {len(objects)}")
    cols[1].metric("Invalid", int((objects["valid"] == False).sum()))  # noqa: E712
    cols[2].metric("Present but never used", len(unused),
                   help="Index scans, reads of a view, calls of a function since the statistics "
                        "began. An object the plan's own queries never use costs writes for "
                        "nothing.")
    tables.show(objects, plan_tracker.OBJECT_COLUMNS)
    if len(unused):
        st.warning("Never used so far: " + md(", ".join(unused["name"])) + ". Give the workload "
                   "time; if it stays so, the object is a candidate for the rollback.")

st.subheader("Hot queries before and after")
before_after = data["before_after"]
applied = [v for v in status[status["state"] == "applied"]["version"] if v in before_after]
if not before_after:
    st.info("pg_stat_statements is not available here, so query times cannot be compared.")
elif not applied:
    st.caption("Apply a migration: DB Pulse records the query statistics when it starts and "
               "ends, and compares the calls since with the calls before.")
else:
    version = st.selectbox("Migration", applied, index=0)
    st.caption("Before: mean over all calls up to the migration's start. After: mean over the "
               "calls since it finished. EXPLAIN runs of a query are not counted; a change "
               "measured on fewer than 100 calls on either side carries a caveat.")
    tables.show(before_after[version], plan_tracker.BEFORE_AFTER_COLUMNS)
