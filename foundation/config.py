"""Targets (which PostgreSQL and Redis to watch) and settings, from the environment or secrets.

Sources, in order:
- environment: DATABASE_URL, REDIS_URL, DATABASE_ADMIN_URL, DATABASE_PLAN_URL, DATABASE_PROBE_URL,
  PGBOUNCER_URL, DATABASE_REPLICA_URLS,
  HISTORY_DATABASE_URL (one target, named by DBPULSE_TARGET_NAME, else by its database);
- `.streamlit/secrets.toml`: top-level keys of the same names (a target named "default") and any
  number of named targets under [targets.NAME] with database_url, database_admin_url,
  database_plan_url, database_probe_url, pgbouncer_url, redis_url, history_database_url,
  replica_urls.

The history (snapshots) lives in the watched database's dbpulse schema unless a target names a
separate history database.

Settings (role, timeouts, thresholds) come from DBPULSE_* environment variables or a [settings]
table in the secrets file; the environment wins.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

from psycopg import conninfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"


class ConfigError(ValueError):
    """The configuration cannot be used as it is; the message says what to change."""


@dataclass(frozen=True)
class Target:
    name: str
    database_url: str
    admin_url: str
    redis_urls: tuple[str, ...] = ()
    # True when the admin URL is its own setting rather than the fallback to database_url
    has_separate_admin_url: bool = False
    history_url: str = ""               # empty: snapshots live in the watched database
    # the login that plans and runs statement text DB Pulse did not write (foundation/plan_login.py);
    # empty: plans are refused with the setup that would allow them
    plan_url: str = ""
    # the read-only login the agent's latency probes run the plan's hot queries on (reads/probes.py)
    probe_url: str = ""
    # PgBouncer's console (database pgbouncer) as one of its stats_users; empty: no pooler
    pooler_url: str = ""
    # its read replicas (streaming standbys), on the monitoring login: their index scans count
    # with this server's, so an index used only there is not called unused
    replica_urls: tuple[str, ...] = ()

    @property
    def history_write_url(self) -> str:
        return self.history_url or self.admin_url

    @property
    def history_read_url(self) -> str:
        return self.history_url or self.database_url

    @property
    def history_source(self) -> str:
        """What the snapshots of this target are filed under: its database name, known from the
        URL alone, so history stays readable while the database itself is down."""
        return self.database_name

    @property
    def database_name(self) -> str:
        """The database its URL names (libpq's default when none: the user's name)."""
        try:
            parts = conninfo.conninfo_to_dict(self.database_url)
        except Exception:  # a malformed URL is reported when connecting
            return "?"
        return parts.get("dbname") or parts.get("user") or "postgres"

    @property
    def redis_url(self) -> str | None:
        return self.redis_urls[0] if self.redis_urls else None


@dataclass(frozen=True)
class Settings:
    # the role of the local operator (single-user local mode) and of the CLI: "viewer" unless
    # they opt in to "dba"; signed-in people get theirs from [access] (foundation/access.py)
    role: str = "viewer"
    statement_timeout_ms: int = 5_000    # monitoring reads
    lock_timeout_ms: int = 1_000
    connect_timeout_s: int = 3
    admin_statement_timeout_ms: int = 0  # DBA actions: 0 = no limit (index builds take long)
    admin_lock_timeout_ms: int = 5_000
    cache_ttl_s: int = 30                # how long the dashboard reuses a result
    buffer_cache_hit_threshold: float = 0.99
    redis_hit_rate_target: float = 0.70
    # slow queries: "slow" = mean of at least this many ms over at least this many calls
    slow_query_mean_ms: float = 20.0
    slow_query_min_calls: int = 100
    # the plan's KPI: share of calls in statements whose mean exceeds kpi_slow_ms, target below
    kpi_slow_ms: float = 1000.0
    kpi_slow_share_target: float = 0.05
    # the plan's "connection pool < 70 % utilization at peak": the application's connections
    # over those available (max_connections less the reserved ones), at the agent's busiest sample
    kpi_connection_peak_share: float = 0.70
    unused_index_min_bytes: int = 65_536   # smaller unused indexes are not worth a finding
    # zero scans prove nothing about an index (or statistics) younger than this
    unused_index_min_age_days: float = 7.0
    bloat_min_ratio: float = 0.30
    bloat_min_bytes: int = 1_048_576
    long_query_s: float = 60.0
    idle_in_transaction_s: float = 300.0
    matview_max_age_minutes: float = 15.0  # the plan: views at most 10-15 minutes old
    # a stale view is red (and alerts) when this many refreshes in a row failed, or when it is
    # older than twice the maximum age: the plan's "MV refresh fails → monitoring"
    matview_failures_red: int = 3
    # the plan's "MV refresh fails → auto-retry": the agent (--refresh-stale) tries a view whose
    # refresh failed again after 1, 2, 4 … minutes, at most this many; with
    # agent_refreshes_cron_views also views a pg_cron job refreshes (it failed or fell behind)
    refresh_retry_max_minutes: float = 60.0
    agent_refreshes_cron_views: bool = False
    # where the agent holds its per-target locks, one session per server (agent/locks.py)
    agent_lock_database: str = "postgres"
    # an agent's /metrics address (http://host:port): the Fleet page and `check --all-targets`
    # show what it measured within agent_max_age_s instead of reading each target again
    agent_url: str = ""
    agent_max_age_s: float = 300.0
    # Redis key families: glob patterns (the plan's families); other keys group by the text up
    # to their first ":"
    redis_key_families: tuple = ()  # empty: the plan's (foundation/plan.py)
    redis_sample_keys: int = 10_000        # SCAN at most this many keys per look
    redis_sample_seconds: float = 1.0      # ... and for at most this long
    migrations_dir: str = ""               # empty: the prepared ones in sql/migrations
    plan_file: str = ""                    # empty: plan/plan.toml (foundation/plan.py)
    history_retention_days: int = 90       # snapshots older than this are pruned
    connections_amber_share: float = 0.80
    connections_red_share: float = 0.95
    # replication: a standby further behind is amber; an inactive slot holding back more is red
    replication_lag_max_s: float = 60.0
    replication_lag_max_bytes: int = 64 * 1048576
    slot_retained_max_bytes: int = 1024 * 1048576
    # latency probes (reads/probes.py): each of the plan's probes once per interval on the
    # probe login (0: off), stopped at the timeout (then counted as a failure). Every 5 minutes:
    # 288 runs a day per query for the percentiles, and the agent within its overhead budget
    # (bench/agent_cost.py: a round of the demo's three costs about as much as a cycle's checks)
    probe_interval_s: float = 300.0
    probe_timeout_ms: int = 2_000


ROLES = ("viewer", "dba")


def read_secrets(path: Path | None = None) -> Mapping:
    """The secrets file's TOML, parsed once per change of the file and shared (read it, do not
    change it): a page run asks for it three times per target (200 targets: 600 parses of a
    200-target file, most of the Fleet page's time)."""
    path = Path(path or os.environ.get("DBPULSE_SECRETS_FILE") or DEFAULT_SECRETS_PATH)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path.name} cannot be read: {exc.strerror}") from exc
    return _secrets_toml(path, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _secrets_toml(path: Path, version: tuple) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name} is not UTF-8 text (byte {exc.start} cannot be read): "
                          "save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path.name} cannot be read: {exc.strerror}") from exc


def _url_list(value, key: str) -> tuple[str, ...]:
    """One URL, several separated by commas, or a list of them."""
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v)
    raise ConfigError(f"{key} must be a string or a list of strings")


def _target(name: str, values: Mapping) -> Target:
    lowered = {k.lower(): v for k, v in values.items()}
    dsn = lowered.get("database_url")
    if not dsn or not isinstance(dsn, str):
        raise ConfigError(f"target {name!r} has no database_url")
    admin = lowered.get("database_admin_url")
    return Target(name=name, database_url=dsn, admin_url=admin or dsn,
                  redis_urls=_url_list(lowered.get("redis_url") or lowered.get("redis_urls"),
                                       "redis_url"),
                  has_separate_admin_url=bool(admin),
                  history_url=lowered.get("history_database_url") or "",
                  plan_url=lowered.get("database_plan_url") or "",
                  probe_url=lowered.get("database_probe_url") or "",
                  pooler_url=lowered.get("pgbouncer_url") or "",
                  replica_urls=_url_list(lowered.get("replica_urls"), "replica_urls"))


def load_targets(environ: Mapping[str, str] | None = None,
                 secrets: Mapping | None = None) -> list[Target]:
    environ = os.environ if environ is None else environ
    secrets = read_secrets() if secrets is None else secrets
    targets: list[Target] = []
    if environ.get("DATABASE_URL"):
        name = environ.get("DBPULSE_TARGET_NAME") or Target(
            "", environ["DATABASE_URL"], environ["DATABASE_URL"]).history_source
        targets.append(_target(name, {"database_url": environ["DATABASE_URL"],
                                       "database_admin_url": environ.get("DATABASE_ADMIN_URL"),
                                       "redis_url": environ.get("REDIS_URL"),
                                       "database_plan_url": environ.get("DATABASE_PLAN_URL"),
                                       "database_probe_url": environ.get("DATABASE_PROBE_URL"),
                                       "pgbouncer_url": environ.get("PGBOUNCER_URL"),
                                       "replica_urls": environ.get("DATABASE_REPLICA_URLS"),
                                       "history_database_url":
                                           environ.get("HISTORY_DATABASE_URL")}))
    if secrets.get("DATABASE_URL") or secrets.get("database_url"):
        targets.append(_target("default", secrets))
    named = secrets.get("targets", {})
    if not isinstance(named, Mapping):
        raise ConfigError("[targets] in secrets.toml must be a table of named targets")
    for name, values in named.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"[targets.{name}] must be a table")
        targets.append(_target(name, values))
    names = [t.name for t in targets]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"target names must be unique: {', '.join(sorted(duplicates))}")
    return targets


def find_target(name: str | None, targets: list[Target]) -> Target:
    if not targets:
        raise ConfigError("no database configured: set DATABASE_URL (and REDIS_URL), or add a "
                          "target to .streamlit/secrets.toml (see secrets.toml.example)")
    if name is None:
        return targets[0]
    for target in targets:
        if target.name == name:
            return target
    raise ConfigError(f"no target named {name!r}; configured: "
                      f"{', '.join(t.name for t in targets)}")


DEFAULT_PLAN = PROJECT_ROOT / "plan" / "plan.toml"
# The plan's KPI targets: the plan file's [kpis] sets them, a setting of the same name (in
# [settings] or DBPULSE_<NAME>) overrides the plan
PLAN_KPIS = ("kpi_slow_ms", "kpi_slow_share_target", "redis_hit_rate_target",
             "buffer_cache_hit_threshold", "kpi_connection_peak_share",
             "matview_max_age_minutes")


def plan_path(plan_file: str) -> Path:
    """The plan file the setting plan_file names, else the one the demo ships."""
    return Path(plan_file) if plan_file else DEFAULT_PLAN


@functools.lru_cache(maxsize=8)
def _plan_toml(path: Path, version: tuple) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no plan file at {path}: set plan_file, or restore plan/plan.toml"
                          ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the plan file {path.name} cannot be read: {exc}") from exc


def read_plan(path: Path) -> dict:
    """A plan file's TOML, parsed once per change of the file (settings are loaded on every
    page run); ConfigError naming the file when it is missing or malformed."""
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = ()
    return _plan_toml(Path(path), version)


def plan_kpis(path: Path) -> dict:
    """The [kpis] table of a plan file (foundation/plan.py reads the rest of it)."""
    kpis = read_plan(path).get("kpis", {})
    unknown = sorted(set(kpis) - set(PLAN_KPIS)) if isinstance(kpis, Mapping) else ["kpis"]
    if unknown:
        raise ConfigError(f"the plan file {path.name}: [kpis] holds only "
                          f"{', '.join(PLAN_KPIS)}, not {', '.join(unknown)}")
    for name, value in kpis.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"the plan file {path.name}: [kpis] {name} must be a number, "
                              f"got {value!r}")
    return dict(kpis)


def load_settings(environ: Mapping[str, str] | None = None,
                  secrets: Mapping | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    secrets = read_secrets() if secrets is None else secrets
    values: dict = {}
    section = secrets.get("settings", {})
    if "role" in secrets:
        values["role"] = secrets["role"]
    for f in fields(Settings):
        if f.name in section:
            values[f.name] = section[f.name]
        env_value = environ.get(f"DBPULSE_{f.name.upper()}")
        if env_value is not None:
            values[f.name] = env_value
    for name, value in plan_kpis(plan_path(str(values.get("plan_file", "")))).items():
        values.setdefault(name, value)
    converted = {}
    for f in fields(Settings):
        if f.name not in values:
            continue
        raw = values[f.name]
        kind = type(getattr(Settings(), f.name))
        try:
            if kind is tuple and isinstance(raw, str):
                raw = [part.strip() for part in raw.split(",") if part.strip()]
            converted[f.name] = kind(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {f.name} must be a {kind.__name__}, got {raw!r}") from exc
    settings = Settings(**converted)
    if settings.role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {settings.role!r}")
    return settings
