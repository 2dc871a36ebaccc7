"""Activity: sessions now, long-running statements, blocked sessions, connections in use."""

import streamlit as st

from ui import loaders
from ui.format import percent
from ui.widgets import frame_or_note, require_target, show_problem

st.title("Activity")
target, settings = require_target()
loaded = loaders.activity_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Session information is not available", loaded)
    st.stop()
sessions, use = loaded.value["sessions"], loaded.value["connections"]

cols = st.columns(3)
cols[0].metric("Connections in use", f"{use.used} / {use.available}", help=(
    f"max_connections {use.max_connections}, {use.reserved} reserved for superusers"))
cols[1].metric("Share", percent(use.share, 0))
cols[2].metric("Blocked sessions", int(sessions["blocked_by"].map(bool).sum()) if len(sessions) else 0)

st.caption(f"Refreshed every few seconds. Long-running means over {settings.long_query_s:g} s.")
frame_or_note(sessions, "No other client sessions.")
