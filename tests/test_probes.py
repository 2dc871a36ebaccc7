"""Latency probes: the plan's hot queries timed on the read-only probe login, their percentiles
against ground truth, the login check, the histogram Prometheus reads, and DB Pulse's own scans
kept out of the unused-index verdicts and the statement figures."""

import subprocess
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from agent.runner import Agent
from foundation.capabilities import detect
from foundation.config import Settings, Target
from foundation.connections import admin_connection, monitoring_connection
from foundation.plan import current as current_plan
from operations import alerts, dbpulse_schema, snapshots
from reads import cache, indexes, probes, space, statements
from tests.conftest import as_actor, login_role, promtool, scrape

SETTINGS = Settings(role="dba", statement_timeout_ms=5000, connect_timeout_s=3)


def _target(logins) -> Target:
    return Target("demo", logins.monitor_url, logins.admin_url, probe_url=logins.probe_url)


def _plan_file(tmp_path, probe: str, params: list, match: str = "probe_planted") -> str:
    path = tmp_path / "plan.toml"
    path.write_text(f"""name = "probe test"
[[hot_queries]]
name = "P1 planted"
match = '{match}'
target_ms = 30
probe = "{probe}"
probe_params = {params!r}
""".replace("'", '"'))
    return str(path)


def _planted(url: str, table_sql: str) -> None:
    """pg_stat_statements, the test's table and DB Pulse's schema (the probes' ledger) in
    the scratch database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(table_sql)
    with admin_connection(url, SETTINGS) as conn:
        dbpulse_schema.install(conn, as_actor(SETTINGS))


def _shared_scans(url: str, scans_sql: str, at_least: int) -> int:
    """The count scans_sql reads, once it is at_least or after 10 s: a probe's session that
    closed a moment ago shares its statistics as it exits."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            found = conn.execute(scans_sql).fetchone()[0]
            if found >= at_least:
                break
            time.sleep(0.1)
            conn.execute("SELECT pg_stat_clear_snapshot()")
    return found


def test_the_plans_probes_run_on_the_probe_login_and_are_stored(logins):
    """Every probe the shipped plan declares runs on the demo's probe login and is timed;
    the round is stored and read back as percentiles."""
    target = _target(logins)
    plan = current_plan(SETTINGS)
    done = probes.run_round(target, SETTINGS, plan.probes)
    assert [s.name for s in done.samples] == [q.name for q in plan.probes] and len(plan.probes) == 3
    assert all(s.error is None and 0 < s.seconds < SETTINGS.probe_timeout_ms / 1000
               for s in done.samples), done.samples
    source = "probe-store"
    at = datetime.now(timezone.utc)
    with admin_connection(logins.admin_url, SETTINGS) as conn:
        probes.store(conn, source, at, done)
        found = probes.percentiles(conn, source, at - timedelta(seconds=1),
                                   at + timedelta(seconds=1))
    assert found["runs"].tolist() == [1, 1, 1]
    by_name = dict(zip(found["name"], found["p50_ms"]))
    for s in done.samples:
        assert by_name[s.name] == pytest.approx(1000 * s.seconds)


def test_percentiles_equal_those_of_the_stored_runs(logins, tmp_path):
    """40 runs of a probe that sleeps 10 ms or 60 ms (every fourth): p50, p95 and p99 equal
    numpy's interpolated percentiles of the same durations, and the slow quarter shows in
    p95 and not in p50."""
    settings = Settings(role="dba", plan_file=_plan_file(tmp_path, "SELECT pg_sleep(%s)", [0.0]))
    query = current_plan(settings).probes[0]
    durations = []
    at = datetime.now(timezone.utc)
    with probes.connect(_target(logins), settings) as conn, \
            admin_connection(logins.admin_url, settings) as history:
        for n in range(40):
            planted = type(query)(query.name, query.pattern, query.target_ms, False, query.probe,
                                  (0.06 if n % 4 == 0 else 0.01,))
            sample = probes.run_one(conn, planted, 2000)
            durations.append(sample.seconds)
            probes.store(history, "probe-truth", at + timedelta(seconds=n),
                         probes.Round([sample], None))
        found = probes.percentiles(history, "probe-truth", at, at + timedelta(minutes=1))
    row = found.iloc[0]
    truth = np.percentile(durations, [50, 95, 99]) * 1000
    assert [row.p50_ms, row.p95_ms, row.p99_ms] == pytest.approx(list(truth))
    assert row.p50_ms < 30 < row.p95_ms and int(row.runs) == 40 and int(row.failures) == 0


def test_a_probe_that_runs_too_long_is_a_failure_and_writes_nothing(logins, tmp_path):
    settings = Settings(role="dba", probe_timeout_ms=50,
                        plan_file=_plan_file(tmp_path, "SELECT pg_sleep(%s)", [0.5]))
    [sample] = probes.run_round(_target(logins), settings, current_plan(settings).probes).samples
    assert sample.seconds is None and "statement timeout" in sample.error
    with probes.connect(_target(logins), settings) as conn:
        wrote = probes.run_one(conn, type(current_plan(settings).probes[0])(
            "write", current_plan(settings).probes[0].pattern, None, False,
            "CREATE TABLE probe_wrote (id int)", ()), 2000)
    assert wrote.seconds is None and "read-only transaction" in wrote.error


def test_a_probe_login_with_more_rights_is_refused(logins):
    too_strong = Target("demo", logins.monitor_url, logins.admin_url,
                        probe_url=logins.admin_url)  # the superuser
    with pytest.raises(probes.ProbeRefused, match="it is a superuser"):
        probes.run_round(too_strong, SETTINGS, current_plan(SETTINGS).probes)


def _probed(url: str, table: str, settings: Settings, rounds: int = 1,
            before_each=lambda: None) -> probes.Round:
    """The plan's probes run `rounds` times on a login that may read `table` and nothing
    more, each round kept in the ledger; the last round."""
    login = f"probe_{table}_login"
    with login_role(url, login, "pw") as probe_url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table),
                                                                     sql.Identifier(login)))
        target = Target("scratch", url, url, probe_url=probe_url)
        for _ in range(rounds):
            before_each()
            done = probes.run_round(target, settings, current_plan(settings).probes)
            assert done.samples[0].error is None
            with admin_connection(url, settings) as conn:
                probes.store(conn, conn.info.dbname, datetime.now(timezone.utc), done)
    return done


def test_scans_the_probes_cause_prove_no_use_and_their_text_is_not_reported(scratch_database,
                                                                             tmp_path):
    """An index only the probe uses stays "no scans" (its scans are in the probes' ledger),
    while the server's own counter shows the probe's scan; the probe's statement is not among
    the statements DB Pulse reports."""
    _planted(scratch_database, "CREATE TABLE planted (id int, tag int); CREATE INDEX "
             "planted_tag ON planted (tag); INSERT INTO planted SELECT i, i FROM "
             "generate_series(1, 20000) i; ANALYZE planted")
    with login_role(scratch_database, "probe_scan_login", "pw") as probe_url:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON planted TO probe_scan_login")
        settings = Settings(role="dba", unused_index_min_bytes=0, plan_file=_plan_file(
            tmp_path, "SELECT id FROM planted WHERE tag = %s /* probe_planted */", [7]))
        target = Target("scratch", scratch_database, scratch_database, probe_url=probe_url)
        done = probes.run_round(target, settings, current_plan(settings).probes)
        assert done.samples[0].error is None
        assert [r.scans for r in done.samples[0].reads.values() if r.scans] == [1]
        with admin_connection(scratch_database, settings) as conn:
            probes.store(conn, "scratch_probe", datetime.now(timezone.utc), done)
            conn.execute("UPDATE dbpulse.probe_reads SET source = current_database()")
            conn.execute("SELECT pg_stat_force_next_flush()")
            untagged = conn.execute(  # nothing the probe login ran is left untagged
                "SELECT query FROM pg_stat_statements WHERE userid = 'probe_scan_login'::regrole "
                "AND query NOT LIKE '%/* dbpulse */' AND query NOT IN ('BEGIN', 'ROLLBACK')"
            ).fetchall()
    with monitoring_connection(scratch_database, settings) as conn:
        raw = conn.execute("SELECT pg_stat_get_numscans('planted_tag'::regclass)").fetchone()[0]
        frame = indexes.list_indexes(conn)
        on_space_page = space.index_space(conn)
        top = statements.top_statements(conn, detect(conn).extensions["pg_stat_statements"],
                                        statements.StatementFilter(text="probe_planted"))
    assert raw == 1
    assert frame.set_index("index_name").at["planted_tag", "scans"] == 0
    assert on_space_page.set_index("index_name").at["planted_tag", "scans"] == 0
    assert top.empty and untagged == []


def test_each_probes_ledger_entry_is_its_own_scans(scratch_database, tmp_path):
    """Two probes of one round scan the same index once each: the ledger holds 2, what the
    server counted (a session's statistics wait up to a second before they are shared, and
    the second probe's transaction must not count the first one's as its own)."""
    _planted(scratch_database, "CREATE TABLE twice (id int, tag int); CREATE INDEX twice_tag "
             "ON twice (tag); INSERT INTO twice SELECT i, i FROM generate_series(1, 20000) i; "
             "ANALYZE twice")
    path = tmp_path / "plan.toml"
    path.write_text("".join(f"""
[[hot_queries]]
name = "P{n} twice"
match = "FROM twice WHERE tag"
probe = "SELECT id FROM twice WHERE tag = %s"
probe_params = [{n}]
""" for n in (1, 2)))
    settings = Settings(role="dba", plan_file=str(path))
    done = _probed(scratch_database, "twice", settings)
    with admin_connection(scratch_database, settings) as conn:
        ledger = {oid: r.scans for oid, r in probes.own_reads(conn).items()}
        tag_index = conn.execute("SELECT 'twice_tag'::regclass::oid").fetchone()[0]
    raw = _shared_scans(scratch_database, "SELECT pg_stat_get_numscans('twice_tag'::regclass)",
                        2)
    assert [s.error for s in done.samples] == [None, None]
    assert raw == 2 and ledger[tag_index] == 2


def _application_scan(url: str, sql: str) -> datetime:
    """sql run as the application would, on the index (no sequential scan), its counts shared
    at once; the server's clock after that."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute(sql).fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def test_an_index_last_scan_is_the_applications_not_the_probes(scratch_database, tmp_path):
    """The least scanned indexes' last scan (PostgreSQL 16+) leaves out the probes' own: after
    a probe, an index the application scanned before shows no last scan (the application's is
    not known any more) while the server's says the probe's moment; the application's next
    scan shows again."""
    _planted(scratch_database, "CREATE TABLE lastly (id int, tag int); CREATE INDEX lastly_tag "
             "ON lastly (tag); INSERT INTO lastly SELECT i, i FROM generate_series(1, 20000) i; "
             "ANALYZE lastly")
    settings = Settings(role="dba", plan_file=_plan_file(
        tmp_path, "SELECT id FROM lastly WHERE tag = %s /* probe_planted */", [3]))

    def listed() -> tuple:
        with monitoring_connection(scratch_database, settings) as conn:
            row = indexes.list_indexes(conn, limit=50).set_index("index_name").loc["lastly_tag"]
            raw = conn.execute("SELECT pg_stat_get_lastscan('lastly_tag'::regclass)").fetchone()
        return row["scans"], row["last_scan"], raw[0]

    applied = _application_scan(scratch_database, "SELECT id FROM lastly WHERE tag = 5")
    before = listed()
    done = _probed(scratch_database, "lastly", settings)
    probed = listed()
    again = _application_scan(scratch_database, "SELECT id FROM lastly WHERE tag = 9")
    after = listed()
    assert done.scans_until > applied
    assert before[0] == 1 and before[1] == before[2] and before[1] <= applied
    # the server's last scan is the probe's; DB Pulse's shows none, and one scan
    assert probed[0] == 1 and applied < probed[2] <= done.scans_until and pd.isna(probed[1])
    assert after[0] == 2 and done.scans_until < after[1] == after[2] <= again


def test_the_probes_sequential_scans_and_blocks_are_not_the_applications(scratch_database,
                                                                        tmp_path):
    """A probe that scans a table no one else reads leaves every figure as it was: the
    sequential scans the agent counts, the tables read by large sequential scans, the buffer
    cache's blocks and rates; the application's same scan then counts (ground truth: the
    table's pages and rows)."""
    _planted(scratch_database, "CREATE TABLE scanned (id int, pad text) WITH "
             "(autovacuum_enabled = off); INSERT INTO scanned SELECT i, repeat('x', 100) FROM "
             "generate_series(1, 20000) i")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE scanned")  # its pages known and in shared buffers
    settings = Settings(role="dba", plan_file=_plan_file(
        tmp_path, "SELECT count(*) FROM scanned WHERE id = %s", [7], match="FROM scanned"))

    def figures() -> tuple:
        with monitoring_connection(scratch_database, settings) as conn:
            heavy = indexes.sequential_scan_heavy(conn)
            rates = cache.cache_hit_rates(conn)
            per_table = cache.table_hit_rates(conn).set_index("table_name").loc["scanned"]
            stored = snapshots.collect(conn, "probe-seq").tables.set_index("table_name")
            return (indexes.scan_totals(conn)[1], heavy["table_name"].tolist(),
                    rates.blocks_hit + rates.blocks_read, rates.tables,
                    per_table["table_blocks_read"], per_table["table_hit_rate"],
                    *stored.loc["scanned", ["seq_scans", "heap_blks_hit", "heap_blks_read"]])

    def raw_seq_scans(at_least: int) -> int:
        return _shared_scans(scratch_database,
                             "SELECT pg_stat_get_numscans('scanned'::regclass)", at_least)

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        pages = conn.execute("SELECT relpages FROM pg_class WHERE relname = 'scanned'"
                             ).fetchone()[0]
    before = figures()
    _probed(scratch_database, "scanned", settings, rounds=2)
    assert raw_seq_scans(2) == 2
    assert figures() == before
    with psycopg.connect(scratch_database, autocommit=True) as app:
        app.execute("SELECT count(*) FROM scanned WHERE id = 7").fetchone()
        app.execute("SELECT pg_stat_force_next_flush()")
    after = figures()
    assert raw_seq_scans(3) == 3
    assert after[0] == before[0] + 1 and after[1] == ["scanned"]
    assert after[2] == before[2] + pages > 0
    assert after[6] == before[6] + 1 and after[7] + after[8] == before[7] + before[8] + pages


def test_the_probes_toast_reads_are_not_the_applications(scratch_database, tmp_path):
    """A probe that reads a TOASTed value from disk leaves the Buffer cache page's TOAST
    column as it was, though the server counted its reads; the application's same read then
    counts exactly as the server counts it (ground truth: pg_statio_user_tables read raw)."""
    # EXTERNAL: stored out of line uncompressed, so every row's value spans TOAST pages
    _planted(scratch_database, "CREATE EXTENSION IF NOT EXISTS pg_buffercache; CREATE TABLE "
             "docs (id int PRIMARY KEY, doc text); ALTER TABLE docs ALTER doc SET STORAGE "
             "EXTERNAL; INSERT INTO docs SELECT i, repeat(md5(i::text), 1000) FROM "
             "generate_series(1, 50) i; ANALYZE docs")
    settings = Settings(role="dba", plan_file=_plan_file(
        tmp_path, "SELECT length(doc) FROM docs WHERE id = %s", [7], match="FROM docs"))

    def evicted() -> None:
        """The TOAST table and its index out of shared buffers: the next read is from disk."""
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("""
                SELECT pg_buffercache_evict_relation(r)
                FROM (SELECT reltoastrelid AS r FROM pg_class WHERE relname = 'docs'
                      UNION ALL SELECT indexrelid FROM pg_index
                      WHERE indrelid = (SELECT reltoastrelid FROM pg_class
                                        WHERE relname = 'docs')) toast""").fetchall()

    def shown() -> int:
        with monitoring_connection(scratch_database, settings) as conn:
            frame = cache.table_hit_rates(conn).set_index("table_name")
            return int(frame.loc["docs", "toast_blocks_read"])

    raw_sql = ("SELECT toast_blks_read + tidx_blks_read FROM pg_statio_user_tables "
               "WHERE relname = 'docs'")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        raw_before = conn.execute(raw_sql).fetchone()[0]
    before = shown()
    _probed(scratch_database, "docs", settings, before_each=evicted)
    raw_probed = _shared_scans(scratch_database, raw_sql, raw_before + 1)
    assert raw_probed > raw_before  # the server counted the probe's TOAST reads
    assert shown() == before
    evicted()
    with psycopg.connect(scratch_database, autocommit=True) as app:
        assert app.execute("SELECT length(doc) FROM docs WHERE id = 7").fetchone()[0] == 32000
        app.execute("SELECT pg_stat_force_next_flush()")
    raw_after = _shared_scans(scratch_database, raw_sql, raw_probed + 1)
    assert shown() == before + (raw_after - raw_probed) > before


def test_the_plans_figures_are_the_applications_not_the_probes(scratch_database, tmp_path):
    """The probes run the plan's hot statements: the same query id as the application's, under
    their own login. The Plan page's calls before and after a migration are the application's
    (ground truth: the calls this test makes), and its planned index counts no probe's scan as
    use."""
    from foundation import migration_files
    from operations import migrations
    from reads import plan_tracker
    plan_file = _plan_file(tmp_path, "SELECT id FROM hot WHERE tag = %s", [7],
                           match="FROM hot WHERE tag")
    planned = tmp_path / "migrations"
    planned.mkdir()
    (planned / "0001_hot.sql").write_text("CREATE INDEX IF NOT EXISTS hot_tag ON hot (tag);\n")
    _planted(scratch_database, "CREATE TABLE hot (id int, tag int); INSERT INTO hot SELECT i, "
             "i % 100 FROM generate_series(1, 20000) i; CREATE INDEX hot_tag ON hot (tag); "
             "ANALYZE hot")

    def application(calls: int) -> None:
        with psycopg.connect(scratch_database, autocommit=True) as app:
            for _ in range(calls):
                app.execute("SELECT id FROM hot WHERE tag = %s", [3]).fetchall()
            app.execute("SELECT pg_stat_force_next_flush()")  # its scans shared on return

    with login_role(scratch_database, "probe_hot_login", "pw") as probe_url:
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            conn.execute("GRANT SELECT ON hot TO probe_hot_login")
        settings = Settings(role="dba", plan_file=plan_file)
        target = Target("scratch", scratch_database, scratch_database, probe_url=probe_url)
        plan = current_plan(settings)

        def probe_rounds(rounds: int) -> None:
            for _ in range(rounds):
                done = probes.run_round(target, settings, plan.probes)
                assert done.samples[0].error is None
                with admin_connection(scratch_database, settings) as conn:
                    # the ledger of the database it watches (the agent's source name)
                    probes.store(conn, conn.info.dbname, datetime.now(timezone.utc), done)

        application(5)
        probe_rounds(2)
        with admin_connection(scratch_database, settings) as conn:
            before = migrations._statement_counters(conn)
        application(4)
        probe_rounds(3)
        with admin_connection(scratch_database, settings) as conn:
            after = migrations._statement_counters(conn)
        application(6)
        probe_rounds(2)
        with monitoring_connection(scratch_database, settings) as conn:
            # a probe's session shares its scans as it exits, a moment after closing
            for _ in range(100):
                raw_scans = conn.execute("SELECT pg_stat_get_numscans('hot_tag'::regclass)"
                                         ).fetchone()[0]
                if raw_scans >= 5 + 4 + 6 + 7:
                    break
                time.sleep(0.1)
                conn.execute("SELECT pg_stat_clear_snapshot()")
            pss = detect(conn).extension("pg_stat_statements")
            table = plan_tracker.hot_queries_before_after(
                conn, pss, {"statements_before": before, "statements_after": after},
                plan).set_index("query")
            objects = plan_tracker.object_status(
                conn, migration_files.discover(planned)).set_index("name")
            listed = indexes.list_indexes(conn).set_index("index_name")
            index_scans, _ = indexes.scan_totals(conn)  # the agent's scans_total{kind="index"}
    hot = table.loc["P1 planted"]
    assert (hot.calls_before, hot.calls_after) == (5, 6)
    index = objects.loc["public.hot_tag"]
    assert raw_scans == 5 + 4 + 6 + 7  # the application's and the probes' (one a round)
    assert index.uses == listed.at["hot_tag", "scans"] == 15
    assert index_scans == 15  # neither the probes' nor those on DB Pulse's own tables
    assert index.size_bytes == listed.at["hot_tag", "size_bytes"] > 0


def test_a_planned_views_uses_are_the_applications_reads_of_it_and_its_index(
        scratch_database, tmp_path):
    """A planned materialized view is read through its index as often as directly: its uses
    on the Plan page count both, the application's only (ground truth: 3 reads through the
    index and 2 direct ones, beside the index build's; the probe's read is left out)."""
    from foundation import migration_files
    from reads import plan_tracker
    planned = tmp_path / "migrations"
    planned.mkdir()
    (planned / "0001_daily.sql").write_text(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS daily AS SELECT g AS day, g * 2 AS total "
        "FROM generate_series(1, 5000) g;\n"
        "CREATE UNIQUE INDEX IF NOT EXISTS daily_day ON daily (day);\n")
    _planted(scratch_database, "CREATE MATERIALIZED VIEW daily AS SELECT g AS day, g * 2 AS "
             "total FROM generate_series(1, 5000) g; CREATE UNIQUE INDEX daily_day ON daily "
             "(day); ANALYZE daily")
    settings = Settings(role="dba", plan_file=_plan_file(
        tmp_path, "SELECT total FROM daily WHERE day = %s", [7], match="FROM daily"))
    scans = ("SELECT pg_stat_get_numscans('daily'::regclass) + "
             "pg_stat_get_numscans('daily_day'::regclass)")
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        built = conn.execute(scans).fetchone()[0]  # the index build read the view once
    _probed(scratch_database, "daily", settings)
    with psycopg.connect(scratch_database, autocommit=True) as app:
        for day in (1, 2, 3):
            app.execute("SELECT total FROM daily WHERE day = %s", [day]).fetchall()
        for _ in range(2):
            app.execute("SELECT sum(total) FROM daily").fetchall()
        app.execute("SELECT pg_stat_force_next_flush()")
    raw = _shared_scans(scratch_database, scans, built + 6)
    with monitoring_connection(scratch_database, settings) as conn:
        objects = plan_tracker.object_status(
            conn, migration_files.discover(planned)).set_index("name")
    assert raw == built + 6 and objects.at["public.daily", "uses"] == built + 5


def test_the_agent_probes_and_serves_a_histogram_promtool_accepts(logins):
    target = _target(logins)
    agent = Agent([target], SETTINGS, alerts.Alerter([]), log=lambda line: None,
                  snapshot_every=timedelta(days=1))
    agent.cycle([target])
    agent.cycle([target])  # within the interval: not again
    text = scrape(agent.last)
    lines = text.decode().splitlines()
    counts = [line for line in lines if line.startswith("dbpulse_probe_duration_seconds_count")]
    assert len(counts) == 3 and all(line.endswith(" 1.0") for line in counts), counts
    assert any('le="0.2"' in line for line in lines)
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_plan_page_and_the_review_show_the_probes_p95_against_the_targets(
        logins, production_env, tmp_path):
    """Two stored rounds give each probe two runs; the plan page's table shows their p95
    against the plan's target, and the review's reader gives the stored runs' p95."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    target = _target(logins)
    plan = current_plan(SETTINGS)
    rounds = [probes.run_round(target, SETTINGS, plan.probes) for _ in range(2)]
    start = datetime.now(timezone.utc) - timedelta(seconds=10)  # stored in the past, as run
    with admin_connection(logins.admin_url, SETTINGS) as conn:
        for n, done in enumerate(rounds):
            probes.store(conn, target.history_source, start + timedelta(seconds=n), done)
    q1 = plan.probes[0]
    truth = float(np.percentile([r.samples[0].seconds for r in rounds], 95) * 1000)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/plan.py").run()
    assert not at.exception, at.exception
    [table] = [d.value for d in at.dataframe if "p95_ms" in d.value.columns]
    shown = table.set_index("name")
    with psycopg.connect(logins.admin_url) as conn:  # every run of the last 24 h, ours among them
        day = [s for s, in conn.execute(
            "SELECT seconds FROM dbpulse.probe_samples WHERE source = %s AND name = %s AND "
            "taken_at > now() - interval '24 hours' AND seconds IS NOT NULL",
            (target.history_source, q1.name))]
    assert len(day) >= 2
    # the table shows one decimal: the stored runs' p95, rounded as shown
    assert shown.at[q1.name, "p95_ms"] == pytest.approx(np.percentile(day, 95) * 1000, abs=0.051)
    assert shown.at[q1.name, "target_ms"] == q1.target_ms
    with monitoring_connection(logins.admin_url, SETTINGS) as conn:
        p95 = probes.p95_by_name(conn, target.history_source, start,
                                 start + timedelta(seconds=2))
    assert p95[q1.name] == pytest.approx(truth)
