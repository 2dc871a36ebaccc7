"""Buffer cache: hit rates for the database, tables and indexes, and the tables that miss most."""

import plotly.express as px
import streamlit as st

from ui import loaders
from ui.format import percent, state_for_ratio
from ui.widgets import as_of, frame_or_note, judged_metric, require_target, show_problem

st.title("Buffer cache")
who = require_target()
target, settings = who.target, who.settings
loaded = loaders.buffer_cache_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Cache statistics are not available", loaded)
    st.stop()
as_of(loaded)
rates, tables, identity = loaded.value["rates"], loaded.value["tables"], loaded.value["identity"]
st.caption(f"Cumulative {identity.stats_window()}: a recent change shows slowly in these figures.")

target_text = f"≥ {percent(settings.buffer_cache_hit_threshold, 0)}"
cols = st.columns(3)
for col, label, value in ((cols[0], "Database", rates.database), (cols[1], "Tables", rates.tables),
                          (cols[2], "Indexes", rates.indexes)):
    judged_metric(col, f"{label} hit rate", percent(value, 2),
                  state_for_ratio(value, settings.buffer_cache_hit_threshold), target_text)

st.subheader("Tables with the most disk reads")
if not tables.empty:
    st.plotly_chart(px.bar(tables.head(15), x=["table_blocks_read", "index_blocks_read"],
                           y="table_name", orientation="h", barmode="stack",
                           labels={"value": "blocks read from disk", "table_name": ""})
                    .update_layout(yaxis={"autorange": "reversed"}, height=380), width="stretch")
frame_or_note(tables, "No table statistics yet.", column_config={
    "table_hit_rate": st.column_config.NumberColumn("table hit rate", format="percent"),
    "index_hit_rate": st.column_config.NumberColumn("index hit rate", format="percent")})
