"""The audit log of DBA actions (table dbpulse.audit_log)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd
import psycopg

from queries.frames import to_frame


def record(conn: psycopg.Connection, *, actor: str, role: str, action: str, target: str,
           object_name: str | None, started_at: datetime, duration_ms: float, outcome: str,
           detail: str | None = None) -> None:
    conn.execute(
        """
        INSERT INTO dbpulse.audit_log
            (started_at, actor, role, action, target, object_name, duration_ms, outcome, detail)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (started_at, actor, role, action, target, object_name, round(duration_ms, 1), outcome,
         detail))


@contextmanager
def audited(conn: psycopg.Connection, *, actor: str, role: str, action: str, target: str,
            object_name: str | None = None) -> Iterator[dict]:
    """Run a block as an audited action. The block may put a note in the yielded dict's
    "detail"; a failure is recorded with its error and raised again.

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
        record(conn, actor=actor, role=role, action=action, target=target,
               object_name=object_name, started_at=started_at,
               duration_ms=(time.monotonic() - t0) * 1000, outcome="error",
               detail=f"{type(exc).__name__}: {exc}")
        raise
    record(conn, actor=actor, role=role, action=action, target=target, object_name=object_name,
           started_at=started_at, duration_ms=(time.monotonic() - t0) * 1000, outcome="ok",
           detail=note["detail"])


def recent_actions(conn: psycopg.Connection, limit: int = 100) -> pd.DataFrame:
    cur = conn.execute(
        """
        SELECT started_at, actor, role, action, target, object_name, duration_ms, outcome, detail
        FROM dbpulse.audit_log
        ORDER BY started_at DESC
        LIMIT %s
        """, (limit,))
    return to_frame(cur)
