"""Migrations: the prepared optimization migrations, their state, lint and plan, and the DBA's
apply and rollback."""

import streamlit as st

from queries.roles import PermissionDenied
from ui import actions, loaders
from ui.format import human_bytes
from ui.widgets import as_of, frame_or_note, require_target, show_problem

st.title("Migrations")
target, settings = require_target()
loaded = loaders.migrations_data(target.database_url, settings)
if not loaded.ok:
    show_problem("Migrations cannot be read", loaded)
    st.stop()
as_of(loaded)
data = loaded.value
status = data["status"]
st.caption("States come from DB Pulse's ledger (dbpulse.migration_runs): pending, applied, running "
           "(its runner holds the run lock now), interrupted (its runner is gone) or failed (a "
           "re-run continues after the last statement whose effect committed), or changed "
           "since applied.")
st.dataframe(status.drop(columns=["error"]), hide_index=True, width="stretch")
for row in status[status["state"].str.startswith(("failed", "interrupted"))].itertuples():
    st.error(f"{row.version} {row.name}: {row.state}, {row.completed} of {row.statements} "
             f"statements done" + (f": {row.error}" if row.error else ""))
for row in status[status["state"].str.startswith("running")].itertuples():
    st.info(f"{row.version} {row.name}: running now, {row.completed} of {row.statements} "
            "statements done")

for m in data["migrations"]:
    findings = data["lint"][m.version]
    plan = data["plans"].get(m.version)
    with st.expander(f"{m.version} {m.name}: {len(m.statements)} statements, "
                     f"{len(findings)} lint notes"):
        if plan is not None:
            st.markdown("**Plan**")
            st.dataframe(plan.assign(table_size=plan["table_bytes"].map(
                lambda b: human_bytes(b) if b == b and b is not None else "")).drop(
                columns=["table_bytes"]), hide_index=True, width="stretch")
        if findings:
            st.markdown("**squawk**")
            st.dataframe(findings, hide_index=True, width="stretch")
        st.code(m.path.read_text(), language="sql")

st.subheader("Ledger")
frame_or_note(data["ledger"], "No migration has run here yet.")

if not settings.is_dba:
    st.caption("Applying and rolling back migrations is for the DBA role.")
    st.stop()

st.subheader("Apply or roll back")
pending = list(status[status["state"] != "applied"]["version"])
applied = list(status[status["state"] != "pending"]["version"])
cols = st.columns(2)
with cols[0]:
    up_to = st.selectbox("Apply pending migrations up to", pending or ["(none)"],
                         index=max(len(pending) - 1, 0), disabled=not pending)
    apply_clicked = st.button("Apply", type="primary", disabled=not pending
                              or st.session_state.get("dbpulse_migrating", False))
with cols[1]:
    rollback_clicked = st.button("Roll back the last applied migration",
                                 disabled=not applied
                                 or st.session_state.get("dbpulse_migrating", False))

if apply_clicked or rollback_clicked:
    st.session_state["dbpulse_migrating"] = True
    try:
        with st.status("Running ...", expanded=True) as box:
            result = actions.run_migrations(target, settings,
                                            "apply" if apply_clicked else "rollback",
                                            up_to if apply_clicked else None, progress=box.write)
            box.update(label="Done" if result.ok else "Stopped",
                       state="complete" if result.ok else "error")
    except PermissionDenied as exc:
        result = loaders.Loaded(problem=loaders.DatabaseProblem("refused", str(exc)))
    finally:
        st.session_state["dbpulse_migrating"] = False
    loaders.migrations_data.clear()
    if result.ok:
        st.success(("Applied: " if apply_clicked else "Rolled back: ")
                   + (", ".join(result.value) or "nothing to do"))
    else:
        st.error(result.problem.message)
