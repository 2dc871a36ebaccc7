"""Indexes: unused, duplicate or redundant, invalid; missing-index hints; each finding with the
SQL that fixes it.

One catalogue query lists every index with what the checks need (no pg_get_indexdef() per
index: expressions and predicates are decompiled only where they exist); the checks themselves
are plain pandas over that frame, so they stay fast on catalogues of tens of thousands of indexes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from foundation import migration_files, server
from foundation.columns import INDEX, SCHEMA, SIZE, TABLE, Column
from foundation.config import Settings
from foundation.frames import no_collection, rows, to_frame
from foundation.identifiers import qualified, quote_ident
from reads import probes, replication

# Which indexes a read fetches: each check needs only the indexes it can report on or must look
# at, a small share of a big catalogue. Each scope is a superset of what its check decides on:
# the decisions stay in the Python below, so a scoped read finds exactly what the whole list does.
# tables holding an index without scans: the unused check's candidates and their neighbours
# (a duplicate is not reported twice; a foreign key may need the candidate)
UNUSED_TABLES = """
        SELECT ui.indrelid FROM pg_class uc JOIN pg_index ui ON ui.indexrelid = uc.oid
        WHERE NOT ui.indisunique AND ui.indisvalid
          AND (uc.relkind = 'I' OR uc.relkind = 'i' AND
               -- the size first (CASE keeps the order): the statistics lookup costs more
               CASE WHEN uc.relpages::bigint * %(block_size)s >= %(min_size_bytes)s
                    THEN pg_stat_get_numscans(uc.oid) - coalesce(
                             (%(own_scans)s::jsonb ->> uc.oid::text)::bigint, 0) = 0
                    ELSE false END)"""
# Without a size floor most tables hold a candidate, and their every index was read: the
# candidates themselves instead (every size passes, and a partitioned index has no scans of its
# own: zero), with what can decide their verdict, read with them (_scope): the indexes that may
# cover one (the duplicates' scope) and those on tables with foreign keys. At 25,000 indexes
# 19,000 rows against 25,000
UNUSED_ANY_SIZE = """(NOT i.indisunique AND i.indisvalid
          AND pg_stat_get_numscans(i.indexrelid) - coalesce(
                  (%(own_scans)s::jsonb ->> i.indexrelid::text)::bigint, 0) = 0)"""
SCOPES = {
    # Each a condition on pg_index i whose subquery is computed once and hashed, so that the
    # checks' union is one pass over pg_index with the parts ORed. As a UNION of semi-joins it
    # read pg_index five times and hashed it whole twice: at 25,000 indexes 67 against 59 ms
    # with the default size floor, 274 against 195 without; about even at 120,000.
    "unused": f"i.indrelid IN ({UNUSED_TABLES})",
    # indexes sharing table, first key column and whether they have expressions and a
    # predicate with another: the only ones that can cover each other (the method is compared
    # in covered_indexes: joining pg_class here for it doubled this read). Grouped among the
    # application's tables only (oids from 16384 on; the system's, below, are most of
    # pg_index on a small database)
    "duplicates": """(i.indrelid, i.indkey[0], i.indexprs IS NULL, i.indpred IS NULL) IN (
        SELECT d.indrelid, d.indkey[0], d.indexprs IS NULL, d.indpred IS NULL
        FROM pg_index d WHERE d.indrelid >= 16384 GROUP BY 1, 2, 3, 4 HAVING count(*) > 1)""",
    "invalid": "NOT i.indisvalid",
    "foreign_keys": "i.indrelid IN (SELECT conrelid FROM pg_constraint WHERE contype = 'f')",
}
# The application's tables t (in schemas n): their kind named too, although a TOAST table's
# schema alone leaves it out, so that the planner hashes the tables rather than every relation:
# reading every index, 432 against 758 ms of the server's time at 120,000 indexes (with the
# fetch, 119 against 213 ms at 25,000); the checks' scope with the fetch 336 against 373 ms
# (at 25,000 about 3 ms more: 50.5 against 47.7)
USER_TABLES = ("t.relkind IN ('r', 'm', 'p') "
               "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
               "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'")
# what all the index checks together need: the union of their scopes
CHECK_SCOPES = ("unused", "duplicates", "invalid", "foreign_keys")


# A partitioned index has no pages or scans of its own: the sums over its partitions' indexes
SIZE_BYTES = """CASE WHEN c.relkind = 'I' THEN
                    (SELECT coalesce(sum(pc.relpages), 0) FROM pg_partition_tree(c.oid) p
                     JOIN pg_class pc ON pc.oid = p.relid WHERE p.isleaf)
                    ELSE c.relpages END::bigint * %(block_size)s"""
# Scans less those DB Pulse's latency probes caused (%(own_scans)s: their ledger as JSON, index
# oid -> scans, reads/probes.py): its own reads prove no use by the application
SCANS = """CASE WHEN c.relkind = 'I' THEN
                    (SELECT coalesce(sum(pg_stat_get_numscans(p.relid)
                                         - coalesce((%(own_scans)s::jsonb ->> p.relid::text)
                                                    ::bigint, 0)), 0)
                     FROM pg_partition_tree(c.oid) p WHERE p.isleaf)
                    ELSE pg_stat_get_numscans(i.indexrelid)
                         - coalesce((%(own_scans)s::jsonb ->> i.indexrelid::text)::bigint, 0)
               END::bigint"""


def own_scans_parameter(conn: psycopg.Connection,
                        probed: dict[int, probes.Reads] | None = None) -> Jsonb:
    """SCANS' %(own_scans)s: the latency probes' scans per index, from their ledger (read now,
    or `probed`: probes.own_reads')."""
    probed = probes.own_reads(conn) if probed is None else probed
    return Jsonb({str(oid): r.scans for oid, r in probed.items() if r.scans})


def size_and_scans_parameters(conn: psycopg.Connection,
                              probed: dict[int, probes.Reads] | None = None) -> dict:
    """The parameters SIZE_BYTES and SCANS take, for any read that uses them."""
    return {"block_size": server.block_size(conn),
            "own_scans": own_scans_parameter(conn, probed)}


# An index's last scan, unless the latency probes' may be it (%(probes_last)s: index oid -> when
# they last scanned it; "infinity" where their ledger does not say): the application's last
# scan before theirs is not known, and DB Pulse's own reads are not shown as its use
LAST_SCAN = """CASE WHEN pg_stat_get_lastscan(i.indexrelid) > coalesce(
                        (%(probes_last)s::jsonb ->> i.indexrelid::text)::timestamptz,
                        '-infinity') THEN pg_stat_get_lastscan(i.indexrelid) END"""


def probes_last_parameter(probed: dict[int, probes.Reads]) -> Jsonb:
    """LAST_SCAN's %(probes_last)s from the probes' ledger (probes.own_reads).

    >>> from datetime import timezone
    >>> at = datetime(2026, 12, 3, 16, 0, tzinfo=timezone.utc)
    >>> probes_last_parameter({7: probes.Reads(2, last_scan_at=at), 8: probes.Reads(1),
    ...                        9: probes.Reads(0, blocks_fetched=4)}).obj
    {'7': '2026-12-03T16:00:00+00:00', '8': 'infinity'}
    """
    return Jsonb({str(oid): r.last_scan_at.isoformat() if r.last_scan_at else "infinity"
                  for oid, r in probed.items() if r.scans})


def list_indexes(conn: psycopg.Connection, scope: str | None = None, min_size_bytes: int = 0,
                 limit: int | None = None) -> pd.DataFrame:
    """The indexes outside the system schemas (those of a SCOPES entry or of all the checks,
    else all of them) with what the checks need; with `limit`, only that many of all the
    indexes, the least scanned (largest first among equals), with their last scan (LAST_SCAN)
    and how many there are in all (indexes_total, the same on every row).

    Kept cheap for catalogues of tens of thousands of indexes: scan counts come straight from
    the statistics functions (not the pg_stat_all_indexes view), sizes from pg_class.relpages
    (as of the last VACUUM, ANALYZE or build, instead of a file-system call per index); the
    definitions only for the findings a page draws (definitions). A partitioned index
    has no scans or pages of its own: it gets the sums over its partitions' indexes, so it is
    judged by what they saw."""
    version = conn.info.server_version
    probed = probes.own_reads(conn)
    parameters = {"limit": limit, "min_size_bytes": min_size_bytes,
                  **size_and_scans_parameters(conn, probed)}
    # the last scan only where it is shown (the least scanned): a scoped read's statement
    # took 6 to 10 % longer with it (at 25,000 indexes, 15 interleaved pairs)
    last_scan = least = ""
    if limit:
        parameters["probes_last"] = probes_last_parameter(probed)
        last_scan = (f",\n               {LAST_SCAN if version >= 160000 else 'NULL::timestamptz'}"
                     " AS last_scan,\n               (SELECT max(total) FROM least) AS indexes_total")
        # the least scanned, and how many indexes they were picked from (counted as they are
        # sorted: a count of its own read the catalogue again, 9 ms at 25,000 indexes)
        least = f"""WITH least AS MATERIALIZED (
            SELECT i.indexrelid, count(*) OVER () AS total FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE {USER_TABLES}
            ORDER BY {SCANS}, {SIZE_BYTES} DESC, i.indexrelid
            LIMIT %(limit)s)"""
    nulls_not_distinct = "i.indnullsnotdistinct" if version >= 150000 else "false"
    # the scope as a condition (the least scanned as a semi-join) in the same query: sent
    # back and forth as a list of oids it cost 20 ms a way at 25,000 (converted in Python, or
    # parsed by the server as text); the expressions are decompiled only for the rows kept
    wanted = "true"
    if limit:
        wanted = "i.indexrelid IN (SELECT indexrelid FROM least)"
    elif scope is not None:
        wanted = _scope(CHECK_SCOPES if scope == "checks" else (scope,), min_size_bytes)
    frame = to_frame(conn.execute(f"""{least}
        SELECT n.nspname                                         AS schema_name,
               t.relname                                         AS table_name,
               c.relname                                         AS index_name,
               i.indexrelid                                      AS index_oid,
               i.indrelid                                        AS table_oid,
               am.amname                                         AS access_method,
               i.indkey::int2[]                                  AS columns,
               i.indnkeyatts                                     AS key_count,
               i.indclass::text                                  AS opclasses,
               i.indcollation::text                              AS collations,
               i.indoption::text                                 AS options,
               {nulls_not_distinct}                              AS nulls_not_distinct,
               c.relkind = 'I'                                   AS is_partitioned,
               inh.inhparent                                     AS parent_index_oid,
               i.indisunique                                     AS is_unique,
               i.indisvalid                                      AS is_valid,
               i.indisclustered                                  AS is_clustered,
               -- a constraint's index (primary key, unique, exclusion, or the unique one a
               -- foreign key points at) cannot be dropped while it exists; nor a replica
               -- identity: logical replication needs it for every UPDATE and DELETE. A
               -- subquery hashed once: joined, the planner hashed every index's wide row;
               -- of the application's indexes only (with the duplicates' grouping, 0.59
               -- against 0.68 ms for the checks' read on the small demo)
               i.indexrelid IN (SELECT conindid FROM pg_constraint
                                WHERE contype IN ('p', 'u', 'x', 'f') AND conindid >= 16384)
                 OR i.indisreplident                             AS backs_constraint,
               CASE WHEN i.indexprs IS NOT NULL THEN pg_get_expr(i.indexprs, i.indrelid) END
                                                                 AS expressions,
               CASE WHEN i.indpred IS NOT NULL THEN pg_get_expr(i.indpred, i.indrelid) END
                                                                 AS predicate,
               {SIZE_BYTES}                                      AS size_bytes,
               {SCANS}                                           AS scans{last_scan}
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = c.relam
        LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
        WHERE {USER_TABLES} AND {wanted}
        """, parameters, binary=True))
    frame["is_partitioned"] = frame["is_partitioned"].astype(bool)
    if limit:
        return frame.sort_values(["scans", "size_bytes", "index_oid"],
                                 ascending=[True, False, True], ignore_index=True)
    # one order whatever the scope, so which of two twins is named does not depend on it
    return frame.sort_values("index_oid", ignore_index=True)


def _scope(parts: tuple[str, ...], min_size_bytes: int) -> str:
    """SCOPES entries as the read's condition. The unused check alone with a size floor has a
    few candidate tables: an array, computed once, whose tables' indexes are looked up by
    table (9 against 17 ms at 25,000 indexes); without the floor, the candidates themselves
    and what decides them (UNUSED_ANY_SIZE). IS TRUE keeps a lone part a filter too: the
    planner made it a join, whose size it misjudged at 120,000 indexes, and hashed the whole
    result, spilling it to temporary files (which the Tune page counts against work_mem)."""
    if parts == ("unused",) and min_size_bytes > 0:
        return f"i.indrelid = ANY(ARRAY({UNUSED_TABLES}))"
    if "unused" in parts and min_size_bytes <= 0:  # the candidates and their deciders
        parts = tuple(dict.fromkeys(parts + ("duplicates", "foreign_keys")))
    conditions = [UNUSED_ANY_SIZE if part == "unused" and min_size_bytes <= 0 else SCOPES[part]
                  for part in parts]
    return "(" + " OR ".join(conditions) + ") IS TRUE"


def _array_text(numbers: list[int]) -> str:
    """An array literal: thousands of oids sent as one text, not converted one by one.

    >>> _array_text([16384, 16390]), _array_text([])
    ('{16384,16390}', '{}')
    """
    return "{" + ",".join(map(str, numbers)) + "}"


def drop_sql(schema: str, index: str, partitioned: bool = False) -> str:
    """The DROP PostgreSQL accepts: CONCURRENTLY is refused for a partitioned index."""
    if partitioned:
        return (f"DROP INDEX IF EXISTS {qualified(schema, index)};  -- partitioned index: "
                "CONCURRENTLY is not possible; holds an ACCESS EXCLUSIVE lock on the table and "
                "every partition until it commits (brief: nothing is rewritten)")
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
    # drop | kept (a reason to keep it) | too new (younger than the minimum age) | age unknown
    # (nothing shows it existed that long)
    verdict: str = "drop"
    # the index's oid, and a duplicate's the one that stays: by them a page reads the
    # definitions of the findings it shows (definitions)
    index_oid: int = 0
    covered_by_oid: int = 0

    @property
    def qualified_name(self) -> str:
        return qualified(self.schema_name, self.index_name)


def _key_orders(row) -> list[int]:
    """Per key column, pg_index.indoption: bit 1 DESC, bit 2 NULLS FIRST."""
    return [int(o) for o in (row.options or "").split()][:row.key_count]


@dataclass(frozen=True)
class ForeignKey:
    schema_name: str
    table_name: str
    table_oid: int
    name: str
    columns: tuple[int, ...]
    column_names: tuple[str, ...]
    partitioned_table: bool = False

    def supported_by(self, row) -> bool:
        """A valid, whole-table index whose leading key columns are the key's columns."""
        n = len(self.columns)
        return (bool(row.is_valid) and not _text(row.predicate) and row.table_oid == self.table_oid
                and row.key_count >= n and sorted(row.columns[:n]) == sorted(self.columns))


def foreign_keys(conn: psycopg.Connection) -> list[ForeignKey]:
    cur = conn.execute("""
        SELECT n.nspname AS schema_name, t.relname AS table_name, c.conrelid AS table_oid,
               c.conname AS constraint_name, c.conkey::int[] AS columns,
               (SELECT array_agg(a.attname ORDER BY k.ord)
                FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS column_names,
               t.relkind = 'p' AS partitioned_table
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.contype = 'f'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """)
    return [ForeignKey(s, t, oid, name, tuple(cols), tuple(names), part)
            for s, t, oid, name, cols, names, part in cur.fetchall()]


@dataclass(frozen=True)
class UsageEvidence:
    """What zero scans can prove: the counters start at the last statistics reset, and an
    index built since then has been watched only for its own lifetime. `created_after` maps a
    qualified index name to a moment it did not exist yet, with how that is known;
    `snapshot_cut` is (the oldest snapshot inside min_age, the indexes it held): an index
    missing from it is younger than that snapshot; `old_snapshot` is (the newest snapshot at
    least min_age old, the indexes it held): an index in it is old enough. Without one of
    these, an index's age is unknown and zero scans are not a reason to drop it."""
    now: datetime
    stats_since: datetime | None = None
    min_age: timedelta = timedelta(days=7)
    created_after: dict = field(default_factory=dict)
    snapshot_cut: tuple | None = None
    old_snapshot: tuple | None = None
    # streaming standbys: their scans are counted there, not in this server's statistics
    standbys: tuple = ()
    # the target's declared read replicas, read: their scans count with this server's
    replicas: replication.ReplicaScans = field(default_factory=replication.ReplicaScans)

    def too_new(self, name: str) -> str | None:
        """Why zero scans of this index are not yet evidence, or None."""
        return self.waiting(name)[1]

    def waiting(self, name: str) -> tuple[str, str | None]:
        """(verdict, why) for an index without scans: ("drop", None) when its age is proven,
        else "too new", "used on a standby?" or "age unknown" with the reason. An index known
        to be younger than min_age is too new first: whatever a standby saw, minutes of zero
        scans prove nothing (a plan's index just built read "used on a standby?")."""
        born = self.created_after.get(name)
        if born is None and self.snapshot_cut and name not in self.snapshot_cut[1]:
            born = (self.snapshot_cut[0], "absent from the snapshot of "
                    f"{self.snapshot_cut[0]:%Y-%m-%d %H:%M}")
        if born is not None and self.now - born[0] < self.min_age:
            return "too new", (f"too new to judge: created less than "
                               f"{age_text(self.now - born[0])} ago ({born[1]}); zero scans "
                               "over so short a time prove nothing")
        if self._for_every_index is not None:
            return self._for_every_index
        if self._stats_too_new is not None:
            return self._stats_too_new
        if born is None and not (self.old_snapshot and name in self.old_snapshot[1]):
            return "age unknown", self._age_unknown
        return "drop", None

    # The verdicts that do not depend on the index, worded once per review (a catalogue of
    # tens of thousands of unscanned indexes asks for each of them)
    @functools.cached_property
    def _for_every_index(self) -> tuple[str, str | None] | None:
        if len(self.standbys) > len(self.replicas.read):
            return "used on a standby?", (
                f"no scans here, but it may be used on {', '.join(self.standbys)}: a standby "
                "counts its own scans, which this server's statistics do not hold; declare "
                "the standbys as the target's replica_urls (their scans are then added), or "
                "look there (pg_stat_user_indexes) before dropping it"
                + (f" ({'; '.join(self.replicas.problems)})" if self.replicas.problems else ""))
        if self.replicas.recent_reset:
            return "age unknown", ("no scans here or on the replicas, but "
                                   + "; ".join(self.replicas.recent_reset)
                                   + f", less than {age_text(self.min_age)} ago")
        if self.min_age <= timedelta(0):
            return "drop", None
        return None

    @functools.cached_property
    def _stats_too_new(self) -> tuple[str, str] | None:
        if self.stats_since is not None and self.now - self.stats_since < self.min_age:
            return "too new", (f"too new to judge: the statistics were reset only "
                               f"{age_text(self.now - self.stats_since)} ago")
        return None

    @functools.cached_property
    def _age_unknown(self) -> str:
        return (
            f"age unknown: nothing shows it existed {age_text(self.min_age)} ago (no DB Pulse "
            f"migration built it and no snapshot that old holds it), so zero scans may cover "
            f"only minutes; judged once snapshots have seen it for {age_text(self.min_age)}")


def age_text(delta: timedelta) -> str:
    """
    >>> age_text(timedelta(minutes=3)), age_text(timedelta(hours=5)), age_text(timedelta(days=9))
    ('3 min', '5 h', '9 days')
    """
    seconds = max(delta.total_seconds(), 0)
    if seconds < 3600:
        return f"{max(seconds // 60, 1):.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h"
    return f"{seconds // 86400:.0f} days"


def usage_evidence(conn: psycopg.Connection, migrations_dir: Path | None = None,
                   min_age: timedelta = timedelta(days=7), replica_urls: tuple[str, ...] = (),
                   settings: Settings | None = None) -> UsageEvidence:
    """Everything DB Pulse knows about the indexes' ages: the statistics reset, its own
    migration ledger (an index a migration builds is no older than the run), and its stored
    snapshots of this database (an index missing from the oldest one inside min_age is new)."""
    now, stats_since = conn.execute(
        "SELECT now(), stats_reset FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    standbys = tuple(replication.standby_names(replication.standbys(conn)))
    created: dict[str, tuple] = {}
    cut = old = None
    try:
        if migrations_dir is not None and conn.execute(
                "SELECT to_regclass('dbpulse.migration_runs')").fetchone()[0]:
            runs = dict(conn.execute("""
                SELECT DISTINCT ON (version) version, started_at FROM dbpulse.migration_runs
                WHERE direction = 'apply' ORDER BY version, id DESC""").fetchall())
            for m in migration_files.discover(migrations_dir) if runs else []:
                for statement in m.statements if m.version in runs else []:
                    if statement.index_name:
                        created[statement.index_name] = (runs[m.version],
                                                         f"built by migration {m.version}")
        if conn.execute("SELECT to_regclass('dbpulse.snapshot_indexes')").fetchone()[0]:
            first = conn.execute("""
                SELECT id, taken_at FROM dbpulse.snapshots
                WHERE source = %s AND NOT synthetic AND taken_at > now() - %s
                  AND EXISTS (SELECT 1 FROM dbpulse.snapshots older
                              WHERE older.source = %s AND NOT older.synthetic)
                ORDER BY taken_at LIMIT 1""", (conn.info.dbname, min_age, conn.info.dbname)
            ).fetchone()
            if first:
                cut = (first[1], _snapshot_indexes(conn, first[0]))
            last_old = conn.execute("""
                SELECT id, taken_at FROM dbpulse.snapshots
                WHERE source = %s AND NOT synthetic AND taken_at <= now() - %s
                ORDER BY taken_at DESC LIMIT 1""", (conn.info.dbname, min_age)).fetchone()
            if last_old:
                old = (last_old[1], _snapshot_indexes(conn, last_old[0]))
    except (psycopg.errors.InsufficientPrivilege, migration_files.MigrationError):
        pass  # what cannot be read is not evidence; the ages stay unknown
    replicas = replication.replica_scans(conn, replica_urls, settings or Settings(), min_age)
    return UsageEvidence(now, stats_since, min_age, created, cut, old, standbys, replicas)


def _snapshot_indexes(conn: psycopg.Connection, snapshot_id: int) -> frozenset:
    return frozenset(qualified(s, i) for s, i in conn.execute(
        "SELECT schema_name, index_name FROM dbpulse.snapshot_indexes WHERE snapshot_id = %s",
        (snapshot_id,)))


@no_collection()  # a row tuple per index: see no_collection
def judge_unused(frame: pd.DataFrame, min_size_bytes: int = 0,
                 already_reported: list[IndexFinding | Covered] = (), *,
                 foreign_keys: list[ForeignKey] = (),
                 evidence: UsageEvidence | None = None) -> list[IndexFinding]:
    """Every index with no scans since the statistics reset that could be dropped, with a
    verdict: drop; kept (the only index supporting a foreign key); too new (younger than the
    evidence). Never one backing a primary key, unique or exclusion constraint, nor unique at
    all (a unique index enforces something even unscanned), nor an index attached to a
    partitioned index (only the parent can be dropped; it is judged by its partitions' scans).
    Indexes in a reported duplicate pair are left out, so no two findings drop both twins."""
    skip = {(f.schema_name, f.index_name) for f in already_reported}
    skip |= {(f.schema_name, f.covered_by) for f in already_reported if f.covered_by}
    # scans on the declared replicas count as much as those here
    scans = frame["scans"]
    if evidence and evidence.replicas.scans:
        scans = scans + frame["index_oid"].map(evidence.replicas.scans).fillna(0)
    candidate = ((scans == 0) & ~frame["is_unique"] & ~frame["backs_constraint"]
                 & frame["is_valid"] & (frame["size_bytes"] >= min_size_bytes)
                 & frame["parent_index_oid"].isna()).to_numpy(copy=True)
    # the reported ones looked up among the candidates only, not every index by name
    at = np.flatnonzero(candidate)
    candidate[at] = [key not in skip for key in zip(frame["schema_name"].to_numpy()[at],
                                                    frame["index_name"].to_numpy()[at])]
    unused = frame[candidate]
    # the keys no index outside the candidates supports: a candidate supporting one is kept
    uncovered: dict[int, list[ForeignKey]] = {}
    if foreign_keys:
        others = frame[~frame["index_oid"].isin(unused["index_oid"])]
        for fk in unsupported_keys(foreign_keys, others):
            uncovered.setdefault(fk.table_oid, []).append(fk)
    on_replicas = (f", here and on {', '.join(evidence.replicas.read)}"
                   if evidence and evidence.replicas.read else "")
    findings = []
    for r in rows(unused[JUDGED].sort_values("size_bytes", ascending=False), index=False):
        needed_by = [fk for fk in uncovered.get(r.table_oid, ()) if fk.supported_by(r)]
        waiting, young = (evidence.waiting(qualified(r.schema_name, r.index_name)) if evidence
                          else ("drop", None))
        if needed_by:
            fk = needed_by[0]
            verdict, fix = "kept", ""
            reason = (f"no scans, but kept: supports foreign key {quote_ident(fk.name)} "
                      f"({', '.join(quote_ident(c) for c in fk.column_names)}); without it, "
                      "deleting or updating a referenced row scans this table")
        elif young:
            verdict, fix, reason = waiting, "", young
        else:
            verdict, fix = "drop", drop_sql(r.schema_name, r.index_name, r.is_partitioned)
            reason = "no scans since the statistics reset" + on_replicas
            if r.is_partitioned:
                reason += " on any partition"
            if r.is_clustered:
                reason += ("; CLUSTER uses it for this table: after the drop a plain CLUSTER "
                           f"of {qualified(r.schema_name, r.table_name)} needs another index")
        findings.append(IndexFinding(r.schema_name, r.table_name, r.index_name,
                                     int(r.size_bytes), reason, fix, verdict=verdict,
                                     index_oid=int(r.index_oid)))
    return findings


# what judging a candidate reads of its row (ForeignKey.supported_by's among them)
JUDGED = ["schema_name", "table_name", "index_name", "index_oid", "table_oid", "size_bytes",
          "is_partitioned", "is_clustered", "is_valid", "columns", "key_count", "predicate"]


def unused_indexes(frame: pd.DataFrame, min_size_bytes: int = 0,
                   already_reported: list[IndexFinding] = (), *,
                   foreign_keys: list[ForeignKey] = (),
                   evidence: UsageEvidence | None = None) -> list[IndexFinding]:
    """The indexes judge_unused says to drop."""
    return [f for f in judge_unused(frame, min_size_bytes, already_reported,
                                    foreign_keys=foreign_keys, evidence=evidence)
            if f.verdict == "drop"]


def _text(value) -> str | None:
    """A text cell, with any missing-value marker (None, NaN) as None."""
    return value if isinstance(value, str) else None


def _same_order(small, big, n: int) -> bool:
    """The first n key columns sort alike: same direction and NULLS order on every column, or
    every one reversed (a B-tree scanned backwards gives exactly the reverse order)."""
    if _same_prefix(small.options, big.options, n):
        return True
    a, b = _key_orders(small)[:n], _key_orders(big)[:n]
    return small.access_method == "btree" and a == [o ^ 3 for o in b]


def _same_prefix(a: str, b: str, n: int) -> bool:
    """The first n entries of two pg_index vectors as text ("1978 1978") are equal.

    >>> _same_prefix("1 2", "1 2", 2), _same_prefix("1", "1 3", 1), _same_prefix("1 2", "1 3", 2)
    (True, True, False)
    """
    return a == b or a.split()[:n] == b.split()[:n]


def _covers(small, big) -> bool:
    """For two indexes with the same table, method, expressions and predicate: True when every
    lookup and sort `small` serves, `big` serves as well: small's key columns (with their
    operator classes, collations, directions and NULLS order) are a leading prefix of big's;
    small's INCLUDE columns are in big."""
    if small.access_method != "btree" and small.columns != big.columns:
        return False  # prefix matching only means something for B-trees
    n = small.key_count
    if n > big.key_count or small.columns[:n] != big.columns[:n]:
        return False
    if not (_same_prefix(small.opclasses, big.opclasses, n)
            and _same_prefix(small.collations, big.collations, n)
            and _same_order(small, big, n)):
        return False
    return len(small.columns) == n or set(small.columns[n:]) <= set(big.columns)


def _enforces_as_much(small, big) -> bool:
    """Dropping small loosens no rule: small is not unique, or big is unique on exactly the
    same key columns and at least as strict about NULLs."""
    if not small.is_unique:
        return True
    return (big.is_unique and small.key_count == big.key_count
            and small.columns[:small.key_count] == big.columns[:big.key_count]
            and (big.nulls_not_distinct or not small.nulls_not_distinct))


@dataclass(frozen=True)
class Covered:
    """An index another makes unnecessary (`small`), and the one that stays (`big`): rows of
    list_indexes. Named like a finding, so the unused check can leave both out unworded."""
    small: tuple
    big: tuple

    @property
    def schema_name(self) -> str:
        return self.small.schema_name

    @property
    def index_name(self) -> str:
        return self.small.index_name

    @property
    def covered_by(self) -> str:
        return self.big.index_name


@no_collection()  # a row tuple per index: see no_collection
def covered_indexes(frame: pd.DataFrame) -> list[Covered]:
    """Indexes another index makes unnecessary: the one that stays serves every lookup, sort
    order and constraint the dropped one serves. Never proposes dropping one that backs a
    constraint, or an index attached to a partitioned one (its parent is judged instead); of
    two equivalent ones keeps the one backing a constraint, else the more used, else the
    older (lower oid)."""
    covered = []
    # only indexes with the same table, method, expressions, predicate and first key column
    # can cover each other (a covered index's key columns lead the other's)
    groups: dict[tuple, list] = {}
    needed = ["schema_name", "table_name", "index_name", "index_oid", "table_oid",
              "access_method", "columns", "key_count", "opclasses", "collations", "options",
              "is_unique", "nulls_not_distinct", "is_partitioned", "backs_constraint",
              "is_clustered",
              "expressions", "predicate", "size_bytes", "scans"]
    candidates = frame[frame["is_valid"] & frame["parent_index_oid"].isna()]
    # most indexes share their table with no other index of the same kind: skip them in bulk
    group_key = [candidates["table_oid"], candidates["access_method"],
                 candidates["expressions"].fillna(""), candidates["predicate"].fillna(""),
                 candidates["columns"].str[0]]
    candidates = candidates[pd.DataFrame(dict(enumerate(group_key))).duplicated(keep=False)]
    for row in rows(candidates[needed], index=False):
        key = (row.table_oid, row.access_method, _text(row.expressions), _text(row.predicate),
               row.columns[0])
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        if len(group) < 2:
            continue
        # Those that may stay come first (a constraint's, then the widest, the strictest, the
        # most used, the oldest); each later one covered by one that stays is dropped in its
        # favour. So every group keeps at least one index, and the one a finding names as
        # staying never goes.
        kept: list = []
        for small in sorted(group, key=lambda r: (not r.backs_constraint, -r.key_count,
                                                 -len(r.columns), not r.is_unique,
                                                 not r.nulls_not_distinct, -r.scans,
                                                 r.index_oid)):
            big = None if small.backs_constraint else next(
                (b for b in kept if _covers(small, b) and _enforces_as_much(small, b)), None)
            if big is None:
                kept.append(small)
            else:
                covered.append(Covered(small, big))
    return covered


@no_collection()  # a row tuple per index: see no_collection
def duplicate_indexes(frame: pd.DataFrame) -> list[IndexFinding]:
    """The covered indexes (covered_indexes) as findings: why, and the DROP."""
    findings = []
    for small, big in ((c.small, c.big) for c in covered_indexes(frame)):
        mutual = (big.is_unique == small.is_unique
                  and big.nulls_not_distinct == small.nulls_not_distinct and _covers(big, small))
        kind = "duplicate of" if mutual else "redundant: its columns lead"
        serves = "every lookup and sort order" + (" and the uniqueness"
                                                  if small.is_unique else "")
        findings.append(IndexFinding(
            small.schema_name, small.table_name, small.index_name, int(small.size_bytes),
            f"{kind} {quote_ident(big.index_name)}, which stays: it serves {serves} "
            "this one serves" + ("; CLUSTER uses this one for the table: cluster on the one "
                                 "that stays" if small.is_clustered else ""),
            drop_sql(small.schema_name, small.index_name, small.is_partitioned),
            covered_by=big.index_name, index_oid=int(small.index_oid),
            covered_by_oid=int(big.index_oid)))
    return findings


def being_built(conn: psycopg.Connection) -> frozenset[int]:
    """The oids of the indexes whose build is running right now."""
    return frozenset(r[0] for r in conn.execute(
        "SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid <> 0"))


def invalid_indexes(frame: pd.DataFrame, building: frozenset[int]) -> list[IndexFinding]:
    """Left INVALID by a failed CREATE INDEX CONCURRENTLY (or REINDEX), and not a build running
    right now (`building`: being_built). Still maintained on every write, never used for reads."""
    invalid = frame[~frame["is_valid"] & ~frame["index_oid"].isin(building)]
    return [IndexFinding(r.schema_name, r.table_name, r.index_name, int(r.size_bytes),
                         "INVALID: a concurrent build failed; it slows writes and serves no reads",
                         f"REINDEX INDEX CONCURRENTLY {qualified(r.schema_name, r.index_name)};  "
                         f"-- or: {drop_sql(r.schema_name, r.index_name)}",
                         index_oid=int(r.index_oid))
            for r in rows(invalid)]


@dataclass
class MissingIndexHint:
    schema_name: str
    table_name: str
    columns: str
    reason: str
    fix: str | None


def unsupported_keys(keys: list[ForeignKey], frame: pd.DataFrame) -> list[ForeignKey]:
    """The foreign keys no index of the frame supports (ForeignKey.supported_by); only the
    indexes of tables that have foreign keys are looked at."""
    on_fk_tables = frame[frame["table_oid"].isin([fk.table_oid for fk in keys])]
    by_table: dict[int, list] = {}
    for r in rows(on_fk_tables):
        by_table.setdefault(r.table_oid, []).append(r)
    return [fk for fk in keys
            if not any(fk.supported_by(r) for r in by_table.get(fk.table_oid, []))]


def unindexed_foreign_keys(keys: list[ForeignKey], frame: pd.DataFrame) -> list[MissingIndexHint]:
    """Foreign keys with no valid index whose leading columns are the key's columns: deletes
    and updates on the referenced table scan this one, and joins on the key cannot use an index."""
    hints = []
    for fk in unsupported_keys(keys, frame):
        cols = ", ".join(quote_ident(c) for c in fk.column_names)
        index_name = f"idx_{fk.table_name}_{'_'.join(fk.column_names)}"[:63]
        build = (f"CREATE INDEX IF NOT EXISTS {quote_ident(index_name)} "
                 f"ON {qualified(fk.schema_name, fk.table_name)} ({cols});  -- partitioned "
                 "table: CONCURRENTLY is not possible; blocks writes to every partition while "
                 "it builds" if fk.partitioned_table else
                 f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(index_name)} "
                 f"ON {qualified(fk.schema_name, fk.table_name)} ({cols});")
        hints.append(MissingIndexHint(
            fk.schema_name, fk.table_name, cols,
            f"foreign key {quote_ident(fk.name)} ({cols}) has no index leading with its columns",
            build))
    return hints


OWN_SCHEMA = "dbpulse"  # DB Pulse's own objects: not the application's problem


@dataclass
class IndexReview:
    """Every index finding of one database, from one catalogue read."""
    duplicates: list[IndexFinding]
    judged: list[IndexFinding]          # indexes without scans, each with its verdict
    invalid: list[IndexFinding]
    foreign_keys: list[MissingIndexHint]

    @property
    def unused(self) -> list[IndexFinding]:
        return [f for f in self.judged if f.verdict == "drop"]

    @property
    def not_judged(self) -> list[IndexFinding]:
        return [f for f in self.judged if f.verdict != "drop"]

    def without_own(self) -> "IndexReview":
        """DB Pulse's own indexes left out (the default on every page and in every check)."""
        def mine(items):
            return [f for f in items if f.schema_name != OWN_SCHEMA]
        return IndexReview(mine(self.duplicates), mine(self.judged), mine(self.invalid),
                           mine(self.foreign_keys))


@dataclass(frozen=True)
class ReviewReads:
    """What the index findings are judged from (review_reads)."""
    frame: pd.DataFrame              # list_indexes' rows
    foreign_keys: list[ForeignKey]
    building: frozenset[int]         # being_built


def review_reads(conn: psycopg.Connection, min_size_bytes: int,
                 frame: pd.DataFrame | None = None) -> ReviewReads:
    """Everything review() reads: the indexes the checks need (or `frame`)."""
    frame = list_indexes(conn, "checks", min_size_bytes) if frame is None else frame
    return ReviewReads(frame, foreign_keys(conn), being_built(conn))


def judge_review(reads: ReviewReads, min_size_bytes: int,
                 evidence: UsageEvidence) -> IndexReview:
    """Every index finding from review_reads' result, without reading anything more."""
    frame, keys = reads.frame, reads.foreign_keys
    duplicates = duplicate_indexes(frame)
    return IndexReview(duplicates,
                       judge_unused(frame, min_size_bytes, duplicates, foreign_keys=keys,
                                    evidence=evidence),
                       invalid_indexes(frame, reads.building), unindexed_foreign_keys(keys, frame))


def review(conn: psycopg.Connection, min_size_bytes: int, evidence: UsageEvidence,
           frame: pd.DataFrame | None = None) -> IndexReview:
    """Every index finding from one read of the indexes the checks need (or of `frame`)."""
    return judge_review(review_reads(conn, min_size_bytes, frame), min_size_bytes, evidence)


# Each check on its own, reading only its scope: what `cli.py check` and the benchmark time;
# review() gives the same findings from one read.
def unused_review(conn: psycopg.Connection, min_size_bytes: int,
                  evidence: UsageEvidence) -> list[IndexFinding]:
    frame = list_indexes(conn, "unused", min_size_bytes)
    # the duplicate check's findings are left out by name: they need no words here
    return judge_unused(frame, min_size_bytes, covered_indexes(frame),
                        foreign_keys=foreign_keys(conn), evidence=evidence)


def duplicate_review(conn: psycopg.Connection) -> list[IndexFinding]:
    return duplicate_indexes(list_indexes(conn, "duplicates"))


def definitions(conn: psycopg.Connection, oids: list[int]) -> dict[int, str]:
    """Each index's definition in short, by oid: the server's own (pg_get_indexdef) from its
    method on, UNIQUE kept. Read for the findings a page draws: decompiling every index is
    what the catalogue read avoids, and wording 6,000 definitions from column names took a
    seventh of the Indexes page's data at 25,000 indexes."""
    if not oids:
        return {}
    found = conn.execute("""
        SELECT i.indexrelid, i.indisunique, pg_get_indexdef(i.indexrelid),
               -- what precedes the method in pg_get_indexdef, quoted as it quotes
               'INDEX ' || quote_ident(c.relname) || ' ON '
               || CASE WHEN c.relkind = 'I' THEN 'ONLY ' ELSE '' END
               || quote_ident(n.nspname) || '.' || quote_ident(t.relname) || ' USING '
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE i.indexrelid = ANY(%s::text::oid[])""", (_array_text(oids),)).fetchall()
    return {oid: _short_definition(unique, text, head) for oid, unique, text, head in found}


def _short_definition(unique: bool, text: str, head: str) -> str:
    """pg_get_indexdef's text from the method on (`head`: what precedes it), else whole.

    >>> _short_definition(True, 'CREATE UNIQUE INDEX "x USING y" ON public.t USING btree (a)',
    ...                   'INDEX "x USING y" ON public.t USING ')
    'UNIQUE btree (a)'
    """
    start = text.find(head)
    if start < 0:
        return text
    return ("UNIQUE " if unique else "") + text[start + len(head):]


def definition_text(words: dict[int, str], oid: int, stays: int = 0) -> str | None:
    """A finding's definition from definitions()' `words`: its index's, and for a duplicate
    the one that stays (`stays`); None for an index dropped since the review was read.

    >>> words = {1: "btree (a)", 2: "btree (a, b)"}
    >>> definition_text(words, 1), definition_text(words, 1, 2), definition_text(words, 3)
    ('btree (a)', 'btree (a); the one that stays: btree (a, b)', None)
    """
    if oid not in words:
        return None
    if not stays:
        return words[oid]
    return f"{words[oid]}; the one that stays: {words.get(stays, 'unknown (dropped since)')}"


def invalid_review(conn: psycopg.Connection) -> list[IndexFinding]:
    return invalid_indexes(list_indexes(conn, "invalid"), being_built(conn))


def foreign_key_review(conn: psycopg.Connection) -> list[MissingIndexHint]:
    return unindexed_foreign_keys(foreign_keys(conn), list_indexes(conn, "foreign_keys"))


def scan_totals(conn: psycopg.Connection) -> tuple[int, int]:
    """(index scans, sequential scans) over the user tables: pg_stat_user_tables' idx_scan and
    seq_scan summed, from the statistics functions (the view sums each table's indexes in a
    subquery per table: 46 ms at 25,000 indexes, against 27). An index lives in its table's
    schema, and a partitioned one has no scans of its own. DB Pulse's own are left out: its
    schema's, and the scans of its latency probes (as SCANS leaves them out)."""
    return conn.execute("""
        SELECT coalesce(sum(scans) FILTER (WHERE relkind = 'i'), 0)::bigint,
               coalesce(sum(scans) FILTER (WHERE relkind <> 'i'), 0)::bigint
        FROM (SELECT c.relkind, pg_stat_get_numscans(c.oid) - coalesce(
                         (%(own_scans)s::jsonb ->> c.oid::text)::bigint, 0) AS scans
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'p', 'i')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', %(own_schema)s)
                AND n.nspname !~ '^pg_toast'
              OFFSET 0) relations  -- each relation's lookups once, not once per sum
        """, {"own_scans": own_scans_parameter(conn), "own_schema": OWN_SCHEMA}).fetchone()


def sequential_scan_heavy(conn: psycopg.Connection, min_rows: int = 10_000,
                          min_avg_rows: int = 1_000) -> pd.DataFrame:
    """Tables read mostly by sequential scans with many rows per scan: candidates for an index
    (look at the statements that read them on the slow-query page). The scans and rows are the
    application's: DB Pulse's latency probes' are taken out.

    pg_stat_user_tables' figures, read from the statistics functions: the view sums every
    table's index scans and computes twenty more figures per table, where only the tables with
    enough rows read by sequential scans need their index scans (at 25,000 indexes 20 against
    54 ms)."""
    cur = conn.execute(f"""
        WITH {probes.PROBED_TABLES},
             tables AS (
                SELECT c.oid AS relid, n.nspname AS schemaname, c.relname,
                       pg_stat_get_numscans(c.oid) - coalesce(p.seq_scans, 0) AS seq_scan,
                       pg_stat_get_tuples_returned(c.oid) - coalesce(p.seq_rows, 0)
                           AS seq_tup_read,
                       coalesce(p.index_scans, 0) AS probes_index_scans
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN probed_tables p ON p.relid = c.oid
                WHERE c.relkind IN ('r', 't', 'm', 'p')  -- pg_stat_user_tables' relations
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND n.nspname !~ '^pg_toast'),
             scanned AS (
                SELECT t.*, pg_stat_get_live_tuples(t.relid) AS n_live_tup,
                       (SELECT coalesce(sum(pg_stat_get_numscans(i.indexrelid)), 0)
                        FROM pg_index i WHERE i.indrelid = t.relid) - t.probes_index_scans
                           AS idx_scan
                FROM tables t
                WHERE t.seq_tup_read >= %(min_rows)s
                  AND t.seq_tup_read / nullif(t.seq_scan, 0) >= %(min_avg_rows)s
                OFFSET 0)  -- the index scans summed for these tables only
        SELECT s.schemaname                                        AS schema_name,
               s.relname                                           AS table_name,
               s.seq_scan                                          AS seq_scans,
               s.seq_tup_read                                      AS rows_read_by_seq_scans,
               s.seq_tup_read / nullif(s.seq_scan, 0)              AS avg_rows_per_seq_scan,
               s.idx_scan                                          AS index_scans,
               s.seq_scan::float8 / nullif(s.seq_scan + s.idx_scan, 0)
                                                                   AS seq_scan_share,
               s.n_live_tup                                        AS live_rows,
               pg_relation_size(s.relid)                           AS size_bytes
        FROM scanned s
        WHERE s.seq_scan > s.idx_scan
        ORDER BY s.seq_tup_read DESC, s.schemaname, s.relname
        """, {"probed": probes.probed_parameter(conn), "min_rows": min_rows,
              "min_avg_rows": min_avg_rows})
    return to_frame(cur)


# How these frames are shown (ui/tables.py); an index's size and scans as SIZE_BYTES and SCANS
# define them, on every page
INDEX_SIZE = Column("Size", "bytes", help="Its pages as of the last VACUUM, ANALYZE or build "
                                          "(pg_class.relpages)")
INDEX_SCANS = Column("Scans", "count", help="Index scans since the statistics began, less DB "
                                            "Pulse's latency probes'")
FINDING_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "index_name": INDEX,
    "size_bytes": INDEX_SIZE, "reason": Column("Why", explains=True),
    # read for the findings drawn (definitions)
    "definition": Column("Definition", explains=True),
}
JUDGED_COLUMNS = {"verdict": Column("Verdict", width="small",
                                    help="drop: no scans and old enough to judge; kept: "
                                         "supports a foreign key; too new: no evidence yet"),
                  **FINDING_COLUMNS}
FOREIGN_KEY_COLUMNS = {"schema_name": SCHEMA, "table_name": TABLE,
                       "columns": Column("Key columns"), "reason": Column("Why", explains=True)}
SEQ_SCAN_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE,
    "seq_scans": Column("Sequential scans", "count"),
    "rows_read_by_seq_scans": Column("Rows read by them", "count"),
    "avg_rows_per_seq_scan": Column("Rows per scan", "count"),
    "index_scans": Column("Index scans", "count"),
    "seq_scan_share": Column("Sequential share", "percent",
                             help="Of all scans of the table"),
    "live_rows": Column("Live rows", "count"),
    "size_bytes": SIZE,
}
ALL_INDEX_COLUMNS = {
    "schema_name": SCHEMA, "table_name": TABLE, "index_name": INDEX,
    "access_method": Column("Method", width="small"), "size_bytes": INDEX_SIZE,
    "scans": INDEX_SCANS,
    "last_scan": Column("Last scan", "time",
                        help="PostgreSQL 16+; empty: never scanned, an older server, or last "
                             "scanned by DB Pulse's latency probes (the application's scan "
                             "before theirs is not recorded)"),
    "is_unique": Column("Unique", "flag"), "is_valid": Column("Valid", "flag"),
    "predicate": Column("Partial on", help="The WHERE of a partial index"),
}
