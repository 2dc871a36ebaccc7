"""Space: the largest tables (with their indexes and TOAST) and indexes, and how much each
table grew over the last week of stored snapshots."""

import plotly.express as px
import streamlit as st

from foundation.format import human_bytes
from reads import space
from reads.indexes import OWN_SCHEMA
from ui import loaders, tables
from ui.widgets import own_objects_toggle, page, value_or_stop

MIB = 1048576  # the charts' sizes in MB, as human_bytes writes them

who = page("Space")
target, settings = who.target, who.settings
data = value_or_stop(loaders.space_data(target, settings), "Sizes cannot be read")
by_table, by_index = data["tables"], data["indexes"]
if not own_objects_toggle():
    by_table = by_table[by_table["schema_name"] != OWN_SCHEMA]
    by_index = by_index[by_index["schema_name"] != OWN_SCHEMA]

if by_table.empty:
    st.info("This database has no tables yet.")
    st.stop()
cols = st.columns(3)
cols[0].metric("Tables and views", human_bytes(by_table["table_bytes"].sum()),
               help=f"The {len(by_table)} largest")
cols[1].metric("Their indexes", human_bytes(by_table["index_bytes"].sum()))
growth = by_table["growth_bytes"].dropna()
cols[2].metric("Growth over 7 days", human_bytes(growth.sum()) if len(growth) else "unknown",
               help="From the stored snapshots" if data["growth_known"] else
                    "No snapshots yet: take them hourly (.venv/bin/python cli.py snapshot)")

parts = {"table_bytes": "table", "index_bytes": "indexes", "toast_bytes": "TOAST"}
chart = by_table.head(15).assign(**{part: by_table.head(15)[column] / MIB
                                    for column, part in parts.items()})
st.plotly_chart(px.bar(chart, x=list(parts.values()), y="table_name", orientation="h",
                       barmode="stack", labels={"value": "size (MB)", "table_name": "",
                                                "variable": "part"})
                .update_layout(yaxis={"autorange": "reversed"}, xaxis_tickformat=",.1f",
                               height=400), width="stretch")
st.subheader("Tables")
tables.show(by_table, space.TABLE_SPACE_COLUMNS, max_rows=200)
st.subheader("Largest indexes")
tables.show(by_index, space.INDEX_SPACE_COLUMNS, "No indexes.", max_rows=100)
