"""Slow queries: the top statements from pg_stat_statements (since the reset, or between two
snapshots), the slow-query KPI, and one statement's detail: its counters, its time over the
stored snapshots, its generic plan, a what-if index and EXPLAIN ANALYZE."""

from datetime import datetime, timezone

import pandas as pd
import plotly.express as px
import streamlit as st

from foundation.format import amount, count, human_duration, percent
from foundation.markup import md
from reads import statements
from reports import charts
from ui import actions, interval_mode, loaders, tables
from ui.widgets import (
    disabled_for,
    page,
    show_problem,
    slow_share_metric,
    top_statements_chart,
    value_or_stop,
)

who = page("Slow queries")
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


def live_list():
    """The statements since the last reset, listed and charted; None when there are none."""
    data = value_or_stop(loaders.statements_data(target.database_url, settings, flt),
                         "Query statistics are not available")
    info, kpi, top = data["info"], data["kpi"], data["top"]

    since = ("since pg_stat_statements was reset "
             f"{human_duration(datetime.now(timezone.utc) - info.stats_reset)} ago"
             if info.stats_reset else "since the server started collecting (no reset recorded)")
    st.caption(f"Cumulative {since}. {count(info.entries)} statements tracked"
               + (f" of at most {count(info.max_entries)}" if info.max_entries else "")
               + (f"; {count(info.dealloc)} evicted to make room (least-used first)" if info.dealloc
                  else "") + ".")

    cols = st.columns(3)
    slow_share_metric(cols[0], kpi, settings)
    slow = statements.slow_statements(top, settings.slow_query_mean_ms,
                                      settings.slow_query_min_calls)
    cols[1].metric("Slow statements in this list", len(slow),
                   help=f"mean ≥ {settings.slow_query_mean_ms:g} ms over ≥ "
                        f"{settings.slow_query_min_calls} calls")
    cols[2].metric("Calls counted", count(kpi.total_calls))

    if top.attrs.get("insufficient_privilege"):
        st.warning(f"{top.attrs['insufficient_privilege']} statements show as "
                   "<insufficient privilege>: this role cannot read other roles' statements. "
                   "Grant it: GRANT pg_monitor TO the monitoring role.")

    if top.empty:
        st.info("No statements match the filters yet.")
        return None

    top_statements_chart(top, order_by, f"Top statements by {order_by}")

    tables.show(top.assign(slow=top.index.isin(slow.index)), statements.LIST_COLUMNS)
    return top


top = (interval_mode.show(target, settings, flt, order_by) if mode == "between snapshots"
       else live_list())
if top is None:
    st.stop()

# --- detail: the same for both ways of counting ----------------------------------------------
st.subheader("Statement detail")
labels = {i: f"{str(row.query)[:90]}  (queryid {_id})" for i, row in top.iterrows()
          for _id in [statements.queryid_text(row.queryid)]}
chosen = st.selectbox("Statement", list(labels), format_func=labels.get)
row = top.loc[chosen]
if pd.isna(row.queryid):
    st.info("This statement belongs to another role: without pg_read_all_stats (part of "
            "pg_monitor) PostgreSQL hides its id and text, so there is no detail or plan.")
    st.stop()
queryid = int(row.queryid)
dbid = int(row.dbid) if "dbid" in row and not pd.isna(row.dbid) else None
detail = actions.statement_detail(target, settings, queryid, int(row.userid), dbid)
counters = detail.value if detail.ok else None
query_text = counters["query"] if counters else str(row.query)
st.code(query_text, language="sql")
if counters:
    plan_ms, exec_ms = counters.get("total_plan_time"), counters.get("total_exec_time")
    if plan_ms:
        cols = st.columns(3)
        cols[0].metric("Planning, total", amount(plan_ms, "ms"))
        cols[1].metric("Execution, total", amount(exec_ms, "ms"))
        cols[2].metric("Planning share", percent(plan_ms / max(plan_ms + exec_ms, 1e-9)))
    with st.expander("Every counter (pg_stat_statements)"):
        tables.show(pd.DataFrame(statements.counter_rows(counters)), statements.COUNTER_COLUMNS)
elif detail.ok:
    st.caption("pg_stat_statements no longer holds this statement (evicted or reset): the text "
               "above is the stored one.")
else:
    show_problem("Could not read the statement", detail)

series = loaders.statement_history(target, settings, queryid)
if series.ok and not series.value.empty:
    trend = series.value.rename(columns={"bucket": "hour", "mean_exec_ms": "mean time (ms)",
                                         "calls": "calls"})
    st.plotly_chart(px.line(trend, x="hour", y="mean time (ms)", markers=True,
                            hover_data={"calls": ":,"},
                            title="Mean time per hour over the stored snapshots, last 7 days")
                    .update_layout(height=300, xaxis_title="")
                    .update_xaxes(range=charts.time_range(trend["hour"]))
                    .update_yaxes(rangemode="tozero"), width="stretch")
else:
    st.caption("No stored snapshots hold this statement in the last 7 days: its time over days "
               "appears here once snapshots are taken (.venv/bin/python cli.py snapshot, hourly).")

st.caption("Planning can run a statement's functions, so plans run only on the target's plan "
           "login, checked to have no more rights than the role that ran the statement, in a "
           "read-only transaction within the time limit; each request is audited.")
if st.button("Show the generic plan (EXPLAIN, not executed)"):
    plan = actions.explain_generic(who, query_text, int(row.userid))
    if plan.ok:
        st.code(plan.value, language="text")
    else:
        st.warning(md(plan.problem.message))

caps = loaders.capabilities_and_identity(target.database_url, settings)
hypopg = caps.value[0].extension("hypopg") if caps.ok else None
with st.expander("What-if: try a candidate index (hypopg)"):
    if hypopg is None or not hypopg.installed:
        st.caption("Needs the hypopg extension, which is not installed in this database"
                   + (" (available: CREATE EXTENSION hypopg;)." if hypopg and hypopg.available
                      else "; it is not available on this server (on Debian: the package "
                           "postgresql-NN-hypopg).") + " Without it, compare plans after "
                   "building the index on a copy.")
    elif not who.is_dba:
        disabled_for(who, "Compare plans", "Trying a candidate index")
    else:
        st.caption("A hypothetical index (hypopg) exists only for this comparison: nothing is "
                   "built, locked or written. Costs are the planner's estimates for the generic "
                   "plan.")
        candidate = st.text_input("Candidate", placeholder="CREATE INDEX ON schema.table "
                                  "(column_a, column_b DESC)")
        if st.button("Compare plans") and candidate:
            result = actions.what_if(who, query_text, candidate, int(row.userid))
            if not result.ok:
                st.warning(md(result.problem.message))
            else:
                outcome = result.value
                cols = st.columns(3)
                cols[0].metric("Cost without", amount(outcome.cost_before, digits=1))
                cols[1].metric("Cost with", amount(outcome.cost_after, digits=1),
                               delta=amount(-100 * outcome.improvement, "%"), delta_color="inverse")
                cols[2].metric("Planner uses it", "yes" if outcome.uses_candidate else "no")
                cols = st.columns(2)
                cols[0].code(outcome.plan_before, language="text")
                cols[1].code(outcome.plan_after, language="text")

with st.expander("EXPLAIN ANALYZE (DBA): runs the statement"):
    if not who.is_dba:
        disabled_for(who, "Run EXPLAIN ANALYZE", "EXPLAIN ANALYZE")
    else:
        st.warning("EXPLAIN ANALYZE executes the statement for real (inside a transaction that "
                   "is rolled back), as the role that ran it"
                   + (f" ({md(row.role_name)})" if isinstance(row.get("role_name"), str) else "")
                   + ", on the target's plan login, which has no more rights than that role. A "
                   "slow statement takes as long as it does; writes take locks until the "
                   "rollback; what is not transactional (a sequence, a file its functions "
                   "write) is not undone.")
        n = statements.parameter_count(query_text)
        values = [st.text_input(f"${i + 1}", key=f"param_{i}") for i in range(n)]
        if st.checkbox("I understand that this runs the statement") and \
                st.button("Run EXPLAIN ANALYZE"):
            result = actions.explain_analyze(who, query_text, values, int(row.userid))
            if result.ok:
                st.code(result.value, language="text")
            else:
                st.error(md(result.problem.message))
