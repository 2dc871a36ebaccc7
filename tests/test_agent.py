"""The agent against real servers and real receivers: alerts reach a webhook, a Slack-compatible
endpoint and an SMTP server once when a check turns red and once when it recovers; a receiver
that fails is retried, nothing lost; /metrics parses and equals what the checks found, served
from the last cycle; a second agent on a target is refused."""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from psycopg import conninfo, sql

from agent.locks import AGENT_LOCK_KEY, AlreadyRunning, Locks
from agent.metrics import serve
from agent.runner import TOP_STATEMENTS, Agent, measure
from demo.stack import free_port
from foundation.config import Settings, Target
from foundation.markup import shown
from operations import alerts
from tests.conftest import PROJECT_ROOT, promtool, scrape


class Receiver:
    """An HTTP server that records JSON posts per path; answers 500 to the first `fail` posts."""

    def __init__(self, fail: int = 0, delay_s: float = 0.0, slow_s: float = 0.0):
        self.posts: dict[str, list] = {}
        self.fail = fail
        self.delay_s = delay_s  # answer this late (a webhook that times out)
        self.slow_s = slow_s    # take the message, then answer this late (a slow receiver)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.slow_s:
                    receiver.posts.setdefault(self.path, []).append(body)
                    time.sleep(receiver.slow_s)
                    self.send_response(200)
                    self.end_headers()
                    return
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                    self.send_response(200)
                    self.end_headers()
                    return
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                else:
                    receiver.posts.setdefault(self.path, []).append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Keep(Sink):
        def __init__(self):
            self.messages, self.refuse = [], False  # refuse: 550 to every recipient

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if self.refuse:
                return "550 5.1.1 mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content.decode())
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


# one target's report with one red finding (operations.fleet.target_report's shape)
RED = {"status": "red", "postgres": {}, "findings": [
    {"check": "invalid_indexes", "title": "Invalid indexes", "severity": "red",
     "summary": "1 index is INVALID", "count": 1, "page": "indexes"}]}


def _plant_invalid_index(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id)")


def test_one_alert_when_red_one_when_recovered_on_every_channel(scratch_database, smtp):
    controller, mailbox = smtp
    hooks = Receiver()
    try:
        alerter = alerts.Alerter(alerts.channels_from({
            "webhook_url": f"{hooks.url}/hook", "slack_url": f"{hooks.url}/slack",
            "smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_to": ["dba@example.com"]
        }), alerts.Policy(dashboard_url="http://dbpulse.example"))
        target = Target("scratch", scratch_database, scratch_database)
        agent = Agent([target], Settings(role="viewer"), alerter, log=lambda line: None)
        agent.cycle([target])                       # green: nothing to say
        _plant_invalid_index(scratch_database)
        agent.cycle([target])                       # red: one message per channel
        agent.cycle([target])                       # still red: nothing new
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("DROP INDEX t_id_key")
        agent.cycle([target])                       # recovered: one message per channel
    finally:
        hooks.close()
    hook, chat = hooks.posts["/hook"], hooks.posts["/slack"]
    assert [p["state"] for p in hook] == ["red", "recovered"]
    assert hook[0]["check"] == "invalid_indexes" and hook[0]["target"] == "scratch"
    assert hook[0]["link"] == "http://dbpulse.example/indexes"
    assert hook[0]["objects"] == ["public.t_id_key"] and hook[0]["id"] != hook[1]["id"]
    assert [p["text"].splitlines()[0].split(" (first seen")[0] for p in chat] == [
        "[scratch] Invalid indexes is RED — 1 index is INVALID (a concurrent build failed): "
        "they are maintained on every write and never used. Objects: public.t_id_key",
        "[scratch] Invalid indexes: recovered"]
    assert [p["id"] in c["text"] for p, c in zip(hook, chat)] == [True, True]
    assert len(mailbox.messages) == 2
    assert "Subject: [scratch] Invalid indexes is RED" in mailbox.messages[0]


def test_a_failing_receiver_is_retried_with_back_off_and_nothing_is_lost(scratch_database):
    hooks = Receiver(fail=2)
    try:
        alerter = alerts.Alerter([alerts.webhook(f"{hooks.url}/hook")])
        down = Target("down", "postgresql://postgres@127.0.0.1:1/x",
                      "postgresql://postgres@127.0.0.1:1/x")
        agent = Agent([down], Settings(connect_timeout_s=2), alerter, log=lambda line: None)
        now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
        agent.cycle([down], now)                    # down: the alert fails (500)
        assert len(alerter.pending) == 1 and alerter.failures == 1
        agent.cycle([down], now + timedelta(seconds=30))  # backing off: not sent again yet
        assert alerter.failures == 1 and not hooks.posts
        agent.cycle([down], now + timedelta(minutes=2))   # second failure, waits 2 min
        agent.cycle([down], now + timedelta(minutes=5))   # delivered, once
    finally:
        hooks.close()
    assert [p["state"] for p in hooks.posts["/hook"]] == ["down"]
    assert alerter.pending == [] and alerter.failures == 2


def test_a_webhook_that_times_out_and_an_smtp_server_that_refuses_lose_nothing(smtp):
    """A hanging webhook and an SMTP server refusing the recipient: each message is kept and
    retried with back-off, and delivered once each when they behave."""
    controller, mail = smtp
    mail.refuse = True
    hooks = Receiver(delay_s=3)
    try:
        alerter = alerts.Alerter([alerts.webhook(f"{hooks.url}/hook", timeout_s=0.5),
                                  alerts.email("127.0.0.1", controller.port, "dbpulse@localhost",
                                               ["dba@example.com"])])
        now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
        alerter.observe("prod", RED, now)
        assert alerter.flush(now) == 0 and alerter.failures == 2 and len(alerter.pending) == 2
        assert "SMTPRecipientsRefused" in alerter.last_error or "timed out" in alerter.last_error
        assert alerter.flush(now + timedelta(seconds=30)) == 0  # backing off: not tried again
        assert alerter.failures == 2
        hooks.delay_s, mail.refuse = 0, False  # both behave again
        assert alerter.flush(now + timedelta(minutes=1)) == 2
        assert alerter.flush(now + timedelta(minutes=5)) == 0 and alerter.pending == []
    finally:
        hooks.close()
    assert [p["state"] for p in hooks.posts["/hook"]] == ["red"]
    assert len(mail.messages) == 1 and "Invalid indexes is RED" in mail.messages[0]


def test_a_target_that_stays_down_is_tried_less_often_and_measured_when_back(database_url):
    lines = []
    down = Target("down", "postgresql://postgres@127.0.0.1:1/x",
                  "postgresql://postgres@127.0.0.1:1/x")
    agent = Agent([down], Settings(connect_timeout_s=2), alerts.Alerter([]), log=lines.append)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    for minute in range(0, 16):  # one cycle a minute for a quarter of an hour
        agent.cycle([down], now + timedelta(minutes=minute))
    tried = [line for line in lines if "next try" not in line]
    # tried at 0, 1, 3, 7, 12 min: waits of 1, 2, 4, then 5 minutes; a line every minute
    assert [line[11:16] for line in tried] == ["12:00", "12:01", "12:03", "12:07", "12:12"]
    assert all("Cannot connect" in line for line in tried) and len(lines) == 16
    assert "down (4 failed tries in a row), next try after 12:12:00" in lines[8]
    # the server is back (the same target name, now reachable): measured on the next try
    back = Target("down", database_url, database_url)
    agent.cycle([back], now + timedelta(minutes=16))
    assert "next try" in lines[-1]
    agent.cycle([back], now + timedelta(minutes=17))
    assert "Cannot connect" not in lines[-1] and " red, " in lines[-1]  # measured: its counts
    assert "down" not in agent.down_retry
    agent.close()


def test_quiet_hours_hold_messages_until_they_end():
    sent = []
    alerter = alerts.Alerter([sent.append], alerts.policy_from({"quiet_hours": "22:00-07:00"}))
    report = {"status": "red", "postgres": {}, "findings": [
        {"check": "wraparound", "title": "Transaction ID wraparound", "severity": "red",
         "summary": "close to the limit", "count": 1, "page": "bloat"}]}
    night = datetime(2026, 11, 22, 23, 0, tzinfo=timezone.utc)
    alerter.observe("prod", report, night)
    assert alerter.flush(night) == 0 and sent == []
    assert alerter.flush(night.replace(hour=7, minute=5) + timedelta(days=1)) == 1
    assert sent[0].check == "wraparound"


def test_metrics_parse_equal_the_checks_and_come_from_the_last_cycle(scratch_database):
    from prometheus_client.parser import text_string_to_metric_families

    _plant_invalid_index(scratch_database)
    target = Target("scratch", scratch_database, scratch_database)
    agent = Agent([target], Settings(role="viewer"), alerts.Alerter([]), log=lambda line: None)
    agent.cycle([target])
    report = agent.last.targets["scratch"].report
    port = free_port()
    server = serve(agent.last, port)
    with psycopg.connect(conninfo.make_conninfo(scratch_database, dbname="postgres"),
                         autocommit=True) as conn:  # the database goes away
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
            sql.Identifier(conninfo.conninfo_to_dict(scratch_database)["dbname"])))
    try:  # answered from memory: the database is gone
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("dbpulse_up", (("target", "scratch"),))] == 1.0
    assert samples[("dbpulse_buffer_cache_hits_total", (("target", "scratch"),))] == \
        report["postgres"]["blocks_hit"]
    invalid = next(f for f in report["findings"] if f["check"] == "invalid_indexes")
    assert samples[("dbpulse_check_state", (("check", "invalid_indexes"),
                                            ("target", "scratch")))] == 2  # red
    assert samples[("dbpulse_check_findings", (("check", "invalid_indexes"),
                                               ("target", "scratch")))] == invalid["count"] == 1
    assert ("dbpulse_cycle_duration_seconds", (("target", "scratch"),)) in samples
    assert samples[("dbpulse_last_cycle_timestamp_seconds", (("target", "scratch"),))] > 0
    # no statement text, no instance or job label of our own
    labels = {name for _, pairs in samples for name, _ in pairs}
    assert not labels & {"statement", "instance", "job", "severity"}
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_busiest_statements_are_the_applications_from_the_checks_own_read(
        scratch_database):
    """The agent's busiest statements (the dbpulse_statement_* series) and its slow-call KPI
    come from the one read the slow-query check makes: the workload's statements with their
    calls and time as pg_stat_statements holds them, none of DB Pulse's own."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE TABLE busy (id int)")
        for i in range(30):
            conn.execute("SELECT pg_sleep(0.002), %s::int", (i,))
        for i in range(5):
            conn.execute("INSERT INTO busy VALUES (%s)", (i,))
    figures = measure(Target("scratch", scratch_database, scratch_database),
                      Settings(role="viewer"))
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        entries = conn.execute("""
            SELECT queryid::text, calls, total_exec_time, query LIKE '%%/* dbpulse */'
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND calls > 0  -- this read itself is an entry already, without calls
            """).fetchall()
    theirs = {q: (calls, ms) for q, calls, ms, own in entries if not own}
    # the ranking pg_stat_statements itself gives (under load a one-call DDL can outweigh
    # the sleeps, so the order is read, not assumed)
    ranked = sorted(theirs, key=lambda q: theirs[q][1], reverse=True)[:TOP_STATEMENTS]
    shown = [(s["queryid"], s["calls"]) for s in figures.statements]
    assert shown == [(q, theirs[q][0]) for q in ranked]
    assert [s["exec_ms"] for s in figures.statements] == pytest.approx(
        [theirs[q][1] for q in ranked], rel=1e-9)
    assert any(theirs[q][0] == 30 for q in ranked)  # the sleeps, with every call
    # every call of the application's statements, none of DB Pulse's (read after its checks)
    assert figures.slow_calls[2] == sum(calls for calls, _ in theirs.values())


def test_one_look_reads_each_costly_source_once(scratch_database):
    """The checks and the agent's KPIs share one read each of pg_stat_statements, the
    materialized views (a function per view) and the column statistics (both bloat estimates):
    what DB Pulse costs the database it watches. The entries are read without their texts
    (a file read whole); the texts only while entries not judged before appear."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        # over the bloat estimates' 1 MB floor, with an index: both estimates need its stats
        conn.execute("CREATE TABLE wide AS "
                     "SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX wide_id ON wide (id)")
        conn.execute("ANALYZE wide")
        conn.execute("CREATE MATERIALIZED VIEW wide_count AS SELECT count(*) FROM wide")
        conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(7):
            conn.execute("SELECT count(*) FROM wide WHERE id < 100")
    target = Target("scratch", scratch_database, scratch_database)

    def own_calls() -> dict[str, int]:
        """DB Pulse's statements' calls by text."""
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            return dict(conn.execute("""
                SELECT query, calls FROM pg_stat_statements
                WHERE query LIKE '%%/* dbpulse */'
                  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                """).fetchall())

    def calls(own: dict[str, int], fragment: str) -> int:
        return sum(n for query, n in own.items() if fragment in query)
    figures = measure(target, Settings(role="viewer"))
    first = own_calls()
    assert calls(first, "AS extremes_cover") == 1     # the entries: KPI and top 10
    assert calls(first, "s.query LIKE") == 1          # their texts: whose they are
    assert calls(first, '"pg_stat_statements"') == 2  # no other read of either
    assert calls(first, "AS view_oid") == 1                   # the materialized views
    assert calls(first, "AND s.inherited = (c.relkind") == 1  # the column statistics
    # what several checks and the report need of the same state, read once (one_look): the
    # standbys (index evidence, replication check, topology), the connection count (the
    # activity check, the KPIs), whether this is a standby
    assert calls(first, "FROM pg_stat_replication") == 1
    assert calls(first, "FILTER (WHERE application_name LIKE") == 1
    assert sum(n for query, n in first.items()
               if query.startswith("SELECT pg_is_in_recovery()")) == 1
    # and whether pg_cron is here, for the views' last runs and their failure streaks
    assert sum(n for query, n in first.items()
               if query.startswith("SELECT EXISTS (SELECT $1 FROM pg_extension")) == 1
    # nor what the report does not hold: the tables' and indexes' hit rates (every relation's
    # statistics), the database's size (every file)
    assert calls(first, "AS heap_hit") == 0
    assert calls(first, "pg_database_size") == 0
    # and each was used: the view's age, the statements, the bloat check's verdict
    assert list(figures.view_ages) == ["public.wide_count"]
    assert [s["calls"] for s in figures.statements if s["calls"] == 7] == [7]
    bloat_finding = next(f for f in figures.report["findings"] if f["check"] == "bloat")
    assert bloat_finding["severity"] in ("green", "amber")  # estimated, not unknown
    # the first look's own statements are new entries for the second; then none are new
    measure(target, Settings(role="viewer"))
    second = own_calls()
    third_figures = measure(target, Settings(role="viewer"))
    third = own_calls()
    assert calls(third, "AS extremes_cover") == 3
    assert calls(third, "s.query LIKE") == calls(second, "s.query LIKE")
    # still without DB Pulse's statements, whose calls grew with every look: since the first,
    # only this test's own two reads of pg_stat_statements (first, second) were added
    assert third_figures.slow_calls[2] == figures.slow_calls[2] + 2
    assert calls(third, "AS view_oid") == 3
    # a full pg_stat_statements evicts entries, DB Pulse's too, and they come back under the
    # same id: here the materialized views' read goes (reset alone) while a new statement of
    # the application appears. The new one is judged (a read of the texts, in which the views'
    # read, later in the look, is missing); the returning one is not judged again
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("""
            SELECT pg_stat_statements_reset(userid, dbid, queryid) FROM pg_stat_statements
            WHERE query LIKE '%%AS view_oid%%/* dbpulse */'
              AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())""")
        conn.execute("SELECT count(*) FROM wide WHERE id > 19990")
    measure(target, Settings(role="viewer"))
    fourth = own_calls()
    assert calls(fourth, "AS view_oid") == 1  # back
    assert calls(fourth, "s.query LIKE") == calls(third, "s.query LIKE") + 1
    measure(target, Settings(role="viewer"))
    assert calls(own_calls(), "s.query LIKE") == calls(fourth, "s.query LIKE")


def test_a_second_agent_on_a_target_is_refused(database_url, tmp_path):
    target = Target("demo", database_url, database_url)
    first = Locks(Settings())
    first.take(target)
    try:
        with pytest.raises(AlreadyRunning, match="another agent already runs on target demo"):
            Locks(Settings()).take(target)
        second = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "cli.py"), "agent", "--once"],
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url,
                 "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")},
            capture_output=True, text=True, timeout=120)
    finally:
        first.close()
    assert second.returncode == 2
    assert "another agent already runs on target salesflow_test" in second.stdout


def _wait_until_claimed(url: str, timeout_s: float = 60) -> None:
    """Until an agent started from now on holds the lock of the target at `url`."""
    since = datetime.now(timezone.utc)
    name = conninfo.conninfo_to_dict(url)["dbname"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            if conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "JOIN pg_database d ON d.oid = l.objid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.classid = %s::oid AND l.objsubid = 2 "
                    "AND d.datname = %s AND a.backend_start >= %s",
                    (AGENT_LOCK_KEY, name, since)).fetchone()[0]:
                return
        time.sleep(0.2)
    pytest.fail(f"no agent claimed {name} within {timeout_s:g} s")


def _run_until_logged(command: list[str], env: dict, url: str, state: str) -> None:
    """An agent run until the alert log holds `state` (at most two minutes), then killed."""
    import signal

    agent = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT to_regclass('dbpulse.alert_log')").fetchone()[0] and \
                        conn.execute("SELECT count(*) FROM dbpulse.alert_log WHERE state = %s",
                                     (state,)).fetchone()[0]:
                    return
            time.sleep(0.5)
        pytest.fail(f"no {state} logged by the agent within two minutes")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(30)


def test_killed_at_any_moment_each_change_reaches_a_channel_under_one_id(scratch_database,
                                                                         tmp_path):
    """The agent is killed (kill -9 and SIGTERM in turn) at random moments of its cycles, many
    times, while a slow webhook takes each message and answers late; a check turns red and
    recovers meanwhile. Every message the receiver got for one change carries the same id, and
    the alert log holds each change once."""
    import os
    import random
    import signal

    hooks = Receiver(slow_s=1.0)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[alerts]\nwebhook_url = "{hooks.url}/hook"\n')
    env = {**os.environ, "DATABASE_URL": scratch_database, "DBPULSE_ROLE": "dba",
           "DBPULSE_SECRETS_FILE": str(secrets)}
    env.pop("REDIS_URL", None)
    command = [sys.executable, str(PROJECT_ROOT / "cli.py"), "agent", "--every", "1",
               "--snapshot-every", "100000", "--metrics-port", "0",
               "--state-file", str(tmp_path / "state.json")]
    rounds = random.Random(7)
    _plant_invalid_index(scratch_database)
    try:
        for round_ in range(10):
            if round_ == 5:
                # on a busy machine no agent may have finished a cycle yet: one runs until the
                # red is logged (and is killed then), so that there is a change to go back on
                _run_until_logged(command, env, scratch_database, "red")
                with psycopg.connect(scratch_database, autocommit=True) as conn:
                    conn.execute("DROP INDEX t_id_key")  # the change back: recovered
            agent = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rounds.uniform(2.0, 5.0))
            agent.send_signal(signal.SIGKILL if round_ % 2 else signal.SIGTERM)
            agent.wait(30)
        agent = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # its SIGTERM handler is in place once it holds the target (on a busy machine the
        # waits below may end before it has imported and connected)
        _wait_until_claimed(scratch_database)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and {p["state"] for p in hooks.posts.get(
                "/hook", [])} != {"red", "recovered"}:
            time.sleep(0.5)
        time.sleep(3)  # whatever was still in the outbox
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        hooks.close()
    posts = hooks.posts["/hook"]
    ids = {state: {p["id"] for p in posts if p["state"] == state} for state in ("red",
                                                                             "recovered")}
    assert [len(ids["red"]), len(ids["recovered"])] == [1, 1], posts
    with psycopg.connect(scratch_database) as conn:
        logged = conn.execute("SELECT state, alert_id FROM dbpulse.alert_log ORDER BY id"
                              ).fetchall()
    assert logged == [("red", *ids["red"]), ("recovered", *ids["recovered"])]


def test_grafana_dashboard_imports_as_is_and_asks_only_for_served_metrics(scratch_database,
                                                                         redis_url):
    """The dashboard names its data source input and variable, draws the plan's panels and the
    operational ones, and every expression uses only metric names a real agent serves."""
    import re

    board = json.loads((PROJECT_ROOT / "agent" / "grafana-dashboard.json").read_text())
    assert board["title"] and board["schemaVersion"] >= 30
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert "DS_PROMETHEUS" in [v["name"] for v in board["templating"]["list"]]
    titles = [p["title"] for p in board["panels"]]
    assert titles[:4] == ["Query latency", "Cache hit rate",
                          "Index scans against sequential scans", "Slow queries per hour"]
    assert {"Up", "Check states", "Materialized view age",
            "Hot query latency p50 / p95 / p99 (probes)"} <= set(titles)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE MATERIALIZED VIEW v AS SELECT 1 AS x")
        conn.execute("SELECT count(*) FROM pg_class").fetchall()
    from operations import actions
    from tests.conftest import as_actor
    actions.refresh_view(as_actor(Settings(role="dba"), scratch_database), "public", "v",
                         allow_blocking=True)  # a known age
    target = Target("scratch", scratch_database, scratch_database, (redis_url,))
    agent = Agent([target], Settings(role="viewer"), alerts.Alerter([]), log=lambda line: None)
    agent.cycle([target])
    agent.last.count_refreshes("scratch", "ok", 0)
    # a probe's run as the agent records it (tests/test_probes.py runs real ones)
    agent.last.observe_probe("scratch", "Q1 message events list", 0.05)
    text = scrape(agent.last)
    served = {line.split("{")[0].split(" ")[0] for line in text.decode().splitlines()
              if line and not line.startswith("#")}
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}" and panel["gridPos"]["w"] > 0
        for query in panel["targets"]:
            used = set(re.findall(r"dbpulse_[a-z_]+", query["expr"]))
            assert used and used <= served, (panel["title"], used - served)


def test_prometheus_rates_over_a_window_survive_a_statistics_reset(scratch_database, tmp_path):
    """A real Prometheus scrapes the agent each second while a statement slower than the KPI
    threshold runs 3 times, pg_stat_statements is reset, and it runs 2 more times: increase()
    over the window sees 5 and one reset, where the old cumulative gauge's delta() saw 2 - 3."""
    import shutil

    binary = shutil.which("prometheus")
    if not binary:
        promtool()  # fails under CI, skips elsewhere, with the install line
    settings = Settings(role="viewer", kpi_slow_ms=10)
    target = Target("scratch", scratch_database, scratch_database)
    agent = Agent([target], settings, alerts.Alerter([]), log=lambda line: None)
    port, web = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                      f"  - job_name: dbpulse\n    static_configs:\n"
                      f"      - targets: ['127.0.0.1:{port}']\n")
    server = serve(agent.last, port)
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr: str) -> float:
        url = (f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        result = json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]
        return float(result[0]["value"][1]) if result else float("nan")

    def scraped(more: int) -> None:
        """Until Prometheus has taken `more` further scrapes of the agent."""
        def count() -> float:
            try:
                value = query('count_over_time(dbpulse_up{target="scratch"}[10m])')
            except OSError:  # Prometheus still starting
                return 0.0
            return 0.0 if value != value else value
        goal, deadline = count() + more, time.monotonic() + 60
        while count() < goal and time.monotonic() < deadline:
            time.sleep(0.3)

    def slow(n: int) -> None:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            for _ in range(n):
                conn.execute("SELECT pg_sleep(0.03)")

    try:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                         "WHERE datname = current_database()), 0)")
        agent.cycle([target])
        scraped(2)
        slow(3)
        agent.cycle([target])
        scraped(2)
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                         "WHERE datname = current_database()), 0)")
        slow(2)
        agent.cycle([target])
        scraped(2)
        series = 'dbpulse_slow_calls_total{target="scratch", bound="lower"}'
        resets = query(f"resets({series}[1m])")
        increase = query(f"increase({series}[1m])")
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        server.shutdown()
    assert resets == 1
    # increase() extrapolates a little past the first and last scrapes
    assert 5 <= increase <= 6.5, increase


def test_the_agents_snapshots_keep_the_redis_hit_rate_for_every_dashboard(
        scratch_database, redis_url, monkeypatch, tmp_path):
    """Two agent cycles with exactly 30 hits and 10 misses between them: the Redis page (a
    dashboard started afterwards, no samples of its own) shows 75 % from the stored snapshots."""
    import redis
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ui import loaders

    # named as the dashboard names the target DATABASE_URL gives: by its database
    name = conninfo.conninfo_to_dict(scratch_database)["dbname"]
    target = Target(name, scratch_database, scratch_database, (redis_url,))
    agent = Agent([target], Settings(role="dba"), alerts.Alerter([]),
                  snapshot_every=timedelta(0), log=lambda line: None)
    client = redis.Redis.from_url(redis_url)
    client.set("agent-probe", "x")
    agent.cycle([target])
    for _ in range(30):
        client.get("agent-probe")
    for _ in range(10):
        client.get("agent-probe-missing")
    agent.cycle([target])
    client.delete("agent-probe")
    st.cache_data.clear()
    series = loaders.redis_history(target, Settings()).value
    assert float(series["hit_rate"].iloc[-1]) == pytest.approx(0.75)

    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", scratch_database)
    monkeypatch.setenv("REDIS_URL", redis_url)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/redis.py").run()
    assert not at.exception
    assert any("From the snapshots the agent" in c.value for c in at.caption)


def test_a_start_over_many_targets_spreads_its_snapshots_over_cycles(scratch_database):
    """At most snapshots_per_cycle a cycle, the longest due first: of three targets due, two
    now and the third in the next cycle, then none until they are due again."""
    targets = [Target(f"t{i}", scratch_database, scratch_database) for i in range(3)]
    lines: list[str] = []
    agent = Agent(targets, Settings(role="dba"), alerts.Alerter([]),
                  snapshot_every=timedelta(hours=1), snapshots_per_cycle=2, log=lines.append)
    now = datetime.now(timezone.utc)
    taken = []
    try:
        for minute in range(3):
            lines.clear()
            agent.cycle(targets, now + timedelta(minutes=minute))
            taken.append(sorted(re.match(r"\S+ \S+ (\w+):", line).group(1) for line in lines
                                if re.search(r"; snapshot \d+", line)))
    finally:
        agent.close()
    assert taken == [["t0", "t1"], ["t2"], []]
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT count(*) FROM dbpulse.snapshots").fetchone()[0] == 3


def test_snapshot_places_go_to_targets_that_answered(scratch_database):
    """A target down on its first try takes no snapshot place: of four targets due, the two
    first in line are down, and the two that answered take the cycle's two places."""
    down = conninfo.make_conninfo(scratch_database, port=free_port(), connect_timeout=2)
    targets = [Target("a_down", down, down), Target("b_down", down, down),
               Target("c_up", scratch_database, scratch_database),
               Target("d_up", scratch_database, scratch_database)]
    lines: list[str] = []
    agent = Agent(targets, Settings(role="dba"), alerts.Alerter([]),
                  snapshot_every=timedelta(hours=1), snapshots_per_cycle=2, log=lines.append)
    try:
        agent.cycle(targets, datetime.now(timezone.utc))
        down_now = set(agent.down_retry)
    finally:
        agent.close()
    taken = sorted(re.match(r"\S+ \S+ (\w+):", line).group(1) for line in lines
                   if re.search(r"; snapshot \d+", line))
    assert down_now == {"a_down", "b_down"} and taken == ["c_up", "d_up"]

def test_the_agent_refreshes_stale_views_and_backs_off_after_a_failure(scratch_database):
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY)")
        conn.execute("CREATE MATERIALIZED VIEW mv AS SELECT id FROM src")
        conn.execute("CREATE UNIQUE INDEX ON mv (id)")
    target = Target("scratch", scratch_database, scratch_database)
    lines = []
    agent = Agent([target], Settings(role="dba", matview_max_age_minutes=15), alerts.Alerter([]),
                  snapshot_every=timedelta(days=1), refresh_stale=True, log=lines.append)
    now = datetime.now(timezone.utc)
    agent.cycle([target], now)
    assert "refreshed 1 stale view(s)" in lines[-1]
    agent.cycle([target], now + timedelta(seconds=60))
    assert "refreshed" not in lines[-1]  # fresh now: nothing to do
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        logged = conn.execute("SELECT count(*) FROM dbpulse.matview_refresh_log "
                              "WHERE view_name = 'mv' AND outcome = 'ok'").fetchone()[0]
        conn.execute("INSERT INTO src VALUES (1)")  # a write since the refresh: stale later
        conn.execute("REVOKE SELECT ON src FROM PUBLIC")
        conn.execute("ALTER MATERIALIZED VIEW mv OWNER TO pg_monitor")  # cannot read src now
    assert logged == 1
    agent.close()
    # a maximum age so short that the view is stale at once: the agent tries, fails, waits
    agent = Agent([target], Settings(role="dba", matview_max_age_minutes=0.001),
                  alerts.Alerter([]), snapshot_every=timedelta(days=1), refresh_stale=True,
                  log=lines.append)
    time.sleep(0.2)
    later = now + timedelta(hours=1)
    agent.cycle([target], later)
    assert "refresh of public.mv failed" in lines[-1] and "next try in 0:01:00" in lines[-1]
    agent.cycle([target], later + timedelta(seconds=30))
    assert "public.mv: refresh retried after" in lines[-1]  # backing off, not hammering
    agent.cycle([target], later + timedelta(minutes=2))
    assert "next try in 0:02:00" in lines[-1]


def test_a_restarted_agent_neither_repeats_nor_forgets(tmp_path):
    """Red and announced before the restart: not announced again after it. Not delivered
    before the restart (the receiver was down): delivered after it."""
    state = tmp_path / "agent-state.json"
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)

    def broken(alert):
        raise OSError("connection refused")

    first = alerts.Alerter([broken])
    first.observe("prod", RED, now)
    first.flush(now)
    first.save(state)
    delivered = []
    second = alerts.Alerter([delivered.append])
    second.load(state)
    assert second.observe("prod", RED, now + timedelta(minutes=1)) == []  # nothing new
    second.flush(now + timedelta(minutes=2))
    assert [(a.target, a.check, a.state) for a in delivered] == [
        ("prod", "invalid_indexes", "red")]


def test_a_recovery_noted_before_a_restart_and_not_logged_is_not_said_again(tmp_path):
    """Killed after it noted the recovery but before it wrote it to the alert log: the restarted
    agent reads red as the log's last word, yet its own state holds the newer recovery, which it
    sends and logs under the same id; it does not find the check red and recover it again (CI
    saw two recovery ids in test_killed_at_any_moment_each_change_reaches_a_channel_under_one_id).
    """
    state = tmp_path / "agent-state.json"
    red_at = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    first = alerts.Alerter([lambda alert: None])
    first.observe("prod", RED, red_at)
    first.flush(red_at)                              # the red is sent
    first.take_unlogged("prod")                      # and in the log
    recovered = first.observe("prod", {**RED, "status": "green", "findings": []},
                              red_at + timedelta(minutes=1))
    first.save(state)                                # killed here: the recovery is not logged
    delivered = []
    second = alerts.Alerter([delivered.append])
    second.load(state)
    second.adopt("prod", [("invalid_indexes", red_at, "")])  # the log's last word: red
    assert second.observe("prod", {**RED, "status": "green", "findings": []},
                          red_at + timedelta(minutes=2)) == []
    second.flush(red_at + timedelta(minutes=2))
    assert [a.id for a in delivered] == [a.id for a in recovered]
    assert [a.id for a in second.take_unlogged("prod")] == [a.id for a in recovered]


def test_alerts_are_logged_once_per_change_and_a_down_one_once_it_can_be(scratch_database,
                                                                         tmp_path):
    """The alert log (history database) gets one row per change; an alert whose history
    database cannot be reached is kept, across a restart too, and written when it can be."""
    from operations import alert_log

    def logged(source):
        with psycopg.connect(scratch_database) as conn:
            rows = alert_log.recent(conn, source, datetime(2000, 1, 1, tzinfo=timezone.utc))
        return list(zip(rows["check_name"], rows["state"]))[::-1]  # oldest first

    target = Target("scratch", scratch_database, scratch_database)
    agent = Agent([target], Settings(role="dba"), alerts.Alerter([]),
                  snapshot_every=timedelta(days=1), log=lambda line: None)
    agent.cycle([target])                            # the snapshot installs the schema
    _plant_invalid_index(scratch_database)
    agent.cycle([target])
    agent.cycle([target])                            # still red: no second row
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("DROP INDEX t_id_key")
    agent.cycle([target])
    agent.close()
    assert logged(target.history_source) == [("invalid_indexes", "red"),
                                             ("invalid_indexes", "recovered")]
    with psycopg.connect(scratch_database) as conn:  # no dashboard_url: the page is named
        rows = alert_log.recent(conn, target.history_source,
                                datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert list(rows["link"]) == ["", ""]
    assert list(rows["explained_on"]) == ["Indexes page", "Indexes page"]
    from operations import history  # the weekly review lists them among the period's events
    with psycopg.connect(scratch_database) as conn:
        listed = history.events(conn, target.history_source, history.Period(
            datetime.now(timezone.utc) - timedelta(hours=1), datetime.now(timezone.utc)))
    assert list(listed[listed["kind"] == "alert"]["label"]) == [
        "Invalid indexes RED", "Invalid indexes recovered"]

    closed = "postgresql://postgres@127.0.0.1:1/lostdb"
    lines, state = [], tmp_path / "agent-state.json"
    lost = Target("lost", closed, closed)            # its history lives in it: unreachable
    first = Agent([lost], Settings(connect_timeout_s=2), alerts.Alerter([]),
                  log=lines.append, state_path=state)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    first.cycle([lost], now)
    assert "1 alert(s) not logged yet" in lines[-1] and logged("lostdb") == []
    restarted = Agent([lost], Settings(connect_timeout_s=2), alerts.Alerter([]),
                      log=lines.append, state_path=state)
    restarted.alerter.load(state)
    # the same target, its history now in a reachable database: the kept alert is written
    moved = Target("lost", closed, closed, history_url=scratch_database)
    restarted.cycle([moved], now + timedelta(minutes=1))
    assert logged("lostdb") == [("down", "down")]
    assert restarted.alerter.unlogged == []


def test_the_alerts_page_lists_what_the_agent_raised_and_tests_each_channel(
        scratch_database, monkeypatch, tmp_path):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    name = conninfo.conninfo_to_dict(scratch_database)["dbname"]  # as the dashboard names it
    target = Target(name, scratch_database, scratch_database)
    agent = Agent([target], Settings(role="dba"), alerts.Alerter([]),
                  snapshot_every=timedelta(days=1), log=lambda line: None)
    agent.cycle([target])
    _plant_invalid_index(scratch_database)
    agent.cycle([target])                            # one red alert in the log
    agent.close()
    hooks = Receiver()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[alerts]\nwebhook_url = "{hooks.url}/hook/s3cret-path"\n'
                       f'smtp_host = "127.0.0.1"\nsmtp_port = {free_port()}\n'
                       'smtp_to = ["dba@example.com"]\nquiet_hours = "22:00-07:00"\n')
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("DATABASE_URL", scratch_database)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DBPULSE_ROLE", "dba")
    st.cache_data.clear()
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("views/alerts.py").run()
        assert not at.exception, at.exception
        text = shown(" ".join(m.value for m in at.markdown))
        assert f"JSON webhook at {hooks.url}/…" in text and "s3cret" not in text
        assert "e-mail to dba@example.com" in text and "quiet 22:00–07:00 UTC" in text
        raised = at.dataframe[0].value
        assert list(raised["title"]) == ["Invalid indexes"] and list(raised["state"]) == ["red"]
        assert {m.label: m.value for m in at.metric}["Still red at the last alert"] == "1"
        next(b for b in at.button if b.label == "Send a test message").click().run()
        assert not at.exception, at.exception
    finally:
        hooks.close()
    assert [p["state"] for p in hooks.posts["/hook/s3cret-path"]] == ["test"]
    assert any(shown(s.value).startswith("JSON webhook") and shown(s.value).endswith(": sent")
               for s in at.success)
    assert any(shown(e.value).startswith("e-mail to dba@example.com") and "not sent" in e.value
               for e in at.error)
    # every channel failing is a failed action, audited so
    secrets.write_text(f'[alerts]\nsmtp_host = "127.0.0.1"\nsmtp_port = {free_port()}\n'
                       'smtp_to = ["dba@example.com"]\n')
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("views/alerts.py").run()
    next(b for b in at.button if b.label == "Send a test message").click().run()
    assert any("No channel took the test message" in shown(e.value) for e in at.error)
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT outcome FROM dbpulse.audit_log WHERE action = 'test_alert' "
                            "ORDER BY id").fetchall() == [("ok",), ("error",)]


def _lock_sessions(locks: Locks, base_url: str) -> dict[str, set[str]]:
    """Per lock session of `locks`: its database, and the databases whose lock it holds."""
    pids = {conn.info.backend_pid for conn in locks.sessions.values()}
    with psycopg.connect(base_url) as conn:
        rows = conn.execute(
            "SELECT a.datname, d.datname FROM pg_stat_activity a LEFT JOIN pg_locks l "
            "ON l.pid = a.pid AND l.locktype = 'advisory' AND l.classid = %s::oid "
            "LEFT JOIN pg_database d ON d.oid = l.objid WHERE a.pid = ANY(%s)",
            (AGENT_LOCK_KEY, list(pids))).fetchall()
    found: dict[str, set[str]] = {}
    for session_db, locked in rows:
        found.setdefault(session_db, set()).update({locked} - {None})
    return found


def _pid(locks: Locks) -> int:
    (conn,) = locks.sessions.values()
    return conn.info.backend_pid


def _on(url: str, login_url: str) -> str:
    """url's database reached with login_url's role."""
    login = conninfo.conninfo_to_dict(login_url)
    return conninfo.make_conninfo(url, user=login["user"], password=login["password"])


def test_the_locks_of_one_server_are_one_session_of_the_monitoring_login(
        servers, logins, scratch_database):
    """Two hundred databases on one server must not cost two hundred idle sessions (a default
    server allows 100): one session per server holds them all, in its lock database."""
    targets = [Target("demo", logins.monitor_url, logins.admin_url),
               Target("scratch", _on(scratch_database, logins.monitor_url), scratch_database)]
    scratch_name = conninfo.conninfo_to_dict(scratch_database)["dbname"]
    first, second = Locks(Settings()), Locks(Settings())
    try:
        for target in targets + targets:  # a lock held already is kept, not taken again
            first.take(target)
        assert _lock_sessions(first, servers[0]) == {
            "postgres": {"salesflow_test", scratch_name}}
        for target in targets:
            with pytest.raises(AlreadyRunning, match=rf"another agent already runs on target "
                               rf"{target.name} \(session {_pid(first)} from"):
                second.take(target)
        first.close()  # the first agent ends: the second takes both
        for target in targets:
            second.take(target)
        assert _lock_sessions(second, servers[0]) == {
            "postgres": {"salesflow_test", scratch_name}}
    finally:
        first.close()
        second.close()


def test_a_login_kept_out_of_the_lock_database_locks_in_each_target(
        servers, logins, scratch_database, closed_port):
    settings = Settings(agent_lock_database="no_such_database")
    targets = [Target("demo", logins.monitor_url, logins.admin_url),
               Target("scratch", _on(scratch_database, logins.monitor_url), scratch_database)]
    scratch_name = conninfo.conninfo_to_dict(scratch_database)["dbname"]
    lines = []
    first, second = Locks(settings, lines.append), Locks(settings, lambda line: None)
    down = Target("down", f"postgresql://nobody@127.0.0.1:{closed_port}/x",
                  f"postgresql://nobody@127.0.0.1:{closed_port}/x")
    try:
        for target in targets:
            first.take(target)
        with pytest.raises(psycopg.OperationalError):  # down: neither database answers
            first.take(down)
        assert _lock_sessions(first, servers[0]) == {
            "salesflow_test": {"salesflow_test"}, scratch_name: {scratch_name}}
        assert lines == ["demo: cannot connect to the lock database no_such_database; the "
                         "agent's locks on this server are held in each target's own database "
                         "(one session per target)"]
        for target in targets:
            with pytest.raises(AlreadyRunning, match=f"on target {target.name}"):
                second.take(target)
    finally:
        first.close()
        second.close()


def test_three_agents_share_three_targets_and_take_over_from_one_killed(servers, tmp_path):
    """Each target is watched by exactly one agent at a time (PostgreSQL advisory locks); after
    a kill -9 of the agent holding a target, another holds it within a few cycles."""
    import os
    import signal
    import uuid

    import psutil

    from demo.stack import create_database

    base = servers[0]
    names = [f"pool_{uuid.uuid4().hex[:6]}" for _ in range(3)]
    urls = [create_database(base, name) for name in names]
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("".join(f'[targets.t{i}]\ndatabase_url = "{url}"\n'
                               for i, url in enumerate(urls)))
    env = {**os.environ, "DBPULSE_SECRETS_FILE": str(secrets), "DBPULSE_ROLE": "viewer"}
    for key in ("DATABASE_URL", "REDIS_URL", "DATABASE_ADMIN_URL"):
        env.pop(key, None)

    def holders() -> list[set[int]]:
        """Per target, the agent processes holding its lock."""
        found = []
        with psycopg.connect(base) as conn:
            for name in names:
                ports = [p for p, in conn.execute(
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "JOIN pg_database d ON d.oid = l.objid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.classid = %s::oid AND l.objsubid = 2 "
                    "AND d.datname = %s", (AGENT_LOCK_KEY, name))]
                found.append({a.pid for a in agents if a.poll() is None
                              for c in psutil.Process(a.pid).net_connections()
                              if c.laddr and c.laddr.port in ports})
        return found

    def settled(timeout_s=40):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = holders()
            if all(len(h) == 1 for h in found):
                return found
            time.sleep(0.5)
        raise AssertionError(f"not one agent per target: {found}")

    agents = [subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "cli.py"), "agent", "--all-targets", "--pool",
         "--every", "1", "--snapshot-every", "100000", "--metrics-port", "0",
         "--state-file", str(tmp_path / f"agent{i}.json")],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3)]
    try:
        first = settled()
        victim = next(iter(first[0]))
        os.kill(victim, signal.SIGKILL)
        next(a for a in agents if a.pid == victim).wait(10)
        after = settled()
        assert victim not in set().union(*after)
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(30)
        with psycopg.connect(base, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))


def test_an_agent_taking_a_target_over_does_not_announce_again_what_is_red(scratch_database):
    """The first agent announced the red check and went away with its state; the next one,
    with a new state, reads the alert log and says only the recovery."""
    from foundation.connections import admin_connection
    from operations import dbpulse_schema
    from tests.conftest import as_actor

    with admin_connection(scratch_database, Settings(role="dba")) as conn:
        dbpulse_schema.install(conn, as_actor(Settings(role="dba")))  # the README's set-up
    hooks = Receiver()
    target = Target("scratch", scratch_database, scratch_database)
    try:
        first = Agent([target], Settings(role="viewer"), alerts.Alerter(
            alerts.channels_from({"webhook_url": f"{hooks.url}/hook"})), log=lambda line: None)
        _plant_invalid_index(scratch_database)
        first.cycle([target])
        first.close()  # it died: its lock went with its session
        second = Agent([target], Settings(role="viewer"), alerts.Alerter(
            alerts.channels_from({"webhook_url": f"{hooks.url}/hook"})), log=lambda line: None)
        second.cycle([target])
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("DROP INDEX t_id_key")
        second.cycle([target])
    finally:
        hooks.close()
    assert [p["state"] for p in hooks.posts["/hook"]] == ["red", "recovered"]


def test_a_failing_view_waits_alone_while_the_others_are_refreshed(scratch_database):
    """One view's refreshes fail, another's succeed: the failing one is retried after 1 and
    then 2 minutes, the good one is refreshed on every cycle it is stale, and each cycle's
    outcomes are audited."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY)")
        for view in ("good", "bad"):
            conn.execute(f"CREATE MATERIALIZED VIEW {view} AS SELECT id FROM src")
            conn.execute(f"CREATE UNIQUE INDEX ON {view} (id)")
        conn.execute("REVOKE SELECT ON src FROM PUBLIC")
        conn.execute("ALTER MATERIALIZED VIEW bad OWNER TO pg_monitor")  # cannot read src
    target = Target("scratch", scratch_database, scratch_database)
    lines = []
    agent = Agent([target], Settings(role="dba", matview_max_age_minutes=0.001),
                  alerts.Alerter([]), snapshot_every=timedelta(days=1), refresh_stale=True,
                  log=lines.append)
    time.sleep(0.2)  # both older than the maximum age
    now = datetime.now(timezone.utc)
    agent.cycle([target], now)
    assert "refreshed 1 stale view(s)" in lines[-1]
    assert "refresh of public.bad failed" in lines[-1] and "next try in 0:01:00" in lines[-1]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("INSERT INTO src VALUES (1)")  # a write since: the good one is stale again
    time.sleep(0.2)
    agent.cycle([target], now + timedelta(seconds=30))
    assert "refreshed 1 stale view(s)" in lines[-1]  # the good one, again
    assert "public.bad: refresh retried after" in lines[-1]
    agent.cycle([target], now + timedelta(minutes=2))
    assert "refresh of public.bad failed" in lines[-1] and "next try in 0:02:00" in lines[-1]
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        details = [d for d, in conn.execute(
            "SELECT detail FROM dbpulse.audit_log WHERE action = 'refresh_stale' ORDER BY id")]
    assert len(details) == 3 and "public.bad: not tried: failed before" in details[1]
    assert agent.last.refreshes[("scratch", "failed")] == 2
    assert agent.last.refreshes[("scratch", "ok")] == 2  # the third cycle found it fresh


def test_the_agent_measures_on_a_kept_connection_and_replaces_one_that_went(
        scratch_database, database_url, monkeypatch):
    """A new connection's catalogue reads first fill its caches: an agent watching at most
    KEPT_CONNECTIONS targets keeps each one's measuring connection between cycles, and one the
    server dropped is replaced without a gap; watching more, it connects every cycle (kept ones
    would sit idle beside those measuring)."""
    from agent import runner
    from foundation.connections import MONITOR_APPLICATION_NAME

    def monitoring_sessions() -> list[tuple[str, int]]:
        with psycopg.connect(database_url, autocommit=True) as conn:
            return conn.execute("SELECT datname, pid FROM pg_stat_activity "
                                "WHERE application_name = %s", (MONITOR_APPLICATION_NAME,)
                                ).fetchall()

    others = set(monitoring_sessions())  # a page's pooled ones, left by other tests

    def measuring() -> dict[str, list[int]]:
        """The agent's monitoring sessions still open, by database."""
        for _ in range(50):  # a closed session's backend leaves a moment later
            found: dict[str, list[int]] = {}
            for database, pid in sorted(set(monitoring_sessions()) - others):
                found.setdefault(database, []).append(pid)
            if sum(map(len, found.values())) <= len(agent.kept):
                return found
            time.sleep(0.1)
        return found

    scratch_name = conninfo.conninfo_to_dict(scratch_database)["dbname"]
    demo_name = conninfo.conninfo_to_dict(database_url)["dbname"]
    lines = []
    scratch, demo = (Target("scratch", scratch_database, scratch_database),
                     Target("demo", database_url, database_url))
    agent = Agent([scratch], Settings(), alerts.Alerter([]), log=lines.append)
    try:
        agent.cycle([scratch])
        first = measuring()
        assert list(first) == [scratch_name] and len(first[scratch_name]) == 1
        agent.cycle([scratch])
        assert measuring() == first  # the same session again
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (first[scratch_name][0],)
                                ).fetchone() == (True,)
        agent.cycle([scratch])
        assert " red, " in lines[-1], lines[-1]  # measured (its counts), not down
        replaced = measuring()
        assert list(replaced) == [scratch_name] and replaced != first
        # more targets than it keeps connections for: none kept, the one kept closed
        monkeypatch.setattr(runner, "KEPT_CONNECTIONS", 1)
        agent.cycle([scratch, demo])
        assert all(" red, " in line for line in lines[-2:]), lines[-2:]  # both measured
        assert measuring() == {}
        monkeypatch.undo()
        agent.cycle([scratch, demo])
        assert sorted(measuring()) == sorted([scratch_name, demo_name])
    finally:
        agent.close()
    assert measuring() == {}
