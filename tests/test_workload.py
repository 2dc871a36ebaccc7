import psycopg
import redis

from demo.workload import TTL, Workload


def test_workload_fills_pg_stat_statements_and_redis(database_url, redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    hits_before = client.info("stats")["keyspace_hits"]
    workload = Workload(database_url, redis_url, seed=7)
    try:
        stats = workload.run(rate_per_s=200, duration_s=4)
    finally:
        workload.close()
    assert stats.errors == 0
    assert stats.operations > 100
    assert {"q1_message_events_list", "q3_p_score_batch", "q7_deals_list"} <= set(stats.by_operation)

    with psycopg.connect(database_url) as conn:
        texts = [row[0] for row in conn.execute(
            "SELECT query FROM pg_stat_statements WHERE dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())")]
    assert any("FROM message_events WHERE user_id = $1 AND autopilot_status = $2" in t for t in texts)
    assert any("SELECT id, name FROM contacts WHERE id = ANY($1)" in t for t in texts)  # N+1

    # the application's keys; DB Pulse's observer ledger (dbpulse:*) lives beside them
    keys = [k for k in client.scan_iter(count=1000) if not k.startswith("dbpulse:")]
    families = {k.split(":")[0] for k in keys}
    assert {"dashboard", "lead", "idps", "hot_leads"} <= families
    # the cached families' keys (other tests on this server leave keys of their own); -2: the
    # key expired since the scan
    cached = {family.split(":")[0] for family in TTL}
    ttls = [client.ttl(k) for k in keys if k.split(":")[0] in cached][:50]
    assert ttls and all(0 < t <= max(TTL.values()) for t in ttls if t != -2)
    assert all(client.ttl(k) == -1 for k in keys if k.startswith("user_prefs:"))
    assert client.info("stats")["keyspace_hits"] > hits_before


def test_workload_keeps_going_without_redis(database_url, closed_port):
    workload = Workload(database_url, f"redis://127.0.0.1:{closed_port}/0", seed=3)
    try:
        stats = workload.run(rate_per_s=100, duration_s=1)
    finally:
        workload.close()
    assert stats.operations > 10 and stats.queries > 10
