"""Replication: this server's standbys and slots (a primary), or its own replay (a standby),
with the checks' findings and their fixes."""

import streamlit as st

from foundation.format import count, human_bytes, human_duration
from reads import replication
from ui import loaders, tables
from ui.widgets import finding_banner, page, value_or_stop

who = page("Replication")
target, settings = who.target, who.settings
data = value_or_stop(loaders.replication_data(target.database_url, settings),
                     "Replication figures are not available")
for finding in data["findings"]:
    finding_banner(finding)

recovery = data["recovery"]
if recovery is not None:
    st.subheader("This server is a standby")
    cols = st.columns(4)
    cols[0].metric("Replay", "paused" if recovery.paused else "running")
    cols[1].metric("Received, not yet replayed", human_bytes(recovery.receive_behind_bytes))
    cols[2].metric("Last replayed commit", human_duration(recovery.replay_delay_s) + " ago"
                   if recovery.replay_delay_s is not None else "unknown",
                   help="Grows while the primary commits nothing, too: read it with the "
                        "bytes beside it.")
    cols[3].metric("Queries cancelled by recovery", count(recovery.conflicts),
                   help="pg_stat_database_conflicts of this database: hot_standby_feedback "
                        "and max_standby_streaming_delay trade these against vacuum on the "
                        "primary.")
    st.caption(f"Follows {recovery.primary or 'an unknown primary'}; WAL receiver "
               f"{recovery.receiver_status or 'not running'}.")
else:
    st.subheader("Standbys streaming from this server")
    tables.show(data["standbys"], replication.STANDBY_COLUMNS,
                "No standby streams from this server.")
st.subheader("Replication slots")
st.caption("A slot keeps every WAL file its consumer (a standby, a logical subscriber) has not "
           "confirmed; an inactive slot keeps them until the disk is full.")
tables.show(data["slots"], replication.SLOT_COLUMNS, "No replication slot on this server.")

st.subheader("Logical subscriptions into this database")
tables.show(data["subscriptions"], replication.SUBSCRIPTION_COLUMNS,
            "No logical subscription in this database.")
