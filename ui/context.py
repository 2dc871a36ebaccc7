"""Which target and settings this browser session uses, and the sidebar that chooses them."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from queries.config import ConfigError, Settings, Target, load_settings, load_targets

TARGET_KEY = "dbpulse_target"


def settings() -> Settings:
    return load_settings()


def targets() -> list[Target]:
    return load_targets()


def current_target() -> Target | None:
    available = targets()
    if not available:
        return None
    chosen = st.session_state.get(TARGET_KEY)
    for target in available:
        if target.name == chosen:
            return target
    return available[0]


def sidebar() -> tuple[Target | None, Settings | None]:
    """Draw the sidebar; return the chosen target and settings, or (None, None) with the reason
    shown when the configuration cannot be used."""
    with st.sidebar:
        st.markdown("### DB Pulse")
        try:
            config_settings, available = settings(), targets()
        except ConfigError as exc:
            st.error(f"Configuration problem: {exc}")
            return None, None
        if not available:
            st.warning("No database configured. Set DATABASE_URL and REDIS_URL, or add a target "
                       "to .streamlit/secrets.toml (see secrets.toml.example).")
            return None, config_settings
        names = [t.name for t in available]
        if len(names) > 1:
            st.selectbox("Target", names, key=TARGET_KEY)
        else:
            st.caption(f"Target: **{names[0]}**")
        st.caption(f"Role: **{config_settings.role}**")
        if st.button("Refresh data", help="Forget cached results and query the servers again"):
            st.cache_data.clear()
        st.caption(f"Results are reused for {config_settings.cache_ttl_s} s. "
                   f"Page drawn at {datetime.now():%H:%M:%S}.")
    return current_target(), config_settings
