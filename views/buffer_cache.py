"""Buffer cache: hit rates for the database, tables and indexes, and the tables that miss most."""

import plotly.express as px
import streamlit as st

from foundation.format import percent, state_for_ratio
from reads import cache
from reads.indexes import OWN_SCHEMA
from ui import loaders, tables
from ui.widgets import judged_metric, own_objects_toggle, page, value_or_stop

who = page("Buffer cache")
target, settings = who.target, who.settings
data = value_or_stop(loaders.buffer_cache_data(target.database_url, settings),
                     "Cache statistics are not available")
rates, per_table, identity = data["rates"], data["tables"], data["identity"]
if not own_objects_toggle():
    per_table = per_table[per_table["schema_name"] != OWN_SCHEMA]
st.caption(f"Cumulative {identity.stats_window()}: a recent change shows slowly in these figures.")

target_text = f"≥ {percent(settings.buffer_cache_hit_threshold, 0)}"
cols = st.columns(3)
for col, label, value, meaning in (
        (cols[0], "Database", rates.database, cache.DATABASE_RATE_MEANING),
        (cols[1], "Tables", rates.tables, None), (cols[2], "Indexes", rates.indexes, None)):
    judged_metric(col, f"{label} hit rate", percent(value, 2),
                  state_for_ratio(value, settings.buffer_cache_hit_threshold), target_text,
                  help=meaning)

st.subheader("Tables with the most disk reads")
if not per_table.empty:
    chart = per_table.head(15).rename(columns={"table_blocks_read": "table",
                                               "index_blocks_read": "its indexes"})
    st.plotly_chart(px.bar(chart, x=["table", "its indexes"], y="table_name", orientation="h",
                           barmode="stack", labels={"value": "8 kB blocks read from disk",
                                                    "table_name": "", "variable": "read from"})
                    .update_layout(yaxis={"autorange": "reversed"}, height=380), width="stretch")
tables.show(per_table, cache.TABLE_HIT_COLUMNS, "No table statistics yet.", max_rows=200)
