"""Small Streamlit pieces the pages share."""

from __future__ import annotations

import streamlit as st

from ui.loaders import Loaded

BADGES = {  # state -> (badge color, material icon, word)
    "green": ("green", ":material/check_circle:", "on target"),
    "amber": ("orange", ":material/warning:", "near target"),
    "red": ("red", ":material/error:", "below target"),
    "grey": ("gray", ":material/help:", "no data yet"),
}


def judged_metric(container, label: str, value: str, state: str, target_text: str,
                  help: str | None = None) -> None:
    """A metric with a green/amber/red badge that names the target it is judged against."""
    color, icon, word = BADGES[state]
    with container:
        st.metric(label, value, help=help, border=True)
        st.badge(f"{word} ({target_text})", color=color, icon=icon)


def show_problem(what: str, loaded: Loaded) -> None:
    st.error(f"**{what}:** {loaded.problem.message}", icon=":material/error:")
    if loaded.problem.hint:
        st.caption(loaded.problem.hint)
