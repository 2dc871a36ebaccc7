"""Audit log: who did what, on which target, when, with what result and how long; refusals
included. Viewers may read it."""

from datetime import datetime, time, timedelta, timezone

import streamlit as st

from foundation.format import count
from operations import audit
from ui import loaders, tables
from ui.widgets import page, value_or_stop

who = page("Audit log")
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
if value_or_stop(loaded, "The audit log cannot be read") is None:
    st.info("Nothing has been done here through DB Pulse yet: its schema (and the audit log) is "
            "installed by the first DBA action.")
    st.stop()
rows = loaded.value["rows"]
counts = rows["outcome"].value_counts()
metric_cols = st.columns(4)
metric_cols[0].metric("Actions", count(len(rows)))
metric_cols[1].metric("Done", count(counts.get('ok', 0)))
metric_cols[2].metric("Failed", count(counts.get('error', 0)))
metric_cols[3].metric("Refused", count(counts.get('refused', 0)))
if rows.empty:
    st.caption("No action matches these filters.")
    st.stop()
tables.show(audit.for_people(rows), audit.ACTION_COLUMNS)
st.download_button("Download CSV", audit.csv_text(rows).encode(),
                   file_name=f"dbpulse-audit-{target.name}-{first_day}-{last_day}.csv",
                   mime="text/csv")
