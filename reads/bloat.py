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
pgstatindex is the only measure). TOAST is not estimated: the Bloat page's read (`estimates`)
shows its size with the note; the plain estimate and the check do not read it (the size of a
TOAST table is read by opening it: on 5,000 tables, more than the rest of the table estimate).
NULL-heavy tables are estimated a few points low: the note gives the bound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from foundation import server
from foundation.columns import INDEX, SCHEMA, SIZE, TABLE, Column
from foundation.frames import to_frame
from foundation.identifiers import qualified
from foundation.looks import read_once
from foundation.roles import Actor
from foundation.threads import work_beside

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
    """One row per column of every table, materialized view and partitioned table (`tables`:
    only these, by oid): its expected width and the alignment it needs, NaN figures where the
    column has no statistics (not analyzed since it was added, or the role may not read them).
    Fixed-width types align by typalign; short varlena values (1-byte header) do not align.
    pg_stats truncates a varlena column's average width to an integer: half a byte is added
    back, or rows near an alignment boundary would round down a whole MAXALIGN step.

    A role that may read pg_statistic (a superuser) reads it by object ids, and so does the
    monitoring login through dbpulse.column_statistics() (schema install, by a superuser: those
    three figures and nothing else); any other reads pg_stats, which checks the column privilege
    per row and names objects, so they are mapped back by name: the same figures for the tables
    it may read, three times the cost on a big catalogue."""
    query = COLUMN_STATS.format(statistics=_statistics(conn, of_tables=tables is not None))
    frame = to_frame(conn.execute(query, {"tables": None if tables is None else list(tables)},
                                  binary=True))
    return frame.sort_values(["relid", "attnum"], kind="stable").reset_index(drop=True)


# Every live column, so the same read says how many columns a relation has and which have
# statistics. A partitioned table has only statistics of its whole tree (inherited); a table
# with inheritance children has both, and its own pages are estimated from its own rows.
COLUMN_STATS = """
        SELECT a.attrelid AS relid, a.attnum,
               s.null_frac,
               s.n_distinct,
               -- attlen and attalign: the column type's typlen and typalign, copied
               (1 - s.null_frac) * (s.avg_width + CASE WHEN a.attlen < 0 THEN 0.5 ELSE 0 END)
                                                           AS width,
               CASE WHEN a.attlen > 0 OR s.avg_width > 127 THEN
                    CASE a.attalign WHEN 'd' THEN 8 WHEN 'i' THEN 4 WHEN 's' THEN 2 ELSE 1 END
                    ELSE 1 END                             AS align
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN ({statistics}) s
               ON s.relid = a.attrelid AND s.attnum = a.attnum
              AND s.inherited = (c.relkind = 'p')
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'm', 'p')
          AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
          AND (%(tables)s::oid[] IS NULL OR a.attrelid = ANY(%(tables)s::oid[]))
        """
STATS_BY_OID = """
        SELECT starelid AS relid, staattnum AS attnum, stainherit AS inherited,
               stanullfrac AS null_frac, stadistinct AS n_distinct, stawidth AS avg_width
        FROM pg_statistic"""
EXPRESSION_STATS = """
        SELECT a.attrelid AS relid, a.attnum, s.null_frac, s.n_distinct,
               (1 - s.null_frac) * (s.avg_width + CASE WHEN a.attlen < 0 THEN 0.5 ELSE 0 END)
                                                           AS width,
               1 AS align
        FROM pg_attribute a
        JOIN ({statistics}) s ON s.relid = a.attrelid AND s.attnum = a.attnum
        WHERE a.attrelid = ANY(%(tables)s::oid[])
        """
# whether the role reads pg_statistic itself; else which of DB Pulse's functions it may use,
# owned by a role that may read it (sql/dbpulse/010 and 021)
STATS_SOURCE = """
        SELECT has_table_privilege('pg_catalog.pg_statistic', 'SELECT'),
               coalesce(bool_or(p.pronargs = 0), false), coalesce(bool_or(p.pronargs = 1), false)
        FROM pg_proc p
        WHERE p.oid IN (to_regprocedure('dbpulse.column_statistics()'),
                        to_regprocedure('dbpulse.column_statistics(oid[])'))
          AND has_function_privilege(p.oid, 'EXECUTE')
          AND has_table_privilege(p.proowner, 'pg_catalog.pg_statistic', 'SELECT')"""
STATS_BY_DEFINER = """
        SELECT relid, attnum, inherited, null_frac, n_distinct, avg_width
        FROM dbpulse.column_statistics()"""
# the tables' only, read by index (the one above builds every column's row first)
STATS_OF_TABLES_BY_DEFINER = """
        SELECT relid, attnum, inherited, null_frac, n_distinct, avg_width
        FROM dbpulse.column_statistics(%(tables)s::oid[])"""
STATS_BY_NAME = """
        SELECT c.oid AS relid, a.attnum, s.inherited, s.null_frac, s.n_distinct, s.avg_width
        FROM pg_stats s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
        WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
          AND (%(tables)s::oid[] IS NULL OR c.oid = ANY(%(tables)s::oid[]))"""


@read_once  # the bloat check asks twice: its tables' statistics and its indexes' expressions'
def _stats_source(conn: psycopg.Connection) -> tuple[bool, bool, bool]:
    return conn.execute(STATS_SOURCE).fetchone()


def _statistics(conn: psycopg.Connection, of_tables: bool) -> str:
    """Where this role reads the column statistics from (column_stats), as a subquery; with
    of_tables, one that may take the %(tables)s parameter to read those tables' only."""
    direct, definer, definer_of_tables = _stats_source(conn)
    if direct:
        return STATS_BY_OID
    if of_tables and definer_of_tables:
        return STATS_OF_TABLES_BY_DEFINER
    return STATS_BY_DEFINER if definer else STATS_BY_NAME


def _row_widths(all_columns: pd.DataFrame) -> pd.DataFrame:
    """Per table: how many columns it has and how many have statistics, and the expected data
    width of a row from those, the padding between columns included. Each column is present
    with probability 1 - null_frac, so the offset it starts at varies from row to row: the
    offset modulo MAXALIGN is tracked as a distribution over the 8 residues, column by column,
    for all tables at once. (Averaging the offsets instead adds padding after mostly-NULL
    columns that most rows do not have.)"""
    if all_columns.empty:
        return pd.DataFrame(columns=["column_count", "columns_with_stats", "max_null_frac",
                                     "data_width"], index=pd.Index([], name="relid"))
    if not all_columns["relid"].is_monotonic_increasing:  # column_stats sorts them
        all_columns = all_columns.sort_values(["relid", "attnum"], kind="stable")
    table_of, tables = pd.factorize(all_columns["relid"])  # in order: sorted by table
    has_stats = all_columns["width"].notna().to_numpy()
    null_frac = all_columns["null_frac"].to_numpy(dtype=float)
    first_column = np.flatnonzero(np.r_[True, table_of[1:] != table_of[:-1]])
    per_table = pd.DataFrame({
        "column_count": np.diff(np.r_[first_column, len(table_of)]),
        "columns_with_stats": np.add.reduceat(has_stats.astype(int), first_column),
        "max_null_frac": np.fmax.reduceat(null_frac, first_column),  # NaN: no statistics
    }, index=pd.Index(tables, name="relid"))
    rows_all = table_of[has_stats]  # each column with statistics: its table's row
    residues = np.zeros((len(tables), MAXALIGN))
    residues[:, 0] = 1.0  # the data starts MAXALIGNed, after the header
    width = np.zeros(len(tables))
    # the column's place among its table's columns with statistics
    position = np.arange(len(rows_all)) - np.searchsorted(rows_all, rows_all)
    columns = all_columns[has_stats]
    present_all = 1 - null_frac[has_stats]
    # the width of a present value (pg_stats' width is averaged over all rows, NULLs as 0)
    value_all = columns["width"].to_numpy(dtype=float) / np.maximum(present_all, 1e-9)
    align_all = columns["align"].to_numpy(dtype=int)
    offsets = np.arange(MAXALIGN)
    for k in range(position.max() + 1 if len(position) else 0):  # every table's k-th column
        at = position == k
        rows, present, value, align = rows_all[at], present_all[at], value_all[at], align_all[at]
        before = residues[rows]  # (tables, 8): where this column may start, modulo MAXALIGN
        pad = (align[:, None] - offsets % align[:, None]) % align[:, None]
        mass = present[:, None] * before
        width[rows] += (mass * (pad + value[:, None])).sum(axis=1)
        # an average width between two whole numbers: some rows end at one, some at the next
        step = np.floor(value).astype(int)
        longer = value - step
        end = offsets + pad + step[:, None]
        cell = np.arange(len(rows))[:, None] * MAXALIGN
        moved = sum(np.bincount((cell + (end + extra) % MAXALIGN).ravel(),
                                (mass * share[:, None]).ravel(), minlength=len(rows) * MAXALIGN)
                    for extra, share in ((0, 1 - longer), (1, longer)))
        residues[rows] = before * (1 - present)[:, None] + moved.reshape(len(rows), MAXALIGN)
    # a table whose columns all lack statistics has no width to speak of
    return per_table.assign(data_width=np.where(per_table["columns_with_stats"] > 0, width,
                                                np.nan))


# what both estimates need about each relation, from pg_class and the statistics functions
# (not the pg_stat_* views, which join the catalogue again per row)
RELATION_COLUMNS = """
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
                min_size_bytes: int = 0,
                spare_conn: psycopg.Connection | None = None,
                with_toast: bool = False) -> pd.DataFrame:
    """Tables and materialized views of at least `min_size_bytes` (a smaller one cannot hold
    more bloat than that). `stats` (from column_stats) can be shared with index_bloat: reading
    the column statistics is most of the cost on a big catalogue; without it, only the
    statistics of the tables read are (every table's when every relation is read: on
    spare_conn meanwhile when given). with_toast: also each TOAST table's size (toast_bytes,
    with a note where there is one)."""
    if stats is None and not min_size_bytes:
        frame, stats = _with_every_tables_stats(conn, lambda c: _tables(c, 0, with_toast),
                                                spare_conn)
    else:
        frame = _tables(conn, min_size_bytes, with_toast)
        if stats is None and not frame.empty:
            stats = column_stats(conn, frame["relid"].unique().tolist())
    return _table_estimate(frame, stats) if not frame.empty else frame


def _with_every_tables_stats(conn: psycopg.Connection, read,
                             spare_conn: psycopg.Connection | None) -> tuple:
    """read(conn) and every table's column statistics: with spare_conn (a second connection
    to the same database) these are read on it meanwhile. (With a size floor, which tables
    is known only once the relations are read, and their statistics are few.)"""
    if spare_conn is None:
        return read(conn), column_stats(conn)
    with work_beside() as pool:
        aside = pool.submit(column_stats, spare_conn)
        relations = read(conn)
        return relations, aside.result()


def _tables(conn: psycopg.Connection, min_size_bytes: int, with_toast: bool) -> pd.DataFrame:
    # the file's size: a TOAST table's relpages waits for a VACUUM, not ANALYZE; reading it
    # opens the TOAST table (a relation cache entry each on a new connection)
    toast = ("CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_size(c.reltoastrelid) ELSE 0 END"
             if with_toast else "NULL::bigint")
    return to_frame(conn.execute(f"""
        SELECT n.nspname                                   AS schema_name,
               {RELATION_COLUMNS},
               c.relname                                   AS table_name,
               c.relkind                                   AS kind,
               c.relnatts                                  AS bitmap_columns,
               pg_stat_get_mod_since_analyze(c.oid)        AS changed_since_analyze,
               {toast}                                     AS toast_bytes
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%'
          AND c.relpages::bigint * %(block_size)s >= %(min_size)s
        """, {"default_fillfactor": 100, "block_size": server.block_size(conn),
              "min_size": min_size_bytes}, binary=True))


def _table_estimate(frame: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
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
    toast = frame["toast_bytes"]
    has_toast = toast > 0  # NaN: not read, no note
    notes = [
        (missing & (frame["estimated_rows"] >= 0), "unknown: statistics missing for some columns (not analyzed since they were "
                  "added, or the monitoring role may not read this table's pg_stats)"),
        (frame["max_null_frac"].fillna(0) > NULL_HEAVY,
         f"NULL-heavy: the estimate may be up to {100 * NULL_HEAVY_BOUND:g} points low"),
        (has_toast, toast[has_toast].map(lambda b: f"TOAST ({b / 1024:,.0f} kB) not estimated")
                    .reindex(frame.index)),  # a text only where there is one
    ]
    return _finish(frame, expected, missing, notes)


def index_bloat(conn: psycopg.Connection, stats: pd.DataFrame | None = None,
                min_size_bytes: int = 0,
                spare_conn: psycopg.Connection | None = None) -> pd.DataFrame:
    """B-tree indexes of at least `min_size_bytes`; the widths of their columns (key and INCLUDE)
    come from their table's column statistics, an expression's from the statistics ANALYZE
    keeps for the index itself (8 bytes are assumed, and said, where it has none). `stats` and
    spare_conn as for table_bloat."""
    if stats is None and not min_size_bytes:
        frame, stats = _with_every_tables_stats(conn, lambda c: _indexes(c, 0), spare_conn)
    else:
        frame = _indexes(conn, min_size_bytes)
        if stats is None and not frame.empty:
            stats = column_stats(conn, frame["table_oid"].unique().tolist())
    if frame.empty:
        return frame
    return _index_estimate(frame, _with_expression_stats(conn, frame, stats))


def table_and_index_bloat(conn: psycopg.Connection,
                          min_size_bytes: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """table_bloat and index_bloat of the relations of at least `min_size_bytes`, with one read
    of the column statistics (of the tables either estimate needs) instead of one each."""
    tables, idx = _tables(conn, min_size_bytes, False), _indexes(conn, min_size_bytes)
    wanted = sorted(set(tables["relid"].tolist() if not tables.empty else ())
                    | set(idx["table_oid"].tolist() if not idx.empty else ()))
    stats = column_stats(conn, wanted) if wanted else None
    return (_table_estimate(tables, stats) if not tables.empty else tables,
            _index_estimate(idx, _with_expression_stats(conn, idx, stats)) if not idx.empty
            else idx)


def _with_expression_stats(conn: psycopg.Connection, frame: pd.DataFrame,
                           stats: pd.DataFrame) -> pd.DataFrame:
    """The table statistics and, for the indexes with expressions, the index's own (ANALYZE
    keeps them under the index, by position)."""
    indexes = frame.loc[frame["has_expressions"].astype(bool), "relid"].tolist()
    if not indexes:
        return stats
    found = to_frame(conn.execute(EXPRESSION_STATS.format(
        statistics=_statistics(conn, of_tables=True)), {"tables": indexes}, binary=True))
    return pd.concat([stats, found], ignore_index=True) if not found.empty else stats


def _indexes(conn: psycopg.Connection, min_size_bytes: int) -> pd.DataFrame:
    # Every index: the tables first, then their indexes by hash joins (one row per table for
    # the statistics function, no lookup per index). With a size floor (the check's, the Bloat
    # page's default), the indexes that big first, each table looked up by oid: at 25,000
    # indexes none of which was big enough, 8 against 15 ms; were every index that big, 90
    # against 64.
    tables_first = "NOT MATERIALIZED" if min_size_bytes else "MATERIALIZED"
    return to_frame(conn.execute(f"""
        WITH tables AS {tables_first} (
            SELECT t.oid, t.relname, n.nspname,
                   pg_stat_get_mod_since_analyze(t.oid) AS changed_since_analyze
            FROM pg_class t
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE t.relkind IN ('r', 'm', 'p')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              AND n.nspname NOT LIKE 'pg_temp%%')
        SELECT t.nspname                                   AS schema_name,
               {RELATION_COLUMNS},
               t.relname                                   AS table_name,
               c.relname                                   AS index_name,
               i.indrelid                                  AS table_oid,
               -- "1 3": the columns' numbers, key columns then INCLUDE ones, 0 for an
               -- expression (text: parsing 25,000 arrays row by row costs more than splitting
               -- one string)
               array_to_string((i.indkey::int2[])[0:i.indnatts - 1], ' ') AS index_columns,
               i.indnkeyatts                               AS key_count,
               i.indnatts                                  AS entry_columns,
               i.indexprs IS NOT NULL                      AS has_expressions,
               -- deduplication: PostgreSQL 13+, unless switched off or with INCLUDE columns
               %(deduplication)s AND i.indnatts = i.indnkeyatts
                 AND (c.reloptions IS NULL
                      OR coalesce((SELECT o.option_value::bool
                                   FROM pg_options_to_table(c.reloptions) o
                                   WHERE o.option_name = 'deduplicate_items'), true))
                                                           AS may_deduplicate,
               t.changed_since_analyze
        FROM pg_index i
        JOIN tables t ON t.oid = i.indrelid
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
          AND c.relpages::bigint * %(block_size)s >= %(min_size)s
        """, {"default_fillfactor": 90, "block_size": server.block_size(conn),
              "min_size": min_size_bytes,
              "deduplication": conn.info.server_version >= 130000}, binary=True))


def _index_estimate(frame: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
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
        (frame["expression_keys"] > 0,
         "expression without statistics (not analyzed yet): its width is assumed to be 8 bytes"),
        (frame["max_null_frac"].fillna(0) > NULL_HEAVY,
         f"NULL-heavy: the estimate may be up to {100 * NULL_HEAVY_BOUND:g} points low"),
    ]
    return _finish(frame, expected, missing_stats | deduplicated, notes)


def estimates(conn: psycopg.Connection, min_size_bytes: int = 0,
              spare_conn: psycopg.Connection | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both estimates, as the Bloat page shows them, TOAST sizes included. With every
    relation, one read of the column statistics serves both (on spare_conn while the relations
    are read, when given)."""
    if min_size_bytes:  # each reads the statistics of its own relations' tables only
        return (table_bloat(conn, min_size_bytes=min_size_bytes, with_toast=True),
                index_bloat(conn, min_size_bytes=min_size_bytes))
    (tables, indexes), stats = _with_every_tables_stats(
        conn, lambda c: (_tables(c, 0, with_toast=True), _indexes(c, 0)), spare_conn)
    return (_table_estimate(tables, stats) if not tables.empty else tables,
            _index_estimate(indexes, _with_expression_stats(conn, indexes, stats))
            if not indexes.empty else indexes)


def _key_widths(frame: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Per index row, over every column an entry holds (key and INCLUDE columns): their summed
    width (8 bytes for an expression or a column without statistics), their largest null
    fraction, how many are expressions without statistics and how many columns have
    statistics; and over the key columns only, the distinct key combinations as the planner
    estimates them (the product of n_distinct, negative meaning a share of the rows; at most
    the rows; NaN when a key has no statistics). An expression's statistics are the index's
    own, by position. Arrays over every column of every index at once, no loop per index."""
    per_index = frame["entry_columns"].to_numpy()
    attnum = np.array(" ".join(frame["index_columns"]).split(), dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(per_index)[:-1]))
    position = np.arange(len(attnum)) - np.repeat(first, per_index) + 1
    is_key = position <= np.repeat(frame["key_count"].to_numpy(), per_index)
    is_expression = attnum == 0
    # an expression's statistics are the index's own, at its position in the index
    owner = np.where(is_expression, np.repeat(frame["relid"].to_numpy(dtype=np.int64), per_index),
                     np.repeat(frame["table_oid"].to_numpy(dtype=np.int64), per_index))
    number = np.where(is_expression, position, attnum)
    rows = np.repeat(frame["estimated_rows"].clip(lower=0).to_numpy(dtype=float), per_index)
    # each column's statistics row, found by (relation, column number) packed into one integer
    packed = stats["relid"].to_numpy(dtype=np.int64) * 65536 + stats["attnum"].to_numpy(dtype=np.int64)
    at = pd.Index(packed).get_indexer(owner * 65536 + number)
    found = at >= 0

    def figure(name: str) -> np.ndarray:
        values = stats[name].to_numpy(dtype=float)
        return np.where(found, values[at], np.nan)

    width, null_frac, n_distinct = figure("width"), figure("null_frac"), figure("n_distinct")
    guessed = is_expression & np.isnan(width)
    has_stats = ~np.isnan(width) | is_expression
    # a product over the key columns as a sum of logarithms (INCLUDE columns add nothing)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_distinct = np.where(is_key, np.log(np.clip(
            np.where(n_distinct >= 0, n_distinct, -n_distinct * rows), 1e-9, None)), 0.0)
    result = pd.DataFrame({
        "data_width": np.add.reduceat(np.nan_to_num(width, nan=8.0), first),
        "max_null_frac": np.maximum.reduceat(np.nan_to_num(null_frac, nan=0.0), first),
        "column_count": per_index,
        "expression_keys": np.add.reduceat(guessed.astype(int), first),
        "columns_with_stats": np.add.reduceat(has_stats.astype(int), first),
    }, index=frame.index)
    # NaN (a key without n_distinct) makes the sum NaN: the distinct count is unknown
    distinct = np.minimum(np.exp(np.add.reduceat(log_distinct, first)),
                          frame["estimated_rows"].clip(lower=0).to_numpy(dtype=float))
    result["distinct_keys"] = distinct
    return result


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
    frame["stats_note"] = _joined_notes(len(frame), notes)
    # ties in a fixed order, whatever order the catalogue returned the rows in
    return frame.sort_values(["bloat_bytes", "relid"], ascending=[False, True],
                             na_position="last").reset_index(drop=True)


def _joined_notes(count: int, notes: list[tuple[pd.Series, object]]) -> np.ndarray:
    """Each row's notes joined with "; ", in the order given. Rows are grouped by which notes
    apply, so 25,000 rows build a handful of texts, not 25,000; a note that is a Series (one
    text per row) is added to its group's rows as an array.

    >>> rows = pd.Series([True, False, True])
    >>> list(_joined_notes(3, [(rows, "a"), (~rows, "b"), (rows, pd.Series(["x", "y", "z"]))]))
    ['a; x', 'b', 'a; z']
    """
    masks = np.column_stack([np.asarray(mask, dtype=bool) for mask, _ in notes])
    which = masks @ (1 << np.arange(len(notes)))  # one bit per note
    text = np.full(count, "", dtype=object)
    for group in np.unique(which[which > 0]):
        rows = np.flatnonzero(which == group)
        parts = [note.to_numpy(dtype=object)[rows] if isinstance(note, pd.Series) else note
                 for bit, (_, note) in enumerate(notes) if group >> bit & 1]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + "; " + part
        text[rows] = joined
    return text


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
    # why an estimate is missing or shaky: wrapped under the grid, where it is read in full
    "stats_note": Column("Note", explains=True),
}
INDEX_BLOAT_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "index_name": INDEX, "size_bytes": SIZE,
    "bloat_bytes": Column("Bloat", "bytes"), "bloat_ratio": Column("Bloat share", "share"),
    "stats_note": Column("Note", explains=True),
}
EXACT_COLUMNS = {  # pgstattuple's figures, one row per measure
    "measure": Column("Measure"), "value": Column("Value", "number", digits=2),
}
