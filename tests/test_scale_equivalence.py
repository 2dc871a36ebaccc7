"""The checks read only what they can judge (issue 15): a scope of the indexes, relations over
the bloat minimum, tables with dead rows, one read of pg_stat_statements. Here the narrow
reads are compared with reading everything, on a catalogue holding every case the decisions
know: exact and prefix duplicates, twins, unique and NULLS NOT DISTINCT variants, partial and
expression indexes, a partitioned index whose partitions saw scans, foreign keys with and
without an index, an invalid index, big and small unused indexes, bloated big and small
tables, slow and fast statements."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pandas as pd
import psycopg
import pytest

from foundation import capabilities, server
from foundation.config import Settings
from foundation.connections import monitoring_connection
from operations import checks
from reads import bloat, cache, indexes, statements, vacuum

CATALOGUE = """
    CREATE EXTENSION pg_stat_statements;
    CREATE TABLE t (id int PRIMARY KEY, a int, b int, c text, d int, e boolean);
    INSERT INTO t SELECT i, i % 50, i % 7, 'v' || (i % 500), i % 11, i % 2 = 0
        FROM generate_series(1, 20000) i;
    CREATE INDEX t_a ON t (a);
    CREATE INDEX t_a_again ON t (a);
    CREATE INDEX t_ab ON t (a, b);
    CREATE INDEX t_ab_desc ON t (a, b DESC);
    CREATE INDEX t_b_partial ON t (b) WHERE e;
    CREATE INDEX t_b_partial_2 ON t (b, d) WHERE e;
    CREATE INDEX t_lower_c ON t (lower(c));
    CREATE INDEX t_lower_c_2 ON t (lower(c));
    CREATE INDEX t_hash_b ON t USING hash (b);
    CREATE UNIQUE INDEX t_id_plain ON t (id);
    CREATE UNIQUE INDEX t_id_nnd ON t (id) NULLS NOT DISTINCT;
    CREATE INDEX t_d_big_unused ON t (d, c);
    CREATE TABLE small (id int PRIMARY KEY, x int);
    INSERT INTO small SELECT i, i FROM generate_series(1, 50) i;
    CREATE INDEX small_x ON small (x);
    CREATE TABLE parent (id int PRIMARY KEY, code int UNIQUE);
    INSERT INTO parent SELECT i, i FROM generate_series(1, 500) i;
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id),
                        parent_code int REFERENCES parent (code), note text);
    INSERT INTO child SELECT i, 1 + i % 500, 1 + i % 500, 'n' || i FROM generate_series(1, 5000) i;
    CREATE INDEX child_parent ON child (parent_id);
    CREATE INDEX child_parent_note ON child (parent_id, note);
    CREATE TABLE pair (x int, y int, PRIMARY KEY (x, y));
    INSERT INTO pair SELECT i, i FROM generate_series(1, 100) i;
    CREATE TABLE pair_ref (id int, x int, y int, FOREIGN KEY (x, y) REFERENCES pair);
    INSERT INTO pair_ref SELECT i, 1 + i % 100, 1 + i % 100 FROM generate_series(1, 2000) i;
    CREATE INDEX pair_ref_xy ON pair_ref (x, y);
    CREATE INDEX pair_ref_yx ON pair_ref (y, x);
    CREATE TABLE events (id int, at date, kind int) PARTITION BY RANGE (at);
    CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
    CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');
    INSERT INTO events SELECT i, date '2026-01-01' + (i % 360), i % 5
        FROM generate_series(1, 8000) i;
    CREATE INDEX events_kind ON events (kind);
    CREATE INDEX events_at ON events (at);
    CREATE TABLE churn (id int PRIMARY KEY, filler text) WITH (autovacuum_enabled = off);
    INSERT INTO churn SELECT i, repeat('x', 200) FROM generate_series(1, 30000) i;
    DELETE FROM churn WHERE id % 10 <> 0;
    CREATE TABLE churn_small (id int, filler text) WITH (autovacuum_enabled = off);
    INSERT INTO churn_small SELECT i, 'y' FROM generate_series(1, 2000) i;
    DELETE FROM churn_small WHERE id > 10;
    CREATE TABLE dup (k int);
    INSERT INTO dup VALUES (1), (1);
    CREATE TABLE base (id int, v text);
    CREATE TABLE base_kid (extra int) INHERITS (base);
    INSERT INTO base SELECT i, 'b' FROM generate_series(1, 3000) i;
    INSERT INTO base_kid SELECT i, repeat('k', 300), i FROM generate_series(1, 3000) i;
"""


@pytest.fixture
def catalogue(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute(CATALOGUE)
        # the figures compared must not move between two reads: no autovacuum or autoanalyze
        # here, and the inserts' counts are in the shared statistics before ANALYZE resets them
        for table, in conn.execute("SELECT oid::regclass::text FROM pg_class WHERE relkind "
                                   "= 'r' AND relnamespace = 'public'::regnamespace").fetchall():
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        with pytest.raises(psycopg.errors.UniqueViolation):  # leaves an INVALID index
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_k ON dup (k)")
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("ANALYZE")
        conn.execute("ALTER TABLE small ADD COLUMN late int")  # no statistics yet
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SET enable_seqscan = off")
        for i in range(30):  # scans on one partition's index only, and on a few others
            conn.execute("SELECT count(*) FROM events WHERE kind = %s", (i % 5,))
            conn.execute("SELECT count(*) FROM t WHERE a = %s", (i,))
            conn.execute("SELECT * FROM small WHERE id = %s", (i,))
            conn.execute("SELECT * FROM pair_ref WHERE x = %s", (i,))
        conn.execute("SELECT pg_sleep(0.12)")  # slow on average, once
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("CREATE INDEX events_kind_again ON events (kind)")  # its twin, unscanned
    return scratch_database


SIZES = [0, 65_536]


@pytest.mark.parametrize("min_size", SIZES)
def test_index_checks_find_from_their_scopes_what_the_whole_catalogue_shows(catalogue,
                                                                            min_size):
    with monitoring_connection(catalogue, Settings(statement_timeout_ms=30_000)) as conn:
        evidence = indexes.usage_evidence(conn, None, timedelta(0))
        whole = indexes.review(conn, min_size, evidence, indexes.list_indexes(conn))
        scoped = indexes.review(conn, min_size, evidence)
        alone = (indexes.unused_review(conn, min_size, evidence),
                 indexes.duplicate_review(conn), indexes.invalid_review(conn),
                 indexes.foreign_key_review(conn))
        everything = indexes.list_indexes(conn)
        found = whole.duplicates + whole.judged
        words = indexes.definitions(conn, [f.index_oid for f in found]
                                    + [f.covered_by_oid for f in whole.duplicates])
    # the catalogue holds what each decision needs, so equality means something
    names = {f.index_name for f in whole.duplicates}
    assert {"t_a_again", "t_lower_c_2", "events_kind_again", "child_parent"} & names
    assert "t_id_plain" in names and "t_id_nnd" not in names and "t_ab_desc" not in names
    assert [f.index_name for f in whole.invalid] == ["dup_k"]
    assert "child_parent_code_fkey" in whole.foreign_keys[0].reason
    partitioned = everything.set_index("index_name").loc["events_kind", "scans"]
    assert partitioned >= 30  # its partitions' scans, summed (one query scans both)
    judged = {f.index_name for f in whole.judged}
    assert "events_kind" not in judged and "t_d_big_unused" in judged
    assert ("small_x" in judged) == (min_size == 0)
    # unscanned, but another index (scanned: the duplicates' scope holds neither) supports the
    # foreign key: it goes
    verdicts = {f.index_name: f.verdict for f in whole.judged}
    assert verdicts.get("pair_ref_yx") == ("drop" if min_size == 0 else None)
    assert "pair_ref_xy" not in verdicts
    # and the narrow reads find exactly the same
    assert scoped == whole
    # the definitions are read for the findings a page draws, by oid; the reasons never
    # carry them, and the catalogue is read without column names
    by_name = {f.index_name: f for f in found}
    assert "table_columns" not in everything
    assert words[by_name["t_d_big_unused"].index_oid] == "btree (d, c)"
    twin = by_name["t_lower_c_2"]
    assert indexes.definition_text(words, twin.index_oid, twin.covered_by_oid) == (
        "btree (lower(c)); the one that stays: btree (lower(c))")
    assert twin.reason.endswith("this one serves")
    assert not any("btree" in f.reason for f in found)
    assert set(words) == {f.index_oid for f in found} | {f.covered_by_oid
                                                         for f in whole.duplicates}
    assert alone == (whole.judged, whole.duplicates, whole.invalid, whole.foreign_keys)


def test_least_scanned_list_is_the_head_of_the_whole_list(catalogue):
    with monitoring_connection(catalogue, Settings()) as conn:
        everything = indexes.list_indexes(conn)
        head = indexes.list_indexes(conn, limit=5)
    assert set(head["indexes_total"]) == {len(everything)} and len(head) == 5
    expected = everything.sort_values(["scans", "size_bytes", "index_oid"],
                                      ascending=[True, False, True]).head(5)
    assert list(head["index_name"]) == list(expected["index_name"])


def test_bloat_check_estimates_only_what_can_be_a_finding_and_finds_the_same(catalogue):
    settings = Settings(statement_timeout_ms=30_000, bloat_min_bytes=1_048_576,
                        bloat_min_ratio=0.3)
    with monitoring_connection(catalogue, settings) as conn:
        stats = bloat.column_stats(conn)
        tables, idx = bloat.table_bloat(conn, stats), bloat.index_bloat(conn, stats)
        finding = checks.check_bloat(conn, settings)
        big_tables = bloat.table_bloat(conn, min_size_bytes=settings.bloat_min_bytes)
    expected = [f"public.{r.table_name}" for r in tables.itertuples()
                if r.bloat_ratio >= 0.3 and r.bloat_bytes >= settings.bloat_min_bytes]
    expected += [f"public.{r.index_name}" for r in idx.itertuples()
                 if r.bloat_ratio >= 0.3 and r.bloat_bytes >= settings.bloat_min_bytes]
    assert "public.churn" in expected  # 90 % of its rows deleted, never vacuumed
    assert "churn_small" in set(tables["table_name"])  # bloated, but under the minimum
    assert sorted(finding.objects) == sorted(expected) and finding.count == len(expected)
    # the big tables' figures are the same whether estimated alone or with the whole catalogue
    whole = tables.set_index("relid").loc[big_tables["relid"]]
    pd.testing.assert_series_equal(whole["bloat_bytes"].reset_index(drop=True),
                                   big_tables["bloat_bytes"], check_names=False)


def test_vacuum_check_reads_tables_with_dead_rows_as_the_statistics_view_shows_them(
        catalogue):
    with monitoring_connection(catalogue, Settings()) as conn:
        status = vacuum.vacuum_status(conn)
        behind = vacuum.vacuum_status(conn, checks.VACUUM_MIN_DEAD_ROWS)
        view = pd.DataFrame(conn.execute("""
            SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze
            FROM pg_stat_user_tables""").fetchall(),
            columns=["table_name", "live_rows", "dead_rows", "changed_since_analyze"])
    assert len(status) == len(view)
    mine = status.set_index("table_name")[["live_rows", "dead_rows", "changed_since_analyze"]]
    assert mine.sort_index().to_dict("index") == view.set_index("table_name").sort_index(
        ).to_dict("index")
    assert list(behind["table_name"]) == list(
        status[status["dead_rows"] >= checks.VACUUM_MIN_DEAD_ROWS]["table_name"])
    assert behind.iloc[0]["table_name"] == "churn" and behind.iloc[0]["dead_rows"] == 27000
    assert not behind.iloc[0]["autovacuum_enabled"]


def test_cache_hit_sums_equal_the_statistics_views(catalogue):
    """The heap and index block sums read per relation equal pg_statio_user_tables' sums
    outside DB Pulse's own schema, a materialized view's index and a partition's included."""
    with psycopg.connect(catalogue, autocommit=True) as conn:
        conn.execute("CREATE MATERIALIZED VIEW io_mv AS SELECT g AS id FROM "
                     "generate_series(1, 5000) g")
        conn.execute("CREATE UNIQUE INDEX io_mv_id ON io_mv (id)")
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM io_mv WHERE id < 100").fetchone()
        conn.execute("SELECT 1 FROM events WHERE kind = 3").fetchall()
    try:
        with monitoring_connection(catalogue, Settings()) as conn, conn.transaction():
            mine = conn.execute(cache.USER_TABLE_BLOCKS,
                                cache.user_table_blocks_parameters({})).fetchone()
            view = conn.execute("""
                SELECT sum(heap_blks_hit), sum(heap_blks_read), sum(idx_blks_hit),
                       sum(idx_blks_read) FROM pg_statio_user_tables
                WHERE schemaname <> %s""", (indexes.OWN_SCHEMA,)).fetchone()
    finally:
        with psycopg.connect(catalogue, autocommit=True) as conn:
            conn.execute("DROP MATERIALIZED VIEW io_mv")
    assert [int(v) for v in mine] == [int(v) for v in view]
    assert mine[0] > 0 and mine[2] > 0  # blocks of tables and of indexes were counted


def test_checks_on_two_connections_find_what_they_find_on_one(catalogue):
    settings = Settings(unused_index_min_bytes=0, bloat_min_bytes=0, unused_index_min_age_days=0)
    with monitoring_connection(catalogue, settings) as conn, \
            monitoring_connection(catalogue, settings) as spare:
        caps = capabilities.detect(conn)
        one = checks.run_all(conn, caps, settings)
        two = checks.run_all(conn, caps, settings, spare_conn=spare,
                             rates=cache.cache_hit_rates(conn))
        with ThreadPoolExecutor(1) as pool:  # as the Overview: the index checks started first
            started = checks.index_checks_aside(pool, spare, settings)
            server.server_identity(conn, with_size=True)
            first = checks.run_all(conn, caps, settings, index_findings=started)
    assert {f.check for f in one if f.severity != "green"} >= {"unused_indexes",
                                                                 "invalid_indexes"}
    # sessions and the buffer cache move between two runs; every other finding is the same
    steady = lambda found: [f for f in found if f.check not in ("cache_hit",)  # noqa: E731
                            and f.page != "activity"]
    for other in (two, first):
        assert steady(one) == steady(other)
        assert [f.check for f in one] == [f.check for f in other]  # in the same order


def test_slow_query_check_counts_from_one_read_what_the_statement_list_shows(catalogue):
    settings = Settings(slow_query_mean_ms=100, slow_query_min_calls=1)
    with monitoring_connection(catalogue, settings) as conn:
        caps = capabilities.detect(conn)
        ext = caps.extension("pg_stat_statements")
        finding = checks.check_slow_queries(conn, caps, settings)
        top = statements.top_statements(conn, ext, statements.StatementFilter(
            order_by="mean time", limit=5000))
    slow = statements.slow_statements(top, 100, 1)
    assert len(slow) == 1 and "pg_sleep" in slow.iloc[0]["query"]
    assert finding.count == 1 and finding.objects == [f"queryid {int(slow.iloc[0]['queryid'])}"]


def test_column_statistics_read_by_oid_equal_those_read_through_pg_stats(catalogue):
    """A superuser reads pg_statistic directly; any other role reads pg_stats: the same rows."""
    from foundation.frames import to_frame

    with monitoring_connection(catalogue, Settings()) as conn:
        frames = [to_frame(conn.execute(bloat.COLUMN_STATS.format(statistics=statistics),
                                        {"tables": None}, binary=True))
                  .sort_values(["relid", "attnum"], ignore_index=True)
                  for statistics in (bloat.STATS_BY_OID, bloat.STATS_BY_NAME)]
    assert frames[0]["width"].notna().sum() > 20  # every analyzed column of the catalogue
    assert frames[0]["width"].isna().any()  # and a column added after the last ANALYZE
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_column_statistics_are_the_relations_own_one_row_per_column(catalogue):
    """A table with inheritance children has statistics of itself and of its whole tree: its
    pages hold its own rows, so its own are read, once per column; a partitioned table has
    only the tree's; a column added since ANALYZE has none."""
    with monitoring_connection(catalogue, Settings()) as conn:
        stats = bloat.column_stats(conn)
        names = dict(conn.execute("SELECT oid::int, relname::text FROM pg_class "
                                  "WHERE relname IN ('base', 'events', 'small')").fetchall())
        own_width = conn.execute("SELECT avg_width FROM pg_stats WHERE tablename = 'base' "
                                 "AND attname = 'v' AND NOT inherited").fetchone()[0]
        tables = bloat.table_bloat(conn, stats).set_index("table_name")
    stats = stats.assign(table=stats["relid"].map(names))
    assert not stats.duplicated(["relid", "attnum"]).any()
    base = stats[stats["table"] == "base"].set_index("attnum")
    assert list(base.index) == [1, 2]
    assert base.loc[2, "width"] == pytest.approx(own_width + 0.5)  # 'b', not the tree's 300
    assert stats[stats["table"] == "events"]["width"].notna().all()  # the tree's statistics
    small = stats[stats["table"] == "small"].set_index("attnum")
    assert small["width"].notna().tolist() == [True, True, False]
    assert tables.loc["base", "columns_with_stats"] == tables.loc["base", "column_count"] == 2
    assert "statistics missing" in tables.loc["small", "stats_note"]


def test_bloat_estimates_on_two_connections_equal_those_on_one(catalogue):
    """The Bloat page reads the column statistics on a second connection meanwhile."""
    with monitoring_connection(catalogue, Settings()) as conn, \
            monitoring_connection(catalogue, Settings()) as spare:
        one = bloat.estimates(conn)
        two = bloat.estimates(conn, spare_conn=spare)
        alone = (bloat.table_bloat(conn, spare_conn=spare, with_toast=True),
                 bloat.index_bloat(conn, spare_conn=spare))
        big = bloat.estimates(conn, 1_048_576, spare_conn=spare)
    assert len(one[0]) >= 8 and len(one[1]) >= 20
    for frames in (two, alone):
        for expected, got in zip(one, frames):
            pd.testing.assert_frame_equal(expected, got)
    assert sorted(big[0]["table_name"]) == ["churn", "t"]  # the tables of at least 1 MB
