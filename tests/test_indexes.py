"""Each index check on a crafted database: the finding appears where it must, not where it
must not, and its fix SQL, run as given, makes it disappear."""

import psycopg
import pytest

from foundation.connections import monitoring_connection
from reads import indexes


@pytest.fixture
def crafted(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE parent (id int PRIMARY KEY);
            CREATE TABLE "Odd Table" (
                id int PRIMARY KEY, parent_id int REFERENCES parent (id),
                a int, b int, "Mixed Col" text, email text UNIQUE);
            INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
            INSERT INTO "Odd Table" SELECT g, 1 + g % 100, g % 10, g % 7, 'x' || g, 'e' || g
              FROM generate_series(1, 5000) g;
            CREATE INDEX "Idx A" ON "Odd Table" (a);
            CREATE INDEX idx_a_b ON "Odd Table" (a, b);
            CREATE INDEX idx_a_twin ON "Odd Table" (a, b);
            CREATE INDEX idx_a_partial ON "Odd Table" (a) WHERE b > 3;
            CREATE INDEX idx_lower ON "Odd Table" (lower("Mixed Col"));
            CREATE INDEX idx_b_hash ON "Odd Table" USING hash (b);
            CREATE UNIQUE INDEX idx_unique_b_a ON "Odd Table" (b, a, id);
            ANALYZE;
        """)
    return scratch_database


def _frame(url, settings):
    with monitoring_connection(url, settings) as conn:
        return indexes.list_indexes(conn)


def _run_fixes(url, findings):
    with psycopg.connect(url, autocommit=True) as conn:
        for f in findings:
            for statement in f.fix.split(";"):
                if statement.strip() and not statement.strip().startswith("--"):
                    conn.execute(statement.split("--")[0])


def test_duplicates_and_redundant_prefixes(crafted, settings):
    found = {f.index_name: f for f in indexes.duplicate_indexes(_frame(crafted, settings))}
    assert set(found) == {"Idx A", "idx_a_twin"}
    assert found["Idx A"].fix == 'DROP INDEX CONCURRENTLY IF EXISTS public."Idx A";'
    assert found["idx_a_twin"].covered_by == "idx_a_b"
    # never: the partial index (different predicate), the expression index, the hash index,
    # the unique one, or the constraint-backing primary key and email key
    _run_fixes(crafted, found.values())
    assert indexes.duplicate_indexes(_frame(crafted, settings)) == []


def test_unique_and_constraint_indexes_are_never_unused(crafted, settings):
    frame = _frame(crafted, settings)
    unused = {f.index_name for f in indexes.unused_indexes(frame)}
    assert "idx_b_hash" in unused and "idx_lower" in unused
    assert not unused & {"Odd Table_pkey", "Odd Table_email_key", "idx_unique_b_a", "parent_pkey"}


def test_scanned_index_is_not_unused_and_size_floor_applies(crafted, settings):
    with psycopg.connect(crafted) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("""SELECT * FROM "Odd Table" WHERE lower("Mixed Col") = 'x5'""").fetchall()
    import time
    time.sleep(0.6)  # cumulative statistics are flushed at most every half second
    frame = _frame(crafted, settings)
    assert "idx_lower" not in {f.index_name for f in indexes.unused_indexes(frame)}
    assert indexes.unused_indexes(frame, min_size_bytes=10**9) == []


def test_unused_fix_removes_the_finding(crafted, settings):
    frame = _frame(crafted, settings)
    duplicates = indexes.duplicate_indexes(frame)
    unused = indexes.unused_indexes(frame, 0, duplicates)
    assert not {f.index_name for f in unused} & {"Idx A", "idx_a_twin", "idx_a_b"}
    _run_fixes(crafted, unused)
    assert indexes.unused_indexes(_frame(crafted, settings), 0, duplicates) == []


def test_failed_concurrent_build_leaves_an_invalid_index(crafted, settings):
    with psycopg.connect(crafted, autocommit=True) as conn:
        conn.execute('INSERT INTO "Odd Table" VALUES (90001, 1, 1, 1, \'dup\', NULL), '
                     '(90002, 1, 1, 1, \'dup\', NULL)')
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute('CREATE UNIQUE INDEX CONCURRENTLY idx_unique_mixed ON "Odd Table" '
                         '("Mixed Col")')
    with monitoring_connection(crafted, settings) as conn:
        invalid = indexes.invalid_review(conn)
    assert [f.index_name for f in invalid] == ["idx_unique_mixed"]
    # the index is never proposed as unused or duplicate: it is reported as invalid
    frame = _frame(crafted, settings)
    assert "idx_unique_mixed" not in {f.index_name for f in indexes.unused_indexes(frame)}
    with psycopg.connect(crafted, autocommit=True) as conn:
        conn.execute("DELETE FROM \"Odd Table\" WHERE id = 90002")
        conn.execute(invalid[0].fix.split(";")[0])  # REINDEX INDEX CONCURRENTLY ...
    with monitoring_connection(crafted, settings) as conn:
        assert indexes.invalid_review(conn) == []


def test_unindexed_foreign_key_hint_and_its_fix(crafted, settings):
    with monitoring_connection(crafted, settings) as conn:
        hints = indexes.unindexed_foreign_keys(indexes.foreign_keys(conn), indexes.list_indexes(conn))
    assert [(h.table_name, h.columns) for h in hints] == [("Odd Table", "parent_id")]
    assert hints[0].fix == ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_Odd Table_parent_id" '
                            'ON public."Odd Table" (parent_id);')
    with psycopg.connect(crafted, autocommit=True) as conn:
        conn.execute(hints[0].fix)
    with monitoring_connection(crafted, settings) as conn:
        assert indexes.unindexed_foreign_keys(indexes.foreign_keys(conn),
                                              indexes.list_indexes(conn)) == []


def test_sequential_scan_heavy_tables(crafted, settings):
    with psycopg.connect(crafted) as conn:
        for _ in range(5):
            conn.execute('SELECT count(*) FROM "Odd Table" WHERE b = 3').fetchone()
    import time
    time.sleep(0.6)
    with monitoring_connection(crafted, settings) as conn:
        heavy = indexes.sequential_scan_heavy(conn, min_rows=10_000, min_avg_rows=1_000)
    assert "Odd Table" in set(heavy["table_name"])


def test_sequential_scan_heavy_figures_are_pg_stat_user_tables(crafted, settings):
    """The read's figures, taken from the statistics functions, are the view's: for a table
    scanned both ways, one without any index, and one never scanned."""
    with psycopg.connect(crafted, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain (v int); INSERT INTO plain SELECT generate_series(1, 300)")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM plain").fetchone()
            conn.execute('SELECT count(*) FROM "Odd Table" WHERE b = 3').fetchone()
        conn.execute("SET enable_seqscan = off")
        conn.execute('SELECT * FROM "Odd Table" WHERE a = 1 AND b = 1').fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
    with monitoring_connection(crafted, settings) as conn, conn.transaction():
        conn.execute("SET LOCAL stats_fetch_consistency = snapshot")  # both reads alike
        heavy = indexes.sequential_scan_heavy(conn, min_rows=0, min_avg_rows=0)
        view = conn.execute("""
            SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_live_tup
            FROM pg_stat_user_tables
            WHERE seq_scan > 0 AND seq_scan > coalesce(idx_scan, 0)
            ORDER BY seq_tup_read DESC, schemaname, relname""").fetchall()
    read = [tuple(r) for r in heavy[["table_name", "seq_scans", "rows_read_by_seq_scans",
                                     "index_scans", "live_rows"]].itertuples(index=False)]
    assert read == [tuple(r) for r in view]
    by_name = {r[0]: r for r in view}
    assert by_name["plain"][1:4] == (3, 900, 0)
    assert by_name["Odd Table"][3] >= 1  # the index scan is counted against its table
    assert "parent" not in by_name  # read by no sequential scan: not listed
