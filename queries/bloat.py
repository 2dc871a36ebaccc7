"""Table and B-tree index bloat: estimates from the planner statistics, exact figures on demand.

The estimate: from pg_stats, each row's expected width (average column widths weighted by their
non-null fraction, with the padding each column's alignment needs after the ones before it,
plus the tuple header with its null bitmap, aligned to MAXALIGN, plus the 4-byte line
pointer); from it, rows per page under the relation's fillfactor; from reltuples, the pages the
relation should need. Bloat is what it has beyond that. Column statistics are aggregated once
per table in one pass, which keeps it fast on big catalogues.

It is an estimate: the padding is approximated from average widths. Where it cannot be trusted
the bloat is unknown (NaN) with the reason in `stats_note`, never 0: a relation never analyzed,
columns without statistics (or statistics the monitoring role may not read), a B-tree index that
PostgreSQL 13+ may have deduplicated (few distinct keys: it is smaller than "expected" and
pgstatindex is the only measure). TOAST is not estimated: its size is shown with the note.
NULL-heavy tables are estimated a few points low: the note gives the bound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from queries import server
from queries.columns import INDEX, SCHEMA, SIZE, TABLE, Column
from queries.frames import to_frame
from queries.identifiers import qualified
from queries.roles import Actor

MAXALIGN = 8
PAGE_HEADER = 24
BTREE_SPECIAL = 16
HEAP_TUPLE_HEADER = 23
INDEX_TUPLE_HEADER = 8
LINE_POINTER = 4
# a key column more than this share NULL makes the table estimate low by up to the bound
NULL_HEAVY, NULL_HEAVY_BOUND = 0.5, 0.10
# fewer distinct keys than this share of the rows: a deduplicated index, size unknowable
DEDUP_DISTINCT_SHARE = 0.5


def _align(n: pd.Series) -> pd.Series:
    return np.ceil(n / MAXALIGN) * MAXALIGN


def column_stats(conn: psycopg.Connection, tables: list[int] | None = None) -> pd.DataFrame:
    """One row per analyzed column: its expected width and the alignment it needs. Fixed-width
    types align by typalign; short varlena values (1-byte header) do not align. pg_stats
    truncates a varlena column's average width to an integer: half a byte is added back, or
    rows near an alignment boundary would round down a whole MAXALIGN step.

    A role that may read pg_statistic (a superuser) reads it by object ids; any other reads
    pg_stats, which checks the column privilege per row and names objects, so they are mapped
    back by name: the same figures, three times the cost on a big catalogue. `tables`: only
    these tables' columns (by oid), else every table's."""
    direct = conn.execute(
        "SELECT has_table_privilege('pg_catalog.pg_statistic', 'SELECT')").fetchone()[0]
    frame = to_frame(conn.execute(STATS_BY_OID if direct else STATS_BY_NAME,
                                  {"tables": None if tables is None else list(tables)},
                                  binary=True))
    return frame.sort_values(["relid", "attnum"], kind="stable")


# the figures column_stats needs, by either path: s holds them under pg_stats' names
STATS_FIGURES = """
               s.null_frac,
               s.n_distinct,
               (1 - s.null_frac) * (s.avg_width + CASE WHEN t.typlen < 0 THEN 0.5 ELSE 0 END)
                                                           AS width,
               CASE WHEN t.typlen > 0 OR s.avg_width > 127 THEN
                    CASE t.typalign WHEN 'd' THEN 8 WHEN 'i' THEN 4 WHEN 's' THEN 2 ELSE 1 END
                    ELSE 1 END                             AS align"""
STATS_BY_NAME = f"""
        SELECT c.oid AS relid, a.attnum, {STATS_FIGURES}
        FROM pg_stats s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
          AND (%(tables)s::oid[] IS NULL OR c.oid = ANY(%(tables)s::oid[]))
        """
STATS_BY_OID = f"""
        SELECT s.relid, s.attnum, {STATS_FIGURES}
        FROM (SELECT starelid AS relid, staattnum AS attnum, stanullfrac AS null_frac,
                     stadistinct AS n_distinct, stawidth AS avg_width FROM pg_statistic) s
        JOIN pg_class c ON c.oid = s.relid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = s.relid AND a.attnum = s.attnum AND NOT a.attisdropped
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND (%(tables)s::oid[] IS NULL OR s.relid = ANY(%(tables)s::oid[]))
        """


def _only(tables: pd.Series, min_size_bytes: int) -> list[int] | None:
    """The tables whose statistics are needed: all (None) when every relation is read, which
    is cheaper than a list of thousands of oids."""
    return tables.unique().tolist() if min_size_bytes > 0 else None


def _row_widths(columns: pd.DataFrame) -> pd.DataFrame:
    """Per table: the expected data width of a row, the padding between columns included. Each column is present with probability 1 - null_frac, so the
    offset it starts at varies from row to row: the offset modulo MAXALIGN is tracked as a
    distribution over the 8 residues, column by column, for all tables at once. (Averaging the
    offsets instead adds padding after mostly-NULL columns that most rows do not have.)"""
    if columns.empty:
        return pd.DataFrame(columns=["data_width", "max_null_frac",
                                     "columns_with_stats"])
    tables = columns["relid"].drop_duplicates().to_numpy()
    row_of = pd.Series(np.arange(len(tables)), index=tables)
    residues = np.zeros((len(tables), MAXALIGN))
    residues[:, 0] = 1.0  # the data starts MAXALIGNed, after the header
    width = np.zeros(len(tables))
    position = columns.groupby("relid").cumcount().to_numpy()
    present_all = 1 - columns["null_frac"].to_numpy(dtype=float)
    # the width of a present value (pg_stats' width is averaged over all rows, NULLs as 0)
    value_all = columns["width"].to_numpy(dtype=float) / np.maximum(present_all, 1e-9)
    align_all = columns["align"].to_numpy(dtype=int)
    rows_all = row_of[columns["relid"]].to_numpy()
    for k in range(position.max() + 1):
        at = position == k
        rows, present, value, align = rows_all[at], present_all[at], value_all[at], align_all[at]
        before = residues[rows]
        after = before * (1 - present)[:, None]
        # an average width between two whole numbers: some rows end at one, some at the next
        step = np.floor(value).astype(int)
        longer = value - step
        for r in range(MAXALIGN):
            pad = (align - r % align) % align
            mass = present * before[:, r]
            width[rows] += mass * (pad + value)
            for extra, share in ((0, 1 - longer), (1, longer)):
                np.add.at(after, (np.arange(len(rows)), (r + pad + step + extra) % MAXALIGN),
                          mass * share)
        residues[rows] = after
    per_table = columns.groupby("relid").agg(max_null_frac=("null_frac", "max"),
                                             columns_with_stats=("attnum", "count"))
    return per_table.assign(data_width=pd.Series(width, index=tables))


# what both estimates need about each relation, from pg_class and the statistics functions
# (not the pg_stat_* views, which join the catalogue again per row)
RELATION_COLUMNS = """
               n.nspname                                   AS schema_name,
               c.oid                                       AS relid,
               c.relpages                                  AS pages,
               c.reltuples                                 AS estimated_rows,
               c.relpages::bigint * %(block_size)s          AS size_bytes,
               %(block_size)s                              AS block_size,
               -- most relations have no options: skip the function call for them
               CASE WHEN c.reloptions IS NULL THEN %(default_fillfactor)s
                    ELSE coalesce((SELECT o.option_value::int
                                   FROM pg_options_to_table(c.reloptions) o
                                   WHERE o.option_name = 'fillfactor'), %(default_fillfactor)s)
               END                                         AS fillfactor
"""


def table_bloat(conn: psycopg.Connection, stats: pd.DataFrame | None = None,
                min_size_bytes: int = 0) -> pd.DataFrame:
    """Tables and materialized views of at least `min_size_bytes` (a smaller one cannot hold
    more bloat than that). `stats` (from column_stats) can be shared with index_bloat: reading
    the column statistics is most of the cost on a big catalogue; without it, only the
    statistics of the tables read are."""
    frame = to_frame(conn.execute(f"""
        SELECT {RELATION_COLUMNS},
               c.relname                                   AS table_name,
               c.relkind                                   AS kind,
               c.relnatts                                  AS bitmap_columns,
               (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS column_count,
               pg_stat_get_mod_since_analyze(c.oid)        AS changed_since_analyze,
               greatest(pg_stat_get_last_analyze_time(c.oid),
                        pg_stat_get_last_autoanalyze_time(c.oid)) AS last_analyzed,
               -- the file's size: a TOAST table's relpages waits for a VACUUM, not ANALYZE
               CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_size(c.reltoastrelid) ELSE 0 END
                                                           AS toast_bytes
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
          AND c.relpages::bigint * %(block_size)s >= %(min_size)s
        """, {"default_fillfactor": 100, "block_size": server.block_size(conn),
              "min_size": min_size_bytes}, binary=True))
    if frame.empty:
        return frame
    stats = column_stats(conn, _only(frame["relid"], min_size_bytes)) if stats is None else stats
    frame = frame.join(_row_widths(stats), on="relid")
    bitmap = np.where(frame["max_null_frac"].fillna(0) > 0,
                      np.ceil(frame["bitmap_columns"] / 8), 0)  # dropped columns count here
    header = _align(HEAP_TUPLE_HEADER + pd.Series(bitmap, index=frame.index))
    row_bytes = _align(header + frame["data_width"].astype(float).fillna(0)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER) * frame["fillfactor"] / 100
    rows_per_page = np.maximum(np.floor(usable / row_bytes), 1)
    rows = frame["estimated_rows"].clip(lower=0)
    expected = np.ceil(rows / rows_per_page)
    missing = frame["columns_with_stats"].fillna(0) < frame["column_count"]
    notes = [
        (missing & (frame["estimated_rows"] >= 0), "unknown: statistics missing for some columns (not analyzed since they were "
                  "added, or the monitoring role may not read this table's pg_stats)"),
        (frame["max_null_frac"].fillna(0) > NULL_HEAVY,
         f"NULL-heavy: the estimate may be up to {100 * NULL_HEAVY_BOUND:g} points low"),
        (frame["toast_bytes"] > 0,
         frame["toast_bytes"].map(lambda b: f"TOAST ({b / 1024:,.0f} kB) not estimated")),
    ]
    return _finish(frame, expected, missing, notes)


def index_bloat(conn: psycopg.Connection, stats: pd.DataFrame | None = None,
                min_size_bytes: int = 0) -> pd.DataFrame:
    """B-tree indexes of at least `min_size_bytes`; key column widths come from their table's
    column statistics (expression columns have none: 8 bytes are assumed and the row is
    flagged)."""
    frame = to_frame(conn.execute(f"""
        -- the table's statistics once per table, not once for each of its indexes
        WITH analyzed AS MATERIALIZED (
            SELECT t.oid, pg_stat_get_mod_since_analyze(t.oid) AS changed_since_analyze,
                   greatest(pg_stat_get_last_analyze_time(t.oid),
                            pg_stat_get_last_autoanalyze_time(t.oid)) AS last_analyzed
            FROM pg_class t WHERE t.relkind IN ('r', 'm', 'p'))
        SELECT {RELATION_COLUMNS},
               t.relname                                   AS table_name,
               c.relname                                   AS index_name,
               i.indrelid                                  AS table_oid,
               (i.indkey::int2[])[0:i.indnkeyatts - 1]     AS key_columns,
               -- deduplication: PostgreSQL 13+, unless switched off or with INCLUDE columns
               %(deduplication)s AND i.indnatts = i.indnkeyatts
                 AND (c.reloptions IS NULL
                      OR coalesce((SELECT o.option_value::bool
                                   FROM pg_options_to_table(c.reloptions) o
                                   WHERE o.option_name = 'deduplicate_items'), true))
                                                           AS may_deduplicate,
               analyzed.changed_since_analyze,
               analyzed.last_analyzed
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN analyzed ON analyzed.oid = t.oid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
          AND c.relpages::bigint * %(block_size)s >= %(min_size)s
        """, {"default_fillfactor": 90, "block_size": server.block_size(conn),
              "min_size": min_size_bytes,
              "deduplication": conn.info.server_version >= 130000}, binary=True))
    if frame.empty:
        return frame
    stats = (column_stats(conn, _only(frame["table_oid"], min_size_bytes)) if stats is None
             else stats)
    frame = frame.join(_key_widths(frame, stats))
    bitmap = np.where(frame["max_null_frac"] > 0, MAXALIGN, 0)
    entry = _align(INDEX_TUPLE_HEADER + bitmap + frame["data_width"].astype(float)) + LINE_POINTER
    usable = (frame["block_size"] - PAGE_HEADER - BTREE_SPECIAL) * frame["fillfactor"] / 100
    per_page = np.maximum(np.floor(usable / entry), 1)
    leaves = np.ceil(frame["estimated_rows"].clip(lower=0) / per_page)
    expected = leaves + np.ceil(leaves / per_page) + 1  # internal levels (roughly) + metapage
    # PostgreSQL 13+ stores a key repeated by many rows once, with a list of row pointers: such
    # an index needs far fewer pages than one entry per row, by an amount the statistics
    # cannot tell
    # (an index of one leaf page is as small as it gets, deduplicated or not)
    deduplicated = (frame["may_deduplicate"].astype(bool) & (leaves > 1)
                    & (frame["distinct_keys"] < DEDUP_DISTINCT_SHARE
                       * frame["estimated_rows"].clip(lower=1)))
    missing_stats = frame["columns_with_stats"] < frame["column_count"]
    notes = [
        (missing_stats & (frame["estimated_rows"] >= 0), "unknown: statistics missing for some key columns (or the monitoring "
                        "role may not read this table's pg_stats)"),
        (deduplicated & ~missing_stats,
         "unknown: B-tree deduplication (few distinct keys) makes the estimate meaningless; "
         "measure with pgstatindex"),
        (frame["expression_keys"] > 0, "expression key: its width is assumed to be 8 bytes"),
        (frame["max_null_frac"].fillna(0) > NULL_HEAVY,
         f"NULL-heavy: the estimate may be up to {100 * NULL_HEAVY_BOUND:g} points low"),
    ]
    return _finish(frame, expected, missing_stats | deduplicated, notes)


def _key_widths(frame: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Per index row: the key columns' summed width (8 bytes for an expression or a column
    without statistics), their largest null fraction, how many key columns are expressions and
    how many plain columns have statistics, and the distinct key combinations as the planner
    estimates them (the product of n_distinct, negative meaning a share of the rows; at most
    the rows; NaN when a key has no statistics). One merge, no loop per index."""
    keys = frame[["table_oid", "key_columns", "estimated_rows"]].explode("key_columns")
    keys = keys.rename(columns={"table_oid": "relid", "key_columns": "attnum"}).dropna(
        subset=["attnum"])
    keys["row"] = keys.index
    keys["attnum"] = keys["attnum"].astype(int)
    keys = keys.merge(stats[["relid", "attnum", "width", "null_frac", "n_distinct"]],
                      on=["relid", "attnum"], how="left")
    rows = keys["estimated_rows"].clip(lower=0)
    keys["is_expression"] = keys["attnum"] == 0
    keys["has_stats"] = keys["width"].notna() | keys["is_expression"]
    keys["width"] = keys["width"].fillna(8.0)
    keys["null_frac"] = keys["null_frac"].fillna(0.0)
    # a product over the key columns as a sum of logarithms, so one groupby does it
    keys["log_distinct"] = np.log(np.where(keys["n_distinct"] >= 0, keys["n_distinct"],
                                           -keys["n_distinct"] * rows).clip(min=1e-9))
    keys["no_distinct"] = keys["log_distinct"].isna()
    per_index = keys.groupby("row").agg(
        data_width=("width", "sum"), max_null_frac=("null_frac", "max"),
        column_count=("attnum", "size"), expression_keys=("is_expression", "sum"),
        columns_with_stats=("has_stats", "sum"), log_distinct=("log_distinct", "sum"),
        no_distinct=("no_distinct", "any"))
    distinct = np.minimum(np.exp(per_index.pop("log_distinct")),
                          frame["estimated_rows"].clip(lower=0).reindex(per_index.index))
    per_index["distinct_keys"] = distinct.where(~per_index.pop("no_distinct"))
    return per_index


def _finish(frame: pd.DataFrame, expected_pages: pd.Series, unknown: pd.Series,
            notes: list[tuple[pd.Series, object]]) -> pd.DataFrame:
    """Bloat from the expected pages; NaN (unknown) where the estimate cannot be trusted;
    stats_note: every reason that applies to the row, most important first."""
    never = frame["estimated_rows"] < 0
    unknown = unknown | never
    stale = frame["changed_since_analyze"].fillna(0) > 0.2 * frame["estimated_rows"].clip(lower=1000)
    frame["expected_pages"] = expected_pages
    frame["bloat_pages"] = (frame["pages"] - expected_pages).clip(lower=0).where(~unknown)
    frame["bloat_bytes"] = frame["bloat_pages"] * frame["block_size"]
    frame["bloat_ratio"] = (frame["bloat_pages"] / frame["pages"].where(frame["pages"] > 0)
                            ).where(frame["pages"] > 0, 0.0).where(~unknown)
    notes = [(never, "never analyzed: no estimate")] + notes + [
        (stale & ~never, "statistics stale: many changes since the last ANALYZE")]
    text = pd.Series("", index=frame.index, dtype=object)
    for mask, note in notes:  # whole columns at a time: thousands of rows may carry a note
        add = (note if isinstance(note, pd.Series) else pd.Series(note, index=frame.index)
               ).where(mask.astype(bool), "").astype(object)
        text = text + np.where((text != "") & (add != ""), "; ", "") + add
    frame["stats_note"] = text
    # ties in a fixed order, whatever order the catalogue returned the rows in
    return frame.sort_values(["bloat_bytes", "relid"], ascending=[False, True],
                             na_position="last").reset_index(drop=True)


def table_fix_sql(schema: str, table: str) -> str:
    name = qualified(schema, table)
    return (f"VACUUM (ANALYZE) {name};  -- reclaims dead rows for reuse; to give space back to "
            f"the OS: pg_repack, or VACUUM FULL {name} (ACCESS EXCLUSIVE lock for its duration)")


def index_fix_sql(schema: str, index: str) -> str:
    return f"REINDEX INDEX CONCURRENTLY {qualified(schema, index)};"


def _exact(admin_conn: psycopg.Connection, who: Actor, function: str, schema: str,
           name: str, extension_schema: str) -> dict:
    who.require_dba("Measuring exact bloat")
    cur = admin_conn.execute(sql.SQL("SELECT * FROM {}.{}({}::regclass)").format(
        sql.Identifier(extension_schema), sql.Identifier(function),
        sql.Literal(qualified(schema, name))))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def exact_table_bloat(admin_conn: psycopg.Connection, who: Actor, schema: str,
                      table: str, extension_schema: str = "public") -> dict:
    """pgstattuple_approx on one table (DBA action: it reads the relation)."""
    return _exact(admin_conn, who, "pgstattuple_approx", schema, table, extension_schema)


def exact_index_bloat(admin_conn: psycopg.Connection, who: Actor, schema: str,
                      index: str, extension_schema: str = "public") -> dict:
    """pgstatindex on one B-tree index (DBA action: it reads the whole index)."""
    return _exact(admin_conn, who, "pgstatindex", schema, index, extension_schema)


# How these frames are shown (ui/tables.py); an empty estimate is "unknown" (see stats_note)
TABLE_BLOAT_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "size_bytes": SIZE,
    "bloat_bytes": Column("Bloat", "bytes", help="Estimated space beyond what the rows need"),
    "bloat_ratio": Column("Bloat share", "share"),
    "toast_bytes": Column("TOAST", "bytes", help="Not estimated"),
    "fillfactor": Column("Fillfactor", "count", unit="%"),
    "stats_note": Column("Note", width="large"),
}
INDEX_BLOAT_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "index_name": INDEX, "size_bytes": SIZE,
    "bloat_bytes": Column("Bloat", "bytes"), "bloat_ratio": Column("Bloat share", "share"),
    "stats_note": Column("Note", width="large"),
}
EXACT_COLUMNS = {  # pgstattuple's figures, one row per measure
    "measure": Column("Measure"), "value": Column("Value", "number", digits=2),
}
