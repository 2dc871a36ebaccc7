"""Server settings: the ones that matter for performance, what they are now, their default, and
plain advice from what the server shows (temporary files, connections, I/O timing)."""

import streamlit as st

from foundation.markup import md
from reads import tune
from ui import loaders, tables
from ui.widgets import page, value_or_stop

who = page("Server settings")
target, settings = who.target, who.settings
data = value_or_stop(loaders.tune_data(target.database_url, settings),
                     "Server settings cannot be read")
advice = data["advice"]

st.caption(f"PostgreSQL {md(data['identity'].version)}. Advice comes from what the server itself "
           f"shows, {data['identity'].stats_window()}; DB Pulse cannot see the machine's memory "
           "or disks, so settings sized by them are “unknown”, with the usual rule.")
counts = advice["state"].value_counts()
cols = st.columns(3)
cols[0].metric("Worth a look", int(counts.get("consider", 0)))
cols[1].metric("Depend on the machine", int(counts.get("unknown", 0)))
cols[2].metric("Fine as they are", int(counts.get("ok", 0)))
tables.show(advice, tune.ADVICE_COLUMNS)
st.caption("Change a setting with ALTER SYSTEM SET name = value; then SELECT "
           "pg_reload_conf(); (or restart, where the table says so). On Supabase: the "
           "dashboard's database settings or the CLI's `supabase postgres-config update`.")
