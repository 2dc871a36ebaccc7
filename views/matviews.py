"""Materialized views: freshness against the configured maximum age, refresh history, and the
DBA's refresh actions."""

import plotly.express as px
import streamlit as st

from foundation.format import amount, known
from foundation.markup import md
from reads import matviews, schedules
from reports import charts
from ui import actions, loaders, tables
from ui.confirm import action_button, last_result
from ui.widgets import dba_note, page, show_problem, value_or_stop

who = page("Materialized views")
target, settings = who.target, who.settings
data = value_or_stop(loaders.matviews_data(target.database_url, settings),
                     "Materialized views are not available")
views, history = data["views"], data["history"]

if data["event_trigger"]:
    mode = "refreshes by anyone are logged (event trigger installed)"
elif data["log"]:
    mode = "only refreshes made through DB Pulse are logged"
else:
    mode = "no refresh is logged yet (DB Pulse's schema is not installed here)"
st.caption(f"PostgreSQL does not record when a view was refreshed. Mode: {mode}. "
           f"Maximum age: {settings.matview_max_age_minutes:g} min. "
           + ("pg_cron's runs are listed below." if data["cron"] is not None
              else "pg_cron is not installed."))

if views.empty:
    st.info("This database has no materialized views.")
    st.stop()

stale = views[views["stale"]]
cols = st.columns(3)
cols[0].metric("Materialized views", len(views))
cols[1].metric("Stale or unknown", len(stale))
cols[2].metric("Refreshable concurrently", int(views["concurrent_refresh"].sum()))

tables.show(views, matviews.VIEW_COLUMNS)
if not history.empty:
    st.subheader("Refresh history")
    chart = history.assign(view=history["schema_name"] + "." + history["view_name"])
    st.plotly_chart(px.scatter(chart, x="finished_at", y="duration_ms", color="view",
                               symbol="outcome", labels={"duration_ms": "duration (ms)",
                                                         "finished_at": ""})
                    .update_xaxes(range=charts.time_range(chart["finished_at"]))
                    .update_yaxes(rangemode="tozero"), width="stretch")
    tables.show(history, matviews.HISTORY_COLUMNS, max_rows=200)
if data["cron"] is not None:
    st.subheader("pg_cron runs")
    tables.show(data["cron"], schedules.RUN_COLUMNS, "pg_cron has run no refresh.")

# --- DBA actions ------------------------------------------------------------------------------
st.subheader("Refresh")
dba_note(who)
labels = {i: f"{r.schema_name}.{r.view_name}" for i, r in views.iterrows()}
label = st.selectbox("View", list(labels.values()))
row = views.loc[next(i for i, name in labels.items() if name == label)]


def refresh_chosen(allow_blocking: bool):
    with st.spinner(f"Refreshing {md(label)} ..."):
        result = actions.refresh_matview(who, row["schema_name"], row["view_name"],
                                         allow_blocking=allow_blocking)
    return result


# A blocking refresh is confirmed in a dialog that names the lock and the last duration, by
# typing the view's name. The core decides from the catalogue as it is at the click: if the view
# lost its unique index since this list was read, the refresh is refused and the page asks.
last_ms = row["last_duration_ms"]
took = (f"The last refresh took {amount(last_ms / 1000, 's', 1)}; expect about as long."
        if known(last_ms) else
        "No refresh of it has been timed yet: it takes as long as running the view's query.")
if not row["concurrent_refresh"]:
    st.warning(f"{md(label)} cannot be refreshed CONCURRENTLY: {md(row['why_not_concurrent'])}. "
               "A plain refresh takes an ACCESS EXCLUSIVE lock: every query that reads the view "
               "waits until the refresh ends.")
result = action_button(
    who, f"refresh_{row['view_oid']}", "Refresh now",
    lambda: refresh_chosen(allow_blocking=not row["concurrent_refresh"]),
    title="Blocking refresh",
    explanation="" if row["concurrent_refresh"] else (
        f"**{md(label)}** is refreshed with an ACCESS EXCLUSIVE lock: every query that reads "
        f"it waits until the refresh ends. {took}"),
    confirm_text=None if row["concurrent_refresh"] else label)
if result is not None:
    if result.ok:
        st.success(f"Refreshed {md(label)} in {amount(result.value.duration_ms, 'ms')}"
                   + (" (concurrently)." if result.value.concurrently else "."))
    else:
        show_problem("Not refreshed", result)

allow_blocking_all = st.checkbox("When refreshing all stale views, also refresh those that block "
                                 "readers")
blocking_stale = stale[~stale["concurrent_refresh"]]
result = action_button(
    who, "refresh_stale", f"Refresh all stale views ({len(stale)})",
    lambda: actions.refresh_stale(who, allow_blocking_all), title="Refresh stale views",
    explanation=(f"{len(blocking_stale)} of them block their readers while refreshing: "
                 + md(", ".join(f"{r.schema_name}.{r.view_name}"
                           for r in blocking_stale.itertuples()))
                 + ".") if allow_blocking_all and len(blocking_stale) else "",
    disabled=stale.empty)
if result is not None:
    if result.ok:
        for outcome in result.value:
            (st.error if isinstance(outcome, matviews.NotRefreshed) else st.success)(
                f"{md(outcome.view)}: {md(str(outcome))}")
    else:
        show_problem("Not refreshed", result)

# --- schedules (pg_cron) ----------------------------------------------------------------------
st.subheader("Refresh schedules (pg_cron)")
if data["cron_problem"]:
    st.info(md(data["cron_problem"]), icon=":material/schedule:")
elif data["schedules"] is None:
    st.info(schedules.NOT_READABLE)
else:
    jobs = data["schedules"]
    failing = jobs[jobs["failure_streak"] > 0]
    for job in failing.itertuples():
        st.error(f"**{md(job.jobname)}**: its last {job.failure_streak} run(s) failed: "
                 f"{md(job.last_error)}")
    tables.show(jobs, schedules.SCHEDULE_COLUMNS, "No pg_cron job refreshes a view yet.")
    cron_database = data["cron_database"]
    st.caption("Times in UTC, as pg_cron reads its schedules. DB Pulse's jobs are named "
               f"{schedules.job_name('schema', 'view', cron_database)}; other jobs that refresh "
               "a view here are listed too."
               + (f" pg_cron lives in another database of this server: DB Pulse makes these "
                  f"jobs there to run in {md(cron_database)}; the event trigger below lets the "
                  "views' ages see pg_cron's refreshes." if cron_database else ""))
    cols = st.columns([2, 1])
    every = cols[0].text_input("Schedule (cron expression)", value=schedules.DEFAULT_EVERY,
                               help="Minute hour day month weekday, UTC; pg_cron 1.5+ also "
                                    "takes '30 seconds'. The plan: every 10–15 minutes.")
    scheduled = set(jobs["jobname"]) if not jobs.empty else set()
    chosen_job = schedules.job_name(row["schema_name"], row["view_name"], cron_database)
    has_job = chosen_job in scheduled
    blocking = not row["concurrent_refresh"]
    result = action_button(
        who, "schedule", f"Schedule {md(label)}",
        lambda: actions.schedule_refresh(who, row["schema_name"], row["view_name"], every,
                                         allow_blocking=blocking),
        title="Schedule a blocking refresh",
        explanation=(f"Every run of this schedule refreshes **{md(label)}** with an "
                     "ACCESS EXCLUSIVE lock: queries that read it wait each time. "
                     f"{took}") if blocking else "",
        confirm_text=label if blocking else None)
    if has_job:
        job = jobs[jobs["jobname"] == chosen_job]
        active = bool(job["active"].iloc[0])
        cols = st.columns(2)
        with cols[0]:
            paused = action_button(who, "pause_schedule", "Pause" if active else "Resume",
                                   lambda: actions.pause_schedule(
                                       who, row["schema_name"], row["view_name"], not active))
        with cols[1]:
            removed = action_button(who, "remove_schedule", "Remove the schedule",
                                    lambda: actions.remove_schedule(
                                        who, row["schema_name"], row["view_name"]))
        result = result or paused or removed
    for key in ("schedule", "pause_schedule", "remove_schedule"):
        result = result or last_result(key)
    if result is not None:
        if result.ok:
            st.success("Done: " + (f"pg_cron job {result.value}" if result.value else
                                   "the schedule is changed."))
        else:
            show_problem("Not done", result)

if not data["event_trigger"]:
    with st.expander("Log refreshes by anyone (event trigger)"):
        st.caption("Installs an event trigger on ddl_command_end for REFRESH MATERIALIZED VIEW "
                   "that writes to DB Pulse's refresh log, so refreshes by pg_cron, psql or the "
                   "application are known too. Needs a superuser (on Supabase: the postgres "
                   "role).")
        result = action_button(who, "event_trigger", "Install the event trigger",
                               lambda: actions.install_event_trigger(who))
        if result is not None:
            if result.ok:
                st.success("Installed: every refresh is logged from now on.")
            else:
                show_problem("Not installed", result)
