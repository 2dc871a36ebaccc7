"""Redis cache figures from INFO, hit rates over intervals from samples, key families by
bounded SCAN sampling. Tolerates fields a Redis/Valkey version lacks (they stay None)."""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

import redis

from foundation.columns import Column
from foundation.problems import Problem
from foundation.secrets import redact_text


class RedisProblem(Problem):
    """Redis could not be used; kind: bad_url | unreachable | auth | timeout | error."""


class OwnTraffic:
    """What DB Pulse itself sent to each Redis server (by run_id) from this process, so that no
    figure it reports counts it: keyspace hits and misses its lookups caused (TTL counts as a
    lookup on Redis 6.2, 7.x and Valkey; SCAN, MEMORY USAGE, DBSIZE and INFO do not) and its
    commands by name. One lock serializes DB Pulse's own calls with the reading of the
    counters, so a reading never sees half of them."""

    def __init__(self):
        self.lock = threading.RLock()
        self._hits: Counter = Counter()
        self._misses: Counter = Counter()
        self._commands: dict[str, Counter] = {}
        self._last_processed: dict[str, int] = {}

    def record(self, server: str | None, command: str, calls: int = 1, hits: int = 0,
               misses: int = 0) -> None:
        if server is None:
            return
        with self.lock:
            self._hits[server] += hits
            self._misses[server] += misses
            self._commands.setdefault(server, Counter())[command] += calls

    def lookups(self, server: str | None) -> tuple[int, int]:
        with self.lock:
            return self._hits[server], self._misses[server]

    def commands(self, server: str | None) -> Counter:
        with self.lock:
            return Counter(self._commands.get(server, Counter()))

    def seen(self, server: str | None, commands_processed: int | None) -> None:
        """Called with every INFO read: when the server's command count went back (CONFIG
        RESETSTAT), its counters restarted from zero and so does DB Pulse's own account."""
        if server is None or commands_processed is None:
            return
        with self.lock:
            if commands_processed < self._last_processed.get(server, 0):
                self._hits[server] = self._misses[server] = 0
                self._commands[server] = Counter()
            self._last_processed[server] = commands_processed


OWN = OwnTraffic()

# What every "Redis hit rate" in DB Pulse is, said wherever it is shown and judged
HIT_RATE_LABEL = "Redis hit rate (keyspace)"
HIT_RATE_MEANING = ("Redis's keyspace hits / (hits + misses): every command that reads a key "
                    "counts (GET, MGET, HGET, EXISTS, TTL, TYPE …), not only the cache's GETs; "
                    "the lookups of every DB Pulse process are taken out.")

# The observer ledger: the keyspace hits and misses DB Pulse's lookups caused, kept in the
# watched Redis itself (one hash per run of the server) so that every DB Pulse process
# (dashboards, CLI, agent, on any host) takes out all of them, not only its own. It is read
# and written only with commands Redis does not count as lookups (HINCRBY, HSET, EXPIRE), and
# read in one MULTI with INFO, so both describe the same moment.
LEDGER_PREFIX = "dbpulse:observer:"
LEDGER_TTL_S = 30 * 86400  # kept while DB Pulse reads; gone a month after it stops


@dataclass
class Counters:
    """INFO with DB Pulse's own lookups: from the ledger, every DB Pulse process's (`shared`),
    or, where DB Pulse may not write to this Redis (a replica, a read-only ACL user), this
    process's alone."""
    info: dict
    own_hits: int
    own_misses: int
    shared: bool


def read_counters(client: redis.Redis, url: str = "") -> Counters:
    """INFO and the lookups of every DB Pulse process, at one moment."""
    with OWN.lock:
        try:
            server = client.info("server").get("run_id")
            ledger = LEDGER_PREFIX + str(server)
            try:
                pipe = client.pipeline(transaction=True)
                pipe.hincrby(ledger, "hits", 0).hincrby(ledger, "misses", 0)
                pipe.expire(ledger, LEDGER_TTL_S).info("all")
                hits, misses, _, info = pipe.execute()
                _record_transaction(server, hincrby=2, expire=1)
                shared = True
            except redis.ResponseError:  # NOPERM, READONLY: no shared ledger here
                info, shared = client.info("all"), False
        except redis.RedisError as exc:
            raise describe_error(exc, url) from exc
        OWN.record(server, "info", 2)
        OWN.seen(info.get("run_id"), _int(info, "total_commands_processed"))
        if not shared:
            own_hits, own_misses = OWN.lookups(info.get("run_id"))
            return Counters(info, own_hits, own_misses, False)
        if hits > (_int(info, "keyspace_hits") or 0) or misses > (_int(info, "keyspace_misses")
                                                                  or 0):
            # the counters went back (CONFIG RESETSTAT): so does the ledger
            client.hset(ledger, mapping={"hits": 0, "misses": 0})
            OWN.record(server, "hset")
            hits = misses = 0
        return Counters(info, int(hits), int(misses), True)


def _record_transaction(server: str | None, **commands: int) -> None:
    """A MULTI ... EXEC of DB Pulse's: every command in it, and the two around it."""
    for name, calls in {"multi": 1, "exec": 1, **commands}.items():
        OWN.record(server, name, calls)


def _without_ledger(keyspace: dict, client: redis.Redis) -> dict:
    """INFO's keyspace without the ledger, which the read just made sure exists (with its
    expiry) in the client's database."""
    db = f"db{client.connection_pool.connection_kwargs.get('db', 0)}"
    if db not in keyspace:
        return keyspace
    own = dict(keyspace[db], keys=keyspace[db].get("keys", 1) - 1,
               expires=keyspace[db].get("expires", 1) - 1)
    return {**keyspace, db: own} if own["keys"] > 0 else {
        k: v for k, v in keyspace.items() if k != db}


def _add_to_ledger(client: redis.Redis, server: str | None, hits: int, misses: int) -> None:
    try:
        pipe = client.pipeline(transaction=True)
        pipe.hincrby(LEDGER_PREFIX + str(server), "hits", hits)
        pipe.hincrby(LEDGER_PREFIX + str(server), "misses", misses)
        pipe.execute()
        _record_transaction(server, hincrby=2)
    except redis.ResponseError:
        pass  # no shared ledger here: this process's own account (OWN) is what is taken out


def _minus(value: int | None, own: int) -> int | None:
    return None if value is None else value - own


@dataclass
class RedisOverview:
    server: str                  # "redis" or "valkey"
    version: str
    uptime_s: int | None
    keyspace_hits: int | None
    keyspace_misses: int | None
    ops_per_sec: int | None      # Redis's own instantaneous figure: DB Pulse's commands included
    used_memory: int | None
    maxmemory: int | None        # 0 means no limit
    maxmemory_policy: str | None
    evicted_keys: int | None
    expired_keys: int | None
    connected_clients: int | None
    keys: int                    # over all databases
    blocked_clients: int | None = None
    rejected_connections: int | None = None
    fragmentation_ratio: float | None = None
    keyspace: dict = field(default_factory=dict)   # "db0" -> {"keys", "expires", "avg_ttl"}
    run_id: str | None = None
    # the lookups of every DB Pulse process were taken out (the ledger), not only this one's
    observer_shared: bool = True

    @property
    def hit_rate(self) -> float | None:
        if self.keyspace_hits is None or self.keyspace_misses is None:
            return None
        total = self.keyspace_hits + self.keyspace_misses
        return None if total == 0 else self.keyspace_hits / total


def redact_url(url: str) -> str:
    """The URL without its password; a malformed one masked as text, never rebuilt from parts
    (its password may sit in the "path")."""
    try:
        parts = urlsplit(url)
        if parts.scheme and parts.hostname:
            return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
    except ValueError:
        pass
    return redact_text(url)


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
        # no CLIENT SETINFO on each connection: fewer commands of DB Pulse's own in the counts
        client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s, decode_responses=True,
                                      client_name="dbpulse-monitor", lib_name=None,
                                      lib_version=None)
        client.ping()
        return client
    except (redis.RedisError, ValueError, OSError) as exc:
        raise describe_error(exc, url) from exc


def _float(info: dict, key: str) -> float | None:
    try:
        return None if info.get(key) is None else float(info[key])
    except (TypeError, ValueError):
        return None


def _int(info: dict, key: str) -> int | None:
    value = info.get(key)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def redis_overview(client: redis.Redis, url: str = "") -> RedisOverview:
    """The server's figures, DB Pulse's own lookups and commands taken out."""
    counters = read_counters(client, url)
    info, own_hits, own_misses = counters.info, counters.own_hits, counters.own_misses
    keyspace = {k: v for k, v in info.items() if k.startswith("db") and isinstance(v, dict)}
    if counters.shared:
        keyspace = _without_ledger(keyspace, client)
    keys = sum(v.get("keys", 0) for v in keyspace.values())
    server = "valkey" if "valkey_version" in info else "redis"
    return RedisOverview(
        server=server,
        version=str(info.get("valkey_version") or info.get("redis_version") or "unknown"),
        uptime_s=_int(info, "uptime_in_seconds"),
        keyspace_hits=_minus(_int(info, "keyspace_hits"), own_hits),
        keyspace_misses=_minus(_int(info, "keyspace_misses"), own_misses),
        ops_per_sec=_int(info, "instantaneous_ops_per_sec"),
        used_memory=_int(info, "used_memory"),
        maxmemory=_int(info, "maxmemory"),
        maxmemory_policy=info.get("maxmemory_policy"),
        evicted_keys=_int(info, "evicted_keys"),
        expired_keys=_int(info, "expired_keys"),
        connected_clients=_int(info, "connected_clients"),
        keys=keys,
        blocked_clients=_int(info, "blocked_clients"),
        rejected_connections=_int(info, "rejected_connections"),
        fragmentation_ratio=_float(info, "mem_fragmentation_ratio"),
        keyspace=keyspace,
        run_id=info.get("run_id"),
        observer_shared=counters.shared,
    )


# --- samples and interval rates ---------------------------------------------------------------

@dataclass
class Sample:
    at: float                    # unix time
    run_id: str | None
    uptime_s: int | None
    hits: int | None
    misses: int | None
    commands: int | None         # total_commands_processed
    evicted: int | None
    expired: int | None


def take_sample(client: redis.Redis, url: str = "") -> Sample:
    """The counters now, the lookups of every DB Pulse process (the ledger) and this process's
    commands taken out."""
    counters = read_counters(client, url)
    info, server = counters.info, counters.info.get("run_id")
    own_commands = sum(OWN.commands(server).values())
    return Sample(time.time(), server, _int(info, "uptime_in_seconds"),
                  _minus(_int(info, "keyspace_hits"), counters.own_hits),
                  _minus(_int(info, "keyspace_misses"), counters.own_misses),
                  _minus(_int(info, "total_commands_processed"), own_commands),
                  _int(info, "evicted_keys"), _int(info, "expired_keys"))


@dataclass
class Interval:
    start: float
    end: float
    hits: int
    misses: int
    commands: int
    reset: bool                  # a restart or CONFIG RESETSTAT happened inside it

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return None if self.reset or total == 0 else self.hits / total

    @property
    def ops_per_sec(self) -> float | None:
        span = self.end - self.start
        return None if self.reset or span <= 0 else self.commands / span


def counters_went_back(before: Sample, after: Sample) -> bool:
    """A restart (new run_id, uptime going down) or CONFIG RESETSTAT (counters going down)."""
    if before.run_id and after.run_id and before.run_id != after.run_id:
        return True
    if before.uptime_s is not None and after.uptime_s is not None \
            and after.uptime_s < before.uptime_s:
        return True
    return any(a is not None and b is not None and a < b for b, a in (
        (before.hits, after.hits), (before.misses, after.misses),
        (before.commands, after.commands)))


def intervals(samples: list[Sample]) -> list[Interval]:
    """Deltas between consecutive samples; across a reset the interval is marked and carries
    no rate, never a negative one."""
    result = []
    for before, after in zip(samples, samples[1:]):
        reset = counters_went_back(before, after)
        delta = (lambda a, b: 0 if reset or a is None or b is None else a - b)
        result.append(Interval(before.at, after.at, delta(after.hits, before.hits),
                               delta(after.misses, before.misses),
                               delta(after.commands, before.commands), reset))
    return result


def interval_hit_rate(samples: list[Sample], window_s: float) -> float | None:
    """Hit rate over the last window_s seconds of samples, summing the deltas of the
    intervals inside it and leaving out any interval with a reset."""
    if not samples:
        return None
    since = samples[-1].at - window_s
    usable = [i for i in intervals(samples) if i.start >= since and not i.reset]
    hits, misses = sum(i.hits for i in usable), sum(i.misses for i in usable)
    return None if hits + misses == 0 else hits / (hits + misses)


# --- commands and slow log --------------------------------------------------------------------

def top_commands(client: redis.Redis, limit: int = 15, server: str | None = None) -> list[dict]:
    """The most called commands, DB Pulse's own calls from this process taken out (Redis 6.2
    names a subcommand's calls by the command alone: "memory" for "memory|usage")."""
    with OWN.lock:
        try:
            stats = client.info("commandstats")
        except redis.RedisError:
            return []  # some managed services disable it
        own = OWN.commands(server)
        OWN.record(server, "info")

    def mine(name: str) -> int:
        return own[name] + (0 if "|" in name else
                            sum(n for c, n in own.items() if c.startswith(name + "|")))

    rows = [{"command": name.removeprefix("cmdstat_"),
             "calls": int(v.get("calls", 0)) - mine(name.removeprefix("cmdstat_")),
             "usec_per_call": float(v.get("usec_per_call", 0)),
             "rejected_calls": v.get("rejected_calls"), "failed_calls": v.get("failed_calls")}
            for name, v in stats.items() if isinstance(v, dict)]
    return sorted([r for r in rows if r["calls"] > 0], key=lambda r: r["calls"],
                  reverse=True)[:limit]


def slow_log(client: redis.Redis, limit: int = 20, server: str | None = None) -> list[dict]:
    with OWN.lock:
        try:
            entries = client.slowlog_get(limit)
        except redis.RedisError:
            return []
        OWN.record(server, "slowlog|get")
    return [{"id": e.get("id"), "at": datetime.fromtimestamp(e["start_time"], timezone.utc)
             if e.get("start_time") is not None else None, "duration_us": e.get("duration"),
             "command": (e.get("command") or b"").decode(errors="replace")
             if isinstance(e.get("command"), bytes) else e.get("command")}
            for e in entries]


# --- key families -----------------------------------------------------------------------------

TTL_BUCKETS = ("no TTL", "< 1 min", "< 5 min", "< 1 h", "longer")


def ttl_bucket(ttl: int) -> str:
    if ttl < 0:
        return "no TTL"  # -1: no expiry (-2: gone since the SCAN, counted with them)
    if ttl < 60:
        return "< 1 min"
    if ttl < 300:
        return "< 5 min"
    if ttl < 3600:
        return "< 1 h"
    return "longer"


def family_of(key: str, patterns: tuple = ()) -> str:
    for pattern in patterns:
        if fnmatch.fnmatchcase(key, pattern):
            return pattern.rstrip("*")
    head, colon, _ = key.partition(":")
    return head + colon if colon else "(no prefix)"


@dataclass
class FamilySample:
    family: str
    sampled: int
    estimated_total: int
    memory_bytes: int
    ttl: dict                     # bucket -> count
    without_ttl: int
    ttl_sampled: bool = True      # False: TTLs were not read (they cost keyspace lookups)

    @property
    def flagged(self) -> bool:
        return self.without_ttl > 0


@dataclass
class KeySampling:
    families: list[FamilySample]
    sampled: int
    dbsize: int
    complete: bool               # the SCAN went through the whole keyspace
    seconds: float


def sample_key_families(client: redis.Redis, patterns: tuple = (), max_keys: int = 10_000,
                        time_budget_s: float = 1.0, scan_count: int = 1000, *,
                        server: str | None = None, with_ttl: bool = False) -> KeySampling:
    """Group keys into families from a SCAN (never KEYS), bounded by a key count and a time
    budget; MEMORY USAGE of the sampled keys in pipelined batches. Neither counts as a keyspace
    hit or miss. TTLs only when asked (with_ttl): each TTL is a lookup Redis counts, so they are
    recorded as DB Pulse's own and taken out of every hit rate this process reports."""
    t0 = time.monotonic()
    deadline = t0 + time_budget_s
    keys: list[str] = []
    cursor, complete, mine = 0, False, set()
    if server is None and with_ttl:  # the ledger is per run of the server
        server = client.info("server").get("run_id")
        OWN.record(server, "info")
    with OWN.lock:
        while len(keys) < max_keys and time.monotonic() < deadline:
            cursor, batch = client.scan(cursor=cursor, count=scan_count)
            OWN.record(server, "scan")
            mine |= {k for k in batch if k.startswith(LEDGER_PREFIX)}  # DB Pulse's own ledgers
            keys.extend(k for k in batch if not k.startswith(LEDGER_PREFIX))
            if cursor == 0:
                complete = True
                break
        keys = keys[:max_keys]
        ttls, sizes = [], []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            if with_ttl:
                # the lookups and their entry in the ledger in one MULTI, counted as hits;
                # a key gone since the SCAN (a miss) is corrected right after
                pipe = client.pipeline(transaction=True)
                for key in chunk:
                    pipe.ttl(key)
                pipe.hincrby(LEDGER_PREFIX + str(server), "hits", len(chunk))
                try:
                    *replies, counted = pipe.execute(raise_on_error=False)
                except redis.ResponseError:
                    replies, counted = [None] * len(chunk), None
                if isinstance(counted, int):  # the ledger exists now, seen by the SCAN or not
                    mine.add(LEDGER_PREFIX + str(server))
                missing = sum(1 for t in replies if t == -2)  # gone since the SCAN: a miss
                _record_transaction(server, hincrby=1)
                if missing:
                    _add_to_ledger(client, server, -missing, missing)
                OWN.record(server, "ttl", len(chunk), hits=len(chunk) - missing, misses=missing)
                ttls.extend(replies)
            else:
                ttls.extend([None] * len(chunk))
            if time.monotonic() < deadline + time_budget_s:  # memory is a bonus, within budget
                pipe = client.pipeline(transaction=False)
                for key in chunk:
                    pipe.memory_usage(key, samples=0)
                try:
                    sizes.extend(pipe.execute(raise_on_error=False))
                except redis.RedisError:
                    sizes.extend([None] * len(chunk))
                OWN.record(server, "memory|usage", len(chunk))
            else:
                sizes.extend([None] * len(chunk))
        dbsize = client.dbsize() - len(mine)
        OWN.record(server, "dbsize")
    groups: dict[str, FamilySample] = {}
    for key, ttl, size in zip(keys, ttls, sizes):
        name = family_of(key, patterns)
        group = groups.setdefault(name, FamilySample(name, 0, 0, 0, dict.fromkeys(TTL_BUCKETS, 0),
                                                     0, with_ttl))
        group.sampled += 1
        group.memory_bytes += size if isinstance(size, int) else 0
        if ttl is not None:
            bucket = ttl_bucket(int(ttl))
            group.ttl[bucket] += 1
            group.without_ttl += bucket == "no TTL"
    for group in groups.values():
        group.estimated_total = (group.sampled if complete or not keys
                                 else round(group.sampled / len(keys) * dbsize))
    families = sorted(groups.values(), key=lambda g: g.estimated_total, reverse=True)
    return KeySampling(families, len(keys), dbsize, complete, time.monotonic() - t0)


def family_rows(sampling: KeySampling) -> list[dict]:
    """One row per key family, TTL buckets in words ("not read" when they were not sampled)."""
    return [{"family": f.family, "sampled": f.sampled, "estimated_total": f.estimated_total,
             "memory_bytes": f.memory_bytes,
             "ttls": ", ".join(f"{bucket} {n:,}" for bucket, n in f.ttl.items() if n)
             if f.ttl_sampled else "not read (switch on above)",
             "without_ttl": f.without_ttl if f.ttl_sampled else None}
            for f in sampling.families]


def keyspace_rows(info: RedisOverview) -> list[dict]:
    """Keys, keys with an expiry and without one per database, from INFO alone (no lookups)."""
    return [{"database": db, "keys": values.get("keys", 0), "expires": values.get("expires", 0),
             "without_ttl": values.get("keys", 0) - values.get("expires", 0),
             "avg_ttl_s": values["avg_ttl"] / 1000 if values.get("avg_ttl") else None}
            for db, values in info.keyspace.items()]


# How these rows are shown (ui/tables.py)
FAMILY_COLUMNS = {
    "family": Column("Key family", pinned=True), "sampled": Column("Keys sampled", "count"),
    "estimated_total": Column("Estimated keys", "count", help="Scaled up from the sample"),
    "memory_bytes": Column("Memory of the sample", "bytes"),
    "ttls": Column("Time to live", width="large"),
    "without_ttl": Column("Never expire", "count", help="Sampled keys without a TTL"),
}
KEYSPACE_COLUMNS = {
    "database": Column("Database"), "keys": Column("Keys", "count"),
    "expires": Column("With a TTL", "count"), "without_ttl": Column("Without a TTL", "count"),
    "avg_ttl_s": Column("Mean TTL", "number", unit="s", digits=0,
                        help="Redis's estimate over keys with a TTL"),
}
COMMAND_COLUMNS = {
    "command": Column("Command", pinned=True), "calls": Column("Calls", "count"),
    "usec_per_call": Column("Per call", "number", unit="µs", digits=1),
    "failed_calls": Column("Failed", "count"), "rejected_calls": Column("Rejected", "count"),
}
SLOWLOG_COLUMNS = {
    "at": Column("When", "time"), "duration_us": Column("Took", "count", unit="µs"),
    "command": Column("Command", width="large"),
}
