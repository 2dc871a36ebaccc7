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


def column_stats(conn: psycopg.Connection) -> pd.DataFrame:
    """One row per analyzed column: its expected width and the alignment it needs. Fixed-width
    types align by typalign; short varlena values (1-byte header) do not align. pg_stats
    truncates a varlena column's average width to an integer: half a byte is added back, or
    rows near an alignment boundary would round down a whole MAXALIGN step."""
    frame = to_frame(conn.execute("""
        SELECT c.oid                                       AS relid,
               a.attnum,
               s.null_frac,
               (1 - s.null_frac) * (s.avg_width + CASE WHEN t.typlen < 0 THEN 0.5 ELSE 0 END)
                                                           AS width,
               CASE WHEN t.typlen > 0 OR s.avg_width > 127 THEN
                    CASE t.typalign WHEN 'd' THEN 8 WHEN 'i' THEN 4 WHEN 's' THEN 2 ELSE 1 END
                    ELSE 1 END                             AS align
        FROM pg_stats s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
        """))
    return frame.sort_values(["relid", "attnum"], kind="stable")


def _row_widths(columns: pd.DataFrame) -> pd.DataFrame:
    """Per table: the data width of an average row with the padding each column's alignment
    needs after the columns before it (approximated from average widths)."""
    if columns.empty:
        return pd.DataFrame(columns=["data_width", "max_null_frac", "columns_with_stats"])
    offset_before = columns.groupby("relid")["width"].cumsum() - columns["width"]
    align = columns["align"].astype(int)
    pad = (align - np.ceil(offset_before).astype(int) % align) % align
    columns = columns.assign(padded=columns["width"] + (1 - columns["null_frac"]) * pad)
    return columns.groupby("relid").agg(data_width=("padded", "sum"),
                                        max_null_frac=("null_frac", "max"),
                                        columns_with_stats=("attnum", "count"))


# what both estimates need about each relation, from pg_class and the statistics functions
# (not the pg_stat_* views, which join the catalogue again per row)
RELATION_COLUMNS = """
               n.nspname                                   AS schema_name,
               c.oid                                       AS relid,
               c.relpages                                  AS pages,
               c.reltuples                                 AS estimated_rows,
               c.relpages::bigint * current_setting('block_size')::int AS size_bytes,
               current_setting('block_size')::int          AS block_size,
               coalesce((SELECT o.option_value::int
                         FROM pg_options_to_table(c.reloptions) o
                         WHERE o.option_name = 'fillfactor'), %(default_fillfactor)s) AS fillfactor
"""


def table_bloat(conn: psycopg.Connection, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tables and materialized views. `stats` (from column_stats) can be shared with
    index_bloat: reading pg_stats is most of the cost on a big catalogue."""
    frame = to_frame(conn.execute(f"""
        SELECT {RELATION_COLUMNS},
               c.relname                                   AS table_name,
               c.relkind                                   AS kind,
               c.relnatts                                  AS bitmap_columns,
               (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS column_count,
               pg_stat_get_mod_since_analyze(c.oid)        AS changed_since_analyze,
               greatest(pg_stat_get_last_analyze_time(c.oid),
                        pg_stat_get_last_autoanalyze_time(c.oid)) AS last_analyzed
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
        """, {"default_fillfactor": 100}))
    if frame.empty:
        return frame
    stats = column_stats(conn) if stats is None else stats
    frame = frame.join(_row_widths(stats), on="relid")
    bitmap = np.where(frame["max_null_frac"].fillna(0) > 0,
                      np.ceil(frame["bitmap_columns"] / 8), 0)  # dropped columns count here
    header = _align(HEAP_TUPLE_HEADER + pd.Series(bitmap, index=frame.index))
    row_bytes = _align(header + frame["data_width"].astype(float).fillna(0)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER) * frame["fillfactor"] / 100
    rows_per_page = np.maximum(np.floor(usable / row_bytes), 1)
    rows = frame["estimated_rows"].clip(lower=0)
    expected = np.ceil(rows / rows_per_page)
    return _finish(frame, expected)


def index_bloat(conn: psycopg.Connection, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """B-tree indexes; key column widths come from their table's column statistics
    (expression columns have none: 8 bytes are assumed and the row is flagged)."""
    frame = to_frame(conn.execute(f"""
        SELECT {RELATION_COLUMNS},
               t.relname                                   AS table_name,
               c.relname                                   AS index_name,
               i.indrelid                                  AS table_oid,
               (string_to_array(i.indkey::text, ' ')::int[])[1:i.indnkeyatts] AS key_columns,
               pg_stat_get_mod_since_analyze(t.oid)        AS changed_since_analyze,
               greatest(pg_stat_get_last_analyze_time(t.oid),
                        pg_stat_get_last_autoanalyze_time(t.oid)) AS last_analyzed
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
        """, {"default_fillfactor": 90}))
    if frame.empty:
        return frame
    stats = column_stats(conn) if stats is None else stats
    widths = dict(zip(zip(stats["relid"], stats["attnum"]), zip(stats["width"], stats["null_frac"])))
    data_width, max_null, missing, count = [], [], [], []
    for table, keys in zip(frame["table_oid"], frame["key_columns"]):
        found = [widths.get((table, k)) for k in keys]
        data_width.append(sum(w[0] if w else 8.0 for w in found))
        max_null.append(max((w[1] for w in found if w), default=0.0))
        missing.append(sum(w is None for w in found))
        count.append(len(keys))
    frame = frame.assign(data_width=data_width, max_null_frac=max_null, column_count=count,
                         columns_with_stats=[c - m for c, m in zip(count, missing)])
    bitmap = np.where(frame["max_null_frac"] > 0, MAXALIGN, 0)
    entry = _align(INDEX_TUPLE_HEADER + bitmap + frame["data_width"].astype(float)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER - BTREE_SPECIAL) * frame["fillfactor"] / 100
    per_page = np.maximum(np.floor(usable / entry), 1)
    leaves = np.ceil(frame["estimated_rows"].clip(lower=0) / per_page)
    expected = leaves + np.ceil(leaves / per_page) + 1  # internal levels (roughly) + metapage
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


def _exact(admin_conn: psycopg.Connection, settings: Settings, function: str, schema: str,
           name: str, extension_schema: str) -> dict:
    require_dba(settings, "Measuring exact bloat")
    cur = admin_conn.execute(sql.SQL("SELECT * FROM {}.{}({}::regclass)").format(
        sql.Identifier(extension_schema), sql.Identifier(function),
        sql.Literal(qualified(schema, name))))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def exact_table_bloat(admin_conn: psycopg.Connection, settings: Settings, schema: str,
                      table: str, extension_schema: str = "public") -> dict:
    """pgstattuple_approx on one table (DBA action: it reads the relation)."""
    return _exact(admin_conn, settings, "pgstattuple_approx", schema, table, extension_schema)


def exact_index_bloat(admin_conn: psycopg.Connection, settings: Settings, schema: str,
                      index: str, extension_schema: str = "public") -> dict:
    """pgstatindex on one B-tree index (DBA action: it reads the whole index)."""
    return _exact(admin_conn, settings, "pgstatindex", schema, index, extension_schema)
