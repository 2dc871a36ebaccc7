from datetime import timedelta

import psycopg
from psycopg import sql

from demo.stack import create_database, database_url_for
from foundation import capabilities, server
from foundation.config import Settings
from foundation.connections import admin_connection, monitoring_connection
from operations import checks, dbpulse_schema, snapshots
from reads import cache
from tests.conftest import as_actor


def test_server_identity(database_url, settings):
    with monitoring_connection(database_url, settings) as conn:
        identity = server.server_identity(conn, with_size=True)
        expected_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        without_size = server.server_identity(conn)
    assert identity.version.split(".")[0] == str(identity.version_num // 10000)
    assert identity.database == "salesflow_test"
    assert abs(identity.database_size_bytes - expected_size) < 1_000_000
    assert without_size.database_size_bytes is None  # not read unless asked for
    assert timedelta(0) <= identity.uptime < timedelta(days=365)


def test_stats_reset_is_reported(scratch_database, settings):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
    with monitoring_connection(scratch_database, settings) as conn:
        identity = server.server_identity(conn)
    assert identity.stats_reset is not None
    assert identity.stats_age < timedelta(minutes=5)


def _flushed(conn: psycopg.Connection) -> None:
    """The session's statistics shared now (they are flushed before the statement returns)."""
    conn.execute("SELECT pg_stat_force_next_flush()")


def _figures(url: str, settings: Settings) -> tuple:
    with monitoring_connection(url, settings) as conn:
        rates = cache.cache_hit_rates(conn)
        _flushed(conn)
    return rates.blocks_hit, rates.blocks_read, rates.tables, rates.database


def _own_activity_leaves_the_hit_rates(admin_url: str, monitor_url: str) -> None:
    """In a database of one table (no index, autovacuum off: nothing else touches it), DB
    Pulse's checks and a snapshot taken and stored leave the hit rates' blocks as they were,
    and the application's scan of the table adds exactly its pages."""
    settings = Settings(role="viewer", statement_timeout_ms=10_000, connect_timeout_s=5)
    dba = Settings(role="dba", statement_timeout_ms=10_000, connect_timeout_s=5)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE data (id bigserial, pad text) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO data (pad) SELECT repeat('x', 200) FROM generate_series(1, 3000)")
        conn.execute("VACUUM ANALYZE data")
        conn.execute("SELECT count(*) FROM data").fetchone()
        pages = conn.execute("SELECT relpages FROM pg_class WHERE relname = 'data'").fetchone()[0]
        _flushed(conn)
    with admin_connection(admin_url, dba) as conn:
        dbpulse_schema.install(conn, as_actor(dba))
        _flushed(conn)
    before = _figures(monitor_url, settings)
    assert before[0] + before[1] > 0 and 0 < before[2] <= 1 and 0 < before[3] <= 1
    with monitoring_connection(monitor_url, settings) as conn:
        checks.run_all(conn, capabilities.detect(conn), settings)
        snap = snapshots.collect(conn, "own-activity")
        _flushed(conn)
    with admin_connection(admin_url, dba) as conn:
        snapshots.store(conn, snap, as_actor(dba))
        _flushed(conn)
    # every catalogue, sequence and DB Pulse table they read or wrote: thousands of blocks in
    # the database's own figures (pg_stat_database), none in the hit rates'
    assert _figures(monitor_url, settings) == before
    assert (snap.data_blks_hit, snap.data_blks_read) == before[:2]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM data").fetchone()
        _flushed(conn)
    after = _figures(monitor_url, settings)
    assert after[0] + after[1] - before[0] - before[1] == pages > 0


def test_db_pulses_own_reads_leave_the_hit_rates_alone(scratch_database, logins):
    name = psycopg.conninfo.conninfo_to_dict(scratch_database)["dbname"]
    monitor = database_url_for(logins.monitor_url, name)
    _own_activity_leaves_the_hit_rates(scratch_database, monitor)


def test_db_pulses_own_reads_leave_the_hit_rates_alone_on_15(pg15_url, pg15_logins):
    name = "own_activity_15"
    url = create_database(pg15_url, name, "pg_stat_statements")
    try:
        _own_activity_leaves_the_hit_rates(url, database_url_for(pg15_logins.monitor_url, name))
    finally:
        with psycopg.connect(pg15_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_buffer_cache_hit_rates_follow_the_counters(database_url, settings):
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT count(*) FROM message_events").fetchone()
    with monitoring_connection(database_url, settings) as conn, conn.transaction():
        rates = cache.cache_hit_rates(conn)
        hit, read = cache.data_blocks(conn)  # the same statistics snapshot in a transaction
    assert 0.0 <= rates.database <= 1.0 and 0.0 <= rates.tables <= 1.0
    assert rates.blocks_hit == hit > 0 and rates.database == hit / (hit + read)


def test_hit_rate_is_none_before_any_read(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        rates = cache.cache_hit_rates(conn)
    assert rates.tables is None and rates.indexes is None
