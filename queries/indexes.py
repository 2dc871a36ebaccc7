"""Indexes: unused, duplicate or redundant, invalid; missing-index hints; each finding with the
SQL that fixes it.

One catalogue query lists every index with what the checks need (no pg_get_indexdef() per
index: expressions and predicates are decompiled only where they exist); the checks themselves
are plain pandas over that frame, so they stay fast on catalogues of tens of thousands of indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from queries.frames import to_frame
from queries.identifiers import qualified, quote_ident


def list_indexes(conn: psycopg.Connection) -> pd.DataFrame:
    """Every index outside the system schemas with what the checks need.

    Kept cheap for catalogues of tens of thousands of indexes: scan counts come straight from
    the statistics functions (not the pg_stat_all_indexes view), sizes from pg_class.relpages
    (as of the last VACUUM, ANALYZE or build, instead of a file-system call per index), and
    column names from one query per catalogue rather than a subquery per index."""
    last_scan = ("pg_stat_get_lastscan(i.indexrelid)" if conn.info.server_version >= 160000
                 else "NULL::timestamptz")
    frame = to_frame(conn.execute(f"""
        SELECT n.nspname                                         AS schema_name,
               t.relname                                         AS table_name,
               c.relname                                         AS index_name,
               i.indexrelid                                      AS index_oid,
               i.indrelid                                        AS table_oid,
               am.amname                                         AS access_method,
               string_to_array(i.indkey::text, ' ')::int[]       AS columns,
               i.indnkeyatts                                     AS key_count,
               i.indclass::text                                  AS opclasses,
               i.indcollation::text                              AS collations,
               i.indisunique                                     AS is_unique,
               i.indisprimary                                    AS is_primary,
               i.indisvalid                                      AS is_valid,
               i.indisready                                      AS is_ready,
               con.contype                                       AS constraint_type,
               con.conname                                       AS constraint_name,
               CASE WHEN i.indexprs IS NOT NULL THEN pg_get_expr(i.indexprs, i.indrelid) END
                                                                 AS expressions,
               CASE WHEN i.indpred IS NOT NULL THEN pg_get_expr(i.indpred, i.indrelid) END
                                                                 AS predicate,
               c.relpages::bigint * current_setting('block_size')::int AS size_bytes,
               pg_stat_get_numscans(i.indexrelid)                AS scans,
               {last_scan}                                       AS last_scan
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = c.relam
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
        """))
    frame["backs_constraint"] = frame["constraint_type"].notna()
    names = table_column_names(conn)
    frame["column_names"] = [
        [names.get(table, [])[n - 1] if 0 < n <= len(names.get(table, [])) else None
         for n in cols] for table, cols in zip(frame["table_oid"], frame["columns"])]
    return frame


def table_column_names(conn: psycopg.Connection) -> dict[int, list[str]]:
    """table oid -> its column names by attnum (position attnum - 1, dropped ones included)."""
    return dict(conn.execute("""
        SELECT a.attrelid, array_agg(a.attname ORDER BY a.attnum)
        FROM pg_attribute a
        WHERE a.attnum > 0
          AND a.attrelid IN (SELECT indrelid FROM pg_index)
        GROUP BY a.attrelid
        """).fetchall())


def drop_sql(schema: str, index: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(schema, index)};"


@dataclass
class IndexFinding:
    schema_name: str
    table_name: str
    index_name: str
    size_bytes: int
    reason: str
    fix: str
    covered_by: str | None = None   # for duplicates: the index that stays

    @property
    def qualified_name(self) -> str:
        return qualified(self.schema_name, self.index_name)


def _describe(row) -> str:
    if _text(row.expressions):
        body = row.expressions
    else:
        names = [n or "?" for n in (row.column_names or [])]
        keys, included = names[:row.key_count], names[row.key_count:]
        body = ", ".join(quote_ident(n) for n in keys)
        if included:
            body += ") INCLUDE (" + ", ".join(quote_ident(n) for n in included)
    text = f"{row.access_method} ({body})"
    return text + (f" WHERE {row.predicate}" if _text(row.predicate) else "")


def unused_indexes(frame: pd.DataFrame, min_size_bytes: int = 0,
                   already_reported: list[IndexFinding] = ()) -> list[IndexFinding]:
    """No scans since the statistics were reset, not backing a primary key, unique or exclusion
    constraint (and not unique at all: a unique index enforces something even unscanned).
    Indexes in a reported duplicate pair (the one to drop and the one that stays) are left
    out, so no two findings ever propose dropping both twins."""
    skip = {(f.schema_name, f.index_name) for f in already_reported}
    skip |= {(f.schema_name, f.covered_by) for f in already_reported if f.covered_by}
    reported = pd.MultiIndex.from_arrays([frame["schema_name"], frame["index_name"]]).isin(
        list(skip)) if skip else False
    rows = frame[(frame["scans"] == 0) & ~frame["is_unique"] & ~frame["backs_constraint"]
                 & frame["is_valid"] & (frame["size_bytes"] >= min_size_bytes) & ~reported]
    return [IndexFinding(r.schema_name, r.table_name, r.index_name, int(r.size_bytes),
                         f"no scans since the statistics reset; {_describe(r)}",
                         drop_sql(r.schema_name, r.index_name))
            for r in rows.sort_values("size_bytes", ascending=False).itertuples()]


def _text(value) -> str | None:
    """A text cell, with any missing-value marker (None, NaN) as None."""
    return value if isinstance(value, str) else None


def _covers(small, big) -> bool:
    """For two indexes with the same table, method, expressions and predicate: True when every
    lookup `small` serves, `big` serves as well: small's key columns (with their operator
    classes and collations) are a leading prefix of big's; small's INCLUDE columns are in big."""
    if small.access_method != "btree" and small.columns != big.columns:
        return False  # prefix matching only means something for B-trees
    n = small.key_count
    if n > big.key_count or small.columns[:n] != big.columns[:n]:
        return False
    # operator classes and collations as oidvector text ("1978 1978"), split only here
    if (small.opclasses.split()[:n] != big.opclasses.split()[:n]
            or small.collations.split()[:n] != big.collations.split()[:n]):
        return False
    return set(small.columns[n:]) <= set(big.columns)


def duplicate_indexes(frame: pd.DataFrame) -> list[IndexFinding]:
    """Indexes another index makes unnecessary. Never proposes dropping one that backs a
    constraint or enforces uniqueness the other does not; of two identical ones, keeps the one
    backing a constraint, else the more used, else the older (lower oid)."""
    findings = []
    # only indexes with the same table, method, expressions and predicate can cover each other
    groups: dict[tuple, list] = {}
    needed = ["schema_name", "table_name", "index_name", "index_oid", "table_oid",
              "access_method", "columns", "key_count", "opclasses", "collations", "is_unique",
              "backs_constraint", "expressions", "predicate", "size_bytes", "scans",
              "column_names"]
    for row in frame.loc[frame["is_valid"], needed].itertuples(index=False):
        key = (row.table_oid, row.access_method, _text(row.expressions), _text(row.predicate))
        groups.setdefault(key, []).append(row)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        for small in rows:
            if small.backs_constraint:
                continue
            for big in rows:
                if big.index_oid == small.index_oid or not _covers(small, big):
                    continue
                identical = (small.key_count == big.key_count and small.columns == big.columns)
                if small.is_unique and not (identical and big.is_unique):
                    continue  # small enforces uniqueness that big does not
                if identical and not big.backs_constraint and big.is_unique == small.is_unique \
                        and (big.scans, -big.index_oid) < (small.scans, -small.index_oid):
                    continue  # of identical twins report one: the less used, else the newer
                kind = "duplicate of" if identical else "redundant: its columns lead"
                findings.append(IndexFinding(
                    small.schema_name, small.table_name, small.index_name, int(small.size_bytes),
                    f"{kind} {quote_ident(big.index_name)} ({_describe(small)} vs "
                    f"{_describe(big)})", drop_sql(small.schema_name, small.index_name),
                    covered_by=big.index_name))
                break
    return findings


def invalid_indexes(conn: psycopg.Connection, frame: pd.DataFrame) -> list[IndexFinding]:
    """Left INVALID by a failed CREATE INDEX CONCURRENTLY (or REINDEX), and not a build running
    right now. Still maintained on every write, never used for reads."""
    building = {r[0] for r in conn.execute(
        "SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid <> 0")}
    rows = frame[~frame["is_valid"] & ~frame["index_oid"].isin(building)]
    return [IndexFinding(r.schema_name, r.table_name, r.index_name, int(r.size_bytes),
                         "INVALID: a concurrent build failed; it slows writes and serves no reads",
                         f"REINDEX INDEX CONCURRENTLY {qualified(r.schema_name, r.index_name)};  "
                         f"-- or: {drop_sql(r.schema_name, r.index_name)}")
            for r in rows.itertuples()]


@dataclass
class MissingIndexHint:
    schema_name: str
    table_name: str
    columns: str
    reason: str
    fix: str | None


def unindexed_foreign_keys(conn: psycopg.Connection, frame: pd.DataFrame) -> list[MissingIndexHint]:
    """Foreign keys with no valid index whose leading columns are the key's columns: deletes
    and updates on the referenced table scan this one, and joins on the key cannot use an index."""
    cur = conn.execute("""
        SELECT n.nspname AS schema_name, t.relname AS table_name, c.conrelid AS table_oid,
               c.conname AS constraint_name, c.conkey::int[] AS columns,
               (SELECT array_agg(a.attname ORDER BY k.ord)
                FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS column_names
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.contype = 'f'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """)
    leading: dict[int, list[list[int]]] = {}
    for r in frame[frame["is_valid"] & frame["predicate"].isna()].itertuples():
        leading.setdefault(r.table_oid, []).append(list(r.columns[:r.key_count]))
    hints = []
    for schema, table, table_oid, name, columns, names in cur.fetchall():
        n = len(columns)
        if any(sorted(lead[:n]) == sorted(columns) for lead in leading.get(table_oid, [])):
            continue
        cols = ", ".join(quote_ident(c) for c in names)
        index_name = f"idx_{table}_{'_'.join(names)}"[:63]
        hints.append(MissingIndexHint(
            schema, table, cols, f"foreign key {quote_ident(name)} ({cols}) has no index leading with "
            "its columns",
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(index_name)} "
            f"ON {qualified(schema, table)} ({cols});"))
    return hints


def sequential_scan_heavy(conn: psycopg.Connection, min_rows: int = 10_000,
                          min_avg_rows: int = 1_000) -> pd.DataFrame:
    """Tables read mostly by sequential scans with many rows per scan: candidates for an index
    (look at the statements that read them on the slow-query page)."""
    cur = conn.execute("""
        SELECT s.schemaname                                        AS schema_name,
               s.relname                                           AS table_name,
               s.seq_scan                                          AS seq_scans,
               s.seq_tup_read                                      AS rows_read_by_seq_scans,
               s.seq_tup_read / nullif(s.seq_scan, 0)              AS avg_rows_per_seq_scan,
               coalesce(s.idx_scan, 0)                             AS index_scans,
               s.seq_scan::float8 / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0)
                                                                   AS seq_scan_share,
               s.n_live_tup                                        AS live_rows,
               pg_relation_size(s.relid)                           AS size_bytes
        FROM pg_stat_user_tables s
        WHERE s.seq_tup_read >= %s
          AND s.seq_tup_read / nullif(s.seq_scan, 0) >= %s
          AND s.seq_scan > coalesce(s.idx_scan, 0)
        ORDER BY s.seq_tup_read DESC
        """, (min_rows, min_avg_rows))
    return to_frame(cur)
