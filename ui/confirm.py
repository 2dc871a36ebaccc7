"""The button of a DBA action, with a confirmation that fits its risk: a dialog that says what
will be locked and for how long, and for the riskiest ones asks to type the object's name. A
viewer sees every DBA control disabled, with the reason; the core refuses (and logs) a press
that reaches it anyway."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from foundation.markup import md
from foundation.roles import Actor
from ui.loaders import Loaded


def _dialog(key: str, explanation: str, confirm_text: str | None, go_label: str,
            run: Callable[[], Loaded]) -> None:
    st.markdown(explanation)
    typed = (st.text_input(f"Type **{md(confirm_text)}** to confirm", key=f"{key}_typed")
             if confirm_text else None)
    # never disabled: typing and then clicking arrive in one run, and a disabled button would
    # swallow that first click
    if st.button(go_label, type="primary", key=f"{key}_go"):
        if confirm_text and typed.strip() != confirm_text:
            st.error(f"Type **{md(confirm_text)}** exactly to confirm; nothing was done.")
        else:
            _run_and_redraw(key, run)


def _run_and_redraw(key: str, run: Callable[[], Loaded]) -> None:
    """Run the action, forget every cached figure and draw the page again: the tables above
    the button were drawn before the action ran, and must not contradict it."""
    st.session_state[f"{key}_result"] = run()
    st.cache_data.clear()
    st.rerun()


def action_button(who: Actor, key: str, label: str, run: Callable[[], Loaded], *,
                  title: str = "", explanation: str = "", confirm_text: str | None = None,
                  disabled: bool = False) -> Loaded | None:
    """Draw the button; return the action's result once, on the run after it finished. With
    an explanation, a DBA confirms in a dialog first."""
    if st.button(label, key=f"{key}_button", type="primary", disabled=disabled or not who.is_dba,
                 help=None if who.is_dba else who.denial(title or label)):
        if who.is_dba and explanation:
            st.dialog(title or label, width="large")(_dialog)(key, explanation, confirm_text,
                                                              label, run)
        else:
            _run_and_redraw(key, run)
    return st.session_state.pop(f"{key}_result", None)


def last_result(key: str) -> Loaded | None:
    """The result of an action whose button is no longer drawn (what it acted on is gone, as a
    terminated session), once."""
    return st.session_state.pop(f"{key}_result", None)
