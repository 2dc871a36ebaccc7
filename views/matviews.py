"""Materialized views: freshness against the configured maximum age, refresh history, and the
DBA's refresh actions."""

import plotly.express as px
import streamlit as st

from queries.roles import PermissionDenied
from ui import actions, loaders
from ui.format import human_bytes
from ui.widgets import as_of, frame_or_note, require_target, show_problem

st.title("Materialized views")
target, settings = require_target()
loaded = loaders.matviews_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Materialized views are not available", loaded)
    st.stop()
as_of(loaded)
data = loaded.value
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

table = views.assign(size=views["size_bytes"].map(human_bytes))
st.dataframe(table[["schema_name", "view_name", "freshness", "last_refresh", "last_duration_ms",
                    "refreshed_by", "recorded_by", "writes_since_refresh", "size", "populated",
                    "unique_index", "why_not_concurrent", "source_tables"]],
             hide_index=True, width="stretch",
             column_config={"last_duration_ms": st.column_config.NumberColumn(
                 "last duration ms", format="%.0f")})

if not history.empty:
    st.subheader("Refresh history")
    chart = history.assign(view=history["schema_name"] + "." + history["view_name"])
    st.plotly_chart(px.scatter(chart, x="finished_at", y="duration_ms", color="view",
                               symbol="outcome", labels={"duration_ms": "duration (ms)",
                                                         "finished_at": ""}),
                    width="stretch")
    frame_or_note(history, "")
if data["cron"] is not None:
    st.subheader("pg_cron runs")
    frame_or_note(data["cron"], "pg_cron has run no refresh.")

# --- DBA actions ------------------------------------------------------------------------------
if not settings.is_dba:
    st.caption("Refreshing views is for the DBA role.")
    st.stop()

st.subheader("Refresh")
labels = {i: f"{r.schema_name}.{r.view_name}" for i, r in views.iterrows()}
chosen = st.selectbox("View", list(labels), format_func=labels.get)
row = views.loc[chosen]
# Only an explicit confirmation allows a blocking refresh. The core decides from the catalogue
# as it is when the button is pressed: if the view lost its unique index since this list was
# read, the refresh is refused and the page asks for the confirmation.
confirmed_blocking = False
if not row["concurrent_refresh"]:
    st.warning(f"{labels[chosen]} cannot be refreshed CONCURRENTLY: {row['why_not_concurrent']}. "
               "A plain refresh takes an ACCESS EXCLUSIVE lock: every query that reads the view "
               "waits until the refresh ends.")
    confirmed_blocking = st.checkbox("Refresh anyway and block readers for its duration",
                                     key=f"confirm_{row['view_oid']}")
running = st.session_state.get("dbpulse_refreshing")
if st.button("Refresh now", type="primary",
             disabled=bool(running) or (not row["concurrent_refresh"] and not confirmed_blocking)):
    st.session_state["dbpulse_refreshing"] = labels[chosen]
    try:
        with st.spinner(f"Refreshing {labels[chosen]} ..."):
            result = actions.refresh_matview(target, settings, row["schema_name"],
                                             row["view_name"], allow_blocking=confirmed_blocking)
    except PermissionDenied as exc:
        result = loaders.Loaded(problem=loaders.DatabaseProblem("refused", str(exc)))
    finally:
        st.session_state.pop("dbpulse_refreshing", None)
    loaders.matviews_data.clear()
    if result.ok:
        st.success(f"Refreshed {labels[chosen]} in {result.value.duration_ms:.0f} ms"
                   + (" (concurrently)." if result.value.concurrently else "."))
    else:
        st.error(f"Not refreshed: {result.problem.message}")

allow_blocking_all = st.checkbox("When refreshing all stale views, also refresh those that block "
                                 "readers")
if st.button(f"Refresh all stale views ({len(stale)})", disabled=stale.empty or bool(running)):
    with st.spinner("Refreshing stale views ..."):
        result = actions.refresh_stale(target, settings, allow_blocking_all)
    loaders.matviews_data.clear()
    if result.ok:
        for name, outcome in result.value:
            (st.error if "not refreshed" in outcome else st.success)(f"{name}: {outcome}")
    else:
        st.error(result.problem.message)

if not data["event_trigger"]:
    with st.expander("Log refreshes by anyone (event trigger)"):
        st.caption("Installs an event trigger on ddl_command_end for REFRESH MATERIALIZED VIEW "
                   "that writes to DB Pulse's refresh log, so refreshes by pg_cron, psql or the "
                   "application are known too. Needs a superuser (on Supabase: the postgres "
                   "role).")
        if st.button("Install the event trigger"):
            result = actions.install_event_trigger(target, settings)
            loaders.matviews_data.clear()
            if result.ok:
                st.success("Installed: every refresh is logged from now on.")
            else:
                st.error(f"Not installed: {result.problem.message} {result.problem.hint}")
