"""Small Streamlit pieces the pages share."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import plotly.express as px
import streamlit as st

from foundation.access import AccessRefused
from foundation.config import ConfigError, Settings
from foundation.format import percent
from foundation.markup import code, md
from reads import statements
from ui import context
from ui.loaders import Loaded

BADGES = {  # state -> (badge color, material icon, word)
    "green": ("green", ":material/check_circle:", "on target"),
    "amber": ("orange", ":material/warning:", "near target"),
    "red": ("red", ":material/error:", "below target"),
    "grey": ("gray", ":material/help:", "no data yet"),
}


def judged_metric(container, label: str, value: str, state: str, target_text: str,
                  help: str | None = None, bounds: str | None = None) -> None:
    """A metric with a green/amber/red badge that names the target it is judged against;
    `bounds`: how the value's bounds were found, when it is a range and not a measured figure
    (said under it: in the value, the card's width cut it off)."""
    color, icon, word = BADGES[state]
    with container.container(border=True):  # the badge inside the card it judges
        st.metric(label, value, help=help)
        if bounds:
            st.caption(f"{bounds}: the true value lies between them")
        st.badge(f"{word} ({target_text})", color=color, icon=icon)


def slow_share_metric(container, kpi: statements.SlowQueryKpi | None, settings: Settings) -> None:
    """The plan's KPI, the share of calls slower than the threshold, judged: the same card on
    every page that shows it."""
    figure, bounds = kpi.figure() if kpi else ("n/a", None)
    judged_metric(container, f"Calls slower than {settings.kpi_slow_ms / 1000:g} s", figure,
                  kpi.state(settings.kpi_slow_share_target) if kpi else "grey",
                  f"< {percent(settings.kpi_slow_share_target, 0)}", help=SLOW_SHARE_HELP,
                  bounds=bounds)


def as_of(loaded: Loaded) -> None:
    """When the figures below were read: a page may show them from the cache for a while, and
    during an outage the last ones stay up with their time."""
    if loaded.loaded_at is not None:
        age = (datetime.now(timezone.utc) - loaded.loaded_at).total_seconds()
        st.caption(f"As of {loaded.loaded_at:%H:%M:%S} UTC"
                   + (f" ({age:.0f} s ago, from the cache)" if age >= 2 else ""))


def read_later(part_read_at: datetime, loaded: Loaded) -> str:
    """A part of a page read after the figures its "as of" dates (taken from the cache): its
    own time, to put beside it; "" when read with them.

    >>> from datetime import timedelta
    >>> at = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)
    >>> read_later(at + timedelta(seconds=25), Loaded(1, loaded_at=at))
    ' Read at 20:00:25 UTC, later than the findings above.'
    >>> read_later(at + timedelta(seconds=1), Loaded(1, loaded_at=at))
    ''
    """
    if loaded.loaded_at is None or (part_read_at - loaded.loaded_at).total_seconds() < 2:
        return ""
    return f" Read at {part_read_at:%H:%M:%S} UTC, later than the findings above."


def page(title: str):
    """Every page's opening: its title, then who acts on which target (or stop with why not)."""
    st.title(title)
    return require_target()


def value_or_stop(loaded: Loaded, what_failed: str, said_as_of: bool = True):
    """The loaded figures with the time they were read (unless the page says it once for
    several), or the problem and the page stops."""
    if not loaded.ok:
        show_problem(what_failed, loaded)
        st.stop()
    if said_as_of:
        as_of(loaded)
    return loaded.value


def show_problem(what: str, loaded: Loaded) -> None:
    st.error(f"**{md(what)}:** {md(loaded.problem.message)}", icon=":material/error:")
    if loaded.problem.hint:
        st.caption(loaded.problem.hint)


# check page ids (operations.checks.Finding.page) -> page files registered in app.py
PAGE_FILES = {"slow_queries": "views/slow_queries.py", "indexes": "views/indexes.py",
              "bloat": "views/bloat.py", "buffer_cache": "views/buffer_cache.py",
              "activity": "views/activity.py", "matviews": "views/matviews.py",
              "replication": "views/replication.py"}


BANNER_ITEMS = 50  # objects and fix lines a banner shows; the rest are on its page


def finding_banner(finding) -> None:
    """A green/amber/red banner with the count, a link to the page and the fix."""
    box = {"red": st.error, "amber": st.warning, "green": st.success, "grey": st.info}[
        finding.severity]
    icon = {"red": ":material/error:", "amber": ":material/warning:",
            "green": ":material/check_circle:", "grey": ":material/help:"}[finding.severity]
    box(f"**{md(finding.title)}**: {md(finding.summary)}", icon=icon)
    page = PAGE_FILES.get(finding.page)
    if finding.severity in ("red", "amber", "grey") and (finding.objects or finding.fix):
        with st.expander(f"Objects and fix for “{md(finding.title)}”"):
            if finding.objects:
                more = len(finding.objects) - BANNER_ITEMS
                st.markdown(", ".join(code(o) for o in finding.objects[:BANNER_ITEMS])
                         + (f" and {more:,} more" if more > 0 else ""))
            if finding.fix:
                lines = finding.fix.splitlines()
                st.code("\n".join(lines[:BANNER_ITEMS]), language="sql")
                if len(lines) > BANNER_ITEMS:  # thousands of lines would slow the browser
                    st.download_button(f"Download all {len(lines):,} lines of the fix",
                                       finding.fix + "\n", file_name=f"{finding.check}.sql",
                                       mime="application/sql", icon=":material/download:",
                                       key=f"fix-{finding.check}")
            if page:
                st.page_link(page, label=f"Details on the {finding.page.replace('_', ' ')} page",
                             icon=":material/arrow_forward:")


def require_target():
    """Who acts on which target with which settings (an Actor), or stop the page with what to
    configure or why this person has no role there."""

    try:
        target = context.current_target()
        if target is None:
            st.info("Configure a database to watch: set DATABASE_URL and REDIS_URL, or add a "
                    "target to .streamlit/secrets.toml. See the README, section “Use it on your "
                    "own database”.")
            st.stop()
        return context.actor(target)
    except ConfigError as exc:
        st.error(f"Configuration problem: {md(exc)}")
    except (AccessRefused, context.NotSignedIn) as exc:
        st.error(md(exc) if str(exc) else "Sign in first.")
    st.stop()


def dba_note(who) -> None:
    """Said above the DBA actions a viewer sees, all of them disabled."""
    if not who.is_dba:
        st.caption(f"You are a **{who.role}** on {md(who.target.name)}: DBA actions are shown "
                   "disabled; a DBA runs them.")


def disabled_for(who, label: str, what: str) -> None:
    """A DBA action's button as a viewer sees it: disabled, saying why."""
    st.button(label, disabled=True, help=who.denial(what), key=f"viewer-{label}")


def own_objects_toggle() -> bool:
    """DB Pulse's own tables and indexes (schema dbpulse) are hidden unless asked for."""
    return st.toggle("Show DB Pulse's own objects", value=False, key="show_own_objects",
                     help="DB Pulse keeps its audit log, ledger and snapshots in the schema "
                          "dbpulse; they are left out of findings and tables by default.")


SLOW_SHARE_HELP = ("The plan's KPI: the share of calls slower than the threshold. "
                   "pg_stat_statements keeps no time per call, only calls, mean, min and max per "
                   "statement: it is exact where a statement's max is below the threshold (none "
                   "slow) or its min above it (all slow), and bounds otherwise. Red only when "
                   "even the lower bound misses the target, amber when only the upper one does.")


def top_statements_chart(top, order_by: str, title: str) -> None:
    """The first 15 statements as horizontal bars of the ranking column, labelled with its
    header and unit. Each statement's label sits above its bar, across the chart's width, so
    that on a phone the labels do not squeeze the bars into a sliver."""
    column = statements.ORDER_BY[order_by]
    shown = top.head(15)
    # 40 characters (and a query id's end for twins) fit above a phone's bars at this size
    chart = shown.assign(label=statements.chart_labels(shown["query"], shown["queryid"], 40))
    row_px = 46
    figure = px.bar(chart, x=column, y="label", orientation="h", title=title,
                    labels={"label": "", column: statements.TOP_COLUMNS[column].header})
    figure.update_traces(width=0.45)
    figure.update_yaxes(autorange="reversed", showticklabels=False, title=None)
    for label in chart["label"]:
        figure.add_annotation(x=0, xref="paper", y=label, text=html.escape(label, quote=False),
                              showarrow=False, xanchor="left", yanchor="bottom",
                              yshift=row_px * 0.45 / 2, font={"size": 10})
    figure.update_layout(height=90 + row_px * len(chart), margin={"l": 8, "r": 8, "t": 50})
    st.plotly_chart(figure, width="stretch")
