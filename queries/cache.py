"""PostgreSQL buffer cache hit rates (cumulative since the statistics were last reset)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


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
