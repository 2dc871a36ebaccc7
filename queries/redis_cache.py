"""Redis cache figures from INFO. Tolerates fields a Redis/Valkey version lacks (they stay None)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis


@dataclass
class RedisProblem(Exception):
    kind: str      # bad_url | unreachable | auth | timeout | error
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


@dataclass
class RedisOverview:
    server: str                  # "redis" or "valkey"
    version: str
    uptime_s: int | None
    keyspace_hits: int | None
    keyspace_misses: int | None
    ops_per_sec: int | None
    used_memory: int | None
    maxmemory: int | None        # 0 means no limit
    maxmemory_policy: str | None
    evicted_keys: int | None
    expired_keys: int | None
    connected_clients: int | None
    keys: int                    # over all databases

    @property
    def hit_rate(self) -> float | None:
        if self.keyspace_hits is None or self.keyspace_misses is None:
            return None
        total = self.keyspace_hits + self.keyspace_misses
        return None if total == 0 else self.keyspace_hits / total


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
    except ValueError:
        return "<malformed url>"


def describe_error(exc: Exception, url: str) -> RedisProblem:
    where = redact_url(url)
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, RedisProblem):
        return exc
    if isinstance(exc, redis.AuthenticationError) or "noauth" in lowered or "wrongpass" in lowered \
            or "invalid password" in lowered or "invalid username-password" in lowered:
        return RedisProblem("auth", f"Redis refused the credentials ({where}).",
                            "Check the password (and user) in REDIS_URL: "
                            "redis://:password@host:6379/0.")
    if isinstance(exc, redis.TimeoutError):
        return RedisProblem("timeout", f"Redis did not answer in time ({where}).",
                            "Check host and port, and whether Redis is overloaded.")
    if isinstance(exc, redis.ConnectionError):
        return RedisProblem("unreachable", f"Cannot connect to Redis ({where}): {text}",
                            "Check that Redis is running and REDIS_URL's host and port.")
    if isinstance(exc, ValueError):
        return RedisProblem("bad_url", f"The Redis URL is malformed: {text}",
                            "Use the form redis://[:password@]host:6379/0 (rediss:// for TLS).")
    return RedisProblem("error", f"Redis error ({where}): {text}")


def connect(url: str, timeout_s: float = 2.0) -> redis.Redis:
    """A client that fails within timeout_s rather than hanging the page."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s, decode_responses=True,
                                      client_name="dbpulse-monitor")
        client.ping()
        return client
    except (redis.RedisError, ValueError, OSError) as exc:
        raise describe_error(exc, url) from exc


def _int(info: dict, key: str) -> int | None:
    value = info.get(key)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def redis_overview(client: redis.Redis, url: str = "") -> RedisOverview:
    try:
        info = client.info("all")
    except redis.RedisError as exc:
        raise describe_error(exc, url) from exc
    keys = sum(v.get("keys", 0) for k, v in info.items()
               if k.startswith("db") and isinstance(v, dict))
    server = "valkey" if "valkey_version" in info else "redis"
    return RedisOverview(
        server=server,
        version=str(info.get("valkey_version") or info.get("redis_version") or "unknown"),
        uptime_s=_int(info, "uptime_in_seconds"),
        keyspace_hits=_int(info, "keyspace_hits"),
        keyspace_misses=_int(info, "keyspace_misses"),
        ops_per_sec=_int(info, "instantaneous_ops_per_sec"),
        used_memory=_int(info, "used_memory"),
        maxmemory=_int(info, "maxmemory"),
        maxmemory_policy=info.get("maxmemory_policy"),
        evicted_keys=_int(info, "evicted_keys"),
        expired_keys=_int(info, "expired_keys"),
        connected_clients=_int(info, "connected_clients"),
        keys=keys,
    )
