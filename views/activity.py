"""Activity: who blocks whom first, then sessions now, long-running statements, connections in
use; a DBA can cancel a statement or terminate a session."""

import streamlit as st

from queries import activity
from queries.roles import PermissionDenied
from ui import loaders
from ui.actions import end_session
from ui.format import percent
from ui.widgets import as_of, frame_or_note, require_target, show_problem

st.title("Activity")
target, settings = require_target()
loaded = loaders.activity_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Session information is not available", loaded)
    st.stop()
as_of(loaded)
sessions, use = loaded.value["sessions"], loaded.value["connections"]
tree = activity.blocking_tree(sessions)

cols = st.columns(3)
cols[0].metric("Connections in use", f"{use.used} / {use.available}", help=(
    f"max_connections {use.max_connections}, {use.reserved} reserved for superusers"))
cols[1].metric("Share", percent(use.share, 0))
cols[2].metric("Blocked sessions", int((tree["depth"] > 0).sum()))

st.subheader("Who blocks whom")
if tree.empty:
    st.caption("No session waits for a lock another session holds.")
else:
    st.caption("Root blockers first (depth 0), each followed by the sessions waiting for it. "
               "Ending a root blocker releases the whole tree; a session idle in a transaction "
               "runs no statement, so only terminating it releases its locks.")
    shown = tree.assign(session=[("  " * d) + ("└ " if d else "") + str(p)
                                 for d, p in zip(tree["depth"], tree["pid"])])
    st.dataframe(shown[["session", "state", "role_name", "transaction_seconds", "waits_for",
                        "blocks", "query", "end_sql"]], hide_index=True, width="stretch")

st.subheader("Cancel or terminate a session")
if not settings.is_dba:
    st.caption("Cancelling a statement or terminating a session is a DBA action.")
elif sessions.empty:
    st.caption("No other client sessions.")
else:
    roots = set(tree[tree["depth"] == 0]["pid"]) if not tree.empty else set()
    pids = sorted(sessions["pid"], key=lambda p: (p not in roots, p))
    by_pid = sessions.set_index("pid")
    pid = st.selectbox("Session", pids, format_func=lambda p: (
        f"{p} — {by_pid.loc[p, 'state'] or 'unknown'}, {by_pid.loc[p, 'role_name'] or '?'}"
        + (" (root blocker)" if p in roots else "")))
    state = by_pid.loc[pid, "state"] if pid is not None else None
    suggested = 1 if isinstance(state, str) and state.startswith("idle") else 0
    how = st.radio("Action", ["Cancel its statement", "Terminate the session"], index=suggested,
                   horizontal=True, key="end_session_how")
    terminate = how.startswith("Terminate")
    if terminate != bool(suggested):
        st.caption("Suggested for this session: " + activity.end_session_sql(pid, state))
    st.code(f"SELECT {'pg_terminate_backend' if terminate else 'pg_cancel_backend'}({pid});",
            language="sql")
    sure = st.checkbox(f"I want to {'terminate session' if terminate else 'cancel the statement of'} "
                       f"{pid}" + (": its open transaction is rolled back" if terminate else ""),
                       key="end_session_sure")
    if st.button("Terminate" if terminate else "Cancel", disabled=not sure, type="primary"):
        try:
            result = end_session(target, settings, int(pid), terminate)
        except PermissionDenied as exc:
            st.error(str(exc))
        else:
            if result.ok:
                st.success(result.value)
                loaders.activity_data.clear()
            else:
                show_problem("Nothing done", result)

st.subheader("Sessions")
st.caption(f"As of {loaded.loaded_at:%H:%M:%S} UTC (reload the page to refresh). Long-running "
           f"means over {settings.long_query_s:g} s.")
frame_or_note(sessions, "No other client sessions.")
