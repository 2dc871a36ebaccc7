"""Audit log: who did what, on which target, when, with what result and how long; refusals
included. Viewers may read it."""

from datetime import datetime, time, timedelta, timezone

import streamlit as st

from ui import loaders
from ui.widgets import as_of, require_target, show_problem

st.title("Audit log")
who = require_target()
target, settings = who.target, who.settings
st.caption("Every DBA action and every refusal, written by DB Pulse in the database it acted on "
           "(dbpulse.audit_log): the person (signed-in e-mail, cli:<user> for the command line, "
           "local:<user> in local mode), the role they had, the parameters and the outcome.")

ANY = "(everyone)"
today = datetime.now(timezone.utc).date()
cols = st.columns(4)
days = cols[0].date_input("Days (UTC)", (today - timedelta(days=7), today), max_value=today)
first_day, last_day = (tuple(days) * 2)[:2] if isinstance(days, tuple) else (days, days)
since = datetime.combine(first_day, time.min, tzinfo=timezone.utc)
until = datetime.combine(last_day, time.min, tzinfo=timezone.utc) + timedelta(days=1)
unfiltered = loaders.audit_data(target, settings, since=since, until=until, limit=1)
choices = unfiltered.value["choices"] if unfiltered.ok and unfiltered.value else {
    "person": [], "action": [], "target": []}
person = cols[1].selectbox("Person", [ANY] + choices["person"])
action = cols[2].selectbox("Action", [ANY] + choices["action"])
on_target = cols[3].selectbox("Target", [ANY] + choices["target"])

loaded = loaders.audit_data(target, settings, since=since, until=until,
                            person=None if person == ANY else person,
                            action=None if action == ANY else action,
                            target=None if on_target == ANY else on_target, limit=5000)
if not loaded.ok:
    show_problem("The audit log cannot be read", loaded)
    st.stop()
as_of(loaded)
if loaded.value is None:
    st.info("Nothing has been done here through DB Pulse yet: its schema (and the audit log) is "
            "installed by the first DBA action.")
    st.stop()
rows = loaded.value["rows"]
counts = rows["outcome"].value_counts()
metric_cols = st.columns(4)
metric_cols[0].metric("Actions", f"{len(rows):,}")
metric_cols[1].metric("Done", f"{counts.get('ok', 0):,}")
metric_cols[2].metric("Failed", f"{counts.get('error', 0):,}")
metric_cols[3].metric("Refused", f"{counts.get('refused', 0):,}")
if rows.empty:
    st.caption("No action matches these filters.")
    st.stop()
st.dataframe(rows, hide_index=True, width="stretch", column_config={
    "started_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "person": st.column_config.TextColumn("Person"),
    "role": st.column_config.TextColumn("Role"),
    "action": st.column_config.TextColumn("Action"),
    "target": st.column_config.TextColumn("Target"),
    "object_name": st.column_config.TextColumn("Object"),
    "parameters": st.column_config.TextColumn("Parameters"),
    "outcome": st.column_config.TextColumn("Outcome"),
    "duration_ms": st.column_config.NumberColumn("Duration (ms)", format="%.0f"),
    "detail": st.column_config.TextColumn("Detail", width="large")})
st.download_button("Download CSV", rows.to_csv(index=False).encode(),
                   file_name=f"dbpulse-audit-{target.name}-{first_day}-{last_day}.csv",
                   mime="text/csv")
