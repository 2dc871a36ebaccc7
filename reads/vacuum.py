"""Vacuum health: dead rows and each table's autovacuum trigger point, transaction ID
wraparound age, and sequences running out of values."""

from __future__ import annotations

import pandas as pd
import psycopg

from foundation.columns import SCHEMA, TABLE, Column
from foundation.frames import to_frame
from foundation.identifiers import qualified, quote_ident

# 2^31 - 1: past this many transactions a database must be frozen or it stops accepting writes
XID_LIMIT = 2_147_483_647


def vacuum_status(conn: psycopg.Connection, min_dead_rows: int = 0) -> pd.DataFrame:
    """Per table with at least `min_dead_rows` dead rows: dead rows, last (auto)vacuum and
    (auto)analyze, and where autovacuum will trigger (autovacuum_vacuum_threshold +
    scale_factor * rows, per-table settings first). Read from pg_class and the statistics
    functions: pg_stat_user_tables also sums every index's scans per table, which is most of
    its cost on a big catalogue and not needed here."""
    return to_frame(conn.execute("""
        WITH defaults AS MATERIALIZED (  -- once, not once per table
            SELECT current_setting('autovacuum')::bool                           AS enabled,
                   current_setting('autovacuum_vacuum_threshold')::int           AS threshold,
                   current_setting('autovacuum_vacuum_scale_factor')::float8     AS scale_factor,
                   current_setting('block_size')::int                            AS block_size),
        -- the tables with that many dead rows first: their schemas are looked up for a few
        tables AS MATERIALIZED (
            SELECT c.oid, c.relnamespace, c.relname, c.reltuples, c.relpages, c.relfrozenxid,
                   c.reloptions, pg_stat_get_dead_tuples(c.oid) AS dead_rows
            FROM pg_class c
            WHERE c.relkind IN ('r', 'm', 'p')
              AND pg_stat_get_dead_tuples(c.oid) >= %(min_dead_rows)s)
        SELECT n.nspname                                           AS schema_name,
               t.relname                                           AS table_name,
               pg_stat_get_live_tuples(t.oid)                      AS live_rows,
               t.dead_rows,
               t.dead_rows::float8
                 / nullif(pg_stat_get_live_tuples(t.oid) + t.dead_rows, 0) AS dead_share,
               pg_stat_get_last_vacuum_time(t.oid)                 AS last_vacuum,
               pg_stat_get_last_autovacuum_time(t.oid)             AS last_autovacuum,
               pg_stat_get_last_analyze_time(t.oid)                AS last_analyze,
               pg_stat_get_last_autoanalyze_time(t.oid)            AS last_autoanalyze,
               pg_stat_get_mod_since_analyze(t.oid)                AS changed_since_analyze,
               coalesce(o.enabled::bool, d.enabled)                AS autovacuum_enabled,
               coalesce(o.threshold::int, d.threshold)
                 + coalesce(o.scale_factor::float8, d.scale_factor) * greatest(t.reltuples, 0)
                                                                   AS autovacuum_trigger_rows,
               age(t.relfrozenxid)                                 AS xid_age,
               t.relpages::bigint * d.block_size                   AS table_bytes
        FROM tables t
        JOIN pg_namespace n ON n.oid = t.relnamespace
        CROSS JOIN defaults d
        LEFT JOIN LATERAL (
            SELECT max(option_value) FILTER (WHERE option_name = 'autovacuum_enabled') AS enabled,
                   max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_threshold')
                                                                   AS threshold,
                   max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_scale_factor')
                                                                   AS scale_factor
            FROM pg_options_to_table(t.reloptions)) o ON t.reloptions IS NOT NULL
        -- the tables pg_stat_user_tables lists
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        ORDER BY t.dead_rows DESC, t.oid
        """, {"min_dead_rows": min_dead_rows})).assign(
        trigger_progress=lambda f: f["dead_rows"] / f["autovacuum_trigger_rows"].clip(lower=1))


def wraparound(conn: psycopg.Connection) -> pd.DataFrame:
    """Transaction ID age of every database against the hard limit and autovacuum_freeze_max_age."""
    frame = to_frame(conn.execute("""
        SELECT datname                                             AS database_name,
               age(datfrozenxid)                                   AS xid_age,
               current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age
        FROM pg_database
        WHERE datallowconn
        ORDER BY age(datfrozenxid) DESC
        """))
    frame["share_of_limit"] = frame["xid_age"] / XID_LIMIT
    return frame


# the monitoring login's way to the sequences' last values (sql/dbpulse/013_sequence_values.sql),
# used where its owner may read every sequence
SEQUENCE_VALUES_USABLE = """
    SELECT coalesce((SELECT has_function_privilege(p.oid, 'EXECUTE')
                            AND (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner)
                     FROM pg_proc p
                     WHERE p.oid = to_regprocedure('dbpulse.sequence_last_values()')), false)"""
SEQUENCE_VALUES = "SELECT seqrelid, last_value FROM dbpulse.sequence_last_values()"
NONE_GIVEN = "SELECT NULL::oid AS seqrelid, NULL::bigint AS last_value WHERE false"


def sequences_near_max(conn: psycopg.Connection, min_share: float = 0.0) -> pd.DataFrame:
    """Sequences by how much of their range is used, in the direction they count (a descending
    one from its max_value down): the range is the sequence's min_value..max_value narrowed to
    the integer column it feeds (an int4 id fed by a bigint sequence fails at 2^31 - 1). A
    sequence feeds a column through OWNED BY, an identity column, or a column default calling
    nextval() (no OWNED BY needed); of several columns the one that runs out first counts. A
    CYCLE sequence does not fail at the end: it starts again and reuses values (`cycles`).
    `readable` is false where the monitoring role may not read the sequence: its use is unknown
    (NaN), never 0."""
    given = SEQUENCE_VALUES if conn.execute(SEQUENCE_VALUES_USABLE).fetchone()[0] else NONE_GIVEN
    frame = to_frame(conn.execute(f"""
        WITH feeds AS (
            -- OWNED BY (a) and identity columns (i): the sequence depends on the column
            SELECT d.objid AS sequence_oid, d.refobjid AS table_oid, d.refobjsubid AS attnum
            FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
              AND d.objid IN (SELECT seqrelid FROM pg_sequence)  -- by index, not a full scan
            UNION
            -- a column default that calls nextval('seq'): the default depends on the sequence
            SELECT d.refobjid, ad.adrelid, ad.adnum
            FROM pg_depend d
            JOIN pg_attrdef ad ON ad.oid = d.objid
            WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid IN (SELECT seqrelid FROM pg_sequence))
        SELECT DISTINCT ON (sc.oid)
               sn.nspname                                          AS schema_name,
               sc.relname                                          AS sequence_name,
               format_type(s.seqtypid, NULL)                       AS sequence_type,
               has_sequence_privilege(sc.oid, 'SELECT,USAGE')
                 OR given.seqrelid IS NOT NULL                     AS readable,
               CASE WHEN has_sequence_privilege(sc.oid, 'SELECT,USAGE')
                    THEN pg_sequence_last_value(sc.oid)
                    ELSE given.last_value END                      AS last_value,
               s.seqincrement                                      AS increment_by,
               s.seqcycle                                          AS cycles,
               least(s.seqmax,
                     CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                     WHEN 'int4'::regtype THEN 2147483647
                                     ELSE s.seqmax END)            AS effective_max,
               greatest(s.seqmin,
                        CASE a.atttypid WHEN 'int2'::regtype THEN -32768
                                        WHEN 'int4'::regtype THEN -2147483648
                                        ELSE s.seqmin END)         AS effective_min,
               tn.nspname                                          AS table_schema,
               t.relname                                           AS table_name,
               a.attname                                           AS column_name,
               format_type(a.atttypid, NULL)                       AS column_type
        FROM pg_sequence s
        JOIN pg_class sc ON sc.oid = s.seqrelid
        JOIN pg_namespace sn ON sn.oid = sc.relnamespace
        LEFT JOIN feeds f ON f.sequence_oid = sc.oid
        LEFT JOIN pg_class t ON t.oid = f.table_oid
        LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = f.table_oid AND a.attnum = f.attnum
        -- the monitoring login reads them through DB Pulse's function (schema install)
        LEFT JOIN ({given}) given ON given.seqrelid = sc.oid
        -- the column that runs out first: the lowest limit going up, the highest going down
        ORDER BY sc.oid, CASE WHEN s.seqincrement > 0 THEN 1 ELSE -1 END
                         * (CASE WHEN s.seqincrement > 0 THEN 1 ELSE 0 END * least(s.seqmax,
                              CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                              WHEN 'int4'::regtype THEN 2147483647
                                              ELSE s.seqmax END)::numeric
                            + CASE WHEN s.seqincrement > 0 THEN 0 ELSE 1 END * greatest(s.seqmin,
                              CASE a.atttypid WHEN 'int2'::regtype THEN -32768
                                              WHEN 'int4'::regtype THEN -2147483648
                                              ELSE s.seqmin END)::numeric)
        """))
    frame["used_share"] = used_share(frame)
    near = frame[(frame["used_share"] >= min_share) | ~frame["readable"].astype(bool)]
    return near.sort_values("used_share", ascending=False).reset_index(drop=True)


def used_share(frame: pd.DataFrame) -> pd.Series:
    """The share of the range behind the last value, in the direction the sequence counts.

    >>> used_share(pd.DataFrame({"last_value": [1_900_523_027, -47, 950],
    ...     "effective_min": [-2_147_483_648, -50, 1], "effective_max": [2_147_483_647, -1, 1000],
    ...     "increment_by": [1, -1, 1]})).round(3).tolist()
    [0.942, 0.939, 0.95]
    """
    low, high = frame["effective_min"].astype(float), frame["effective_max"].astype(float)
    last = frame["last_value"].astype(float)
    span = (high - low).where(high > low)
    up = frame["increment_by"].astype(float) > 0
    return ((last - low) / span).where(up, (high - last) / span)


def widen_sql(row) -> str:
    """The fix for a sequence near the end of its range: the column it feeds to bigint, and the
    sequence to bigint with the type's own limit in the direction it counts (an explicit
    MAXVALUE 1000 would stay otherwise) and, for a CYCLE sequence, no wrap: a wrapped sequence
    hands out values the table already holds. The ALTER TABLE rewrites the table and its
    indexes under an ACCESS EXCLUSIVE lock: plan it; on a large table, prefer a new bigint
    column filled in batches.

    >>> from types import SimpleNamespace as R
    >>> print(widen_sql(R(table_schema="a.b", table_name="seq tbl", column_name="end",
    ...                   column_type="integer", schema_name="a.b", sequence_name="s",
    ...                   sequence_type="integer", increment_by=1, cycles=False)))
    ALTER TABLE "a.b"."seq tbl" ALTER COLUMN "end" TYPE bigint;  -- rewrites the table: ACCESS EXCLUSIVE until done
    ALTER SEQUENCE "a.b".s AS bigint NO MAXVALUE;
    >>> print(widen_sql(R(table_schema=None, table_name=None, column_name=None, column_type=None,
    ...                   schema_name="public", sequence_name="down", sequence_type="bigint",
    ...                   increment_by=-1, cycles=True)))
    ALTER SEQUENCE public.down AS bigint NO MINVALUE NO CYCLE;
    """
    lines = []
    if row.table_name and row.column_type in ("smallint", "integer"):
        lines.append(f"ALTER TABLE {qualified(row.table_schema, row.table_name)} ALTER COLUMN "
                     f"{quote_ident(row.column_name)} TYPE bigint;  -- rewrites the table: "
                     "ACCESS EXCLUSIVE until done")
    limit = "NO MAXVALUE" if row.increment_by > 0 else "NO MINVALUE"
    lines.append(f"ALTER SEQUENCE {qualified(row.schema_name, row.sequence_name)} AS bigint "
                 f"{limit}{' NO CYCLE' if row.cycles else ''};")
    return "\n".join(lines)


# How these frames are shown (ui/tables.py)
VACUUM_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE,
    "live_rows": Column("Live rows", "count"), "dead_rows": Column("Dead rows", "count"),
    "autovacuum_enabled": Column("Autovacuum", "flag"),
    "autovacuum_trigger_rows": Column("Vacuum at dead rows", "count",
                                      help="threshold + scale factor × rows"),
    "trigger_progress": Column("Towards the trigger", "percent", digits=0,
                               help="Dead rows against the trigger point: over 100 % it is due; "
                                    "far over, autovacuum is not keeping up or is off"),
    "last_vacuum": Column("Last vacuum", "time", missing="never"),
    "last_autovacuum": Column("Last autovacuum", "time"),
    "last_analyze": Column("Last analyze", "time"),
    "last_autoanalyze": Column("Last autoanalyze", "time"),
}
WRAPAROUND_COLUMNS = {
    "database_name": Column("Database", pinned=True),
    "xid_age": Column("Transaction age", "count",
                      help="Transactions since the oldest unfrozen one"),
    "freeze_max_age": Column("Forced freeze at", "count"),
    "share_of_limit": Column("Share of the limit", "percent", digits=3,
                             help="Of the 2^31 transactions after which PostgreSQL stops "
                                  "accepting writes"),
}
SEQUENCE_COLUMNS = {
    "schema_name": SCHEMA, "sequence_name": Column("Sequence", pinned=True),
    "used_share": Column("Used", "percent", digits=2,
                         help="Of the largest value the column (or the sequence) can hold"),
    "last_value": Column("Last value", "count"),
    "effective_max": Column("Largest possible", "count"),
    "table_name": TABLE, "column_name": Column("Column"),
    "column_type": Column("Column type", width="small"),
}
