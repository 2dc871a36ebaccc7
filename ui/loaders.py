"""Cached loaders between queries/ and the pages. Each opens its connection, calls the core,
and returns a Loaded: the value, or the problem that stopped it (cached too, briefly, so an
unreachable server is not hammered on every rerun)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import streamlit as st

from queries import cache, capabilities, redis_cache, server
from queries.config import Settings, load_settings
from queries.connections import DatabaseProblem, monitoring_connection
from queries.redis_cache import RedisProblem

try:
    CACHE_TTL_S = load_settings().cache_ttl_s
except ValueError:  # a broken configuration is reported by the sidebar, not at import
    CACHE_TTL_S = 30


@dataclass
class Loaded:
    value: Any = None
    problem: DatabaseProblem | RedisProblem | None = None
    loaded_at: datetime | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class PostgresOverview:
    identity: server.ServerIdentity
    capabilities: capabilities.Capabilities
    cache_hit: cache.CacheHitRates


def _timed(fn) -> Loaded:
    t0 = time.monotonic()
    try:
        value = fn()
        return Loaded(value=value, loaded_at=datetime.now(timezone.utc),
                      seconds=time.monotonic() - t0)
    except (DatabaseProblem, RedisProblem) as problem:
        return Loaded(problem=problem, loaded_at=datetime.now(timezone.utc),
                      seconds=time.monotonic() - t0)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def postgres_overview(dsn: str, settings: Settings) -> Loaded:
    def load():
        with monitoring_connection(dsn, settings) as conn:
            return PostgresOverview(server.server_identity(conn), capabilities.detect(conn),
                                    cache.cache_hit_rates(conn))
    return _timed(load)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def redis_overview(url: str) -> Loaded:
    def load():
        client = redis_cache.connect(url)
        try:
            return redis_cache.redis_overview(client, url)
        finally:
            client.close()
    return _timed(load)
