"""Space: what each table takes with its indexes and TOAST, the largest indexes, and how much
each table grew over the stored snapshots."""

from __future__ import annotations

import pandas as pd
import psycopg

from foundation.columns import INDEX, SCHEMA, TABLE, Column
from foundation.frames import to_frame
from reads import indexes


def table_space(conn: psycopg.Connection, limit: int = 200) -> pd.DataFrame:
    """The largest tables and materialized views, biggest first. Sizes from the files (exact
    now); rows are the planner's estimate."""
    return to_frame(conn.execute("""
        SELECT n.nspname                                   AS schema_name,
               c.relname                                   AS table_name,
               CASE c.relkind WHEN 'm' THEN 'materialized view' WHEN 'p' THEN 'partitioned'
                    ELSE 'table' END                       AS kind,
               pg_total_relation_size(c.oid)               AS total_bytes,
               -- with its free-space and visibility maps, so that the parts add up
               pg_table_size(c.oid) - coalesce(pg_total_relation_size(
                   nullif(c.reltoastrelid, 0)), 0)         AS table_bytes,
               pg_indexes_size(c.oid)                      AS index_bytes,
               coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
               nullif(c.reltuples, -1)::bigint             AS estimated_rows
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
        ORDER BY total_bytes DESC
        LIMIT %s""", (limit,)))


def index_space(conn: psycopg.Connection, limit: int = 100) -> pd.DataFrame:
    """The largest indexes with their scans: a big index never scanned is pure cost. Size and
    scans as the Indexes page has them (indexes.SIZE_BYTES and SCANS): the pages, not a
    file-system call for every index of the catalogue before the largest are kept; the scans
    without the latency probes'."""
    return to_frame(conn.execute(f"""
        SELECT n.nspname AS schema_name, t.relname AS table_name, c.relname AS index_name,
               {indexes.SIZE_BYTES} AS size_bytes, {indexes.SCANS} AS scans
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE {indexes.USER_TABLES} AND c.relkind = 'i'
        ORDER BY size_bytes DESC, i.indexrelid
        LIMIT %(limit)s""", {"limit": limit, **indexes.size_and_scans_parameters(conn)}))


def with_growth(tables: pd.DataFrame, changes: pd.DataFrame | None) -> pd.DataFrame:
    """The tables with their growth over the history's period (history.table_changes), NaN where
    no snapshot holds the table at both ends.

    >>> now = pd.DataFrame({"schema_name": ["s", "s"], "table_name": ["a", "b"]})
    >>> old = pd.DataFrame({"schema_name": ["s"], "table_name": ["a"], "bytes_growth": [8192]})
    >>> with_growth(now, old)["growth_bytes"].tolist()
    [8192.0, nan]
    """
    if changes is None or changes.empty:
        return tables.assign(growth_bytes=float("nan"))
    growth = changes[["schema_name", "table_name", "bytes_growth"]].rename(
        columns={"bytes_growth": "growth_bytes"})
    merged = tables.merge(growth, on=["schema_name", "table_name"], how="left")
    merged["growth_bytes"] = pd.to_numeric(merged["growth_bytes"], errors="coerce").astype(float)
    return merged


# How these frames are shown (ui/tables.py)
TABLE_SPACE_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "kind": Column("Kind", width="small"),
    "total_bytes": Column("Total", "bytes", help="Table, indexes and TOAST together"),
    "table_bytes": Column("Table", "bytes"),
    "index_bytes": Column("Indexes", "bytes",
                          help="All of the table's indexes, on disk now (the list of indexes "
                               "gives each one's pages as of its last VACUUM or ANALYZE)"),
    "toast_bytes": Column("TOAST", "bytes", help="Large values stored apart"),
    "estimated_rows": Column("Rows (estimate)", "count", help="From the last ANALYZE"),
    "growth_bytes": Column("Growth, 7 days", "bytes",
                           help="Between the oldest and the newest stored snapshot of the last 7 "
                                "days; empty when no snapshot holds the table"),
}
INDEX_SPACE_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "index_name": INDEX,
    "size_bytes": indexes.INDEX_SIZE, "scans": indexes.INDEX_SCANS,
}
