"""Bloat and vacuum: estimated table and index bloat, exact figures on demand (DBA), dead rows
and autovacuum trigger points, transaction ID wraparound, sequences."""

import plotly.express as px
import streamlit as st

from queries import bloat
from queries.indexes import OWN_SCHEMA
from queries.identifiers import qualified
from ui import loaders
from ui.actions import exact_bloat
from ui.format import human_bytes, percent
from ui.widgets import as_of, frame_or_note, own_objects_toggle, require_target, show_problem

st.title("Bloat and vacuum")
who = require_target()
target, settings = who.target, who.settings
loaded = loaders.bloat_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Bloat and vacuum statistics are not available", loaded)
    st.stop()
as_of(loaded)
data = loaded.value
if not own_objects_toggle():
    data = {name: value[value["schema_name"] != OWN_SCHEMA]
            if hasattr(value, "columns") and "schema_name" in value.columns else value
            for name, value in data.items()}

st.subheader("Table bloat (estimate)")
st.caption("Estimated from the planner statistics (row widths, null fractions, alignment, "
           "fillfactor): space the table has beyond what its rows need. An empty bloat cell is "
           "unknown, with the reason in the note (never analyzed, statistics missing or "
           "unreadable, B-tree deduplication); TOAST is not estimated.")
tables = data["tables"]
if not tables.empty:
    shown = tables[tables["pages"] > 0].head(30).assign(
        size=lambda f: f["size_bytes"].map(human_bytes),
        toast=lambda f: f["toast_bytes"].map(human_bytes),
        bloat=lambda f: f["bloat_bytes"].map(human_bytes))
    st.plotly_chart(px.bar(shown.head(15), x="bloat_bytes", y="table_name", orientation="h",
                           labels={"bloat_bytes": "estimated bloat (bytes)", "table_name": ""})
                    .update_layout(yaxis={"autorange": "reversed"}, height=380), width="stretch")
    st.dataframe(shown[["schema_name", "table_name", "size", "bloat", "bloat_ratio", "toast",
                        "fillfactor",
                        "stats_note"]], hide_index=True, width="stretch",
                 column_config={"bloat_ratio": st.column_config.ProgressColumn(
                     "bloat", min_value=0, max_value=1, format="percent")})
    worst = shown[shown["bloat_ratio"] >= settings.bloat_min_ratio]
    if len(worst):
        st.code("\n".join(bloat.table_fix_sql(r.schema_name, r.table_name)
                          for r in worst.itertuples()), language="sql")

st.subheader("B-tree index bloat (estimate)")
idx = data["indexes"]
frame_or_note(idx[idx["pages"] > 0].head(30).assign(
    size=lambda f: f["size_bytes"].map(human_bytes), bloat=lambda f: f["bloat_bytes"].map(human_bytes))
    [["schema_name", "table_name", "index_name", "size", "bloat", "bloat_ratio", "stats_note"]]
    if not idx.empty else idx, "No B-tree indexes.",
    column_config={"bloat_ratio": st.column_config.ProgressColumn(
        "bloat", min_value=0, max_value=1, format="percent")})

caps = data["capabilities"]
pgstattuple = caps.extension("pgstattuple")
with st.expander("Exact figures (pgstattuple)"):
    if not pgstattuple.installed:
        st.info("pgstattuple is not installed: CREATE EXTENSION pgstattuple; "
                "(on Supabase: Database > Extensions).")
    elif not who.is_dba:
        st.caption("Measuring exactly reads the whole relation: a DBA action.")
    else:
        # (schema, name, is_index): names may hold dots and quotes, so never split a label
        choices = [(r.schema_name, r.table_name, False) for r in tables.itertuples()]
        choices += [(r.schema_name, r.index_name, True) for r in idx.itertuples()]
        choice = st.selectbox("Relation", choices, format_func=lambda c: qualified(c[0], c[1])
                              + (" (index)" if c[2] else ""))
        if choice and st.button("Measure exactly (reads the relation)"):
            schema, name, is_index = choice
            result = exact_bloat(who, schema, name, is_index, pgstattuple.schema)
            if result.ok:
                st.json({k: str(v) for k, v in result.value.items()})
            else:
                show_problem("Measuring failed", result)

st.subheader("Vacuum")
st.caption("Autovacuum triggers when dead rows exceed threshold + scale factor × rows "
           "(per-table settings first). trigger_progress above 1 means it is due; well above "
           "1, it is not keeping up or is switched off.")
vac = data["vacuum"]
frame_or_note(vac[["schema_name", "table_name", "live_rows", "dead_rows", "autovacuum_enabled",
                   "autovacuum_trigger_rows", "trigger_progress", "last_vacuum", "last_autovacuum",
                   "last_analyze", "last_autoanalyze"]], "No user tables.")

st.subheader("Transaction ID wraparound")
wrap = data["wraparound"]
oldest = wrap.iloc[0] if len(wrap) else None
if oldest is not None:
    st.metric(f"Oldest database: {oldest.database_name}", f"{int(oldest.xid_age):,} transactions",
              help=f"{percent(oldest.share_of_limit, 3)} of the 2^31 limit; autovacuum forces a "
                   f"freeze at {int(oldest.freeze_max_age):,}.")
frame_or_note(wrap, "No databases.")

st.subheader("Sequences")
frame_or_note(data["sequences"].head(20), "No sequences.")
