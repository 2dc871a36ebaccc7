"""What this server and role can do: extensions, their versions and schemas, privileges.

Each missing piece becomes a CapabilityIssue with why it matters and how to fix it, so the
dashboard can say it instead of failing later.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from foundation.columns import Column
from foundation.identifiers import quote_ident

OPTIONAL_EXTENSIONS = ("pg_stat_statements", "pgstattuple", "hypopg", "pg_cron")


@dataclass
class Extension:
    name: str
    available: bool              # installed, or listed in pg_available_extensions
    installed_version: str | None
    schema: str | None           # where it lives (Supabase puts most in "extensions")
    usable: bool = True          # this role may use that schema (USAGE)

    @property
    def installed(self) -> bool:
        return self.installed_version is not None

    def grant(self, role: str) -> str:
        """
        >>> Extension("pg_stat_statements", True, "1.10", "extensions").grant("dbpulse_monitor")
        'GRANT USAGE ON SCHEMA extensions TO dbpulse_monitor;'
        """
        return f"GRANT USAGE ON SCHEMA {quote_ident(self.schema)} TO {quote_ident(role)};"


@dataclass
class CapabilityIssue:
    name: str
    severity: str   # "red" breaks a page, "amber" limits a feature, "info" an optional extra
    message: str
    fix: str


@dataclass
class Capabilities:
    server_version_num: int
    current_user: str
    is_superuser: bool
    can_read_all_stats: bool
    extensions: dict[str, Extension]
    # None when pg_stat_statements is not installed in this database, so it cannot be probed
    pg_stat_statements_loaded: bool | None
    issues: list[CapabilityIssue] = field(default_factory=list)

    def extension(self, name: str) -> Extension:
        return self.extensions[name]

    @property
    def has_pg_stat_statements(self) -> bool:
        return bool(self.extensions["pg_stat_statements"].installed
                    and self.pg_stat_statements_loaded)


def _extensions(conn: psycopg.Connection) -> dict[str, Extension]:
    rows = conn.execute(
        """
        SELECT wanted.name,
               e.extversion       AS installed_version,
               n.nspname          AS schema_name,
               n.oid IS NULL OR has_schema_privilege(n.oid, 'USAGE') AS usable
        FROM unnest(%s::text[]) AS wanted(name)
        LEFT JOIN pg_extension e ON e.extname = wanted.name
        LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
        """, (list(OPTIONAL_EXTENSIONS),)).fetchall()
    shipped = (_shipped(conn) if any(version is None for _, version, _, _ in rows)
               else frozenset())
    return {name: Extension(name, version is not None or name in shipped, version, schema,
                            bool(usable))
            for name, version, schema, usable in rows}


# What the server ships changes only when packages are installed on it: pg_available_extensions
# reads and parses every control file (about 1 ms, on every page load and agent cycle), so
# its answer is kept per server address for a while. Installed versions are always read anew.
SHIPPED_TTL_S = 600.0
_shipped_by_server: dict[tuple[str, int], tuple[float, frozenset[str]]] = {}


def _shipped(conn: psycopg.Connection) -> frozenset[str]:
    """Which of OPTIONAL_EXTENSIONS the server ships (listed in pg_available_extensions)."""
    key = (conn.info.host, conn.info.port)
    read_at, names = _shipped_by_server.get(key, (-SHIPPED_TTL_S, frozenset()))
    if time.monotonic() - read_at < SHIPPED_TTL_S:
        return names
    names = frozenset(name for name, in conn.execute(
        "SELECT name FROM pg_available_extensions() WHERE name = ANY(%s)",
        (list(OPTIONAL_EXTENSIONS),)))
    _shipped_by_server[key] = (time.monotonic(), names)
    return names


def _statements_loaded(conn: psycopg.Connection, ext: Extension) -> bool | None:
    """pg_stat_statements can be installed but not preloaded; reading it is the reliable probe
    (shared_preload_libraries itself is hidden from roles without pg_read_all_settings). Read
    without the statement texts: the texts live in a file the plain view reads whole."""
    if not ext.installed or not ext.usable:
        return None
    # from 1.9 its info view answers the same (it fails alike without the preload) from one
    # shared counter; the entries function builds every entry of the server first, even for
    # LIMIT 1 (5 ms with 5,000 entries, on every page load and agent cycle)
    source = ("pg_stat_statements_info" if version_tuple(ext.installed_version) >= (1, 9)
              else "pg_stat_statements(false)")
    query = sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(sql.Identifier(ext.schema),
                                                           sql.SQL(source))
    try:
        conn.execute(query)
        return True
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return False
    except psycopg.Error:  # e.g. no USAGE on its schema: we cannot tell
        return None


def version_tuple(text: str) -> tuple[int, ...]:
    """An extension's version as numbers, to compare.

    >>> version_tuple("1.10") > version_tuple("1.9") > version_tuple("1.8")
    True
    """
    return tuple(int(part) for part in re.findall(r"\d+", text))


def detect(conn: psycopg.Connection) -> Capabilities:
    version_num, user, superuser, read_all = conn.execute(
        """
        SELECT current_setting('server_version_num')::int,
               current_user,
               r.rolsuper,
               r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
        FROM pg_roles r WHERE r.rolname = current_user
        """).fetchone()
    extensions = _extensions(conn)
    loaded = _statements_loaded(conn, extensions["pg_stat_statements"])
    caps = Capabilities(version_num, user, superuser, read_all, extensions, loaded)
    caps.issues = _issues(caps)
    return caps


def _issues(caps: Capabilities) -> list[CapabilityIssue]:
    issues = []
    pss = caps.extensions["pg_stat_statements"]
    if not pss.installed:
        issues.append(CapabilityIssue(
            "pg_stat_statements", "red",
            "pg_stat_statements is not installed in this database, so there are no query "
            "statistics (slow queries, the slow-query KPI). On Supabase enable it under "
            "Database > Extensions.",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
            + ("" if pss.available else "  -- the server does not ship it: install the "
               "PostgreSQL contrib package first")))
    elif not pss.usable:
        issues.append(CapabilityIssue(
            "pg_stat_statements", "red",
            f"pg_stat_statements is installed in the schema {pss.schema}, which role "
            f"{caps.current_user} may not use: no query statistics until it may.",
            pss.grant(caps.current_user)))
    elif caps.pg_stat_statements_loaded is False:
        issues.append(CapabilityIssue(
            "pg_stat_statements", "red",
            "pg_stat_statements is installed but not loaded, so it records nothing.",
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';\n"
            "-- keep any libraries already listed there, then restart the server"))
    if not caps.can_read_all_stats:
        issues.append(CapabilityIssue(
            "pg_read_all_stats", "amber",
            f"Role {caps.current_user} cannot read other roles' statistics: their query texts "
            "show as <insufficient privilege> and other sessions are hidden.",
            f"GRANT pg_monitor TO {quote_ident(caps.current_user)};"))
    for name, why, package in (
            ("pgstattuple", "exact bloat figures", "postgresql-contrib"),
            ("hypopg", "what-if analysis with hypothetical indexes", "postgresql-NN-hypopg"),
            ("pg_cron", "seeing scheduled materialized-view refreshes", "postgresql-NN-cron")):
        ext = caps.extensions[name]
        if ext.installed and not ext.usable and name != "pg_cron":
            issues.append(CapabilityIssue(
                name, "amber", f"{name} is installed in the schema {ext.schema}, which role "
                f"{caps.current_user} may not use, so there is no {why}.",
                ext.grant(caps.current_user)))
        if ext.installed:
            continue
        message = f"Optional: {name} is not installed, so there is no {why}."
        if not ext.available:
            message += (f" The server does not ship it: install {package} on the server "
                        "(on Supabase: Database > Extensions), then create it.")
        issues.append(CapabilityIssue(name, "info", message,
                                      f"CREATE EXTENSION IF NOT EXISTS {name};"))
    return issues


def capability_rows(caps: Capabilities) -> list[dict]:
    """What DB Pulse can use here, one line per extension and privilege, in words."""
    rows = [{"capability": ext.name, "ok": ext.installed,
             "status": (f"installed {ext.installed_version} in schema {ext.schema}"
                        if ext.installed else "available, not installed" if ext.available
                        else "not available on the server")}
            for ext in caps.extensions.values()]
    rows.append({"capability": "pg_read_all_stats", "ok": caps.can_read_all_stats,
                 "status": f"role {caps.current_user} "
                           + ("can" if caps.can_read_all_stats else "cannot")
                           + " read every session's statistics"})
    return rows


CAPABILITY_COLUMNS = {"capability": Column("Capability"), "ok": Column("Ready", "flag"),
                      "status": Column("Status", width="large")}
