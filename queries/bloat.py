"""Table and B-tree index bloat: estimates from the planner statistics, exact figures on demand.

The estimate: from pg_stats, each row's expected width (average column widths weighted by their
non-null fraction, with the padding each column's alignment needs after the ones before it,
plus the tuple header with its null bitmap, aligned to MAXALIGN, plus the 4-byte line
pointer); from it, rows per page under the relation's fillfactor; from reltuples, the pages the
relation should need. Bloat is what it has beyond that. Column statistics are aggregated once
per table in one pass, which keeps it fast on big catalogues.

It is an estimate: the padding is approximated from average widths, TOAST is ignored, and
B-tree deduplication (PostgreSQL 13+) can make an index smaller than "expected" (shown as 0).
Rows whose statistics are missing or stale are flagged, since their estimate means little.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from queries.config import Settings
from queries.frames import to_frame
from queries.identifiers import qualified
from queries.roles import require_dba

MAXALIGN = 8
PAGE_HEADER = 24
BTREE_SPECIAL = 16
HEAP_TUPLE_HEADER = 23
INDEX_TUPLE_HEADER = 8
LINE_POINTER = 4


def _align(n: pd.Series) -> pd.Series:
    return np.ceil(n / MAXALIGN) * MAXALIGN


def table_bloat(conn: psycopg.Connection) -> pd.DataFrame:
    frame = to_frame(conn.execute("""
        WITH stat_columns AS (
            -- each analyzed column's expected width and the alignment it needs: fixed-width
            -- types align by typalign; short varlena values (1-byte header) do not align
            -- pg_stats truncates a varlena column's average width to an integer: add half a
            -- byte back, or rows near an alignment boundary round down a whole MAXALIGN step
            SELECT s.schemaname, s.tablename, a.attnum, s.null_frac,
                   (1 - s.null_frac) * (s.avg_width + CASE WHEN t.typlen < 0 THEN 0.5 ELSE 0 END)
                                                  AS width,
                   CASE WHEN t.typlen > 0 OR s.avg_width > 127 THEN
                        CASE t.typalign WHEN 'd' THEN 8 WHEN 'i' THEN 4 WHEN 's' THEN 2 ELSE 1 END
                        ELSE 1 END                AS align
            FROM pg_stats s
            JOIN pg_namespace n ON n.nspname = s.schemaname
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
        ),
        placed AS (
            SELECT *, coalesce(sum(width) OVER (PARTITION BY schemaname, tablename ORDER BY attnum
                                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                               0) AS offset_before
            FROM stat_columns
        ),
        column_stats AS (
            -- padding before a column: what its alignment needs after the columns before it
            SELECT schemaname, tablename,
                   sum(width + (1 - null_frac)
                               * ((align - (ceil(offset_before)::int % align)) % align)) AS data_width,
                   max(null_frac)                   AS max_null_frac,
                   count(*)                         AS columns_with_stats
            FROM placed
            GROUP BY schemaname, tablename
        )
        SELECT n.nspname                                   AS schema_name,
               c.relname                                   AS table_name,
               c.relkind                                   AS kind,
               c.relpages                                  AS pages,
               c.reltuples                                 AS estimated_rows,
               pg_relation_size(c.oid)                     AS size_bytes,
               current_setting('block_size')::int          AS block_size,
               coalesce((SELECT o.option_value::int
                         FROM pg_options_to_table(c.reloptions) o
                         WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
               (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS column_count,
               cs.data_width, cs.max_null_frac, cs.columns_with_stats,
               st.n_mod_since_analyze                      AS changed_since_analyze,
               greatest(st.last_analyze, st.last_autoanalyze) AS last_analyzed
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN column_stats cs ON cs.schemaname = n.nspname AND cs.tablename = c.relname
        LEFT JOIN pg_stat_all_tables st ON st.relid = c.oid
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
        """))
    if frame.empty:
        return frame
    bitmap = np.where(frame["max_null_frac"].fillna(0) > 0, np.ceil(frame["column_count"] / 8), 0)
    header = _align(HEAP_TUPLE_HEADER + pd.Series(bitmap, index=frame.index))
    row_bytes = _align(header + frame["data_width"].astype(float).fillna(0)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER) * frame["fillfactor"] / 100
    rows_per_page = np.maximum(np.floor(usable / row_bytes), 1)
    rows = frame["estimated_rows"].clip(lower=0)
    expected = np.ceil(rows / rows_per_page)
    return _finish(frame, expected)


def index_bloat(conn: psycopg.Connection) -> pd.DataFrame:
    frame = to_frame(conn.execute("""
        WITH index_columns AS (
            SELECT i.indexrelid, k.attnum, k.ord
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
        ),
        column_widths AS (
            SELECT ic.indexrelid,
                   sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 8)) AS data_width,
                   max(coalesce(s.null_frac, 0))                              AS max_null_frac,
                   count(*) FILTER (WHERE s.avg_width IS NULL)                AS columns_without_stats,
                   count(*)                                                   AS column_count
            FROM index_columns ic
            JOIN pg_index i ON i.indexrelid = ic.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ic.attnum
                                     AND ic.attnum > 0
            LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = t.relname
                                 AND s.attname = a.attname
            GROUP BY ic.indexrelid
        )
        SELECT n.nspname                                   AS schema_name,
               t.relname                                   AS table_name,
               c.relname                                   AS index_name,
               c.relpages                                  AS pages,
               c.reltuples                                 AS estimated_rows,
               pg_relation_size(c.oid)                     AS size_bytes,
               current_setting('block_size')::int          AS block_size,
               coalesce((SELECT o.option_value::int
                         FROM pg_options_to_table(c.reloptions) o
                         WHERE o.option_name = 'fillfactor'), 90) AS fillfactor,
               w.data_width, w.max_null_frac, w.column_count,
               w.columns_without_stats,
               st.n_mod_since_analyze                      AS changed_since_analyze,
               greatest(st.last_analyze, st.last_autoanalyze) AS last_analyzed
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
        JOIN column_widths w ON w.indexrelid = i.indexrelid
        LEFT JOIN pg_stat_all_tables st ON st.relid = t.oid
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
        """))
    if frame.empty:
        return frame
    bitmap = np.where(frame["max_null_frac"].fillna(0) > 0, MAXALIGN, 0)
    entry = _align(INDEX_TUPLE_HEADER + bitmap + frame["data_width"].astype(float)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER - BTREE_SPECIAL) * frame["fillfactor"] / 100
    per_page = np.maximum(np.floor(usable / entry), 1)
    leaves = np.ceil(frame["estimated_rows"].clip(lower=0) / per_page)
    expected = leaves + np.ceil(leaves / per_page) + 1  # internal levels (roughly) + metapage
    frame["columns_with_stats"] = frame["column_count"] - frame["columns_without_stats"]
    return _finish(frame, expected)


def _finish(frame: pd.DataFrame, expected_pages: pd.Series) -> pd.DataFrame:
    frame["expected_pages"] = expected_pages
    frame["bloat_pages"] = (frame["pages"] - expected_pages).clip(lower=0)
    frame["bloat_bytes"] = frame["bloat_pages"] * frame["block_size"]
    frame["bloat_ratio"] = np.where(frame["pages"] > 0,
                                    frame["bloat_pages"] / frame["pages"].where(frame["pages"] > 0),
                                    0.0)
    never = frame["estimated_rows"] < 0
    missing = frame["columns_with_stats"].fillna(0) < frame["column_count"]
    stale = frame["changed_since_analyze"].fillna(0) > 0.2 * frame["estimated_rows"].clip(lower=1000)
    frame["stats_note"] = np.select(
        [never, missing, stale],
        ["never analyzed: no estimate", "statistics missing for some columns",
         "statistics stale: many changes since the last ANALYZE"], default="")
    return frame.sort_values("bloat_bytes", ascending=False).reset_index(drop=True)


def table_fix_sql(schema: str, table: str) -> str:
    name = qualified(schema, table)
    return (f"VACUUM (ANALYZE) {name};  -- reclaims dead rows for reuse; to give space back to "
            f"the OS: pg_repack, or VACUUM FULL {name} (ACCESS EXCLUSIVE lock for its duration)")


def index_fix_sql(schema: str, index: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {qualified(schema, index)};"


def exact_table_bloat(admin_conn: psycopg.Connection, settings: Settings, schema: str,
                      table: str, extension_schema: str = "public") -> dict:
    """pgstattuple_approx on one table (DBA action: it reads the relation)."""
    require_dba(settings, "Measuring exact bloat")
    cur = admin_conn.execute(sql.SQL("SELECT * FROM {}.pgstattuple_approx({}::regclass)").format(
        sql.Identifier(extension_schema), sql.Literal(qualified(schema, table))))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def exact_index_bloat(admin_conn: psycopg.Connection, settings: Settings, schema: str,
                      index: str, extension_schema: str = "public") -> dict:
    """pgstatindex on one B-tree index (DBA action: it reads the whole index)."""
    require_dba(settings, "Measuring exact index bloat")
    cur = admin_conn.execute(sql.SQL("SELECT * FROM {}.pgstatindex({}::regclass)").format(
        sql.Identifier(extension_schema), sql.Literal(qualified(schema, index))))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))
