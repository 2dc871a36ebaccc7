"""DB Pulse: the router. Registers the pages a role may see and draws the sidebar."""

import streamlit as st

from ui import context

st.set_page_config(page_title="DB Pulse", page_icon="🩺", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon="🩺", default=True),
]

navigation = st.navigation(PAGES)
context.sidebar()
navigation.run()
