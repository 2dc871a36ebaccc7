"""Indexes: unused, duplicate and redundant, invalid; missing-index hints; sizes. Every finding
comes with the statement that fixes it."""

import pandas as pd
import streamlit as st

from foundation.format import human_bytes
from reads import indexes
from ui import loaders, tables
from ui.widgets import own_objects_toggle, page, read_later, value_or_stop

FINDINGS_PER_PAGE = 50

who = page("Indexes")
target, settings = who.target, who.settings
include_own = own_objects_toggle()
loaded = loaders.indexes_data(target.database_url, settings, include_own, target.replica_urls)
data = value_or_stop(loaded, "Index statistics are not available")
# the lists below are read by this page's loader; the findings may be an earlier read the
# Overview left cached (loaders.index_reads)
lists_read = read_later(data["lists_read_at"], loaded)
found = data["review"]
identity = data["identity"]
st.caption(f"Scan counts are cumulative, {identity.stats_window()}. "
           "An index unused over a short period may still serve a monthly report.")


def with_definitions(drawn: pd.DataFrame) -> pd.DataFrame:
    """The findings drawn with their indexes' definitions (a duplicate's and the one that
    stays), read for these alone."""
    wanted = {*drawn["index_oid"], *drawn["covered_by_oid"]} - {0}
    loaded = loaders.index_definitions(target.database_url, settings, tuple(sorted(wanted)))
    if not loaded.ok:
        st.caption(f"The indexes' definitions could not be read: {loaded.problem.message}")
        return drawn
    return drawn.assign(definition=[
        indexes.definition_text(loaded.value, oid, stays)
        for oid, stays in zip(drawn["index_oid"], drawn["covered_by_oid"])])


def findings_table(findings, empty_note, key, columns=indexes.FINDING_COLUMNS):
    """One page of the findings (largest first) with the fixes of that page; every fix as a
    file when there are more."""
    if not findings:
        st.caption(empty_note)
        return
    # each finding's fields as they are (vars): asdict copied every value deeply, 45 ms for
    # 3,000 duplicates at 25,000 indexes against 2.4
    shown = tables.show(pd.DataFrame([vars(f) for f in findings]), columns,
                        max_rows=FINDINGS_PER_PAGE, key=key,
                        completed=(with_definitions
                                   if isinstance(findings[0], indexes.IndexFinding) else None))
    fixes = [fix for fix in shown["fix"] if fix]
    if fixes:
        st.code("\n".join(fixes), language="sql")
    every_fix = [f.fix for f in findings if f.fix]
    if len(every_fix) > len(fixes):
        st.download_button(f"Download all {len(every_fix):,} fixes", "\n".join(every_fix) + "\n",
                           file_name=f"{key}.sql", mime="application/sql",
                           icon=":material/download:", key=f"download-{key}")


cols = st.columns(4)
cols[0].metric("Unused", len(found.unused), help=f"{len(found.not_judged)} more without scans "
               "are kept (they support a foreign key), too new to judge, or of unknown age (no "
               "migration or snapshot shows how long they have existed)")
cols[1].metric("Duplicate or redundant", len(found.duplicates))
cols[2].metric("Invalid", len(found.invalid))
cols[3].metric("Foreign keys without index", len(found.foreign_keys))

st.subheader("Unused indexes")
st.caption(f"No scans since the statistics reset; at least {human_bytes(settings.unused_index_min_bytes)}; "
           "never one that backs a primary key, unique or exclusion constraint. Each slows every "
           "INSERT and UPDATE of its table. Verdict *kept*: the only index supporting a foreign "
           f"key. *Too new*: built (or statistics reset) less than "
           f"{settings.unused_index_min_age_days:g} days ago, known from DB Pulse's migration "
           "ledger and snapshots; zero scans over so short a time prove nothing.")
findings_table(found.judged, "No unused indexes.", "unused", indexes.JUDGED_COLUMNS)

st.subheader("Duplicate and redundant indexes")
st.caption("Same table, method, expressions and predicate, and the columns are a leading prefix "
           "of another index's. The one backing a constraint is always kept.")
findings_table(found.duplicates, "No duplicate indexes.", "duplicates")

st.subheader("Invalid indexes")
st.caption("Left by a failed CREATE INDEX CONCURRENTLY: maintained on writes, never read.")
findings_table(found.invalid, "No invalid indexes.", "invalid")

st.subheader("Missing-index hints")
findings_table(found.foreign_keys, "Every foreign key has an index leading with its columns.",
               "foreign_keys", indexes.FOREIGN_KEY_COLUMNS)
st.markdown("**Tables read mostly by sequential scans**")
if lists_read:
    st.caption(lists_read.strip())
tables.show(data["seq_scans"], indexes.SEQ_SCAN_COLUMNS,
            "No table is read mostly by large sequential scans.")

st.subheader("All indexes")
st.caption("Least scanned first." + lists_read)
tables.show(data["least_scanned"], indexes.ALL_INDEX_COLUMNS, max_rows=100,
            total=data["index_count"])
