"""The optimization plan as data (plan/plan.toml, or the setting plan_file): its hot queries
(name, how to recognise them in pg_stat_statements, latency target, whether the weekly review
scores them) and the cache's key families. The generic code reads the plan; it never names an
application."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from foundation.config import ConfigError, Settings, plan_path, read_plan

# EXPLAIN (ANALYZE) of a hot query, DB Pulse's own or anyone's, is not the application's call
_EXPLAIN = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(?:EXPLAIN|PREPARE)\b", re.I | re.S)


@dataclass(frozen=True)
class HotQuery:
    name: str
    pattern: re.Pattern
    target_ms: float | None = None
    review: bool = False        # the weekly review scores its mean against target_ms
    probe: str | None = None    # the query with representative parameters, for latency probes
    probe_params: tuple = ()


@dataclass(frozen=True)
class Plan:
    name: str
    hot_queries: tuple[HotQuery, ...] = ()
    redis_key_families: tuple[str, ...] = ()

    def label(self, text) -> str | None:
        """The hot query a statement text is, or None (never for an EXPLAIN of one).

        >>> p = Plan("p", (HotQuery("Q1", re.compile(r"FROM t WHERE a = \\$1")),))
        >>> p.label("SELECT * FROM t WHERE a = $1"), p.label("EXPLAIN SELECT * FROM t WHERE a = $1")
        ('Q1', None)
        """
        if not isinstance(text, str) or _EXPLAIN.match(text):
            return None
        return next((q.name for q in self.hot_queries if q.pattern.search(text)), None)

    @property
    def names(self) -> list[str]:
        return [q.name for q in self.hot_queries]

    @property
    def probes(self) -> tuple[HotQuery, ...]:
        return tuple(q for q in self.hot_queries if q.probe)


def configured_path(settings: Settings | None = None) -> Path:
    """The setting plan_file (without settings: its environment variable), else the default."""
    return plan_path(settings.plan_file if settings is not None
                     else os.environ.get("DBPULSE_PLAN_FILE", ""))


def load(path: Path) -> Plan:
    """The plan in a file; ConfigError naming the file and the line for what is wrong."""
    data = read_plan(Path(path))
    queries = []
    for i, entry in enumerate(data.get("hot_queries", []), start=1):
        where = f"{Path(path).name}, hot query {i}"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("match"):
            raise ConfigError(f"{where}: every [[hot_queries]] needs a name and a match")
        try:
            pattern = re.compile(entry["match"])
        except re.error as exc:
            raise ConfigError(f"{where} ({entry['name']}): match is no regular expression: "
                              f"{exc}") from exc
        target = entry.get("target_ms")
        if target is not None and not isinstance(target, (int, float)):
            raise ConfigError(f"{where} ({entry['name']}): target_ms must be a number")
        probe, params = entry.get("probe"), entry.get("probe_params", [])
        if probe is not None and (not isinstance(probe, str) or not probe.strip()):
            raise ConfigError(f"{where} ({entry['name']}): probe must be the query's text")
        if not isinstance(params, list):
            raise ConfigError(f"{where} ({entry['name']}): probe_params must be a list")
        if probe and probe.count("%s") != len(params):
            raise ConfigError(f"{where} ({entry['name']}): the probe has {probe.count('%s')} "
                              f"%s placeholders and {len(params)} probe_params")
        queries.append(HotQuery(str(entry["name"]), pattern,
                                None if target is None else float(target),
                                bool(entry.get("review", False)), probe or None,
                                tuple(tuple(p) if isinstance(p, list) else p for p in params)))
    families = data.get("redis_key_families", [])
    if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
        raise ConfigError(f"{Path(path).name}: redis_key_families must be a list of patterns")
    return Plan(str(data.get("name", Path(path).stem)), tuple(queries), tuple(families))


@lru_cache(maxsize=8)
def _cached(path: str, modified: float) -> Plan:
    return load(Path(path))


def current(settings: Settings | None = None) -> Plan:
    """The configured plan, read again when the file changes."""
    path = configured_path(settings)
    try:
        modified = path.stat().st_mtime
    except OSError:
        modified = 0.0
    return _cached(str(path), modified)


def key_families(settings: Settings) -> tuple[str, ...]:
    """The cache's key families: the setting when given, else the plan's."""
    return settings.redis_key_families or current(settings).redis_key_families
