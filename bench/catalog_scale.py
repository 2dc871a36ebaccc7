"""Benchmark: every check's query function on a big catalogue.

Builds, in a scratch database of its own embedded server: 1,000 schemas, 5,000 tables, 20,000
indexes (multi-column, partial, expression, unique, hash, BRIN, and some duplicates), 5,000
distinct statements in pg_stat_statements, all tables analyzed. Then times each function: the
first run on a new connection (cold relation cache) and min/median/max of warm runs.

Prints one JSON object. Run: .venv/bin/python bench/catalog_scale.py [--keep] [--runs 5]
(--keep leaves the server and catalogue for the next run, which then skips the build.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from demo.stack import PROJECT_ROOT, EmbeddedStack, create_database, free_port  # noqa: E402
from queries import activity, bloat, cache, capabilities, checks, indexes, statements, vacuum  # noqa: E402
from queries.config import Settings  # noqa: E402
from queries.connections import open_monitoring  # noqa: E402

SCHEMAS, TABLES_PER_SCHEMA = 1000, 5
ROOT = PROJECT_ROOT / ".dbpulse" / "bench-catalog"
SETTINGS = Settings(statement_timeout_ms=60_000)


def build(url: str) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for s in range(SCHEMAS):
            statements_sql = [f"CREATE SCHEMA s{s}"]
            for t in range(TABLES_PER_SCHEMA):
                # unique table names: PostgreSQL 18 groups statements by relation *name*
                name = f"s{s}.t{s}_{t}"
                statements_sql += [
                    f"CREATE TABLE {name} (id bigint PRIMARY KEY, a int, b int, c text, "
                    f"d timestamptz, e boolean)",
                    f"INSERT INTO {name} SELECT g, g % 13, g % 7, 'v' || (g % 50), "
                    f"now() - g * interval '1 minute', g % 2 = 0 FROM generate_series(1, 40) g",
                    # four more indexes per table, a different mix per table number
                    [f"CREATE INDEX ON {name} (a, b)", f"CREATE INDEX ON {name} (lower(c))",
                     f"CREATE INDEX ON {name} USING hash (b)", f"CREATE INDEX ON {name} USING brin (d)",
                     f"CREATE UNIQUE INDEX ON {name} (c, id)"][t],
                    f"CREATE INDEX ON {name} (a)",                       # redundant with (a, b)?
                    f"CREATE INDEX ON {name} (b) WHERE e",
                ]
                if t % 2 == 0:
                    statements_sql.append(f"CREATE INDEX ON {name} (d, a)")
                else:
                    statements_sql.append(f"CREATE INDEX ON {name} (a)")  # an exact duplicate
            with conn.transaction():
                for statement in statements_sql:
                    conn.execute(statement)
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_statements_reset()")
        for s in range(SCHEMAS):
            for t in range(TABLES_PER_SCHEMA):
                conn.execute(f"SELECT count(*) FROM s{s}.t{s}_{t} WHERE a = %s", (s % 13,))
    return time.perf_counter() - t0


def timed(url: str, fn, runs: int) -> dict:
    conn = open_monitoring(url, SETTINGS)  # a new connection: the first run is cold
    try:
        t0 = time.perf_counter()
        fn(conn)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(conn)
            warm.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return {"first_ms": round(first * 1000, 1), "min_ms": round(min(warm) * 1000, 1),
            "median_ms": round(statistics.median(warm) * 1000, 1),
            "max_ms": round(max(warm) * 1000, 1)}


def functions(caps: capabilities.Capabilities) -> dict:
    ext = caps.extension("pg_stat_statements")

    def index_checks(conn):
        frame = indexes.list_indexes(conn)
        duplicates = indexes.duplicate_indexes(frame)
        indexes.unused_indexes(frame, 0, duplicates)
        indexes.invalid_indexes(conn, frame)
        indexes.unindexed_foreign_keys(indexes.foreign_keys(conn), frame)

    listed = {}

    def on_list(fn):
        """time a check on an index list made once, as checks.check_indexes does"""
        def run(conn):
            if "frame" not in listed:
                listed["frame"] = indexes.list_indexes(conn)
            return fn(conn, listed["frame"])
        return run

    return {
        "capabilities.detect": capabilities.detect,
        "statements.top_statements": lambda c: statements.top_statements(
            c, ext, statements.StatementFilter(limit=50)),
        "statements.slow_query_kpi": lambda c: statements.slow_query_kpi(c, ext),
        "indexes.list_indexes": indexes.list_indexes,
        "indexes.duplicate_indexes (on the list)": on_list(
            lambda c, f: indexes.duplicate_indexes(f)),
        "indexes.unused_indexes (on the list)": on_list(
            lambda c, f: indexes.unused_indexes(f, 0, indexes.duplicate_indexes(f))),
        "indexes.invalid_indexes (on the list)": on_list(indexes.invalid_indexes),
        "indexes.unindexed_foreign_keys (on the list)": on_list(
            lambda c, f: indexes.unindexed_foreign_keys(indexes.foreign_keys(c), f)),
        "all index checks (list + four checks)": index_checks,
        "indexes.sequential_scan_heavy": indexes.sequential_scan_heavy,
        "bloat.column_stats (shared by both)": bloat.column_stats,
        "bloat.table_bloat (with its column_stats)": bloat.table_bloat,
        "bloat.index_bloat (with its column_stats)": bloat.index_bloat,
        "vacuum.vacuum_status": vacuum.vacuum_status,
        "vacuum.wraparound": vacuum.wraparound,
        "vacuum.sequences_near_max": vacuum.sequences_near_max,
        "cache.table_hit_rates": cache.table_hit_rates,
        "activity.sessions": activity.sessions,
        # each check as run_all runs it: what a page or `check` waits for
        "checks.check_slow_queries": lambda c: checks.check_slow_queries(c, caps, SETTINGS),
        "checks.check_indexes": lambda c: checks.check_indexes(c, SETTINGS),
        "checks.check_bloat": lambda c: checks.check_bloat(c, SETTINGS),
        "checks.check_vacuum": lambda c: checks.check_vacuum(c, SETTINGS),
        "checks.check_activity": lambda c: checks.check_activity(c, SETTINGS, caps),
        "checks.run_all (every check)": lambda c: checks.run_all(c, caps, SETTINGS),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the server and catalogue")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stack = EmbeddedStack(root=ROOT, pg_port=free_port(), redis_port=free_port(),
                          database="postgres")
    status = stack.up()
    base = status.state.database_url("postgres")
    url = status.state.database_url("catalog")
    result: dict = {}
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'catalog'").fetchone()
        if exists:
            with psycopg.connect(url) as conn:
                exists = conn.execute("SELECT count(*) FROM pg_class WHERE relkind = 'r' "
                                      "AND relnamespace::regnamespace::text LIKE 's%'"
                                      ).fetchone()[0] == SCHEMAS * TABLES_PER_SCHEMA
        if not exists:
            create_database(base, "catalog", "pg_stat_statements")
            result["build_s"] = round(build(url), 1)
        with psycopg.connect(url) as conn:
            result["catalogue"] = dict(zip(
                ("schemas", "tables", "indexes", "statements"),
                conn.execute("""
                    SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 's%'),
                           (SELECT count(*) FROM pg_class WHERE relkind = 'r'
                              AND relnamespace::regnamespace::text ~ '^s[0-9]+$'),
                           (SELECT count(*) FROM pg_class WHERE relkind = 'i'
                              AND relnamespace::regnamespace::text ~ '^s[0-9]+$'),
                           (SELECT count(*) FROM pg_stat_statements)""").fetchone()))
            result["server_version"] = conn.info.server_version
        conn = open_monitoring(url, SETTINGS)
        caps = capabilities.detect(conn)
        conn.close()
        result["functions"] = {name: timed(url, fn, args.runs)
                               for name, fn in functions(caps).items()}
    finally:
        if args.keep:
            stack.down()  # keep the data folder, stop the processes
        else:
            stack.destroy()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
