"""The audit log (table dbpulse.audit_log): every DBA action and every refusal, with the person,
role, target, parameters, duration and outcome."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd
import psycopg

from foundation.columns import Column
from foundation.frames import to_frame
from foundation.roles import Actor, Refused
from foundation.secrets import redact_text


def record(conn: psycopg.Connection, who: Actor, *, action: str, object_name: str | None,
           started_at: datetime, duration_ms: float, outcome: str, detail: str | None = None,
           parameters: dict | None = None) -> None:
    conn.execute(
        """
        INSERT INTO dbpulse.audit_log (started_at, actor, role, action, target, object_name,
                                       duration_ms, outcome, detail, parameters)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (started_at, who.person, who.role, action, who.target.name, object_name,
         round(duration_ms, 1), outcome, redact_text(detail) if detail else detail,
         redact_text(json.dumps(parameters, default=str)) if parameters else None))


def log_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('dbpulse.audit_log') IS NOT NULL").fetchone()[0]


@contextmanager
def audited(conn: psycopg.Connection, who: Actor, action: str, object_name: str | None = None,
            parameters: dict | None = None) -> Iterator[dict]:
    """Run a block as an audited action. The block may put a note in the yielded dict's
    "detail"; a refusal is recorded as 'refused', any other failure as 'error' with its
    message, and raised again.

    Needs an autocommit connection outside any transaction block, so that the audit row is
    written even when the action's own transaction fails."""
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("audited() needs an autocommit connection outside a transaction")
    started_at = datetime.now(timezone.utc)
    t0 = time.monotonic()
    note: dict = {"detail": None}
    try:
        yield note
    except Exception as exc:
        refused = isinstance(exc, Refused)
        record(conn, who, action=action, object_name=object_name, started_at=started_at,
               duration_ms=(time.monotonic() - t0) * 1000,
               outcome="refused" if refused else "error",
               detail=str(exc) if refused else f"{type(exc).__name__}: {exc}",
               parameters=parameters)
        raise
    record(conn, who, action=action, object_name=object_name, started_at=started_at,
           duration_ms=(time.monotonic() - t0) * 1000, outcome="ok", detail=note["detail"],
           parameters=parameters)


def actions(conn: psycopg.Connection, *, since: datetime | None = None,
            until: datetime | None = None, person: str | None = None,
            action: str | None = None, target: str | None = None,
            limit: int = 1000) -> pd.DataFrame:
    """The audit rows matching every filter given, newest first."""
    cur = conn.execute(
        """
        SELECT started_at, actor AS person, role, action, target, object_name,
               parameters::text AS parameters, outcome, duration_ms::float8 AS duration_ms,
               detail
        FROM dbpulse.audit_log
        WHERE (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR started_at < %(until)s)
          AND (%(person)s::text IS NULL OR actor = %(person)s)
          AND (%(action)s::text IS NULL OR action = %(action)s)
          AND (%(target)s::text IS NULL OR target = %(target)s)
        ORDER BY started_at DESC, id DESC
        LIMIT %(limit)s
        """, {"since": since, "until": until, "person": person, "action": action,
              "target": target, "limit": limit})
    return to_frame(cur)


# Audit actions as people say them (the stable codes stay in the log, the CSV and filters)
ACTION_LABELS = {
    "cancel_backend": "Cancel a statement", "terminate_backend": "Terminate a session",
    "explain_analyze": "EXPLAIN ANALYZE", "explain_generic": "Generic plan",
    "what_if": "What-if plan", "install_event_trigger": "Install the refresh event trigger",
    "install_schema": "Install DB Pulse's schema", "measure_bloat": "Measure exact bloat",
    "pause_schedule": "Pause a refresh schedule", "resume_schedule": "Resume a refresh schedule",
    "schedule_refresh": "Schedule a refresh", "unschedule_refresh": "Remove a refresh schedule",
    "prune_history": "Prune old snapshots", "refresh_matview": "Refresh a view",
    "refresh_stale": "Refresh stale views", "snapshot": "Take a snapshot",
    "test_alert": "Send a test alert", "migrate_apply": "Apply migrations",
    "migrate_rollback": "Roll back migrations",
}


def parameters_text(raw) -> str:
    """A parameters cell (JSON) in words.

    >>> parameters_text('{"allow_blocking": true, "up_to": null, "run_as_oid": 16384}')
    'allow blocking: yes; up to: none; run as oid: 16384'
    >>> parameters_text(None)
    ''
    """
    if not isinstance(raw, str) or not raw:
        return ""
    try:
        values = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(values, dict):
        return str(values)

    def word(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if value is None:
            return "none"
        if isinstance(value, list):
            return ", ".join(word(v) for v in value) or "none"
        return str(value)
    return "; ".join(f"{key.replace('_', ' ')}: {word(value)}" for key, value in values.items())


def for_people(rows: pd.DataFrame) -> pd.DataFrame:
    """The audit rows as the page shows them: actions and parameters in words."""
    return rows.assign(action=rows["action"].map(lambda a: ACTION_LABELS.get(a, a)),
                       parameters=rows["parameters"].map(parameters_text))


# A cell a spreadsheet would run as a formula (OWASP's CSV injection list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(rows: pd.DataFrame) -> str:
    """The rows as CSV for a spreadsheet: a text cell that would start a formula gets a leading
    apostrophe, so a name like =HYPERLINK(...) is shown, not run.

    >>> csv_text(pd.DataFrame({"object_name": ["=1+2", "ok", "@SUM(A1)"], "n": [-1, 2, 3]}))
    "object_name,n\\n'=1+2,-1\\nok,2\\n'@SUM(A1),3\\n"
    """
    def neutral(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) \
            else value
    return rows.apply(lambda column: column.map(neutral) if not pd.api.types.is_numeric_dtype(
        column) else column).to_csv(index=False)


def choices(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The people, actions and targets the log holds, for the page's filters."""
    row = conn.execute("""
        SELECT array(SELECT DISTINCT actor FROM dbpulse.audit_log ORDER BY 1),
               array(SELECT DISTINCT action FROM dbpulse.audit_log ORDER BY 1),
               array(SELECT DISTINCT target FROM dbpulse.audit_log ORDER BY 1)""").fetchone()
    return {"person": row[0], "action": row[1], "target": row[2]}


# How these frames are shown (ui/tables.py)
# the time names each row's detail under the grid (the person alone named many alike)
ACTION_COLUMNS = {
    "started_at": Column("When", "time", pinned=True), "person": Column("Person", pinned=True),
    "role": Column("Role", width="small"), "action": Column("Action"),
    "target": Column("Target", width="small"), "object_name": Column("Object"),
    "parameters": Column("Parameters", width="medium"),
    "outcome": Column("Outcome", width="small"),
    "duration_ms": Column("Took", "number", unit="ms", digits=0),
    "detail": Column("Detail", explains=True),
}
