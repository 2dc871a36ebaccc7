"""Alerts: where the agent sends them, when it holds them back, what it raised lately for this
target (from the history database), and a test message for each channel (DBA)."""

from datetime import datetime, timedelta, timezone

import streamlit as st

from foundation.format import count
from foundation.markup import md
from operations import alert_log, alerts
from ui import actions, context, loaders, tables
from ui.confirm import action_button
from ui.widgets import PAGE_FILES, dba_note, page, show_problem, value_or_stop

who = page("Alerts")
target, settings = who.target, who.settings
config = context.alert_config()
channels = alerts.describe_channels(config)

st.caption("DB Pulse's agent (`.venv/bin/python cli.py agent`, README \"Running by itself\") sends the "
           "alerts, not this dashboard: one message when a check turns red or a server goes "
           "down, one when it recovers, none per cycle; a channel that fails is retried with "
           "back-off. Settings: `[alerts]` in .streamlit/secrets.toml, read when the agent "
           "starts.")
if channels:
    st.markdown("**Channels:** " + md("; ".join(channels)) + ".  \n**Policy:** "
                + alerts.policy_from(config).describe() + ".")
else:
    st.info("No alert channel is configured: add webhook_url, slack_url or smtp_host (with "
            "smtp_to) under [alerts] in .streamlit/secrets.toml (see the example), then restart "
            "the agent.", icon=":material/notifications_off:")

days = st.segmented_control("Raised in the last", [1, 7, 30, 90], default=7,
                            format_func=lambda d: f"{d} day" + ("s" if d > 1 else ""))
since = datetime.now(timezone.utc) - timedelta(days=days or 7)
raised = value_or_stop(loaders.alerts_data(target, settings, since),
                       "The alert log cannot be read")
if raised is None:
    st.info("The agent has raised no alert for this target yet (its log is written to the "
            "history database from its first alert).")
else:
    still = raised.drop_duplicates("check_name")  # newest first: each check's last state
    cols = st.columns(3)
    cols[0].metric("Alerts raised", count((raised['state'] != 'recovered').sum()))
    cols[1].metric("Recoveries", count((raised['state'] == 'recovered').sum()))
    cols[2].metric("Still red at the last alert", count((still['state'] != 'recovered').sum()))
    tables.show(raised, alert_log.ALERT_COLUMNS, "No alert in this period.")
    # the pages of the checks still red, one click away
    for red_page in still.loc[still["state"] != "recovered", "page"].unique():
        if red_page in PAGE_FILES:
            st.page_link(PAGE_FILES[red_page], icon=":material/arrow_forward:",
                         label=alert_log.explained_on("", red_page))

if channels:
    st.subheader("Test the channels")
    dba_note(who)
    result = action_button(who, "test_alert", "Send a test message",
                           lambda: actions.send_test_alert(who, config))
    if result is not None:
        if result.ok:
            for channel, outcome in result.value:
                (st.success if outcome == "sent" else st.error)(f"{md(channel)}: {md(outcome)}")
        else:
            show_problem("Not sent", result)
