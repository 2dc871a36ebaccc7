"""PostgreSQL buffer cache hit rates (cumulative since the statistics were last reset)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from queries.columns import SCHEMA, TABLE, Column
from queries.frames import to_frame


@dataclass
class CacheHitRates:
    database: float | None   # None when nothing was read yet
    tables: float | None
    indexes: float | None
    blocks_hit: int
    blocks_read: int


def _ratio(hit: int | None, read: int | None) -> float | None:
    hit, read = float(hit or 0), float(read or 0)  # sum() over bigint comes back as Decimal
    return None if hit + read == 0 else hit / (hit + read)


def cache_hit_rates(conn: psycopg.Connection) -> CacheHitRates:
    db_hit, db_read = conn.execute(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    heap_hit, heap_read, idx_hit, idx_read = conn.execute(
        """
        SELECT sum(heap_blks_hit)  AS heap_hit,
               sum(heap_blks_read) AS heap_read,
               sum(idx_blks_hit)   AS idx_hit,
               sum(idx_blks_read)  AS idx_read
        FROM pg_statio_user_tables
        """).fetchone()
    return CacheHitRates(database=_ratio(db_hit, db_read), tables=_ratio(heap_hit, heap_read),
                         indexes=_ratio(idx_hit, idx_read), blocks_hit=int(db_hit or 0),
                         blocks_read=int(db_read or 0))


def table_hit_rates(conn: psycopg.Connection, limit: int = 100) -> pd.DataFrame:
    """Per table (with its indexes and TOAST), most disk reads first: where the misses are."""
    cur = conn.execute("""
        SELECT schemaname                                           AS schema_name,
               relname                                              AS table_name,
               heap_blks_read                                       AS table_blocks_read,
               heap_blks_hit::float8 / nullif(heap_blks_hit + heap_blks_read, 0)
                                                                    AS table_hit_rate,
               idx_blks_read                                        AS index_blocks_read,
               idx_blks_hit::float8 / nullif(idx_blks_hit + idx_blks_read, 0)
                                                                    AS index_hit_rate,
               coalesce(toast_blks_read, 0) + coalesce(tidx_blks_read, 0) AS toast_blocks_read
        FROM pg_statio_user_tables
        ORDER BY coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) DESC
        LIMIT %s
        """, (limit,))
    return to_frame(cur)


# How these frames are shown (ui/tables.py)
TABLE_HIT_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE,
    "table_blocks_read": Column("Table blocks read", "count",
                                help="8 kB blocks not found in shared buffers"),
    "table_hit_rate": Column("Table hit rate", "percent", digits=2),
    "index_blocks_read": Column("Index blocks read", "count"),
    "index_hit_rate": Column("Index hit rate", "percent", digits=2),
    "toast_blocks_read": Column("TOAST blocks read", "count"),
}
