"""Bloat and vacuum: estimated table and index bloat, exact figures on demand (DBA), dead rows
and autovacuum trigger points, transaction ID wraparound, sequences."""

import pandas as pd
import plotly.express as px
import streamlit as st

from foundation.format import count, human_bytes, percent
from foundation.identifiers import qualified
from foundation.markup import md
from reads import bloat, vacuum
from reads.indexes import OWN_SCHEMA
from ui import loaders, tables
from ui.actions import exact_bloat
from ui.widgets import disabled_for, own_objects_toggle, page, show_problem, value_or_stop

who = page("Bloat and vacuum")
target, settings = who.target, who.settings
small_too = st.toggle(
    f"Also estimate relations under {human_bytes(settings.bloat_min_bytes)}", value=False,
    help="They cannot hold more bloat than that (the minimum of the bloat check); on a "
         "catalogue of thousands of small relations, estimating them all takes seconds.")
data = value_or_stop(loaders.bloat_data(target.database_url, settings,
                                        0 if small_too else settings.bloat_min_bytes),
                     "Bloat and vacuum statistics are not available")
if not own_objects_toggle():
    data = {name: value[value["schema_name"] != OWN_SCHEMA]
            if hasattr(value, "columns") and "schema_name" in value.columns else value
            for name, value in data.items()}

st.subheader("Table bloat (estimate)")
st.caption("Estimated from the planner statistics (row widths, null fractions, alignment, "
           "fillfactor): space the table has beyond what its rows need. An empty bloat cell is "
           "unknown, with the reason in the note (never analyzed, statistics missing or "
           "unreadable, B-tree deduplication); TOAST is not estimated.")
at_least = "" if small_too else f" of at least {human_bytes(settings.bloat_min_bytes)}"
table_bloat = data["tables"]
if table_bloat.empty:
    st.caption(f"No table{at_least}.")
else:
    shown = table_bloat[table_bloat["pages"] > 0]
    st.plotly_chart(px.bar(shown.head(15).assign(bloat_mb=shown.head(15)["bloat_bytes"] / 1048576),
                           x="bloat_mb", y="table_name", orientation="h",
                           labels={"bloat_mb": "estimated bloat (MB)", "table_name": ""})
                    .update_layout(yaxis={"autorange": "reversed"}, xaxis_tickformat=",.1f",
                                   height=380), width="stretch")
    tables.show(shown, bloat.TABLE_BLOAT_COLUMNS, max_rows=100, missing="unknown")
    worst = shown[shown["bloat_ratio"] >= settings.bloat_min_ratio].head(20)  # most bytes first
    if len(worst):
        st.code("\n".join(bloat.table_fix_sql(r.schema_name, r.table_name)
                          for r in worst.itertuples()), language="sql")

st.subheader("B-tree index bloat (estimate)")
idx = data["indexes"]
tables.show(idx[idx["pages"] > 0] if not idx.empty else idx, bloat.INDEX_BLOAT_COLUMNS,
            f"No B-tree index{at_least}.", max_rows=100, missing="unknown")

caps = data["capabilities"]
pgstattuple = caps.extension("pgstattuple")
with st.expander("Exact figures (pgstattuple)"):
    if not pgstattuple.installed:
        st.info("pgstattuple is not installed: CREATE EXTENSION pgstattuple; "
                "(on Supabase: Database > Extensions).")
    elif not who.is_dba:
        disabled_for(who, "Measure exactly (reads the relation)", "Measuring exact bloat")
    else:
        # (schema, name, is_index): names may hold dots and quotes, so never split a label
        choices = [(r.schema_name, r.table_name, False) for r in table_bloat.itertuples()]
        choices += [(r.schema_name, r.index_name, True) for r in idx.itertuples()]
        choice = st.selectbox("Relation", choices, format_func=lambda c: qualified(c[0], c[1])
                              + (" (index)" if c[2] else ""))
        if choice and st.button("Measure exactly (reads the relation)"):
            schema, name, is_index = choice
            result = exact_bloat(who, schema, name, is_index, pgstattuple.schema)
            if result.ok:
                tables.show(pd.DataFrame({"measure": [k.replace("_", " ") for k in result.value],
                                          "value": list(result.value.values())}),
                            bloat.EXACT_COLUMNS)
            else:
                show_problem("Measuring failed", result)

st.subheader("Vacuum")
st.caption("Autovacuum triggers when dead rows exceed threshold + scale factor × rows "
           "(per-table settings first). Towards the trigger above 100 % means it is due; well "
           "above, it is not keeping up or is switched off.")
vac = data["vacuum"]
tables.show(vac, vacuum.VACUUM_COLUMNS, "No user tables.", max_rows=200)

st.subheader("Transaction ID wraparound")
wrap = data["wraparound"]
oldest = wrap.iloc[0] if len(wrap) else None
if oldest is not None:
    st.metric(f"Oldest database: {md(oldest.database_name)}",
              f"{count(oldest.xid_age)} transactions",
              help=f"{percent(oldest.share_of_limit, 3)} of the 2^31 limit; autovacuum forces a "
                   f"freeze at {count(oldest.freeze_max_age)}.")
tables.show(wrap, vacuum.WRAPAROUND_COLUMNS, "No databases.")

st.subheader("Sequences")
tables.show(data["sequences"], vacuum.SEQUENCE_COLUMNS, "No sequences.", max_rows=20)
