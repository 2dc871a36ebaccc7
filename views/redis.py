"""Redis cache: hit rate since start and over recent intervals, throughput, memory, clients,
keyspace, key families with their TTLs, top commands and the slow log."""

from datetime import datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from foundation import plan
from foundation.format import amount, count, human_bytes, human_duration, percent, state_for_ratio
from foundation.markup import code, md
from reads import redis_cache
from reports import charts
from ui import loaders, redis_sampler, tables
from ui.widgets import judged_metric, page, value_or_stop

who = page("Redis cache")
target, settings = who.target, who.settings
if not target.redis_urls:
    st.info("No Redis configured for this target: set REDIS_URL (or redis_url in "
            "secrets.toml; a list for several instances).")
    st.stop()

urls = {redis_cache.redact_url(u): u for u in target.redis_urls}
shown = st.selectbox("Instance", list(urls)) if len(urls) > 1 else next(iter(urls))
url = urls[shown]

sampler = redis_sampler.sampler(url)
sampler.sample_now()
with_ttl = st.toggle("Read key TTLs too", value=False, key="redis_sample_ttls",
                     help="Each TTL is a keyspace lookup that Redis counts as a hit or miss. "
                          "DB Pulse records its own and takes them out of every hit rate it "
                          "shows; another tool reading INFO would see them.")
loaded = value_or_stop(loaders.redis_page_data(url, settings, with_ttl),
                       "Redis is not available")
families = loaded["families"]
# the same read (and cache period) as the Overview's and the plan's figures: one value
info = value_or_stop(loaders.redis_overview(url), "Redis is not available", said_as_of=False)
samples = sampler.samples()
target_text = f"> {percent(settings.redis_hit_rate_target, 0)}"

st.caption(f"{md(info.server)} {md(info.version)}, up {human_duration(info.uptime_s)}. Cumulative "
           "figures count since the server started or its statistics were reset; interval "
           f"figures come from the samples DB Pulse took while it ran ({len(samples)} so far). "
           "DB Pulse's own lookups and commands from this dashboard are taken out of every "
           "figure.")

# the judged cards two a row, the plain figures four: at 1280 pixels four cards a row cut
# their names
cols = [*st.columns(2), *st.columns(4)]
judged_metric(cols[0], redis_cache.HIT_RATE_LABEL, percent(info.hit_rate),
              state_for_ratio(info.hit_rate, settings.redis_hit_rate_target, 0.10), target_text,
              help=f"{redis_cache.HIT_RATE_MEANING} Since the Redis server started or its "
                   "statistics were reset.")
recent = redis_cache.interval_hit_rate(samples, 300)
judged_metric(cols[1], "Keyspace hit rate, last 5 min", percent(recent),
              state_for_ratio(recent, settings.redis_hit_rate_target, 0.10), target_text,
              help="From counter differences between DB Pulse's samples; an interval with a "
                   "restart or CONFIG RESETSTAT is left out, never counted as negative.")
spans = redis_cache.intervals(samples)
last = next((i for i in reversed(spans) if i.ops_per_sec is not None), None)
cols[2].metric("Operations per second", "n/a" if last is None else amount(last.ops_per_sec),
               help="Over the last interval between DB Pulse's samples, without DB Pulse's own "
                    "commands (Redis's instantaneous figure would count them).")
memory_help = ("maxmemory not set: Redis grows until the OS stops it" if not info.maxmemory
               else f"of maxmemory {human_bytes(info.maxmemory)}")
cols[3].metric("Memory used", human_bytes(info.used_memory),
               help=f"{memory_help}; eviction policy {info.maxmemory_policy or 'n/a'}")
cols[4].metric("Fragmentation ratio", amount(info.fragmentation_ratio, digits=2),
               help="used_memory_rss / used_memory; well above 1.5 wastes memory")
cols[5].metric("Evicted / expired keys",
               f"{count(info.evicted_keys or 0)} / {count(info.expired_keys or 0)}")

cols = st.columns(4)
cols[0].metric("Clients: connected / blocked",
               f"{count(info.connected_clients)} / {count(info.blocked_clients)}")
cols[1].metric("Rejected connections", count(info.rejected_connections))

if spans:
    chart = pd.DataFrame({"time": [datetime.fromtimestamp(i.end) for i in spans],
                          "hit rate": [i.hit_rate for i in spans],
                          "operations per second": [i.ops_per_sec for i in spans],
                          "reset": [i.reset for i in spans]})
    figure = px.line(chart, x="time", y="hit rate", title="Hit rate per interval")
    figure.add_hline(y=settings.redis_hit_rate_target, line_dash="dot",
                     annotation_text="target")
    for when in chart[chart["reset"]]["time"]:
        figure.add_vline(x=when, line_dash="dash", line_color="red")
    figure.update_xaxes(range=charts.time_range(chart["time"]))
    figure.update_yaxes(range=charts.rate_range(chart["hit rate"], settings.redis_hit_rate_target))
    st.plotly_chart(figure.update_layout(yaxis_tickformat=".0%", height=320), width="stretch")
    if chart["reset"].any():
        st.caption("Red lines: a restart or statistics reset; that interval has no rate.")
else:
    st.caption("The interval chart fills in as DB Pulse samples (every "
               f"{redis_sampler.SAMPLE_EVERY_S} s while the dashboard runs).")

stored = loaders.redis_history(target, settings)
series = stored.value[stored.value["instance"] == shown] if stored.ok else None
if series is not None and len(series):
    stored_chart = px.line(series.assign(hit_rate=series["hit_rate"].astype(float)),
                           x="taken_at", y="hit_rate", markers=True,
                           title="Hit rate between stored snapshots, last 24 hours",
                           labels={"taken_at": "", "hit_rate": "hit rate"})
    stored_chart.add_hline(y=settings.redis_hit_rate_target, line_dash="dot",
                           annotation_text="target")
    stored_chart.update_xaxes(range=charts.time_range(series["taken_at"]))
    stored_chart.update_yaxes(range=charts.rate_range(series["hit_rate"],
                                                      settings.redis_hit_rate_target))
    st.plotly_chart(stored_chart.update_layout(yaxis_tickformat=".0%", height=300),
                    width="stretch")
    st.caption("From the snapshots the agent (or cron) stores: kept across dashboard restarts "
               "and the same in every dashboard.")

st.subheader("Key families")
st.caption(f"Sampled with SCAN ({count(families.sampled)} of {count(families.dbsize)} keys in this "
           f"database{', all of them' if families.complete else ''}; "
           f"{amount(families.seconds * 1000, 'ms')}). Families: "
           + ", ".join(code(p) for p in plan.key_families(settings)) + "; other keys by the "
           "text before their first `:`. Totals are estimated from the sample.")
if families.families:
    tables.show(pd.DataFrame(redis_cache.family_rows(families)), redis_cache.FAMILY_COLUMNS)
    flagged = [f for f in families.families if f.flagged]
    if flagged:
        st.warning("Families with keys that never expire: "
                   + md(", ".join(f"{f.family} ({f.without_ttl} sampled)" for f in flagged))
                   + ". The plan's policy is that every cached family expires; without a TTL a "
                     "stale value is served until someone deletes it.")
        st.code("\n".join(f"-- write {f.family} keys with SET key value EX <seconds> (or EXPIRE "
                          "after writing)" for f in flagged), language="text")
else:
    st.caption("This database holds no keys.")

st.subheader("Keyspace")
tables.show(pd.DataFrame(redis_cache.keyspace_rows(info)), redis_cache.KEYSPACE_COLUMNS,
            "No keys in any database.")

cols = st.columns(2)
with cols[0]:
    st.markdown("**Top commands**")
    tables.show(pd.DataFrame(loaded["commands"]), redis_cache.COMMAND_COLUMNS,
                "INFO commandstats is not available.")
with cols[1]:
    st.markdown("**Slow log**")
    tables.show(pd.DataFrame(loaded["slowlog"]), redis_cache.SLOWLOG_COLUMNS,
                "The slow log is empty.")
