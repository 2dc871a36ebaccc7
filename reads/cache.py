"""PostgreSQL buffer cache hit rates (cumulative since the statistics were last reset)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from foundation.columns import SCHEMA, TABLE, Column
from foundation.frames import to_frame


@dataclass
class CacheHitRates:
    database: float | None   # None when nothing was read yet
    tables: float | None     # None also when not read (cache_hit_rates(per_kind=False))
    indexes: float | None
    blocks_hit: int
    blocks_read: int


def _ratio(hit: int | None, read: int | None) -> float | None:
    hit, read = float(hit or 0), float(read or 0)  # sum() over bigint comes back as Decimal
    return None if hit + read == 0 else hit / (hit + read)


# The sums of pg_statio_user_tables' heap and index blocks, read per relation from the
# statistics functions: the view sums each table's indexes in a subquery per table, most of its
# cost on a big catalogue. A user table's indexes live in its schema; partitioned tables and
# indexes have no blocks of their own.
USER_TABLE_BLOCKS = """
        SELECT sum(hit) FILTER (WHERE relkind <> 'i')             AS heap_hit,
               sum(fetched - hit) FILTER (WHERE relkind <> 'i')   AS heap_read,
               sum(hit) FILTER (WHERE relkind = 'i')              AS idx_hit,
               sum(fetched - hit) FILTER (WHERE relkind = 'i')    AS idx_read
        FROM (SELECT c.relkind, pg_stat_get_blocks_hit(c.oid) AS hit,
                     pg_stat_get_blocks_fetched(c.oid) AS fetched
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'i')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname !~ '^pg_toast'
              OFFSET 0) blocks  -- each function once per relation, not once per sum
        """


def cache_hit_rates(conn: psycopg.Connection, per_kind: bool = True) -> CacheHitRates:
    """The database's hit rate, and with per_kind its tables' and indexes' (summed over every
    relation's statistics: 27 ms at 40,000 relations, for pages that show them)."""
    db_hit, db_read = conn.execute(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    heap_hit = heap_read = idx_hit = idx_read = None
    if per_kind:
        heap_hit, heap_read, idx_hit, idx_read = conn.execute(USER_TABLE_BLOCKS).fetchone()
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
