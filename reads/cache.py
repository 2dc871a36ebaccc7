"""PostgreSQL buffer cache hit rates (cumulative since the statistics were last reset), of the
database's data: its tables, indexes, TOAST and materialized views. The system catalogues,
sequences and DB Pulse's own schema are left out, and the blocks its latency probes read
(their ledger): every look of DB Pulse reads thousands of catalogue blocks (32,000 per run of
the checks at 25,000 indexes), which would count as the database's hits and lift its rate."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg

from foundation.columns import SCHEMA, TABLE, Column
from foundation.frames import to_frame
from reads import probes
from reads.indexes import OWN_SCHEMA


@dataclass
class CacheHitRates:
    database: float | None   # None when nothing was read yet
    tables: float | None     # None also when not read (cache_hit_rates(per_kind=False))
    indexes: float | None
    blocks_hit: int          # DATA_BLOCKS'
    blocks_read: int


def _ratio(hit: int | None, read: int | None) -> float | None:
    hit, read = float(hit or 0), float(read or 0)  # sum() over bigint comes back as Decimal
    return None if hit + read == 0 else hit / (hit + read)


# The database's blocks (hit, read) less those of the relations that are not its data: the
# database's counters are the sums of its relations' as each backend flushes them, so the
# difference is exactly what the other relations saw. Left out: the system catalogues (those
# created by initdb, below the first normal oid; a shared one counts in no database's figures),
# sequences (DB Pulse reads each one's last value), and DB Pulse's own schema: the relations
# depending on it, directly or through a table or constraint (its indexes, TOAST tables and
# their indexes). Each list is read by index: about 1 ms at 40,000 relations, where summing
# every data relation's blocks takes 27.
DATA_BLOCKS = """
        WITH RECURSIVE own(classid, objid) AS (
                SELECT 'pg_namespace'::regclass::oid, to_regnamespace(%(own_schema)s)::oid
              UNION
                -- looked up by index for each object found (OFFSET 0 keeps it a lookup:
                -- joined, the planner hashed the whole of pg_depend on every step, 7 against
                -- 2 ms at 25,000 indexes, 1.2 against 0.75 on the small demo)
                SELECT d.classid, d.objid FROM own o, LATERAL (
                    SELECT d.classid, d.objid FROM pg_depend d
                    WHERE d.refclassid = o.classid AND d.refobjid = o.objid
                      AND d.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass)
                    OFFSET 0) d),
             not_data AS (SELECT c.oid FROM pg_class c WHERE c.oid < 16384 AND NOT c.relisshared
                          UNION SELECT seqrelid FROM pg_sequence
                          UNION SELECT objid FROM own WHERE classid = 'pg_class'::regclass)
        SELECT d.blks_hit - coalesce(sum(pg_stat_get_blocks_hit(n.oid)), 0),
               d.blks_read - coalesce(sum(pg_stat_get_blocks_fetched(n.oid)
                                          - pg_stat_get_blocks_hit(n.oid)), 0)
        FROM pg_stat_database d, not_data n
        WHERE d.datname = current_database()
        GROUP BY d.blks_hit, d.blks_read
        """


# what the database's rate counts, where it is shown
DATABASE_RATE_MEANING = ("Share of the block reads of the database's tables, indexes, TOAST "
                         "and materialized views served from shared buffers. The system "
                         "catalogues, sequences, DB Pulse's own schema and its latency probes' "
                         "reads are left out: DB Pulse reads the catalogue on every look, which "
                         "would lift the rate.")


def data_blocks(conn: psycopg.Connection,
                probed: dict[int, probes.Reads] | None = None) -> tuple[int, int]:
    """(hit, read): DATA_BLOCKS less the blocks DB Pulse's latency probes read (`probed`, else
    their ledger read now): the blocks the hit rates count."""
    hit, read = conn.execute(DATA_BLOCKS, {"own_schema": OWN_SCHEMA}).fetchone()
    probed = (probes.own_reads(conn) if probed is None else probed).values()
    return (int(hit) - sum(r.blocks_hit for r in probed),
            int(read) - sum(r.blocks_fetched - r.blocks_hit for r in probed))


# The sums of pg_statio_user_tables' heap and index blocks, read per relation from the
# statistics functions: the view sums each table's indexes in a subquery per table, most of its
# cost on a big catalogue. A user table's indexes live in its schema; partitioned tables and
# indexes have no blocks of their own. DB Pulse's own are left out: its schema's, and those
# its latency probes read (%(probed)s: their ledger, probes.ledger_parameter).
USER_TABLE_BLOCKS = """
        SELECT sum(hit) FILTER (WHERE relkind <> 'i')             AS heap_hit,
               sum(fetched - hit) FILTER (WHERE relkind <> 'i')   AS heap_read,
               sum(hit) FILTER (WHERE relkind = 'i')              AS idx_hit,
               sum(fetched - hit) FILTER (WHERE relkind = 'i')    AS idx_read
        FROM (SELECT c.relkind,
                     pg_stat_get_blocks_hit(c.oid) - coalesce(
                         (%(probed)s::jsonb -> c.oid::text ->> 3)::bigint, 0) AS hit,
                     pg_stat_get_blocks_fetched(c.oid) - coalesce(
                         (%(probed)s::jsonb -> c.oid::text ->> 2)::bigint, 0) AS fetched
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'i')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', %(own_schema)s)
                AND n.nspname !~ '^pg_toast'
              OFFSET 0) blocks  -- each function once per relation, not once per sum
        """


def user_table_blocks_parameters(probed: dict[int, probes.Reads]) -> dict:
    """USER_TABLE_BLOCKS' parameters, with the probes' ledger (probes.own_reads)."""
    return {"own_schema": OWN_SCHEMA, "probed": probes.ledger_parameter(probed)}


def cache_hit_rates(conn: psycopg.Connection, per_kind: bool = True) -> CacheHitRates:
    """The database's hit rate (of its data: DATA_BLOCKS), and with per_kind its tables' and
    indexes' (summed over every relation's statistics: 27 ms at 40,000 relations, for pages
    that show them)."""
    probed = probes.own_reads(conn)
    db_hit, db_read = data_blocks(conn, probed)
    heap_hit = heap_read = idx_hit = idx_read = None
    if per_kind:
        heap_hit, heap_read, idx_hit, idx_read = conn.execute(
            USER_TABLE_BLOCKS, user_table_blocks_parameters(probed)).fetchone()
    return CacheHitRates(database=_ratio(db_hit, db_read), tables=_ratio(heap_hit, heap_read),
                         indexes=_ratio(idx_hit, idx_read), blocks_hit=db_hit,
                         blocks_read=db_read)


def table_hit_rates(conn: psycopg.Connection, limit: int = 100) -> pd.DataFrame:
    """Per table (with its indexes and TOAST), most disk reads first: where the misses are.
    The blocks DB Pulse's latency probes read from the table, its indexes and its TOAST are
    taken out."""
    cur = conn.execute(f"""
        WITH {probes.PROBED_TABLES}, {probes.PROBED_TOAST},
             blocks AS (
                SELECT s.schemaname, s.relname,
                       s.heap_blks_read - coalesce(p.heap_read, 0) AS heap_read,
                       s.heap_blks_hit - coalesce(p.heap_hit, 0) AS heap_hit,
                       s.idx_blks_read - coalesce(p.index_read, 0) AS idx_read,
                       s.idx_blks_hit - coalesce(p.index_hit, 0) AS idx_hit,
                       coalesce(s.toast_blks_read, 0) + coalesce(s.tidx_blks_read, 0)
                           - coalesce(pt.toast_read, 0) AS toast_read
                FROM pg_statio_user_tables s LEFT JOIN probed_tables p ON p.relid = s.relid
                LEFT JOIN probed_toast pt ON pt.relid = s.relid)
        SELECT schemaname                                           AS schema_name,
               relname                                              AS table_name,
               heap_read                                            AS table_blocks_read,
               heap_hit::float8 / nullif(heap_hit + heap_read, 0)   AS table_hit_rate,
               idx_read                                             AS index_blocks_read,
               idx_hit::float8 / nullif(idx_hit + idx_read, 0)      AS index_hit_rate,
               toast_read                                           AS toast_blocks_read
        FROM blocks
        ORDER BY coalesce(heap_read, 0) + coalesce(idx_read, 0) DESC
        LIMIT %(limit)s
        """, {"probed": probes.probed_parameter(conn), "limit": limit})
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
