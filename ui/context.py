"""Who is looking, at which target, with which settings: decided on the server for every run of
a page (foundation/access.py decides, this module asks Streamlit and draws the answer). Nothing is
shown before the configuration is usable and the person has a role on the target."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime

import streamlit as st

from foundation import access
from foundation.config import (
    ConfigError,
    Settings,
    Target,
    load_settings,
    load_targets,
    read_secrets,
)
from foundation.markup import md
from foundation.roles import Actor

TARGET_KEY = "dbpulse_target"


def settings() -> Settings:
    return load_settings()


def targets() -> list[Target]:
    return load_targets()


def policy() -> access.AccessPolicy:
    return access.load_policy(read_secrets(), settings())


def alert_config() -> dict:
    """The [alerts] table of the secrets: the agent's channels and policy."""
    return dict(read_secrets().get("alerts", {}))


def current_target() -> Target | None:
    available = targets()
    if not available:
        return None
    chosen = st.session_state.get(TARGET_KEY)
    for target in available:
        if target.name == chosen:
            return target
    return available[0]


class NotSignedIn(Exception):
    pass


def person(rules: access.AccessPolicy) -> access.Person:
    """The person of this session, or NotSignedIn / AccessRefused."""
    if rules.mode == "local":
        return access.os_person("local")
    if rules.mode == "proxy":
        headers = st.context.headers
        return access.proxy_person(rules, {k: headers.get_all(k) for k in headers},
                                   st.context.ip_address)
    if not st.user.get("is_logged_in", False):
        raise NotSignedIn()
    return access.oidc_person(rules, st.user.to_dict(), time.time())


def actor(target: Target) -> Actor:
    """The Actor of this session on a target (raises AccessRefused when it has no role)."""
    config_settings, rules = settings(), policy()
    who = person(rules)
    return Actor(who.name, access.decide_role(rules, who, target.name), target, config_settings)


@st.cache_data(ttl=60, show_spinner=False)
def _provider_problem() -> str | None:
    return access.probe_provider(st.secrets.get("auth", {}))


def _sign_in() -> None:
    st.title("DB Pulse")
    st.write("Sign in with your company account to see the dashboard.")
    problem = _provider_problem()
    if problem:
        st.error(problem, icon=":material/error:")
    # named providers are sub-tables ([auth.google]); without any, [auth] itself is the one
    providers = [k for k, v in st.secrets.get("auth", {}).items() if isinstance(v, Mapping)]
    for provider in providers or [None]:
        st.button(f"Sign in with {provider}" if provider else "Sign in", type="primary",
                  on_click=st.login, args=(provider,) if provider else (),
                  key=f"sign_in_{provider}")
    st.caption("If signing in brings you back here, the provider refused the sign-in: the "
               "dashboard's server log says why.")


def gate() -> None:
    """Stop the run unless the configuration is usable, this address may serve it and the
    person has a role on the chosen target."""
    try:
        rules, available = policy(), targets()
    except ConfigError as exc:
        st.error(f"Configuration problem: {md(exc)}", icon=":material/error:")
        st.stop()
    problem = access.start_problem(rules, st.get_option("server.address"),
                                   os.environ.get("FORWARDED_ALLOW_IPS"))
    if problem:
        st.error(problem, icon=":material/block:")
        st.stop()
    try:
        who = person(rules)
        if available:
            target = current_target()
            access.decide_role(rules, who, target.name)
    except NotSignedIn:
        _sign_in()
        st.stop()
    except access.AccessRefused as exc:
        st.error(str(exc), icon=":material/block:")
        if rules.mode == "oidc" and st.user.get("is_logged_in", False):
            st.button("Sign in again", on_click=st.login)
            st.button("Sign out", on_click=st.logout)
        st.stop()


def sidebar() -> None:
    """Target choice, who is signed in with which role, and the cache controls."""
    with st.sidebar:
        st.markdown("### DB Pulse")
        config_settings, rules, available = settings(), policy(), targets()
        if not available:
            st.warning("No database configured. Set DATABASE_URL and REDIS_URL, or add a target "
                       "to .streamlit/secrets.toml (see secrets.toml.example).")
            return
        names = [t.name for t in available]
        if len(names) > 1:
            st.selectbox("Target", names, key=TARGET_KEY)
        else:
            st.caption(f"Target: **{md(names[0])}**")
        who = actor(current_target())
        if rules.mode == "local":
            st.info("**Single-user local mode**: listening on 127.0.0.1 only, no sign-in. "
                    + ("DBA actions are on: the operator set role = \"dba\"." if who.is_dba
                       else "Read only: DBA actions need role = \"dba\" in the configuration."),
                    icon=":material/lock:")
        else:
            st.caption(f"Signed in as **{md(who.person)}**"
                       + (" (through the proxy)" if rules.mode == "proxy" else ""))
        st.caption(f"Role: **{who.role}** on {md(who.target.name)}")
        if rules.mode == "oidc":
            st.button("Sign out", on_click=st.logout)
        if st.button("Refresh data", help="Forget cached results and query the servers again"):
            st.cache_data.clear()
        st.caption(f"Results are reused for {config_settings.cache_ttl_s} s. "
                   f"Page drawn at {datetime.now():%H:%M:%S}.")
