"""Loads the SalesFlow demo database: schema, generated data, deliberate findings.

The whole load is one transaction, so a failure leaves nothing half-loaded behind.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psycopg

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "demo"

# Row counts per scale. `small` is for the tests, `default` for the demo.
SCALES: dict[str, dict[str, int]] = {
    "small": {"users": 20, "contacts": 2_000, "leads": 3_000, "events": 30_000, "notes": 5_000,
              "sessions": 5_000, "conversations": 2_000, "dm_messages": 10_000, "deals": 1_500,
              "web_events": 10_000, "social_events": 5_000},
    "default": {"users": 60, "contacts": 20_000, "leads": 60_000, "events": 400_000,
                "notes": 50_000, "sessions": 60_000, "conversations": 15_000,
                "dm_messages": 120_000, "deals": 12_000, "web_events": 150_000,
                "social_events": 60_000},
}
DEMO_TABLES = ("users", "contacts", "leads", "message_events", "crm_notes",
               "rlhf_feedback_sessions", "dm_conversations", "dm_messages", "lead_verifications",
               "lead_intents", "lead_enrichments", "deals", "web_tracking_events",
               "social_engagement_events")


class LoadError(RuntimeError):
    pass


@dataclass
class LoadResult:
    scale: str
    seconds: float
    already_loaded: bool = False
    row_counts: dict[str, int] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)


def split_steps(text: str) -> list[tuple[str, str]]:
    """Split a file on its `-- step: NAME` lines into (name, sql) pairs."""
    parts = re.split(r"^-- step: *(.+)$", text, flags=re.M)
    return [(name.strip(), body.strip()) for name, body in zip(parts[1::2], parts[2::2])
            if body.strip()]


def loaded_scale(conn: psycopg.Connection) -> str | None:
    if conn.execute("SELECT to_regclass('public.demo_load_info')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT scale FROM public.demo_load_info ORDER BY loaded_at DESC LIMIT 1"
                       ).fetchone()
    return row[0] if row else None


def _table_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    with conn.transaction():
        # count from the tables themselves: an index-only scan would count as a use of the
        # planted unused indexes
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            conn.execute("SELECT set_config(%s, 'off', true)", (setting,))
        for table in DEMO_TABLES:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
            counts[table] = conn.execute(query).fetchone()[0]
    return counts


def load(dsn: str, scale: str = "default",
         progress: Callable[[str], None] = lambda message: None) -> LoadResult:
    if scale not in SCALES:
        raise LoadError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    started = time.monotonic()
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        existing = loaded_scale(conn)
        conn.rollback()
        if existing:
            progress(f"demo data ({existing}) already loaded")
            return LoadResult(scale=existing, seconds=0.0, already_loaded=True,
                              row_counts=_table_counts(conn))
        clash = conn.execute(
            "SELECT string_agg(relname, ', ') FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relname = ANY(%s)",
            (list(DEMO_TABLES),)).fetchone()[0]
        conn.rollback()
        if clash:
            raise LoadError(f"this database already has tables named like the demo's ({clash}); "
                            "refusing to load demo data into it")
        step_seconds: dict[str, float] = {}
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            try:  # keep the one-off load out of the query statistics the dashboard shows
                with conn.transaction():
                    conn.execute("SET LOCAL pg_stat_statements.track = 'none'")
            except psycopg.Error:
                pass  # not a superuser, or the module is not loaded: the load shows up there
            for key, value in SCALES[scale].items():
                conn.execute("SELECT set_config(%s, %s, true)", (f"demo.{key}", str(value)))
            for filename in ("schema.sql", "data.sql", "findings.sql"):
                text = (SQL_DIR / filename).read_text()
                steps = split_steps(text) if "-- step:" in text else [(filename, text)]
                for name, statement in steps:
                    progress(f"loading: {name}")
                    t0 = time.monotonic()
                    conn.execute(statement)
                    step_seconds[name] = round(time.monotonic() - t0, 2)
            seconds = time.monotonic() - started
            conn.execute("INSERT INTO demo_load_info (scale, seconds) VALUES (%s, %s)",
                         (scale, round(seconds, 2)))
        counts = _table_counts(conn)
    return LoadResult(scale=scale, seconds=round(time.monotonic() - started, 2),
                      row_counts=counts, step_seconds=step_seconds)
