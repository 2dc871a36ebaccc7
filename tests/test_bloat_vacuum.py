"""Bloat estimates against pgstattuple's exact figures, vacuum and wraparound, sequences."""

import time

import pandas as pd
import psycopg
import pytest

from foundation.connections import monitoring_connection
from foundation.roles import PermissionDenied
from reads import bloat, vacuum
from tests.conftest import as_actor

# The estimate ignores padding between columns inside a row and the few bytes a page cannot
# fill; on these tables (fixed-width columns and short text) it lands within 8 percentage
# points of pgstattuple's exact share of non-live space. Wider mixed rows drift further,
# which is why the page labels it an estimate.
TOLERANCE = 0.08


@pytest.fixture
def tables(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        for name in ("clean", "churned", "Quoted Name"):
            conn.execute(f'CREATE TABLE "{name}" (id bigint PRIMARY KEY, n int, at timestamptz, '
                         f'label text) WITH (autovacuum_enabled = false)')
            conn.execute(f'INSERT INTO "{name}" SELECT g, g % 1000, now(), '
                         f"'label-' || (g % 100) FROM generate_series(1, 30000) g")
        conn.execute("DELETE FROM churned WHERE id % 3 <> 0")  # two thirds dead
        conn.execute("VACUUM churned")                      # space free but not returned
        conn.execute('UPDATE "Quoted Name" SET n = n + 1')  # every row once more, dead ones stay
    settle_then_analyze(scratch_database)
    return scratch_database


def settle_then_analyze(url):
    """Cumulative statistics reach shared memory up to a second late; an ANALYZE before the
    writes' counts arrive would leave them counted as changes since that ANALYZE."""
    time.sleep(1.1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    time.sleep(1.1)


def _exact_waste(url, table):
    with psycopg.connect(url) as conn:
        length, dead, free = conn.execute(
            "SELECT table_len, dead_tuple_len, free_space FROM pgstattuple(%s::regclass)",
            (f'"{table}"',)).fetchone()
    return (dead + free) / length


@pytest.mark.parametrize("table", ["clean", "churned", "Quoted Name"])
def test_table_estimate_is_close_to_pgstattuple(tables, settings, table):
    with monitoring_connection(tables, settings) as conn:
        frame = bloat.table_bloat(conn)
    row = frame[frame["table_name"] == table].iloc[0]
    exact = _exact_waste(tables, table)
    assert abs(row["bloat_ratio"] - exact) <= TOLERANCE, (row["bloat_ratio"], exact)
    assert row["stats_note"] == ""


def test_churned_table_is_reported_and_clean_is_not(tables, settings):
    with monitoring_connection(tables, settings) as conn:
        frame = bloat.table_bloat(conn)
    ratios = dict(zip(frame["table_name"], frame["bloat_ratio"]))
    assert ratios["churned"] > 0.5 and ratios["Quoted Name"] > 0.4
    assert ratios["clean"] < 0.1
    assert bloat.table_fix_sql("public", "Quoted Name").startswith(
        'VACUUM (ANALYZE) public."Quoted Name";')


def test_never_analyzed_table_is_flagged(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE fresh (id int, t text)")
        conn.execute("INSERT INTO fresh SELECT g, 'x' FROM generate_series(1, 100) g")
    with monitoring_connection(scratch_database, settings) as conn:
        frame = bloat.table_bloat(conn)
    row = frame[frame["table_name"] == "fresh"].iloc[0]
    assert row["stats_note"] == "never analyzed: no estimate"
    assert pd.isna(row["bloat_ratio"]) and pd.isna(row["bloat_bytes"])  # unknown, never 0


def test_index_estimate_and_reindex_fix(tables, settings):
    with psycopg.connect(tables, autocommit=True) as conn:
        conn.execute("CREATE INDEX churn_n ON churned (n, id)")  # distinct keys: no dedup
        conn.execute("UPDATE churned SET n = n + 1")
        conn.execute("UPDATE churned SET n = n + 1")
        conn.execute("VACUUM churned")
    settle_then_analyze(tables)
    with monitoring_connection(tables, settings) as conn:
        before = bloat.index_bloat(conn).set_index("index_name").loc["churn_n", "bloat_ratio"]
    with psycopg.connect(tables, autocommit=True) as conn:
        conn.execute(bloat.index_fix_sql("public", "churn_n"))
    settle_then_analyze(tables)
    with monitoring_connection(tables, settings) as conn:
        after = bloat.index_bloat(conn).set_index("index_name").loc["churn_n", "bloat_ratio"]
    assert before > 0.3 and after < 0.15


def test_exact_measurement_is_a_dba_action(tables, settings, dba_settings):
    with psycopg.connect(tables, autocommit=True) as conn:
        with pytest.raises(PermissionDenied):
            bloat.exact_table_bloat(conn, as_actor(settings), "public", "churned")
        result = bloat.exact_table_bloat(conn, as_actor(dba_settings), "public", "Quoted Name")
        assert result["dead_tuple_percent"] > 30
        index = bloat.exact_index_bloat(conn, as_actor(dba_settings), "public", "churned_pkey")
        assert index["leaf_pages"] > 0


def test_autovacuum_off_with_churn_is_behind(tables, settings):
    with monitoring_connection(tables, settings) as conn:
        status = vacuum.vacuum_status(conn).set_index("table_name")
    row = status.loc["Quoted Name"]
    assert not row["autovacuum_enabled"]
    assert row["dead_rows"] >= 29000 and row["trigger_progress"] > 2
    # the trigger point follows the per-table setting when there is one
    with psycopg.connect(tables, autocommit=True) as conn:
        conn.execute("ALTER TABLE clean SET (autovacuum_vacuum_threshold = 77, "
                     "autovacuum_vacuum_scale_factor = 0)")
    with monitoring_connection(tables, settings) as conn:
        status = vacuum.vacuum_status(conn).set_index("table_name")
    assert status.loc["clean", "autovacuum_trigger_rows"] == 77


def test_wraparound_ages(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        wrap = vacuum.wraparound(conn)
    assert len(wrap) >= 2 and (wrap["share_of_limit"] < 0.5).all()


def test_sequences_near_their_maximum(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE small_ids (id serial PRIMARY KEY, v int)")
        conn.execute("SELECT setval('small_ids_id_seq', 2000000000)")
        conn.execute("CREATE SEQUENCE roomy")
        conn.execute("SELECT nextval('roomy')")
        # a bigint one near its end, beside one never used (no last value): read exactly, not
        # rounded as a float would
        conn.execute("CREATE SEQUENCE huge")
        conn.execute("SELECT setval('huge', 9200000000000000001)")
        conn.execute("CREATE SEQUENCE untouched")
    with monitoring_connection(scratch_database, settings) as conn:
        near = vacuum.sequences_near_max(conn, 0.75)
    assert list(near["sequence_name"]) == ["huge", "small_ids_id_seq"]
    assert int(near.iloc[0]["last_value"]) == 9200000000000000001
    assert near.iloc[0]["used_share"] == pytest.approx(9200000000000000001 / (2 ** 63 - 2))
    assert near.iloc[1]["effective_max"] == 2147483647 and near.iloc[1]["column_name"] == "id"


def test_sequences_found_through_defaults_and_identity_and_their_fix_runs(scratch_database,
                                                                         settings):
    from operations import checks
    from tests.conftest import login_role
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute('''
            CREATE SCHEMA "a.b";
            -- fed through a column default only: no OWNED BY
            CREATE SEQUENCE "a.b"."Loose Seq";
            CREATE TABLE "a.b"."seq tbl" ("end" int DEFAULT nextval('"a.b"."Loose Seq"'), v int);
            SELECT setval('"a.b"."Loose Seq"', 2000000000);
            -- an integer identity column
            CREATE TABLE ident ("offset" int GENERATED BY DEFAULT AS IDENTITY, v int);
            SELECT setval(pg_get_serial_sequence('ident', 'offset'), 1950000000);
            -- a bigint sequence feeding both a bigint and a smallint column: the smallint limits
            CREATE SEQUENCE shared_seq;
            CREATE TABLE wide (id bigint DEFAULT nextval('shared_seq'));
            CREATE TABLE narrow (id smallint DEFAULT nextval('shared_seq'));
            SELECT setval('shared_seq', 30000);
        ''')
    with monitoring_connection(scratch_database, settings) as conn:
        near = vacuum.sequences_near_max(conn, 0.75).set_index("sequence_name")
        finding = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
    assert near.loc["Loose Seq", "table_name"] == "seq tbl"
    assert near.loc["Loose Seq", "used_share"] == pytest.approx(2e9 / 2147483647)
    assert near.loc["ident_offset_seq", "column_name"] == "offset"
    assert (near.loc["shared_seq", "table_name"], near.loc["shared_seq", "effective_max"]) == (
        "narrow", 32767)
    assert finding.severity == "red" and len(finding.objects) == 3
    assert 'ALTER TABLE "a.b"."seq tbl" ALTER COLUMN "end" TYPE bigint;' in finding.fix
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        from pglast import split
        for statement in split(finding.fix):
            conn.execute(statement)
        assert conn.execute("SELECT nextval('ident_offset_seq') > 1950000000").fetchone()[0]
    with monitoring_connection(scratch_database, settings) as conn:
        after = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
    assert after.severity == "green" and after.objects == []
    # a role that may not read the sequences does not see "0 % used": it sees unknown, grey
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("SELECT setval('shared_seq', 2000000000)")
        conn.execute("ALTER TABLE wide ALTER COLUMN id TYPE int")
    with login_role(scratch_database, "seq_blind", "pw-seq") as url:
        with monitoring_connection(url, settings) as conn:
            blind = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
            unknown = vacuum.sequences_near_max(conn, 0.75)
    assert blind.severity == "grey" and "cannot be read" in blind.summary
    assert unknown["used_share"].isna().all() and not unknown["readable"].any()


def test_vacuum_finding_fix_makes_it_disappear(tables, settings):
    from operations import checks

    with monitoring_connection(tables, settings) as conn:
        finding = {f.check: f for f in checks.check_vacuum(conn, settings)}["vacuum"]
    assert 'public."Quoted Name"' in finding.objects
    assert 'ALTER TABLE public."Quoted Name" RESET (autovacuum_enabled);' in finding.fix
    with psycopg.connect(tables, autocommit=True) as conn:
        for statement in finding.fix.splitlines():
            conn.execute(statement)
    time.sleep(1.1)
    with monitoring_connection(tables, settings) as conn:
        after = {f.check: f for f in checks.check_vacuum(conn, settings)}["vacuum"]
    assert after.severity == "green" and after.objects == []


@pytest.fixture
def hard_cases(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        conn.execute("""
            CREATE TABLE low_card (id bigint, kind int) WITH (autovacuum_enabled = false);
            INSERT INTO low_card SELECT g, g % 4 FROM generate_series(1, 40000) g;
            CREATE INDEX low_card_kind ON low_card (kind);
            -- mostly-NULL int columns before bigint ones: the padding the estimate assumes
            -- after them is often not there
            CREATE TABLE sparse (id int, a int, b bigint, c int, d timestamptz, e int, f bigint,
                                 t text) WITH (autovacuum_enabled = false);
            INSERT INTO sparse SELECT g, CASE WHEN g % 10 = 0 THEN g END, g,
                   CASE WHEN g % 8 = 0 THEN g END, now(), CASE WHEN g % 9 = 0 THEN g END, g,
                   CASE WHEN g % 3 = 0 THEN 'v' || g END
              FROM generate_series(1, 40000) g;
            DELETE FROM sparse WHERE id % 4 = 0;
            CREATE TABLE documents (id int, body text) WITH (autovacuum_enabled = false);
            ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL;
            INSERT INTO documents SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 600) g;
            DELETE FROM documents WHERE id % 10 < 3;
        """)
    settle_then_analyze(scratch_database)
    return scratch_database


def test_deduplicated_index_is_unknown_not_zero(hard_cases, settings):
    with monitoring_connection(hard_cases, settings) as conn:
        row = bloat.index_bloat(conn).set_index("index_name").loc["low_card_kind"]
    with psycopg.connect(hard_cases) as conn:
        leaf_density = conn.execute("SELECT avg_leaf_density FROM pgstatindex('low_card_kind')"
                                    ).fetchone()[0]
    assert leaf_density > 0  # the index is real and measured exactly
    assert pd.isna(row["bloat_ratio"]) and "deduplication" in row["stats_note"]


def test_null_heavy_estimate_states_its_bound_and_keeps_it(hard_cases, settings):
    with monitoring_connection(hard_cases, settings) as conn:
        row = bloat.table_bloat(conn).set_index("table_name").loc["sparse"]
    exact = _exact_waste(hard_cases, "sparse")
    assert "NULL-heavy" in row["stats_note"]
    assert -TOLERANCE <= exact - row["bloat_ratio"] <= bloat.NULL_HEAVY_BOUND, (
        row["bloat_ratio"], exact)


def test_toast_is_said_to_be_not_estimated(hard_cases, settings):
    with monitoring_connection(hard_cases, settings) as conn:
        row = bloat.estimates(conn)[0].set_index("table_name").loc["documents"]
        plain = bloat.table_bloat(conn).set_index("table_name").loc["documents"]
        toast_file = conn.execute("SELECT pg_relation_size(reltoastrelid) FROM pg_class "
                                  "WHERE relname = 'documents'").fetchone()[0]
    assert row["toast_bytes"] == toast_file > 1_000_000
    assert f"TOAST ({row['toast_bytes'] / 1024:,.0f} kB) not estimated" in row["stats_note"]
    # the plain estimate (the check's) does not open TOAST tables: no size, no note, same bloat
    assert pd.isna(plain["toast_bytes"]) and "TOAST" not in plain["stats_note"]
    assert plain["bloat_bytes"] == row["bloat_bytes"]


def test_statistics_the_role_cannot_read_give_unknown(hard_cases, settings):
    from tests.conftest import login_role
    with login_role(hard_cases, "stats_blind", "pw-stats") as url:
        with psycopg.connect(hard_cases, autocommit=True) as conn:
            conn.execute("GRANT pg_monitor TO stats_blind")
        with monitoring_connection(url, settings) as conn:
            tables = bloat.table_bloat(conn).set_index("table_name")
    assert tables["bloat_ratio"].isna().all()
    assert "may not read" in tables.loc["sparse", "stats_note"]


def test_sequences_of_every_shape_and_their_fixes(scratch_database, settings):
    """Descending, a range that starts at MINVALUE, CYCLE with a low MAXVALUE: each rated by the
    used share of its own range, and each fix removes the finding and lets nextval go on."""
    from pglast import split

    from operations import checks
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute('''
            CREATE SEQUENCE down_seq AS integer INCREMENT -1;
            SELECT setval('down_seq', -2100000000);
            CREATE SEQUENCE from_min AS integer MINVALUE -2147483648 START -2147483648;
            SELECT setval('from_min', 1900523027);
            CREATE SEQUENCE wraps MAXVALUE 1000 CYCLE;
            CREATE TABLE wrapped (id bigint PRIMARY KEY DEFAULT nextval('wraps'));
            SELECT setval('wraps', 950);
        ''')
    with monitoring_connection(scratch_database, settings) as conn:
        near = vacuum.sequences_near_max(conn, 0.75).set_index("sequence_name")
        finding = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
    assert near.loc["down_seq", "used_share"] == pytest.approx(0.978, abs=0.001)
    assert near.loc["from_min", "used_share"] == pytest.approx(0.9425, abs=0.001)
    assert near.loc["wraps", "used_share"] == pytest.approx(0.95, abs=0.001)
    assert finding.severity == "red"
    assert set(finding.objects) == {"public.down_seq", "public.from_min", "public.wraps"}
    assert "public.wraps is CYCLE" in finding.summary
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        for statement in split(finding.fix):
            conn.execute(statement)
        assert conn.execute("SELECT nextval('down_seq') < -2100000000").fetchone()[0]
        for _ in range(60):  # past the old MAXVALUE 1000: no wrap, no collision
            conn.execute("INSERT INTO wrapped DEFAULT VALUES")
        assert conn.execute("SELECT max(id) FROM wrapped").fetchone()[0] == 1010
    with monitoring_connection(scratch_database, settings) as conn:
        after = {f.check: f for f in checks.check_vacuum(conn, settings)}["sequences"]
    assert after.severity == "green" and after.objects == []


@pytest.fixture
def fresh_indexes(scratch_database):
    """Freshly built B-tree indexes of the shapes the estimate used to get wrong: an INCLUDE
    column, an expression, two text keys with NULLs. Built fresh, they hold no bloat beyond
    their fillfactor, which pgstatindex measures exactly."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        conn.execute("""
            CREATE TABLE people (id int, email text, note text, city text, street text)
                WITH (autovacuum_enabled = false);
            INSERT INTO people SELECT g, 'User' || g || '@Example.com',
                   'a note of some length about person ' || g,
                   CASE WHEN g % 5 = 0 THEN NULL ELSE 'city-' || (g % 300) END,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE 'street number ' || g END
              FROM generate_series(1, 40000) g;
            CREATE INDEX people_id_note ON people (id) INCLUDE (note);
            CREATE INDEX people_lower_email ON people (lower(email));
            CREATE INDEX people_city_street ON people (city, street);
        """)
    settle_then_analyze(scratch_database)
    return scratch_database


@pytest.mark.parametrize("index", ["people_id_note", "people_lower_email", "people_city_street"])
def test_fresh_index_estimates_are_near_pgstatindex(fresh_indexes, settings, index):
    with monitoring_connection(fresh_indexes, settings) as conn:
        row = bloat.index_bloat(conn).set_index("index_name").loc[index]
    with psycopg.connect(fresh_indexes) as conn:
        density = conn.execute("SELECT avg_leaf_density FROM pgstatindex(%s)", (index,)
                               ).fetchone()[0] / 100
    exact = max(0.0, 1 - density / 0.90)  # a fresh leaf is filled to the fillfactor
    assert not pd.isna(row["bloat_ratio"]), row["stats_note"]
    assert abs(row["bloat_ratio"] - exact) <= 0.10, (row["bloat_ratio"], exact, density)
    assert "assumed" not in (row["stats_note"] or "")
