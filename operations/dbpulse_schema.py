"""DB Pulse's own schema (audit log and, later, refresh log, ledger, snapshots), created
idempotently from the numbered files in sql/dbpulse/, each applied once and recorded."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from pglast.parser import split

from foundation.roles import Actor
from foundation.secrets import redact_text
from operations import audit

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "sql" / "dbpulse"
# Any constant works; it only has to be the same for every DB Pulse process.
SCHEMA_LOCK_KEY = 0x0DB9_0001
# The monitoring role the README names has pg_monitor and nothing else: it reads DB Pulse's own
# tables (refresh log, ledger, snapshots, audit log) through pg_monitor; writes stay with the
# admin or history connection. Run on every install, so an existing schema gets it too.
READER_GRANTS = """
    GRANT USAGE ON SCHEMA dbpulse TO pg_monitor;
    GRANT SELECT ON ALL TABLES IN SCHEMA dbpulse TO pg_monitor;
"""


def _run_each(conn: psycopg.Connection, text: str) -> None:
    """Each statement of `text` on its own: pg_stat_statements stores the statements of one
    string apart, and only the last would carry the connection's own-statement tag, so the
    install would rank among the application's top statements."""
    for statement in split(text):
        conn.execute(statement)


def schema_files() -> list[tuple[int, str, Path]]:
    files = []
    for path in sorted(SCHEMA_DIR.glob("*.sql")):
        match = re.match(r"(\d+)_(.+)\.sql$", path.name)
        if match:
            files.append((int(match.group(1)), match.group(2), path))
    return files


def installed_versions(conn: psycopg.Connection) -> set[int]:
    if conn.execute("SELECT to_regclass('dbpulse.schema_version')").fetchone()[0] is None:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM dbpulse.schema_version")}


def pending_files(conn: psycopg.Connection) -> list[tuple[int, str, Path]]:
    done = installed_versions(conn)
    return [f for f in schema_files() if f[0] not in done]


CRON_READERS = SCHEMA_DIR / "optional" / "cron_readers.sql"


def _install_cron_readers(conn: psycopg.Connection) -> None:
    """Where pg_cron lives in this database and a superuser installs, the functions through
    which pg_monitor reads every job and run (pg_cron's row security shows each role its own)."""
    if conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') "
                    "AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
                    ).fetchone()[0]:
        with conn.transaction():
            _run_each(conn, CRON_READERS.read_text())


def _mask_stored_secrets(conn: psycopg.Connection) -> None:
    """Statement texts stored before DB Pulse masked passwords in them get masked now."""
    if conn.execute("SELECT to_regclass('dbpulse.statement_texts')").fetchone()[0] is None:
        return
    with conn.transaction():
        rows = conn.execute("SELECT queryid, userid, query FROM dbpulse.statement_texts "
                            "WHERE query ~* 'password|:[^@ ]+@'").fetchall()
        for queryid, userid, query in rows:
            if redact_text(query) != query:
                conn.execute("UPDATE dbpulse.statement_texts SET query = %s "
                             "WHERE queryid = %s AND userid = %s",
                             (redact_text(query), queryid, userid))


def install(conn: psycopg.Connection, who: Actor) -> list[str]:
    """Apply the schema files not yet applied (DBA action). Returns the names applied."""
    who.require_dba("Installing the DB Pulse schema")
    started_at, t0 = datetime.now(timezone.utc), time.monotonic()
    applied = []
    conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
    try:
        for version, name, path in pending_files(conn):
            with conn.transaction():
                _run_each(conn, path.read_text())
                conn.execute("INSERT INTO dbpulse.schema_version (version, name) VALUES (%s, %s)",
                             (version, name))
            applied.append(path.name)
        _run_each(conn, READER_GRANTS)
        _install_cron_readers(conn)
        _mask_stored_secrets(conn)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    if applied:  # recorded afterwards: the audit table is one of the things installed
        audit.record(conn, who, action="install_schema", object_name="dbpulse",
                     started_at=started_at,
                     duration_ms=(time.monotonic() - t0) * 1000, outcome="ok",
                     detail="applied " + ", ".join(applied))
    return applied
