"""Every fix SQL the health checks emit, run as shown on a catalogue whose names need quoting
(a schema with a space, one with a dot, a table with a double quote, columns named after
keywords): each statement is valid, and afterwards its finding is gone and no check is worse."""

import time

import psycopg
from pglast import split

from foundation import capabilities
from foundation.config import Settings
from foundation.connections import monitoring_connection
from operations import checks

SETTINGS = Settings(unused_index_min_bytes=0, unused_index_min_age_days=0, bloat_min_bytes=0,
                    bloat_min_ratio=0.3)


def _findings(url):
    with monitoring_connection(url, SETTINGS) as conn:
        return {f.check: f for f in checks.run_all(conn, capabilities.detect(conn), SETTINGS)}


def test_every_emitted_fix_runs_and_removes_its_finding(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute('''
            CREATE SCHEMA "Odd Schema";
            CREATE SCHEMA "a.b";
            CREATE TABLE "Odd Schema"."Weird ""Name""" (id int PRIMARY KEY, "end" int,
                                                        "offset" int, note text)
              WITH (autovacuum_enabled = false);
            INSERT INTO "Odd Schema"."Weird ""Name"""
              SELECT i, i % 97, i % 89, 'n' || i FROM generate_series(1, 20000) i;
            CREATE INDEX "end" ON "Odd Schema"."Weird ""Name""" ("end", "offset");
            CREATE INDEX "end twin" ON "Odd Schema"."Weird ""Name""" ("end");
            CREATE INDEX "Note Idx" ON "Odd Schema"."Weird ""Name""" (note);
            CREATE TABLE "a.b"."seq tbl" (id serial, ref int REFERENCES
                                          "Odd Schema"."Weird ""Name""" (id), "desc" int);
            SELECT setval('"a.b"."seq tbl_id_seq"', 2000000000);
            DELETE FROM "Odd Schema"."Weird ""Name""" WHERE id % 4 <> 0;
        ''')
    time.sleep(1.1)  # let the deletes reach the statistics before ANALYZE
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("ANALYZE")
    before = _findings(scratch_database)
    expected = {"duplicate_indexes", "unused_indexes", "unindexed_foreign_keys", "sequences",
                "vacuum"}
    assert {c for c, f in before.items() if f.fix and f.severity in ("amber", "red")} >= expected
    assert before["bloat"].severity == "amber" and before["bloat"].fix
    statements = []
    # bloat's fix runs too (VACUUM makes the space reusable, REINDEX rebuilds), but only a
    # rewrite (pg_repack, VACUUM FULL) gives a table's space back, so its finding may stay
    for check in ["bloat"] + sorted(expected):  # bloat first: REINDEX before any DROP
        statements += [s for s in split(before[check].fix)]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # each one valid SQL, quoting and all
    time.sleep(1.1)
    after = _findings(scratch_database)
    for check in expected - {"unused_indexes"}:
        assert after[check].severity == "green", after[check]
    # the duplicate's twin and the new foreign-key index have no scans yet: the twin is now
    # proposed, the foreign-key index is kept for its key
    assert after["unused_indexes"].objects == ['"Odd Schema"."end"']
    order = checks.SEVERITY_ORDER
    for check, finding in before.items():
        assert order[after[check].severity] >= order[finding.severity] or check == "bloat", (
            check, finding.severity, after[check].severity)
