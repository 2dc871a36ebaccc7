"""Migrations: the prepared optimization migrations, their state, lint and plan, and the DBA's
apply and rollback."""

import pandas as pd
import streamlit as st

from foundation import migration_files
from foundation.format import human_bytes
from foundation.markup import md
from foundation.migration_files import blocks_others
from operations import migrations
from ui import actions, loaders, tables
from ui.confirm import action_button
from ui.widgets import dba_note, page, show_problem, value_or_stop


def run_with_progress(direction: str, until: str | None):
    st.session_state["dbpulse_migrating"] = True
    try:
        with st.status("Running ...", expanded=True) as box:
            result = actions.run_migrations(who, direction, until, progress=box.write)
            box.update(label="Done" if result.ok else "Stopped",
                       state="complete" if result.ok else "error")
    finally:
        st.session_state["dbpulse_migrating"] = False
    return result


who = page("Migrations")
target, settings = who.target, who.settings
data = value_or_stop(loaders.migrations_data(target.database_url, settings),
                     "Migrations cannot be read")
status = data["status"]
st.caption("States come from DB Pulse's ledger (dbpulse.migration_runs): pending, applied, running "
           "(its runner holds the run lock now), interrupted (its runner is gone) or failed (a "
           "re-run continues after the last statement whose effect committed), or changed "
           "since applied.")
tables.show(status, migrations.STATUS_COLUMNS)
for row in status[status["state"].str.startswith(("failed", "interrupted"))].itertuples():
    st.error(f"{row.version} {row.name}: {row.state}, {row.completed} of {row.statements} "
             f"statements done" + (f": {md(row.error)}" if row.error else ""))
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
            tables.show(plan, migrations.PLAN_COLUMNS)
        if findings:
            st.markdown("**squawk**")
            tables.show(pd.DataFrame(findings), migration_files.LINT_COLUMNS)
        st.code(m.path.read_text(), language="sql")

st.subheader("Ledger")
tables.show(data["ledger"], migrations.LEDGER_COLUMNS, "No migration has run here yet.",
            max_rows=200)

st.subheader("Apply or roll back")
dba_note(who)
pending = list(status[status["state"] != "applied"]["version"])
applied = list(status[status["state"] != "pending"]["version"])
by_version = {m.version: m for m in data["migrations"]}
cols = st.columns(2)
with cols[0]:
    # the next migration only, unless the DBA chooses to go further
    up_to = st.selectbox("Apply pending migrations up to", pending or ["(none)"], index=0,
                         disabled=not pending)
    chosen = [by_version[v] for v in pending if v <= up_to] if pending else []
    lines, risky = [], False
    for m in chosen:
        plan = data["plans"].get(m.version)
        for s in m.statements:
            if blocks_others(s):
                risky = True
                size = None
                if plan is not None and s.table:
                    sizes = plan.loc[plan["table"] == s.table, "table_bytes"].dropna()
                    size = human_bytes(sizes.iloc[0]) if len(sizes) else None
                lines.append(f"- **{m.version}** `{s.text.strip().splitlines()[0][:90]}`: "
                             f"{s.lock} on {s.table or 'its objects'}"
                             + (f" ({size})" if size else "") + " for the whole statement")
    explanation = (f"This applies **{', '.join(m.version for m in chosen)}** "
                   f"({sum(len(m.statements) for m in chosen)} statements) on "
                   f"**{target.name}**.\n\n"
                   + ("These statements block the application while they run; an index build "
                      "takes as long as reading the whole table, minutes on large ones:\n\n"
                      + "\n".join(lines) if risky else
                      "Every statement lets reads and writes go on (CONCURRENTLY index builds wait "
                      "for transactions already open, then build without blocking)."))
    applied_result = action_button(
        who, "migrate_apply", "Apply", lambda: run_with_progress("apply", up_to),
        title="Apply migrations", explanation=explanation,
        confirm_text=chosen[-1].version if risky or len(chosen) > 1 else None,
        disabled=not pending or st.session_state.get("dbpulse_migrating", False))
with cols[1]:
    last = by_version.get(applied[-1]) if applied else None
    rolled_result = action_button(
        who, "migrate_rollback", "Roll back the last applied migration",
        lambda: run_with_progress("rollback", None), title="Roll back",
        explanation=(f"This runs the rollback file of **{last.version} {last.name}** on "
                     f"**{target.name}**: what it built is dropped, and queries that used it "
                     "slow down again.") if last else "",
        confirm_text=last.version if last else None,
        disabled=not applied or st.session_state.get("dbpulse_migrating", False))

for result, verb in ((applied_result, "Applied: "), (rolled_result, "Rolled back: ")):
    if result is None:
        continue
    if result.ok:
        st.success(verb + (", ".join(result.value) or "nothing to do"))
    else:
        show_problem("Not done", result)
