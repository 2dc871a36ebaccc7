"""Server settings advice, space per table with growth, and connections by client, each against
ground truth the test builds on a scratch database."""

from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from foundation import capabilities
from foundation.config import Settings
from foundation.connections import OWN_STATEMENT_TAG
from foundation.format import human_bytes
from operations import dbpulse_schema, history, snapshots
from reads import activity, indexes, space, tune
from tests.conftest import as_actor


def _advice(url: str) -> dict:
    with psycopg.connect(url) as conn:
        frame = tune.advise(tune.read_settings(conn), tune.read_evidence(conn))
    return {r.name: r for r in frame.itertuples()}


def test_advice_follows_the_settings_and_the_temp_files_the_server_wrote(scratch_database):
    before = _advice(scratch_database)
    assert before["random_page_cost"].state == "consider"  # 4: spinning-disk default
    assert before["work_mem"].state == "ok"  # a fresh database wrote no temporary file
    assert before["shared_buffers"].state in ("consider", "unknown")
    assert before["effective_cache_size"].state == "unknown"  # needs the machine's memory
    assert before["maintenance_work_mem"].default == "64MB"

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(sql.SQL("ALTER DATABASE {} SET random_page_cost = 1.1").format(
            sql.Identifier(name)))
    with psycopg.connect(scratch_database) as conn:  # a sort that must spill to disk, twice
        conn.execute("SET work_mem = '64kB'")
        for _ in range(2):
            conn.execute("SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC").fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
        written = conn.execute("SELECT temp_files FROM pg_stat_database "
                               "WHERE datname = current_database()").fetchone()[0]
    after = _advice(scratch_database)
    assert after["random_page_cost"].state == "ok" and after["random_page_cost"].value == "1.1"
    assert after["random_page_cost"].source == "database"
    assert after["work_mem"].state == "consider"
    assert written >= 2  # at least one file per spilled sort
    assert after["work_mem"].advice.startswith(f"{written:,} temporary files")
    # the ones to look at come first
    states = list(tune.advise(*_read(scratch_database))["state"])
    assert states == sorted(states, key={"consider": 0, "unknown": 1, "ok": 2}.get)


SPILLING_SORT = "SELECT g{} FROM generate_series(1, 200000) g ORDER BY g DESC"


def _blocks_written(url: str, sql_text: str) -> int:
    """The temporary blocks sql_text writes, as EXPLAIN counts them, run untracked."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")
        conn.execute("SET work_mem = '64kB'")
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql_text).fetchone()[0]
    return plan[0]["Plan"]["Temp Written Blocks"]


def test_the_temp_files_advice_says_whose_statements_wrote_them(scratch_database):
    """The work_mem advice tells what the statements pg_stat_statements holds wrote to
    temporary files, DB Pulse's own (its tag) apart: each what EXPLAIN counts for the
    statement."""
    application = SPILLING_SORT.format("")
    own = SPILLING_SORT.format(", 1") + " " + OWN_STATEMENT_TAG  # another statement
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SET work_mem = '64kB'")
        for text in (application, own):
            conn.execute(text).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")  # the server's temp files shared
        ext = capabilities.detect(conn).extension("pg_stat_statements")
        evidence = tune.read_evidence(conn, ext)
        advice = tune.advise(tune.read_settings(conn), evidence).set_index("name")
    expected = tuple(_blocks_written(scratch_database, text) * 8192 for text in (application, own))
    assert expected[0] > 0 and expected[1] > 0
    assert (evidence.statements_temp_bytes, evidence.own_temp_bytes) == expected
    assert (f"holds wrote {human_bytes(expected[0])} to temporary files (every block written), "
            f"DB Pulse's own {human_bytes(expected[1])} more.") in advice.at["work_mem", "advice"]


def _read(url):
    with psycopg.connect(url) as conn:
        return tune.read_settings(conn), tune.read_evidence(conn)


def test_space_per_table_and_its_growth_between_snapshots(scratch_database):
    settings = Settings(role="dba")
    who = as_actor(settings, scratch_database, name="space")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, body text)")
        conn.execute("CREATE TABLE small (id int)")
        conn.execute("INSERT INTO big SELECT g, repeat('x', 900) FROM generate_series(1, 1000) g")
        conn.execute("VACUUM ANALYZE big")
        with psycopg.connect(scratch_database, autocommit=True) as hist:
            dbpulse_schema.install(hist, who)
            snapshots.take(conn, hist, who, source="space", redis_urls=())
            size_before = conn.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
            conn.execute("INSERT INTO big SELECT g, repeat('y', 900) "
                         "FROM generate_series(1001, 3000) g")
            conn.execute("VACUUM ANALYZE big")
            size_after = conn.execute("SELECT pg_total_relation_size('big')").fetchone()[0]
            snapshots.take(conn, hist, who, source="space", redis_urls=())
            now = datetime.now(timezone.utc) + timedelta(seconds=1)
            changes = history.table_changes(hist, "space",
                                            history.Period(now - timedelta(days=7), now))
        by_table = space.with_growth(space.table_space(conn), changes)
        by_index = space.index_space(conn)
        listed = indexes.list_indexes(conn).set_index("index_name")
        pkey_pages = conn.execute("SELECT relpages FROM pg_class WHERE relname = 'big_pkey'"
                                  ).fetchone()[0]
    first = by_table.iloc[0]
    assert first.table_name == "big"  # biggest first
    assert first.total_bytes == first.table_bytes + first.index_bytes + first.toast_bytes
    assert 3000 * 900 <= first.table_bytes <= 3000 * 1100  # 3,000 rows of ~930 bytes
    assert first.estimated_rows == 3000
    assert first.growth_bytes == size_after - size_before > 0
    small = by_table[by_table["table_name"] == "small"].iloc[0]
    assert small.total_bytes == 0
    pkey = by_index[by_index["index_name"] == "big_pkey"].iloc[0]
    assert pkey.size_bytes == pkey_pages * 8192 > 0 and pkey.table_name == "big"
    # one definition of an index's size and scans: the Indexes page's
    assert (pkey.size_bytes, pkey.scans) == (listed.at["big_pkey", "size_bytes"],
                                             listed.at["big_pkey", "scans"])


def test_connections_grouped_by_role_application_and_client(scratch_database):
    opened = [psycopg.connect(scratch_database, application_name="probe-app") for _ in range(3)]
    try:
        opened[0].execute("SELECT 1")  # opens a transaction and leaves it idle in it
        with psycopg.connect(scratch_database) as conn:
            frame = activity.connections_by_client(conn)
            mine = frame[frame["application_name"] == "probe-app"]
        assert len(mine) == 1
        row = mine.iloc[0]
        assert (row.connections, row.idle, row.idle_in_transaction, row.active) == (3, 2, 1, 0)
        assert row.client in ("127.0.0.1", "local socket") and not row.own
        assert row.oldest_seconds >= 0
    finally:
        for conn in opened:
            conn.close()
