import subprocess
import time

import pytest
import redis

from demo.stack import free_port, redis_server_binary
from queries import redis_cache


@pytest.fixture
def private_redis(tmp_path):
    """A second real Redis with a password, stopped at the end (or earlier by the test)."""
    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", "s3cret", "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, password="s3cret").ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield port, proc
    proc.terminate()
    proc.wait(10)


def test_overview_counts_hits_and_misses(redis_url):
    client = redis_cache.connect(redis_url)
    before = redis_cache.redis_overview(client, redis_url)
    client.set("dbpulse-test:present", "1", ex=60)
    for _ in range(3):
        client.get("dbpulse-test:present")
    client.get("dbpulse-test:absent")
    after = redis_cache.redis_overview(client, redis_url)
    assert after.keyspace_hits - before.keyspace_hits == 3
    assert after.keyspace_misses - before.keyspace_misses == 1
    assert 0 <= after.hit_rate <= 1
    assert after.keys >= 1 and after.version and after.uptime_s >= 0
    client.delete("dbpulse-test:present")


def test_missing_info_fields_stay_none():
    overview = redis_cache.RedisOverview(
        server="redis", version="x", uptime_s=None, keyspace_hits=None, keyspace_misses=None,
        ops_per_sec=None, used_memory=None, maxmemory=None, maxmemory_policy=None,
        evicted_keys=None, expired_keys=None, connected_clients=None, keys=0)
    assert overview.hit_rate is None


def test_password_protected_redis(private_redis):
    port, _ = private_redis
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect(f"redis://:wrong@127.0.0.1:{port}/0")
    assert info.value.kind == "auth" and "wrong" not in str(info.value)
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect(f"redis://127.0.0.1:{port}/0")
    assert info.value.kind == "auth"
    client = redis_cache.connect(f"redis://:s3cret@127.0.0.1:{port}/0")
    assert redis_cache.redis_overview(client).keys == 0


def test_redis_that_goes_away_mid_session(private_redis):
    port, proc = private_redis
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    client = redis_cache.connect(url)
    proc.terminate()
    proc.wait(10)
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.redis_overview(client, url)
    assert info.value.kind == "unreachable"


def test_unreachable_redis_fails_fast(closed_port):
    t0 = time.monotonic()
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect(f"redis://127.0.0.1:{closed_port}/0", timeout_s=2)
    assert time.monotonic() - t0 < 5
    assert info.value.kind == "unreachable"


def test_malformed_redis_url():
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect("http://not-redis")
    assert info.value.kind == "bad_url"
