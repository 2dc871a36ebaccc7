from datetime import timedelta

import psycopg

from foundation import server
from foundation.connections import monitoring_connection
from reads import cache


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


def test_buffer_cache_hit_rates_follow_the_counters(database_url, settings):
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT count(*) FROM message_events").fetchone()
    with monitoring_connection(database_url, settings) as conn:
        rates = cache.cache_hit_rates(conn)
        hit, read = conn.execute("SELECT blks_hit, blks_read FROM pg_stat_database "
                                 "WHERE datname = current_database()").fetchone()
    assert 0.0 <= rates.database <= 1.0 and 0.0 <= rates.tables <= 1.0
    assert rates.blocks_hit > 0
    # the counters move between the two reads, so compare loosely
    assert abs(rates.database - hit / (hit + read)) < 0.01


def test_hit_rate_is_none_before_any_read(scratch_database, settings):
    with monitoring_connection(scratch_database, settings) as conn:
        rates = cache.cache_hit_rates(conn)
    assert rates.tables is None and rates.indexes is None
