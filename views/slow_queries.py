"""Slow queries: the top statements from pg_stat_statements, the slow-query KPI, and a statement's
detail with its generic plan."""

from datetime import datetime, timezone

import pandas as pd
import plotly.express as px
import streamlit as st

from queries import statements
from ui import actions, interval_mode, loaders
from ui.format import human_duration, percent
from ui.widgets import SLOW_SHARE_HELP, as_of, judged_metric, require_target, show_problem

st.title("Slow queries")
who = require_target()
target, settings = who.target, who.settings

with st.expander("Filters", expanded=False):
    cols = st.columns(4)
    order_by = cols[0].selectbox("Rank by", list(statements.ORDER_BY), index=0)
    min_calls = cols[1].number_input("Minimum calls", min_value=1, value=1, step=10)
    text = cols[2].text_input("Statement text contains")
    limit = cols[3].number_input("Rows", min_value=10, max_value=500, value=50, step=10)
    cols = st.columns(4)
    database = cols[0].text_input("Database (empty: this one, * for all)")
    role = cols[1].text_input("Role (empty: all roles)")
    hide_own = cols[2].toggle("Hide DB Pulse's own statements", value=True)

flt = statements.StatementFilter(database=database or None, role=role or None,
                                 min_calls=int(min_calls), text=text or None, hide_own=hide_own,
                                 order_by=order_by, limit=int(limit))

mode = st.segmented_control("Counting", ["since the last reset", "between snapshots"],
                            default="since the last reset",
                            help="Between snapshots: what happened in an interval, from the "
                                 "differences of stored snapshots (nothing is reset).")
if mode == "between snapshots":
    interval_mode.show(target, settings, flt, order_by)
    st.stop()
loaded = loaders.statements_data(target.database_url, settings, flt)
if not loaded.ok:
    show_problem("Query statistics are not available", loaded)
    st.stop()
as_of(loaded)
data = loaded.value
info, kpi, top = data["info"], data["kpi"], data["top"]

since = ("since pg_stat_statements was reset "
         f"{human_duration(datetime.now(timezone.utc) - info.stats_reset)} ago"
         if info.stats_reset else "since the server started collecting (no reset recorded)")
st.caption(f"Cumulative {since}. {info.entries:,} statements tracked"
           + (f" of at most {info.max_entries:,}" if info.max_entries else "")
           + (f"; {info.dealloc:,} evicted to make room (least-used first)" if info.dealloc
              else "") + ".")

cols = st.columns(3)
judged_metric(cols[0], f"Calls slower than {settings.kpi_slow_ms / 1000:g} s", kpi.text(),
              kpi.state(settings.kpi_slow_share_target),
              f"< {percent(settings.kpi_slow_share_target, 0)}", help=SLOW_SHARE_HELP)
slow = statements.slow_statements(top, settings.slow_query_mean_ms, settings.slow_query_min_calls)
cols[1].metric("Slow statements in this list", len(slow),
               help=f"mean ≥ {settings.slow_query_mean_ms:g} ms over ≥ "
                    f"{settings.slow_query_min_calls} calls")
cols[2].metric("Calls counted", f"{kpi.total_calls:,}")

if top.attrs.get("insufficient_privilege"):
    st.warning(f"{top.attrs['insufficient_privilege']} statements show as "
               "<insufficient privilege>: this role cannot read other roles' statements. "
               "Grant it: GRANT pg_monitor TO the monitoring role.")

if top.empty:
    st.info("No statements match the filters yet.")
    st.stop()

chart = top.head(15).assign(label=lambda f: f["query"].str.slice(0, 60))
st.plotly_chart(px.bar(chart, x=statements.ORDER_BY[order_by], y="label", orientation="h",
                       labels={"label": ""}, title=f"Top statements by {order_by}")
                .update_layout(yaxis={"autorange": "reversed"}, height=420),
                width="stretch")

table = top[["query", "calls", "total_exec_ms", "mean_exec_ms", "max_exec_ms", "share_of_total_time",
             "rows", "shared_blks_read", "temp_blks", "io_ms", "role_name", "database_name",
             "queryid"]].copy()
table["slow"] = table.index.isin(slow.index)
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "share_of_total_time": st.column_config.ProgressColumn("share of time", min_value=0,
                                                           max_value=1, format="percent"),
    "total_exec_ms": st.column_config.NumberColumn("total ms", format="%.0f"),
    "mean_exec_ms": st.column_config.NumberColumn("mean ms", format="%.2f"),
    "max_exec_ms": st.column_config.NumberColumn("max ms", format="%.1f"),
    "io_ms": st.column_config.NumberColumn("I/O ms", format="%.0f"),
    "queryid": st.column_config.TextColumn("queryid"),
})

# --- detail -----------------------------------------------------------------------------------
st.subheader("Statement detail")
labels = {i: f"{row.query[:90]}  (queryid {row.queryid})" for i, row in top.iterrows()}
chosen = st.selectbox("Statement", list(labels), format_func=labels.get)
row = top.loc[chosen]
if pd.isna(row.queryid):
    st.info("This statement belongs to another role: without pg_read_all_stats (part of "
            "pg_monitor) PostgreSQL hides its id and text, so there is no detail or plan.")
    st.stop()
detail = actions.statement_detail(target, settings, int(row.queryid), int(row.userid),
                                  int(row.dbid))
if detail.ok and detail.value:
    counters = detail.value
    st.code(counters.get("query", ""), language="sql")
    plan_ms, exec_ms = counters.get("total_plan_time"), counters.get("total_exec_time")
    if plan_ms:
        cols = st.columns(3)
        cols[0].metric("Planning, total", f"{plan_ms:,.0f} ms")
        cols[1].metric("Execution, total", f"{exec_ms:,.0f} ms")
        cols[2].metric("Planning share", percent(plan_ms / max(plan_ms + exec_ms, 1e-9)))
    with st.expander("Every counter"):
        st.json({k: (str(v) if not isinstance(v, (int, float, type(None))) else v)
                 for k, v in counters.items() if k != "query"})
elif not detail.ok:
    show_problem("Could not read the statement", detail)

st.caption("The generic plan runs on the read-only monitoring session within its time limit; "
           "planning may still evaluate IMMUTABLE functions with constant arguments.")
if st.button("Show the generic plan (EXPLAIN, not executed)"):
    plan = actions.explain_generic(target, settings, row.query if row.query_length <= 2000
                                   else detail.value["query"])
    if plan.ok:
        st.code(plan.value, language="text")
    else:
        st.warning(plan.problem.message)

with st.expander("What-if: try a candidate index (hypopg)"):
    if not who.is_dba:
        st.caption("Trying candidate indexes is for the DBA role.")
    else:
        st.caption("A hypothetical index (hypopg) exists only for this comparison: nothing is "
                   "built, locked or written. Costs are the planner's estimates for the generic "
                   "plan.")
        candidate = st.text_input("Candidate", placeholder="CREATE INDEX ON public.message_events "
                                  "(user_id, autopilot_status, created_at DESC)")
        if st.button("Compare plans") and candidate:
            result = actions.what_if(target, settings, detail.value["query"] if detail.ok
                                     and detail.value else row.query, candidate)
            if not result.ok:
                st.warning(result.problem.message)
            else:
                outcome = result.value
                cols = st.columns(3)
                cols[0].metric("Cost without", f"{outcome.cost_before:,.1f}")
                cols[1].metric("Cost with", f"{outcome.cost_after:,.1f}",
                               delta=f"{-100 * outcome.improvement:.0f} %", delta_color="inverse")
                cols[2].metric("Planner uses it", "yes" if outcome.uses_candidate else "no")
                cols = st.columns(2)
                cols[0].code(outcome.plan_before, language="text")
                cols[1].code(outcome.plan_after, language="text")

if who.is_dba:
    with st.expander("EXPLAIN ANALYZE (DBA): runs the statement"):
        st.warning("EXPLAIN ANALYZE executes the statement for real (inside a transaction that is "
                   "rolled back), as the role that ran it"
                   + (f" ({row.role_name})" if isinstance(row.role_name, str) else "")
                   + " and with no more privileges than that role has. A slow statement takes as "
                   "long as it does; writes take locks until the rollback; what is not "
                   "transactional (a sequence, a file its functions write) is not undone.")
        n = statements.parameter_count(row.query)
        values = [st.text_input(f"${i + 1}", key=f"param_{i}") for i in range(n)]
        if st.checkbox("I understand that this runs the statement") and st.button("Run EXPLAIN ANALYZE"):
            result = actions.explain_analyze(who, detail.value["query"], values, int(row.userid))
            if result.ok:
                st.code(result.value, language="text")
            else:
                st.error(result.problem.message)
