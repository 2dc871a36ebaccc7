import psycopg
import pytest

from demo import loader


def test_small_scale_row_counts(database_url):
    with psycopg.connect(database_url) as conn:
        counts = loader._table_counts(conn)
    scale = loader.SCALES["small"]
    assert counts["message_events"] == scale["events"]
    assert counts["leads"] == scale["leads"]
    assert counts["users"] == scale["users"]
    assert all(n > 0 for n in counts.values())


def test_data_is_skewed_and_spread(database_url):
    with psycopg.connect(database_url) as conn:
        top_share = conn.execute(
            "SELECT max(n)::float / sum(n) FROM (SELECT count(*) AS n FROM message_events "
            "GROUP BY user_id) AS per_user").fetchone()[0]
        days = conn.execute("SELECT extract(day FROM max(created_at) - min(created_at)) "
                            "FROM message_events").fetchone()[0]
        pending = conn.execute("SELECT avg((autopilot_status = 'pending')::int) "
                               "FROM message_events").fetchone()[0]
    assert top_share > 0.1           # one heavy user, not a uniform spread over 20
    assert days > 150                # about six months of history
    assert 0.01 < pending < 0.2


def test_deliberate_findings_are_there(database_url):
    with psycopg.connect(database_url) as conn:
        duplicates = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'message_events'::regclass "
            "AND indkey::text = (SELECT attnum::text FROM pg_attribute "
            "WHERE attrelid = 'message_events'::regclass AND attname = 'user_id')").fetchone()[0]
        unused = conn.execute("SELECT to_regclass('idx_web_tracking_events_url')").fetchone()[0]
        live, dead = conn.execute("SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                                  "WHERE relname = 'dm_conversations'").fetchone()
        mv = conn.execute("SELECT ispopulated FROM pg_matviews "
                          "WHERE matviewname = 'mv_deal_pipeline'").fetchone()
        plan_objects = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname IN ('idx_message_events_user_status_created', "
            "'mv_rlhf_sessions_daily', 'mv_hot_leads')").fetchone()[0]
    assert duplicates == 2
    assert unused is not None
    assert dead > live
    assert mv == (True,)
    assert plan_objects == 0  # the plan's objects come from the prepared migrations


def test_second_load_is_skipped(database_url):
    result = loader.load(database_url, "small")
    assert result.already_loaded and result.scale == "small"


def test_refuses_a_database_with_clashing_tables(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE leads (id int)")
    with pytest.raises(loader.LoadError, match="refusing to load"):
        loader.load(scratch_database, "small")
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT to_regclass('message_events')").fetchone()[0] is None


def test_failed_load_leaves_nothing_behind(scratch_database, monkeypatch, tmp_path):
    for name in ("schema.sql", "data.sql"):
        (tmp_path / name).write_text((loader.SQL_DIR / name).read_text())
    (tmp_path / "findings.sql").write_text("-- step: broken\nCREATE INDEX ON no_such_table (x);\n")
    monkeypatch.setattr(loader, "SQL_DIR", tmp_path)
    with pytest.raises(psycopg.errors.UndefinedTable):
        loader.load(scratch_database, "small")
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT to_regclass('users')").fetchone()[0] is None


def test_unknown_scale():
    with pytest.raises(loader.LoadError, match="unknown scale"):
        loader.load("postgresql://unused", "huge")


def test_split_steps():
    assert loader.split_steps("-- step: a\nSELECT 1;\n-- step: b\nSELECT 2;\n") == [
        ("a", "SELECT 1;"), ("b", "SELECT 2;")]
