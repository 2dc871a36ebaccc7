"""Overview: who the server is, what DB Pulse can see there, and the first live numbers."""

import streamlit as st

from ui import loaders
from ui.format import human_bytes, human_duration, percent, state_for_ratio
from ui.widgets import as_of, finding_banner, judged_metric, require_target, show_problem

st.title("Overview")
who = require_target()
target, settings = who.target, who.settings

st.caption(f"Target **{target.name}**")


# --- PostgreSQL -------------------------------------------------------------------------------
st.subheader("PostgreSQL")
pg = loaders.postgres_overview(target.database_url, settings)
if not pg.ok:
    show_problem("PostgreSQL is not available", pg)
else:
    as_of(pg)
    identity, caps, hit = pg.value.identity, pg.value.capabilities, pg.value.cache_hit
    cols = st.columns(4)
    cols[0].metric("PostgreSQL", identity.version, help=identity.full_version)
    cols[1].metric("Uptime", human_duration(identity.uptime),
                   help=f"started {identity.started_at:%Y-%m-%d %H:%M %Z}")
    cols[2].metric("Database size", human_bytes(identity.database_size_bytes),
                   help=f"database {identity.database}")
    cols[3].metric("Statistics since",
                   f"{identity.stats_reset or identity.started_at:%b %d %H:%M}"
                   + ("" if identity.stats_reset else " or before"),
                   help=f"Cumulative figures (cache hit rate, index usage) count "
                        f"{identity.stats_window()}. DB Pulse never resets them.")

    state = state_for_ratio(hit.database, settings.buffer_cache_hit_threshold)
    cols = st.columns(4)
    judged_metric(cols[0], "Buffer cache hit rate", percent(hit.database, 2), state,
                  f"≥ {percent(settings.buffer_cache_hit_threshold, 0)}",
                  help="Share of block reads served from shared buffers, cumulative since the "
                       "statistics reset.")
    cols[1].metric("Tables hit rate", percent(hit.tables, 2))
    cols[2].metric("Indexes hit rate", percent(hit.indexes, 2))
    cols[3].metric("Blocks read from disk", f"{hit.blocks_read:,}")
    if state in ("amber", "red"):
        st.warning("The buffer cache hit rate is below its target: the working set does not fit "
                   "in shared_buffers, or queries scan large tables. Look at sequential scans and "
                   "consider raising shared_buffers.")

    st.markdown("##### Health checks")
    findings = pg.value.findings
    for finding in findings:
        if finding.severity != "green":
            finding_banner(finding)
    greens = [f.title for f in findings if f.severity == "green"]
    if greens:
        st.success(f"**{len(greens)} checks green:** {', '.join(greens)}",
                   icon=":material/check_circle:")

    st.markdown("##### Capabilities")
    rows = []
    for ext in caps.extensions.values():
        status = (f"installed {ext.installed_version} in schema {ext.schema}" if ext.installed
                  else "available, not installed" if ext.available else "not available on server")
        rows.append({"capability": ext.name, "ok": ext.installed, "status": status})
    rows.append({"capability": "pg_read_all_stats", "ok": caps.can_read_all_stats,
                 "status": f"role {caps.current_user} " + ("can" if caps.can_read_all_stats
                                                            else "cannot") + " read all statistics"})
    st.dataframe(rows, hide_index=True, width="stretch")
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

# --- Redis ------------------------------------------------------------------------------------
st.subheader("Redis cache")
if not target.redis_url:
    st.info("No Redis configured for this target: set REDIS_URL to see the cache hit rate.")
else:
    rd = loaders.redis_overview(target.redis_url)
    if not rd.ok:
        show_problem("Redis is not available", rd)
    else:
        info = rd.value
        state = state_for_ratio(info.hit_rate, settings.redis_hit_rate_target, amber_margin=0.10)
        cols = st.columns(4)
        judged_metric(cols[0], "Redis hit rate", percent(info.hit_rate), state,
                      f"> {percent(settings.redis_hit_rate_target, 0)}",
                      help=f"keyspace hits / (hits + misses) since the Redis server started "
                           f"{human_duration(info.uptime_s)} ago (or its stats were reset).")
        cols[1].metric("Keys", f"{info.keys:,}")
        cols[2].metric("Memory used", human_bytes(info.used_memory),
                       help="maxmemory " + ("not set" if not info.maxmemory
                                            else human_bytes(info.maxmemory))
                            + f", policy {info.maxmemory_policy or 'n/a'}")
        cols[3].metric("Redis server", f"{info.server} {info.version}",
                       help=f"uptime {human_duration(info.uptime_s)}")
        st.page_link("views/redis.py", label="Hit rate over time, key families and TTLs",
                     icon=":material/arrow_forward:")
