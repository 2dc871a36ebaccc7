"""Activity: who blocks whom first, then sessions now, long-running statements, connections in
use, refreshing itself every few seconds; a DBA can cancel a statement or terminate a session."""

import streamlit as st

from foundation.format import amount, count, known, percent
from foundation.markup import md
from reads import activity, pgbouncer
from ui import loaders, tables
from ui.actions import end_session
from ui.confirm import action_button, last_result
from ui.widgets import as_of, dba_note, judged_metric, page, show_problem

REFRESH_S = 5  # the loader's cache lives as long, so each refresh reads the server once

who = page("Activity")
target, settings = who.target, who.settings


def sessions_now():
    """The sessions, connection use and blocking tree, or stop with the problem."""
    loaded = loaders.activity_data(target.database_url, settings)
    if not loaded.ok:
        show_problem("Session information is not available", loaded)
        st.stop()
    sessions = loaded.value["sessions"]
    return loaded, sessions, loaded.value["connections"], activity.blocking_tree(sessions)


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    """Redrawn every few seconds on its own; the actions below keep their choices meanwhile."""
    loaded, sessions, use, tree = sessions_now()
    as_of(loaded)
    st.caption(f"This part refreshes itself every {REFRESH_S} s. Long-running means over "
               f"{settings.long_query_s:g} s.")
    cols = st.columns(3)
    cols[0].metric("Connections in use", f"{use.used} / {use.available}", help=(
        f"Every client connection, DB Pulse's own {use.own} included: they take slots too "
        "(the Optimization plan's KPI counts the application's alone); of max_connections "
        f"{use.max_connections}, {use.reserved} reserved for superusers."))
    cols[1].metric("Share", percent(use.share, 0))
    cols[2].metric("Blocked sessions", int((tree["depth"] > 0).sum()))

    st.subheader("Who blocks whom")
    if tree.empty:
        st.caption("No session waits for a lock another session holds.")
    else:
        st.caption("Root blockers first (depth 0), each followed by the sessions waiting for it. "
                   "Ending a root blocker releases the whole tree; a session idle in a "
                   "transaction runs no statement, so only terminating it releases its locks.")
        shown = tree.assign(session=[("  " * d) + ("└ " if d else "") + str(p)
                                     for d, p in zip(tree["depth"], tree["pid"])])
        tables.show(shown, activity.BLOCKING_COLUMNS)

    st.subheader("Connections by role, application and client")
    tables.show(loaded.value["by_client"], activity.CONNECTION_COLUMNS, max_rows=200)
    limits = loaded.value["limits"]
    if len(limits):
        st.caption("Roles and databases with a connection limit of their own (CONNECTION "
                   "LIMIT): past it the next connection is refused, however many "
                   "max_connections leaves.")
        tables.show(limits, activity.LIMIT_COLUMNS)
    if target.pooler_url:
        pooler()
    st.subheader("Sessions")
    tables.show(sessions, activity.SESSION_COLUMNS, "No other client sessions.", max_rows=500)


def pooler() -> None:
    """PgBouncer's pools against the plan's "under 70 % at peak"."""
    st.subheader("Connection pooler (PgBouncer)")
    loaded = loaders.pooler_data(target.pooler_url, settings)
    if not loaded.ok:
        show_problem("PgBouncer's pools are not available", loaded)
        return
    state = loaded.value
    cols = st.columns(3)
    judged_metric(cols[0], "Fullest pool", percent(state.utilisation, 0), state.state(),
                  f"< {percent(pgbouncer.POOL_TARGET, 0)}",
                  help="Server connections in use of the pool size, now; the plan's KPI is "
                       "the peak, which the agent's history keeps.")
    cols[1].metric("Clients waiting", count(state.waiting_clients))
    cols[2].metric("Longest wait", amount(state.longest_wait_s, "s", 2))
    tables.show(state.pools, pgbouncer.POOL_COLUMNS, "No pool in use.")


live()
_, sessions, _, tree = sessions_now()

def end_session_controls(pid, by_pid, tree, roots):
    """What ending the chosen session does, and the button; Terminate is suggested only for a
    root blocker idle in a transaction (only that releases its locks), never preselected else."""
    state = by_pid.loc[pid, "state"]
    idle = isinstance(state, str) and state.startswith("idle")
    suggested = 1 if pid in roots and idle else 0
    how = st.radio("Action", ["Cancel its statement", "Terminate the session"], index=suggested,
                   horizontal=True, key="end_session_how")
    terminate = how.startswith("Terminate")
    if pid in roots and terminate != bool(suggested):
        st.caption("Suggested for this session: " + activity.end_session_sql(pid, state))
    st.code(f"SELECT {'pg_terminate_backend' if terminate else 'pg_cancel_backend'}({pid});",
            language="sql")
    blocks = tree.loc[tree["pid"] == pid, "blocks"] if not tree.empty else []
    waiting = len(blocks.iloc[0]) if len(blocks) else 0
    seconds = by_pid.loc[pid, "transaction_seconds"]
    explanation = (
        f"Session **{pid}** ({md(by_pid.loc[pid, 'role_name'] or '?')}, {state or 'unknown'}"
        + (f", transaction open {amount(seconds, 's')}" if known(seconds) else "") + "): "
        + ("its connection is closed and its open transaction rolled back; the application sees "
           "an error on that connection." if terminate else
           "its running statement is cancelled; the application sees an error for it.")
        + (f" {waiting} waiting session(s) go on once its locks are released." if waiting
           else ""))
    return action_button(who, "end_session", "Terminate" if terminate else "Cancel",
                         lambda: end_session(who, int(pid), terminate),
                         title="Terminate a session" if terminate else "Cancel a statement",
                         explanation=explanation,
                         confirm_text=str(pid) if terminate else None)


st.subheader("Cancel or terminate a session")
dba_note(who)
result = None
if sessions.empty:
    st.caption("No other client sessions.")
else:
    roots = set(tree[tree["depth"] == 0]["pid"]) if not tree.empty else set()
    pids = sorted(sessions["pid"], key=lambda p: (p not in roots, p))
    by_pid = sessions.set_index("pid")
    # a root blocker is chosen for the DBA; with nothing blocked, nothing is chosen
    pid = st.selectbox("Session", pids, index=0 if roots else None,
                       placeholder="Nothing is blocked: choose a session", format_func=lambda p: (
                           f"{p} — {by_pid.loc[p, 'state'] or 'unknown'}, "
                           f"{by_pid.loc[p, 'role_name'] or '?'}"
                           + (" (root blocker)" if p in roots else "")))
    if pid is not None:
        result = end_session_controls(pid, by_pid, tree, roots)
result = result or last_result("end_session")  # the session may be gone from the list now
if result is not None:
    if result.ok:
        st.success(md(result.value))
    else:
        show_problem("Nothing done", result)
