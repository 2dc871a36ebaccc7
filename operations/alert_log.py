"""The alerts the agent raised, kept in the history database: written once per change by the
agent, read by the Alerts page and the weekly review."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

import pandas as pd
import psycopg

from foundation.columns import Column
from foundation.frames import to_frame


def exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('dbpulse.alert_log') IS NOT NULL").fetchone()[0]


def record(conn: psycopg.Connection, source: str, alerts: Iterable[dict]) -> int:
    """Write alerts (Alert.as_dict() of operations/alerts.py) of one history source, each once by
    its id (an agent that restarted before it noted the write writes it again: no second row);
    returns how many were given."""
    rows = [(a.get("id"), source, a["target"], a["at"], a["check"], a["state"], a["title"],
             a["summary"], a["link"]) for a in alerts]
    with conn.cursor() as cur:
        cur.executemany("""
            INSERT INTO dbpulse.alert_log
                (alert_id, source, target, raised_at, check_name, state, title, summary, link)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (alert_id) DO NOTHING""", rows)
    return len(rows)


def still_raised(conn: psycopg.Connection, source: str, target: str) -> list[tuple]:
    """(check, raised at, link) of each check whose last alert for the target was not a
    recovery: what an agent taking the target over must not announce again."""
    if not exists(conn):
        return []
    return conn.execute("""
        SELECT check_name, raised_at, link FROM (
            SELECT DISTINCT ON (check_name) check_name, raised_at, link, state
            FROM dbpulse.alert_log WHERE source = %s AND target = %s
            ORDER BY check_name, raised_at DESC, id DESC) last
        WHERE state <> 'recovered'""", (source, target)).fetchall()


def recent(conn: psycopg.Connection, source: str, since: datetime,
           until: datetime | None = None, limit: int = 1000) -> pd.DataFrame | None:
    """The alerts of a source raised in [since, until), newest first; None before the agent
    ever wrote one (no table yet)."""
    if not exists(conn):
        return None
    return to_frame(conn.execute("""
        SELECT raised_at, state, title, summary, check_name, link
        FROM dbpulse.alert_log
        WHERE source = %s AND raised_at >= %s AND raised_at < coalesce(%s::timestamptz, 'infinity')
        ORDER BY raised_at DESC, id DESC
        LIMIT %s""", (source, since, until, limit)))


def events(conn: psycopg.Connection, source: str, start: datetime,
           end: datetime) -> pd.DataFrame:
    """The alerts of [start, end] as review events (at, kind 'alert', label, synthetic)."""
    if not exists(conn):
        return pd.DataFrame(columns=["at", "kind", "label", "synthetic"])
    return to_frame(conn.execute("""
        SELECT raised_at AS at, 'alert' AS kind,
               title || CASE state WHEN 'recovered' THEN ' recovered' ELSE ' ' || upper(state)
                                   END AS label,
               false AS synthetic
        FROM dbpulse.alert_log
        WHERE source = %s AND raised_at BETWEEN %s AND %s""", (source, start, end)))


ALERT_COLUMNS = {
    "raised_at": Column("Raised", "time", pinned=True),
    "state": Column("State", width="small"),
    "title": Column("Check"),
    "summary": Column("What", explains=True),
    "link": Column("Explained on", width="medium"),
}
