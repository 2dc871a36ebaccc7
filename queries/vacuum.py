"""Vacuum health: dead rows and each table's autovacuum trigger point, transaction ID
wraparound age, and sequences running out of values."""

from __future__ import annotations

import pandas as pd
import psycopg

from queries.frames import to_frame

# 2^31 - 1: past this many transactions a database must be frozen or it stops accepting writes
XID_LIMIT = 2_147_483_647


def vacuum_status(conn: psycopg.Connection) -> pd.DataFrame:
    """Per table: dead rows, last (auto)vacuum and (auto)analyze, and where autovacuum will
    trigger (autovacuum_vacuum_threshold + scale_factor * rows, per-table settings first)."""
    return to_frame(conn.execute("""
        WITH options AS (
            SELECT c.oid,
                   max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_enabled')
                                                                   AS enabled,
                   max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_threshold')
                                                                   AS threshold,
                   max(o.option_value) FILTER (WHERE o.option_name = 'autovacuum_vacuum_scale_factor')
                                                                   AS scale_factor
            FROM pg_class c
            CROSS JOIN LATERAL pg_options_to_table(c.reloptions) o
            WHERE c.reloptions IS NOT NULL
            GROUP BY c.oid
        )
        SELECT s.schemaname                                        AS schema_name,
               s.relname                                           AS table_name,
               s.n_live_tup                                        AS live_rows,
               s.n_dead_tup                                        AS dead_rows,
               s.n_dead_tup::float8 / nullif(s.n_live_tup + s.n_dead_tup, 0) AS dead_share,
               s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
               s.n_mod_since_analyze                               AS changed_since_analyze,
               coalesce(o.enabled::bool, current_setting('autovacuum')::bool) AS autovacuum_enabled,
               coalesce(o.threshold::int, current_setting('autovacuum_vacuum_threshold')::int)
                 + coalesce(o.scale_factor::float8,
                            current_setting('autovacuum_vacuum_scale_factor')::float8)
                   * greatest(c.reltuples, 0)                      AS autovacuum_trigger_rows,
               age(c.relfrozenxid)                                 AS xid_age,
               c.relpages::bigint * current_setting('block_size')::int AS table_bytes
        FROM pg_stat_user_tables s
        JOIN pg_class c ON c.oid = s.relid
        LEFT JOIN options o ON o.oid = s.relid
        ORDER BY s.n_dead_tup DESC
        """)).assign(trigger_progress=lambda f: f["dead_rows"] / f["autovacuum_trigger_rows"].clip(lower=1))


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


def sequences_near_max(conn: psycopg.Connection, min_share: float = 0.0) -> pd.DataFrame:
    """Sequences by how much of their range is used; the limit is the smaller of the
    sequence's max_value and the maximum of the integer column it feeds (an int4 id fed by a
    bigint sequence fails at 2^31 - 1)."""
    frame = to_frame(conn.execute("""
        SELECT s.schemaname                                        AS schema_name,
               s.sequencename                                      AS sequence_name,
               s.last_value,
               s.increment_by,
               least(s.max_value,
                     CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                     WHEN 'int4'::regtype THEN 2147483647
                                     ELSE s.max_value END)        AS effective_max,
               t.relname                                           AS table_name,
               a.attname                                           AS column_name
        FROM pg_sequences s
        JOIN pg_class sc ON sc.relname = s.sequencename
        JOIN pg_namespace sn ON sn.oid = sc.relnamespace AND sn.nspname = s.schemaname
        LEFT JOIN pg_depend d ON d.objid = sc.oid AND d.classid = 'pg_class'::regclass
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN pg_class t ON t.oid = d.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE s.increment_by > 0
        """))
    frame["used_share"] = frame["last_value"].astype(float) / frame["effective_max"].astype(float)
    return frame[frame["used_share"].fillna(0) >= min_share].sort_values(
        "used_share", ascending=False).reset_index(drop=True)
