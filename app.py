"""DB Pulse: the router. Nothing is drawn before the configuration is usable and the person has
a role (ui/context.gate); then the pages and the sidebar."""

import streamlit as st

from ui import context, runtime

runtime.freeze_startup_objects()
st.set_page_config(page_title="DB Pulse", page_icon="🩺", layout="wide")

PAGES = {  # grouped as a DBA looks: what is wrong now, where the space and time go, what changed
    "Now": [
        st.Page("views/overview.py", title="Overview", icon=":material/monitor_heart:",
                default=True),
        st.Page("views/fleet.py", title="Fleet", icon=":material/dns:"),
        st.Page("views/slow_queries.py", title="Slow queries", icon=":material/speed:"),
        st.Page("views/activity.py", title="Activity", icon=":material/groups:"),
        st.Page("views/replication.py", title="Replication", icon=":material/lan:"),
        st.Page("views/redis.py", title="Redis cache", icon=":material/bolt:"),
    ],
    "Storage and settings": [
        st.Page("views/indexes.py", title="Indexes", icon=":material/account_tree:"),
        st.Page("views/bloat.py", title="Bloat and vacuum", icon=":material/delete_sweep:"),
        st.Page("views/buffer_cache.py", title="Buffer cache", icon=":material/memory:"),
        st.Page("views/space.py", title="Space", icon=":material/storage:"),
        st.Page("views/matviews.py", title="Materialized views", icon=":material/table_view:"),
        st.Page("views/settings.py", title="Server settings", icon=":material/tune:"),
    ],
    "Changes": [
        st.Page("views/plan.py", title="Optimization plan", icon=":material/flag:"),
        st.Page("views/migrations.py", title="Migrations", icon=":material/construction:"),
        st.Page("views/review.py", title="Weekly review", icon=":material/event_note:"),
        st.Page("views/alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page("views/audit.py", title="Audit log", icon=":material/history:"),
    ],
}

context.gate()
navigation = st.navigation(PAGES, expanded=True)
context.sidebar()
navigation.run()
