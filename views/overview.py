"""Overview: health first (the checks and the two hit rates against their targets), then who the
server is and what DB Pulse can see there. On a phone the first banner is at the top."""

import pandas as pd
import streamlit as st

from foundation.capabilities import CAPABILITY_COLUMNS, capability_rows
from foundation.format import count, human_bytes, human_duration, percent, state_for_ratio
from foundation.markup import md
from reads import cache, redis_cache
from ui import loaders, tables
from ui.widgets import as_of, finding_banner, judged_metric, page, show_problem

who = page("Overview")
target, settings = who.target, who.settings
st.caption(f"Target **{md(target.name)}**")

pg = loaders.postgres_overview(target.database_url, settings, target.replica_urls)
rd = loaders.redis_overview(target.redis_url) if target.redis_url else None

# --- health: the checks, then the two hit rates -----------------------------------------------
st.subheader("Health")
if not pg.ok:
    show_problem("PostgreSQL is not available", pg)
else:
    as_of(pg)
    findings = pg.value.findings
    for finding in findings:
        if finding.severity != "green":
            finding_banner(finding)
    greens = [f.title for f in findings if f.severity == "green"]
    if greens:
        st.success(f"**{len(greens)} checks green:** {md(', '.join(greens))}",
                   icon=":material/check_circle:")

cols = st.columns(2)
if pg.ok:
    hit = pg.value.cache_hit
    buffer_state = state_for_ratio(hit.database, settings.buffer_cache_hit_threshold)
    judged_metric(cols[0], "Buffer cache hit rate", percent(hit.database, 2), buffer_state,
                  f"≥ {percent(settings.buffer_cache_hit_threshold, 0)}",
                  help=f"{cache.DATABASE_RATE_MEANING} Cumulative since the statistics reset.")
if rd is not None and rd.ok:
    info = rd.value
    judged_metric(cols[1], redis_cache.HIT_RATE_LABEL, percent(info.hit_rate),
                  state_for_ratio(info.hit_rate, settings.redis_hit_rate_target,
                                  amber_margin=0.10),
                  f"> {percent(settings.redis_hit_rate_target, 0)}",
                  help=f"{redis_cache.HIT_RATE_MEANING} Since the Redis server started "
                       f"{human_duration(info.uptime_s)} ago (or its stats were reset).")
elif rd is not None:
    with cols[1]:
        show_problem("Redis is not available", rd)
else:
    cols[1].info("No Redis configured for this target: set REDIS_URL to see the cache hit "
                 "rate.")

# --- PostgreSQL details -----------------------------------------------------------------------
if pg.ok:
    st.subheader("PostgreSQL")
    identity, caps, hit = pg.value.identity, pg.value.capabilities, pg.value.cache_hit
    cols = st.columns(4)
    cols[0].metric("PostgreSQL", identity.version, help=identity.full_version)
    cols[1].metric("Uptime", human_duration(identity.uptime),
                   help=f"started {identity.started_at:%Y-%m-%d %H:%M %Z}")
    size = pg.value.size
    cols[2].metric("Database size", human_bytes(size.value) if size.ok else "unknown",
                   help=f"database {identity.database}; " + (
                       f"read at {size.loaded_at:%H:%M:%S} UTC, again after "
                       f"{loaders.SIZE_TTL_S // 60} minutes (reading it visits every file of "
                       "the database)" if size.ok else f"not read: {size.problem}"))
    # the qualifier in the label: a metric's value shows about 12 characters, and the cut
    # hid "or before"
    cols[3].metric("Statistics since" + ("" if identity.stats_reset else " (or before)"),
                   f"{identity.stats_reset or identity.started_at:%b %-d %H:%M}",
                   help=f"Cumulative figures (cache hit rate, index usage) count "
                        f"{identity.stats_window()}. DB Pulse never resets them.")
    cols = st.columns([1, 3])  # the link's label is cut short in a quarter of the width
    cols[0].metric("Blocks read from disk", count(hit.blocks_read),
                   help="Of the database's data, since the statistics reset: the misses of the "
                        "buffer cache hit rate")
    cols[1].page_link("views/buffer_cache.py", icon=":material/memory:",
                      label="Tables' and indexes' hit rates, and where the misses are")
    if buffer_state in ("amber", "red"):
        st.warning("The buffer cache hit rate is below its target: the working set does not fit "
                   "in shared_buffers, or queries scan large tables. Look at sequential scans and "
                   "consider raising shared_buffers.")

    st.markdown("##### Capabilities")
    tables.show(pd.DataFrame(capability_rows(caps)), CAPABILITY_COLUMNS)
    for issue in [i for i in caps.issues if i.severity != "info"]:
        box = st.error if issue.severity == "red" else st.warning
        box(issue.message, icon=":material/error:" if issue.severity == "red"
            else ":material/warning:")
        st.code(issue.fix, language="sql")
    optional = [i for i in caps.issues if i.severity == "info"]
    if optional:  # extras, not problems: no warning colour
        with st.expander(f"Optional extensions not installed ({len(optional)})"):
            for issue in optional:
                st.markdown(issue.message)
                st.code(issue.fix, language="sql")

# --- Redis details ----------------------------------------------------------------------------
if rd is not None and rd.ok:
    st.subheader("Redis cache")
    as_of(rd)
    info = rd.value
    cols = st.columns(3)
    cols[0].metric("Keys", count(info.keys))
    cols[1].metric("Memory used", human_bytes(info.used_memory),
                   help="maxmemory " + ("not set" if not info.maxmemory
                                        else human_bytes(info.maxmemory))
                        + f", policy {info.maxmemory_policy or 'n/a'}")
    cols[2].metric("Redis server", f"{info.server} {info.version}",
                   help=f"uptime {human_duration(info.uptime_s)}")
    st.page_link("views/redis.py", label="Hit rate over time, key families and TTLs",
                 icon=":material/arrow_forward:")
