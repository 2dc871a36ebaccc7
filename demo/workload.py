"""A background workload that behaves like the SalesFlow backend *before* the optimization plan:
the hot queries Q1-Q10 of the plan (section 2.1) with varied parameters, including the N+1
patterns and the Python-side aggregation the plan criticizes, plus cache-aside Redis traffic with
the plan's key families and TTLs. Rate-limited so the machine stays usable.
"""

from __future__ import annotations

import json
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
import redis

APPLICATION_NAME = "salesflow-api"  # how the demo app shows up in pg_stat_activity

# key family -> TTL in seconds, from the plan's section 4.4 and seed 002
TTL = {"dashboard": 600, "dashboard:rlhf": 60, "lead": 300, "idps:analytics": 30,
       "idps:inbox": 30, "hot_leads": 300}


@dataclass
class WorkloadStats:
    operations: int = 0
    queries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    errors: int = 0
    slowest_operation_s: float = 0.0
    by_operation: dict[str, int] = field(default_factory=dict)


class Workload:
    def __init__(self, database_url: str, redis_url: str | None, seed: int | None = None,
                 read_url: str | None = None):
        """read_url: a read replica for the analytics reads, as the plan has them."""
        # no server-side prepared statements: through PgBouncer's transaction pooling, the
        # next transaction may be on another server connection
        self.db = psycopg.connect(database_url, autocommit=True, application_name=APPLICATION_NAME,
                                  connect_timeout=10, prepare_threshold=None)
        self.replica = psycopg.connect(read_url, autocommit=True,
                                       application_name=APPLICATION_NAME + "-analytics",
                                       connect_timeout=10) if read_url else self.db
        self.cache = (redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
                      if redis_url else None)
        self.rng = random.Random(seed)
        self.stats = WorkloadStats()
        self.users = [row[0] for row in self.db.execute("SELECT id FROM users ORDER BY idx")]
        self.orgs = [row[0] for row in self.db.execute("SELECT DISTINCT org_id FROM users")]

    # -- helpers -------------------------------------------------------------------------------
    def _user(self):
        # the same skew as the data: a few heavy users are most of the traffic
        return self.users[int(len(self.users) * self.rng.random() ** 2.5)]

    def _query(self, sql: str, params=None, replica: bool = False) -> list[tuple]:
        self.stats.queries += 1
        cur = (self.replica if replica else self.db).execute(sql, params)
        return cur.fetchall() if cur.description else []

    def _cached(self, key: str, ttl: int, fetch):
        """Cache-aside, as the plan's CacheService.get_or_fetch. Redis trouble falls back to the
        database, as the plan's service does (it logs and returns None)."""
        if self.cache is not None:
            try:
                value = self.cache.get(key)
                if value is not None:
                    self.stats.cache_hits += 1
                    return json.loads(value)
                self.stats.cache_misses += 1
            except redis.RedisError:
                self.stats.errors += 1
        data = fetch()
        if self.cache is not None:
            try:
                self.cache.setex(key, ttl, json.dumps(data, default=str))
            except redis.RedisError:
                self.stats.errors += 1
        return data

    def _invalidate(self, pattern: str) -> None:
        if self.cache is None:
            return
        try:
            keys = list(self.cache.scan_iter(match=pattern, count=500))
            if keys:
                self.cache.delete(*keys)
        except redis.RedisError:
            self.stats.errors += 1

    # -- Q1-Q10 --------------------------------------------------------------------------------
    def q1_message_events_list(self):
        status = self.rng.choice(["sent", "sent", "pending", "received", "skipped", "failed"])
        self._query("SELECT * FROM message_events WHERE user_id = %s AND autopilot_status = %s "
                    "ORDER BY created_at DESC LIMIT 50", (self._user(), status))

    def q2_pending_events(self):
        channel = self.rng.choice(["instagram", "linkedin", "whatsapp", "email"])
        self._query("SELECT * FROM message_events WHERE user_id = %s AND autopilot_status = 'pending' "
                    "AND channel = %s ORDER BY created_at ASC LIMIT 100", (self._user(), channel))

    def q3_p_score_batch(self):
        """N+1 and Python-side aggregation: per lead, fetch the lead, fetch 14 days of the user's
        events, count them in a loop, write the score back."""
        user = self._user()
        lead_ids = [r[0] for r in self._query(
            "SELECT id FROM leads WHERE user_id = %s ORDER BY updated_at DESC LIMIT %s",
            (user, self.rng.randint(3, 8)))]
        now = datetime.now(timezone.utc)
        cutoff_14d, cutoff_7d = now - timedelta(days=14), now - timedelta(days=7)
        for lead_id in lead_ids:
            self._query("SELECT * FROM leads WHERE id = %s", (lead_id,))
            events = self._query("SELECT * FROM message_events WHERE user_id = %s "
                                 "AND created_at >= %s", (user, cutoff_14d))
            inbound_7d = inbound_14d = outbound_14d = 0
            for event in events:  # the loop the plan wants replaced by SQL aggregation
                direction, created_at = event[5], event[10]
                if direction == "inbound":
                    inbound_14d += 1
                    inbound_7d += created_at >= cutoff_7d
                else:
                    outbound_14d += 1
            score = min(100, inbound_7d * 6 + inbound_14d * 3 + outbound_14d * 0.5)
            self._query("UPDATE leads SET p_score = %s, last_scored_at = now(), updated_at = now() "
                        "WHERE id = %s", (round(score, 2), lead_id))
        self._invalidate(f"hot_leads:{user}:*")

    def q4_analytics_dashboard(self):
        days = self.rng.choice([7, 30, 30, 90])

        def fetch():
            start = datetime.now(timezone.utc) - timedelta(days=days)
            rows = self._query("SELECT created_at, outcome, composite_reward, user_id "
                               "FROM rlhf_feedback_sessions WHERE created_at >= %s", (start,),
                               replica=True)
            by_date: dict[str, dict] = {}
            for created_at, outcome, reward, user_id in rows:  # Python-side GROUP BY
                day = by_date.setdefault(created_at.date().isoformat(),
                                         {"sessions": 0, "conversions": 0, "reward": 0.0,
                                          "users": set()})
                day["sessions"] += 1
                day["conversions"] += outcome == "converted"
                day["reward"] += float(reward or 0)
                day["users"].add(str(user_id))
            return {d: {**v, "users": len(v["users"])} for d, v in by_date.items()}

        self._cached(f"dashboard:rlhf:days:{days}", TTL["dashboard:rlhf"], fetch)

    def q5_unified_inbox(self):
        user = self._user()
        status = self.rng.choice(["open", "open", "pending"])

        def inbox():
            return self._query(
                "SELECT id, platform, status, priority_score, last_message_at FROM dm_conversations "
                "WHERE user_id = %s AND status = %s AND platform = ANY(%s) "
                "ORDER BY priority_score DESC, last_message_at DESC LIMIT 50",
                (user, status, ["instagram", "linkedin", "whatsapp", "facebook"]))

        def analytics():
            return self._query("SELECT status, count(*), sum(unread_count) FROM dm_conversations "
                               "WHERE user_id = %s GROUP BY status", (user,), replica=True)

        self._cached(f"idps:inbox:{user}:{status}", TTL["idps:inbox"], inbox)
        self._cached(f"idps:analytics:{user}", TTL["idps:analytics"], analytics)

    def q6_contacts_list(self):
        self._query("SELECT * FROM contacts WHERE user_id = %s AND status = %s "
                    "ORDER BY created_at DESC LIMIT 25 OFFSET %s",
                    (self._user(), self.rng.choice(["active", "active", "inactive"]),
                     self.rng.choice([0, 0, 25, 50])))

    def q7_deals_list(self):
        """N+1: deals first, then a second query for their contacts' names."""
        deals = self._query("SELECT id, title, stage, value, contact_id FROM deals "
                            "WHERE org_id = %s ORDER BY created_at DESC LIMIT 50",
                            (self.rng.choice(self.orgs),))
        contact_ids = [d[4] for d in deals if d[4]]
        if contact_ids:
            self._query("SELECT id, name FROM contacts WHERE id = ANY(%s)", (contact_ids,))

    def q8_crm_notes(self):
        user = self._user()
        row = self._query("SELECT contact_id FROM crm_notes WHERE user_id = %s "
                          "AND contact_id IS NOT NULL LIMIT 1 OFFSET %s",
                          (user, self.rng.randint(0, 20)))
        if row:
            self._query("SELECT * FROM crm_notes WHERE user_id = %s AND contact_id = %s "
                        "ORDER BY created_at DESC LIMIT 20", (user, row[0][0]))

    def q9_hot_leads(self):
        user = self._user()
        limit = self.rng.choice([20, 50])
        self._cached(f"hot_leads:{user}:{limit}", TTL["hot_leads"], lambda: self._query(
            "SELECT id, name, p_score, last_scored_at FROM leads WHERE user_id = %s "
            "AND p_score >= 75 ORDER BY p_score DESC LIMIT %s", (user, limit)))

    def q10_lead_verifications(self):
        self._query("SELECT * FROM lead_verifications WHERE v_score >= %s AND is_duplicate = false "
                    "ORDER BY v_score DESC LIMIT 100", (self.rng.choice([60, 70, 80, 90]),))

    # -- cached details and writes -------------------------------------------------------------
    def lead_detail(self):
        # a small hot set of leads, so the lead: family gets hits
        user = self.users[int(len(self.users) * self.rng.random() ** 4)]
        offset = int(30 * self.rng.random() ** 2)
        row = self._query("SELECT id FROM leads WHERE user_id = %s ORDER BY p_score DESC NULLS LAST "
                          "LIMIT 1 OFFSET %s", (user, offset))
        if row:
            lead_id = row[0][0]
            self._cached(f"lead:{lead_id}", TTL["lead"],
                         lambda: self._query("SELECT * FROM leads WHERE id = %s", (lead_id,)))

    def user_dashboard(self):
        user = self._user()
        self._cached(f"dashboard:{user}", TTL["dashboard"], lambda: self._query(
            "SELECT status, count(*) FROM leads WHERE user_id = %s GROUP BY status", (user,)))

    def user_preferences(self):
        """A deliberate finding: one code path caches without a TTL, against the plan's rule
        that every cached family expires."""
        if self.cache is None:
            return
        user = self._user()
        try:
            if self.cache.get(f"user_prefs:{user}") is None:
                self.stats.cache_misses += 1
                self.cache.set(f"user_prefs:{user}", json.dumps({"theme": "light"}))
            else:
                self.stats.cache_hits += 1
        except redis.RedisError:
            self.stats.errors += 1

    def new_message(self):
        user = self._user()
        direction = self.rng.choice(["inbound", "outbound"])
        self._query(
            "INSERT INTO message_events (user_id, channel, direction, autopilot_status, "
            "template_version, persona_variant, normalized_text) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (user, self.rng.choice(["instagram", "linkedin", "whatsapp", "email"]), direction,
             "received" if direction == "inbound" else "pending",
             None if direction == "inbound" else f"v{self.rng.randint(1, 6)}",
             None if direction == "inbound" else "friendly", "workload message"))
        self._query("UPDATE dm_conversations SET unread_count = unread_count + 1, "
                    "last_message_at = now(), updated_at = now() WHERE id = "
                    "(SELECT id FROM dm_conversations WHERE user_id = %s LIMIT 1)", (user,))
        self._invalidate(f"idps:inbox:{user}:*")

    def new_feedback_and_deal(self):
        user = self._user()
        self._query("INSERT INTO rlhf_feedback_sessions (user_id, outcome, composite_reward) "
                    "VALUES (%s, %s, %s)",
                    (user, self.rng.choice(["no_reply", "positive_reply", "converted", "neutral"]),
                     round(self.rng.uniform(-0.5, 1.0), 3)))
        self._query("INSERT INTO deals (org_id, user_id, title, stage, value) "
                    "SELECT org_id, id, 'Workload deal', 'lead', %s FROM users WHERE id = %s",
                    (round(self.rng.uniform(500, 20000), 2), user))

    OPERATIONS = (  # (method name, weight)
        ("q1_message_events_list", 20), ("q2_pending_events", 8), ("q3_p_score_batch", 2),
        ("q4_analytics_dashboard", 3), ("q5_unified_inbox", 10), ("q6_contacts_list", 8),
        ("q7_deals_list", 6), ("q8_crm_notes", 6), ("q9_hot_leads", 8),
        ("q10_lead_verifications", 3), ("lead_detail", 12), ("user_dashboard", 8),
        ("new_message", 5), ("new_feedback_and_deal", 1), ("user_preferences", 2),
    )

    def step(self) -> str:
        names, weights = zip(*self.OPERATIONS)
        name = self.rng.choices(names, weights)[0]
        started = time.monotonic()
        try:
            getattr(self, name)()
        except (psycopg.Error, redis.RedisError):
            self.stats.errors += 1
            if self.db.closed:
                raise
        self.stats.slowest_operation_s = max(self.stats.slowest_operation_s,
                                             time.monotonic() - started)
        self.stats.operations += 1
        self.stats.by_operation[name] = self.stats.by_operation.get(name, 0) + 1
        return name

    def run(self, rate_per_s: float = 15.0, duration_s: float | None = None) -> WorkloadStats:
        """Run until duration_s has passed (or forever), about rate_per_s operations a second."""
        stop = {"now": False}

        def handle(signum, frame):
            stop["now"] = True

        if duration_s is None:
            signal.signal(signal.SIGTERM, handle)
            signal.signal(signal.SIGINT, handle)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        interval = 1.0 / rate_per_s
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            t0 = time.monotonic()
            self.step()
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
        return self.stats

    def close(self):
        self.db.close()
        self.replica.close()
        if self.cache is not None:
            self.cache.close()
