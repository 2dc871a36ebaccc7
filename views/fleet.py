"""Fleet: every configured target's health side by side, worst first; a target that is down is
shown as down without delaying the others."""

import pandas as pd
import streamlit as st

from foundation.access import AccessRefused
from operations import fleet
from ui import context, loaders, tables
from ui.widgets import page

TIME_LIMIT_S = 8.0

who = page("Fleet")
visible = []
for target in context.targets():
    try:
        context.actor(target)  # a person without a role on a target does not see it
        visible.append(target)
    except AccessRefused:
        pass
settings = who.settings
found, from_agent, agent_note = fleet.current_rows(
    visible, settings, lambda targets: loaders.fleet_data(tuple(targets), settings, TIME_LIMIT_S))
rows = pd.DataFrame(found, columns=list(fleet.FLEET_COLUMNS))
if len(rows):  # Redis figures from the read the Overview and Redis pages show: one value
    answered = set(rows.loc[rows["redis_hit_rate"].notna(), "target"])
    rates = {t.name: loaders.redis_hit_rate(t.redis_urls) for t in visible if t.name in answered}
    rows["redis_hit_rate"] = rows["target"].map(rates)
counts = rows["status"].value_counts() if len(rows) else {}
cols = st.columns(4)
cols[0].metric("Targets", len(rows))
cols[1].metric("Down", int(counts.get("down", 0)))
cols[2].metric("Red", int(counts.get("red", 0)))
cols[3].metric("Amber", int(counts.get("amber", 0)))
read_here = (f"read concurrently; a target that has not answered within {TIME_LIMIT_S:g} s "
             "of its read starting is shown as down")
st.caption((f"{from_agent} of {len(rows)} as the agent measured them (Measured); the "
            f"others {read_here}" if from_agent else read_here.capitalize())
           + (f"; {agent_note}" if agent_note else "")
           + ". Choose a target in the sidebar for its pages.")
tables.show(rows, fleet.FLEET_COLUMNS, "No target is configured.")
