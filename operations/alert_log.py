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
             a["summary"], a["link"], a.get("page", "")) for a in alerts]
    with conn.cursor() as cur:
        cur.executemany("""
            INSERT INTO dbpulse.alert_log (alert_id, source, target, raised_at, check_name, state,
                                           title, summary, link, page)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (alert_id) DO NOTHING""", rows)
    return len(rows)


def still_raised(conn: psycopg.Connection, source: str, target: str) -> list[tuple]:
    """(check, raised at, page) of each check whose last alert for the target was not a
    recovery: what an agent taking the target over must not announce again."""
    if not exists(conn):
        return []
    return conn.execute("""
        SELECT check_name, raised_at, page FROM (
            SELECT DISTINCT ON (check_name) check_name, raised_at, page, state
            FROM dbpulse.alert_log WHERE source = %s AND target = %s
            ORDER BY check_name, raised_at DESC, id DESC) last
        WHERE state <> 'recovered'""", (source, target)).fetchall()


def recent(conn: psycopg.Connection, source: str, since: datetime,
           until: datetime | None = None, limit: int = 1000) -> pd.DataFrame | None:
    """The alerts of a source raised in [since, until), newest first, with where each is
    explained (explained_on); None before the agent ever wrote one (no table yet)."""
    if not exists(conn):
        return None
    frame = to_frame(conn.execute("""
        SELECT raised_at, state, title, summary, check_name, link, page
        FROM dbpulse.alert_log
        WHERE source = %s AND raised_at >= %s AND raised_at < coalesce(%s::timestamptz, 'infinity')
        ORDER BY raised_at DESC, id DESC
        LIMIT %s""", (source, since, until, limit)))
    frame["explained_on"] = [explained_on(link, page)
                             for link, page in zip(frame["link"], frame["page"])]
    return frame


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


def explained_on(link: str, page: str) -> str:
    """Where an alert is explained: its link on the dashboard (dashboard_url set), else the
    name of its page here.

    >>> explained_on("https://dbpulse.example/indexes", "indexes")
    'https://dbpulse.example/indexes'
    >>> explained_on("", "buffer_cache"), explained_on("", "")
    ('Buffer cache page', '')
    """
    if link:
        return link
    return f"{page.replace('_', ' ').capitalize()} page" if page else ""


ALERT_COLUMNS = {
    "raised_at": Column("Raised", "time", pinned=True),
    "state": Column("State", width="small"),
    "title": Column("Check"),
    "summary": Column("What", explains=True),
    "explained_on": Column("Explained on", width="medium"),
}
