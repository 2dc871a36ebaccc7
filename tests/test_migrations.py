"""The migration runner against a real PostgreSQL: the prepared migrations on the demo, failures
mid-file with an exact ledger, an INVALID index fixed and resumed, two runners, drift, bad files."""

import os
import subprocess
import sys

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from demo import loader
from foundation import migration_files
from foundation.connections import admin_connection
from foundation.roles import PermissionDenied
from operations import migrations
from tests.conftest import PROJECT_ROOT, RESET_THIS_DATABASE, as_actor

PLAN_OBJECTS = ["idx_message_events_user_status_created", "idx_leads_p_score_scored_at",
                "mv_rlhf_sessions_daily", "mv_hot_leads", "idx_social_engagement_lead"]


@pytest.fixture
def demo_db(scratch_database):
    loader.load(scratch_database, "small")
    return scratch_database


def _apply(url, settings, found, **kw):
    with admin_connection(url, settings) as conn:
        return migrations.apply(conn, as_actor(settings, url), found, **kw)


def _rollback(url, settings, found, **kw):
    with admin_connection(url, settings) as conn:
        return migrations.rollback(conn, as_actor(settings, url), found,
                                   **kw)


def _exists(url, name):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)
                            ).fetchone()[0]


def _runs(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, direction, outcome, statements_completed, "
                            "statements_total FROM dbpulse.migration_runs ORDER BY id").fetchall()


def _status(url, settings, found):
    with admin_connection(url, settings) as conn:
        return dict(migrations.status(conn, found)[["version", "state"]].values)


def test_prepared_migrations_apply_and_roll_back_on_the_demo(demo_db, dba_settings):
    found = migration_files.discover()
    assert [m.version for m in found] == ["0001", "0002", "0003", "0004"]
    assert _apply(demo_db, dba_settings, found) == ["0001", "0002", "0003", "0004"]
    assert all(_exists(demo_db, name) for name in PLAN_OBJECTS)
    with psycopg.connect(demo_db) as conn:
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
        user = conn.execute("SELECT id FROM users ORDER BY idx LIMIT 1").fetchone()[0]
        stats = conn.execute("SELECT * FROM calculate_lead_event_stats(%s, now() - interval "
                             "'14 days', now() - interval '7 days')", (user,)).fetchone()
        conn.execute("SELECT refresh_analytics_mvs()")
    assert invalid == 0 and stats[4] >= 0
    assert set(_status(demo_db, dba_settings, found).values()) == {"applied"}
    assert _apply(demo_db, dba_settings, found) == []  # nothing twice
    assert _rollback(demo_db, dba_settings, found, to="0") == ["0004", "0003", "0002", "0001"]
    assert not any(_exists(demo_db, name) for name in PLAN_OBJECTS)
    assert set(_status(demo_db, dba_settings, found).values()) == {"pending"}
    with psycopg.connect(demo_db) as conn:
        audit = conn.execute("SELECT action, outcome FROM dbpulse.audit_log WHERE action LIKE "
                             "'migrate_%' ORDER BY id").fetchall()
    # the core functions write the ledger; the audit row is written by operations/actions.py
    assert audit == []


def _dir(tmp_path, files: dict) -> list:
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def test_failure_mid_file_stops_with_an_exact_ledger_and_resumes(demo_db, dba_settings,
                                                                  tmp_path):
    folder = _dir(tmp_path, {"0001_three.sql": (
        "CREATE TABLE step_one (id int);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS step_two ON leads (source);\n"
        "INSERT INTO no_such_table VALUES (1);\n"
        "CREATE TABLE step_four (id int);\n")})
    found = migration_files.discover(folder)
    with pytest.raises(migration_files.MigrationError, match="statement 3 failed.*2 of 4"):
        _apply(demo_db, dba_settings, found)
    assert _runs(demo_db) == [("0001", "apply", "failed", 2, 4)]
    assert _exists(demo_db, "step_one") and _exists(demo_db, "step_two")
    assert not _exists(demo_db, "step_four")
    assert _status(demo_db, dba_settings, found)["0001"] == "failed (apply)"
    # the fix: the table exists now; the re-run starts at statement 3
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE no_such_table (id int)")
    assert _apply(demo_db, dba_settings, found) == ["0001"]
    assert _runs(demo_db)[-1] == ("0001", "apply", "ok", 4, 4)
    with psycopg.connect(demo_db) as conn:
        assert conn.execute("SELECT count(*) FROM no_such_table").fetchone()[0] == 1


def test_invalid_concurrent_unique_index_is_detected_fixed_and_resumed(demo_db, dba_settings,
                                                                        tmp_path):
    folder = _dir(tmp_path, {"0001_unique.sql": (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_contacts_company_unique "
        "ON contacts (status);\n"
        "CREATE TABLE after_the_index (id int);\n")})
    found = migration_files.discover(folder)
    with pytest.raises(migration_files.MigrationError,
                       match="(duplicate|could not create).*INVALID index .* was dropped"):
        _apply(demo_db, dba_settings, found)
    # the build's INVALID leftover is gone: nothing slows writes, IF NOT EXISTS skips nothing
    assert not _exists(demo_db, "idx_contacts_company_unique")
    assert _runs(demo_db)[-1][2:4] == ("failed", 0)
    # an INVALID index the run did not create (IF NOT EXISTS would skip it) is reported
    with psycopg.connect(demo_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_contacts_company_unique "
                         "ON contacts (status)")
    with pytest.raises(migration_files.MigrationError, match="INVALID.*DROP INDEX CONCURRENTLY"):
        _apply(demo_db, dba_settings, found)
    with psycopg.connect(demo_db, autocommit=True) as conn:  # the fix: dedupe, drop, re-run
        conn.execute("UPDATE contacts SET status = status || ' #' || id")
        conn.execute("DROP INDEX CONCURRENTLY IF EXISTS idx_contacts_company_unique")
    assert _apply(demo_db, dba_settings, found) == ["0001"]
    assert _exists(demo_db, "after_the_index")


def test_a_second_runner_is_refused_and_told_by_whom(demo_db, dba_settings):
    with psycopg.connect(demo_db, autocommit=True, application_name="other-runner") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (migrations.RUN_LOCK_KEY,))
        with pytest.raises(migration_files.MigrationError, match="in progress by postgres "
                                                            r"\(other-runner"):
            _apply(demo_db, dba_settings, migration_files.discover())
    assert not _exists(demo_db, "idx_message_events_user_status_created")


def test_checksum_drift_is_detected_and_refused(demo_db, dba_settings, tmp_path):
    folder = _dir(tmp_path, {"0001_a.sql": "CREATE TABLE drift_a (id int);\n"})
    _apply(demo_db, dba_settings, migration_files.discover(folder))
    (folder / "0001_a.sql").write_text("CREATE TABLE drift_a (id bigint);\n")
    found = migration_files.discover(folder)
    assert _status(demo_db, dba_settings, found)["0001"] == "changed since applied"
    with pytest.raises(migration_files.MigrationError, match="changed since it was applied"):
        _apply(demo_db, dba_settings, found)


def test_viewer_cannot_apply(demo_db, settings):
    with pytest.raises(PermissionDenied):
        _apply(demo_db, settings, migration_files.discover())
    with psycopg.connect(demo_db) as conn:
        assert conn.execute("SELECT to_regclass('dbpulse.migration_runs')").fetchone()[0] is None


def test_transaction_pooler_port_is_refused(dba_settings):
    with pytest.raises(migration_files.MigrationError, match="transaction pooler"):
        migrations.refuse_pooler("postgresql://postgres:x@db.example.supabase.co:6543/postgres")
    migrations.refuse_pooler("postgresql://postgres:x@db.example.supabase.co:5432/postgres")


@pytest.mark.parametrize("files,message", [
    ({"0001_a.sql": "CREATE TABLE a (id int);\nSELEC 1;\n"}, "syntax error near line 2"),
    ({"0001_a.sql": "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n"}, "transaction control"),
    ({"0001_a.sql": "BEGIN;\nCREATE INDEX CONCURRENTLY a ON t (x);\nCOMMIT;\n"},
     "CREATE INDEX CONCURRENTLY cannot run inside"),
    ({"0001_a.sql": "-- nothing here\n"}, "contains no SQL statement"),
    ({"0001_a.sql": b"CREATE TABLE caf\xe9 (id int);\n"}, "not UTF-8"),
    ({"0001_a.sql": "SELECT 1;", "001_b.sql": "SELECT 2;"}, "two migrations have version"),
    ({"first.sql": "SELECT 1;"}, "NNNN_name.sql"),
])
def test_bad_migration_files(tmp_path, files, message):
    with pytest.raises(migration_files.MigrationError, match=message):
        migration_files.discover(_dir(tmp_path, files))


def test_missing_directory(tmp_path):
    with pytest.raises(migration_files.MigrationError, match="does not exist"):
        migration_files.discover(tmp_path / "nope")


def test_plan_and_lint(demo_db, dba_settings):
    found = migration_files.discover()
    with admin_connection(demo_db, dba_settings) as conn:
        plan = migrations.plan(conn, found[0])
    first = plan.iloc[0]
    assert first["runs"] == "alone, autocommit" and first["table"] == "public.message_events"
    assert "reads and writes go on" in first["lock"] and first["table_rows"] > 0
    rules = {f["rule"] for f in migration_files.lint(found[0])}
    assert rules and "require-concurrent-index-creation" not in rules  # all CONCURRENTLY


def test_cli_migrate(demo_db):
    env = {**os.environ, "DATABASE_URL": demo_db, "DBPULSE_SECRETS_FILE": "/nonexistent",
           "DBPULSE_ROLE": "dba"}
    env.pop("DATABASE_ADMIN_URL", None)

    def cli(*args):
        return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "migrate", *args],
                              env=env, capture_output=True, text=True, timeout=300)

    assert "0001" in cli("plan").stdout
    applied = cli("apply", "--up-to", "0001")
    assert applied.returncode == 0 and "applied: 0001" in applied.stdout
    assert "[13/13]" in applied.stdout
    status = cli("status").stdout
    assert "phase1_indexes applied 13/13" in " ".join(status.split())
    assert " UTC by cli:" in status and "0002 phase2_matviews pending - never" in " ".join(
        status.split())
    assert not any(raw in status for raw in ("NaN", "NaT", "None", "13.0"))
    assert cli("rollback").returncode == 0
    missing = cli("status", "--dir", "/nonexistent/migrations")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_migrations_page_apply_as_dba(demo_db, redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", demo_db)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DBPULSE_ROLE", "dba")
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/migrations.py").run()
    assert not at.exception, at.exception
    [version] = [s for s in at.selectbox if s.label.startswith("Apply pending")]
    assert version.value == "0001"                 # the next migration only, by default
    version.set_value("0002").run()                # 0001 and 0002: non-concurrent builds
    [apply] = [b for b in at.button if b.label == "Apply"]
    apply.click().run()
    assert not at.exception, at.exception
    said = " ".join(m.value for m in at.markdown)
    assert "This applies **0001, 0002**" in said and "block the application" in said
    assert "SHARE (blocks writes for the whole build)" in said
    assert [t.label for t in at.text_input] == ["Type **0002** to confirm"]
    assert not _exists(demo_db, "idx_message_events_user_status_created")   # nothing yet
    # a viewer sees Apply disabled, with the reason
    monkeypatch.setenv("DBPULSE_ROLE", "viewer")
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/migrations.py").run()
    [apply] = [b for b in at.button if b.label == "Apply"]
    assert apply.disabled and "needs the DBA role" in apply.help
    assert not _exists(demo_db, "idx_message_events_user_status_created")
    st.cache_data.clear()


def test_plan_tracker_objects_and_before_after(demo_db, dba_settings, settings):
    from demo.workload import Workload
    from foundation import capabilities
    from foundation.connections import monitoring_connection
    from reads import plan_tracker

    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    workload = Workload(demo_db, None, seed=5)
    workload.run(rate_per_s=300, duration_s=2)
    found = migration_files.discover()
    _apply(demo_db, dba_settings, found, up_to="0001")
    workload.run(rate_per_s=300, duration_s=2)
    workload.close()
    with monitoring_connection(demo_db, settings) as conn:
        objects = plan_tracker.object_status(conn, found).set_index("name")
        pss = capabilities.detect(conn).extension("pg_stat_statements")
        table = plan_tracker.hot_queries_before_after(
            conn, pss, plan_tracker.latest_apply(conn, "0001")).set_index("query")
    phase1 = objects[objects["version"] == "0001"]
    assert len(phase1) == 13 and phase1["present"].all() and phase1["valid"].all()
    assert not objects[objects["version"] == "0002"]["present"].any()
    assert objects.loc["public.idx_message_events_user_status_created", "used"]
    q1 = table.loc["Q1 message events list"]
    assert q1["calls_before"] > 0 and q1["calls_after"] > 0
    assert q1["mean_ms_before"] > 0 and q1["mean_ms_after"] > 0


def test_plan_page(demo_db, redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DBPULSE_SECRETS_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DATABASE_URL", demo_db)
    monkeypatch.setenv("REDIS_URL", redis_url)
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/plan.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Migrations applied"] == "0 / 4" and metrics["Present"] == "0 / 31"
    st.cache_data.clear()


def test_apply_all_phases_while_the_workload_runs(demo_db, dba_settings):
    """The plan's promise of no downtime: with the application's workload running, applying
    phases 1-3 makes no workload statement fail."""
    import threading

    from demo.workload import Workload

    workload = Workload(demo_db, None, seed=11)
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        stats=workload.run(rate_per_s=50, duration_s=8)))
    thread.start()
    try:
        assert _apply(demo_db, dba_settings, migration_files.discover()) == ["0001", "0002", "0003",
                                                                         "0004"]
    finally:
        thread.join(60)
        workload.close()
    stats = result["stats"]
    assert stats.operations > 100 and stats.errors == 0
    print(f"slowest workload operation during the apply: {stats.slowest_operation_s:.3f} s")


def test_index_build_progress_is_reported_while_it_waits(scratch_database):
    """A concurrent build waits for older transactions; meanwhile the runner's poller reports
    the build's phase from pg_stat_progress_create_index."""
    import threading
    import time

    with psycopg.connect(scratch_database, autocommit=True) as setup:
        setup.execute("CREATE TABLE progress_probe AS SELECT g AS id FROM generate_series(1, "
                      "1000) g")
    messages: list[str] = []
    holder = psycopg.connect(scratch_database)
    holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT count(*) FROM progress_probe").fetchone()  # an old snapshot
    builder = psycopg.connect(scratch_database, autocommit=True)

    def build():
        with migrations.IndexBuildProgress(scratch_database, builder.info.backend_pid,
                                           messages.append):
            builder.execute("CREATE INDEX CONCURRENTLY progress_probe_id ON progress_probe (id)")

    thread = threading.Thread(target=build)
    thread.start()
    time.sleep(2.5)
    holder.commit()  # the build may finish now
    thread.join(30)
    holder.close()
    builder.close()
    assert not thread.is_alive()
    assert any(m.strip().startswith("index build: waiting for") for m in messages), messages


def _build_behind_a_long_reader(url, tmp_path):
    """A migration that builds an index CONCURRENTLY on `waits`, and a REPEATABLE READ
    transaction that has read the table: its snapshot makes the build wait until it ends."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE waits (id int); INSERT INTO waits SELECT generate_series(1, 100)")
    folder = _dir(tmp_path, {"0001_build.sql": "CREATE INDEX CONCURRENTLY waits_id ON waits (id);\n"})
    holder = psycopg.connect(url, application_name="long-reader")
    holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT count(*) FROM waits").fetchone()
    return folder, holder


def test_a_concurrent_build_waits_for_a_long_transaction_instead_of_timing_out(
        scratch_database, tmp_path):
    """A 6 s REPEATABLE READ transaction elsewhere, a 1 s admin lock timeout: the build waits
    for it, says whom it waits for, and succeeds when it ends."""
    import threading
    import time

    from foundation.config import Settings

    settings = Settings(role="dba", admin_lock_timeout_ms=1000)
    folder, holder = _build_behind_a_long_reader(scratch_database, tmp_path)
    holder_pid = holder.info.backend_pid
    messages = []
    ends = threading.Timer(6, holder.commit)
    ends.start()
    t0 = time.monotonic()
    with admin_connection(scratch_database, settings) as conn:
        done = migrations.apply(conn, as_actor(settings, scratch_database),
                                migration_files.discover(folder), progress=messages.append)
    ends.join()  # the build ends with the COMMIT, maybe before its thread has read the reply
    holder.close()
    assert done == ["0001"] and time.monotonic() - t0 >= 5
    assert any(f"waiting for session {holder_pid}" in m for m in messages), messages
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                            "'waits_id'::regclass").fetchone()[0] is True
        # the short lock timeout is back for everything else on that session kind
    with admin_connection(scratch_database, settings) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1s"


def test_a_cancelled_build_drops_its_invalid_index_and_says_what_it_waited_for(
        scratch_database, tmp_path):
    import threading
    import time

    from foundation.config import Settings

    settings = Settings(role="dba", admin_lock_timeout_ms=1000)
    folder, holder = _build_behind_a_long_reader(scratch_database, tmp_path)

    def cancel_the_build():
        time.sleep(3)
        with psycopg.connect(scratch_database, autocommit=True) as dba:
            dba.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_progress_create_index")

    threading.Thread(target=cancel_the_build).start()
    holder_pid = holder.info.backend_pid
    try:
        with admin_connection(scratch_database, settings) as conn:
            with pytest.raises(migration_files.MigrationError) as caught:
                migrations.apply(conn, as_actor(settings, scratch_database),
                                 migration_files.discover(folder))
    finally:
        holder.close()
    message = str(caught.value)
    assert "canceling statement" in message
    assert f"waiting for session {holder_pid}" in message
    # the long transaction still held its snapshot: the leftover could not be dropped yet, and
    # the message says how; once it ended, that statement works
    assert "is still there" in message and "DROP INDEX CONCURRENTLY IF EXISTS public.waits_id" \
        in message
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("DROP INDEX CONCURRENTLY IF EXISTS public.waits_id")
    assert not _exists(scratch_database, "waits_id")


def test_bad_migrate_arguments_and_files_give_one_line_errors(scratch_database, tmp_path):
    env = {**os.environ, "DATABASE_URL": scratch_database, "DBPULSE_ROLE": "dba",
           "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")}
    env.pop("DATABASE_ADMIN_URL", None)
    good = _dir(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})

    def cli(*args):
        return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "migrate", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    folder_named_sql = tmp_path / "with_folder"
    (folder_named_sql / "0002_b.sql").mkdir(parents=True)
    (folder_named_sql / "0001_a.sql").write_text("CREATE TABLE a (id int);\n")
    looped = tmp_path / "with_loop"
    looped.mkdir()
    (looped / "0001_a.sql").symlink_to(looped / "0001_a.sql")
    cases = [(("apply", "--dir", str(good), "--up-to", "0001; DROP TABLE a"), "--up-to must be"),
             (("rollback", "--dir", str(good), "--to", "abc"), "--to must be"),
             (("status", "--dir", str(folder_named_sql)), "0002_b.sql is a folder"),
             (("status", "--dir", str(looped)), "0001_a.sql cannot be read")]
    for args, expected in cases:
        result = cli(*args)
        assert result.returncode in (1, 2), (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and expected in result.stderr, (args,
                                                                                 result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_template_reply_rate_is_the_share_of_sent_messages_answered(scratch_database,
                                                                    dba_settings):
    """Hand-counted: template t1 on email was sent 3 times and answered once, t2 once and
    answered once; two more inbound messages and one on another channel answer nothing."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute((PROJECT_ROOT / "sql" / "demo" / "schema.sql").read_text())
        u, org = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-0000000000aa"
        a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
        conn.execute("INSERT INTO users (id, idx, org_id, email, name) VALUES (%s, 1, %s, "
                     "'u@x', 'u')", (u, org))
        conn.execute("INSERT INTO contacts (id, user_id, org_id, name) VALUES (%s, %s, %s, 'a'), "
                     "(%s, %s, %s, 'b')", (a, u, org, b, u, org))
        events = [  # contact, direction, template, minute
            (a, "outbound", "t1", 1), (a, "inbound", None, 2), (a, "inbound", None, 3),
            (a, "outbound", "t1", 4), (a, "outbound", "t2", 5), (a, "inbound", None, 6),
            (b, "outbound", "t1", 1)]
        for contact, direction, template, minute in events:
            conn.execute("INSERT INTO message_events (user_id, contact_id, channel, direction, "
                         "autopilot_status, template_version, persona_variant, created_at) "
                         "VALUES (%s, %s, 'email', %s, 'sent', %s, 'p', "
                         "timestamptz '2026-11-01' + %s * interval '1 minute')",
                         (u, contact, direction, template, minute))
        conn.execute("INSERT INTO message_events (user_id, contact_id, channel, direction, "
                     "created_at) VALUES (%s, %s, 'linkedin', 'inbound', "
                     "timestamptz '2026-11-01 00:02')", (u, b))
    found = [m for m in migration_files.discover() if m.version == "0002"]
    assert _apply(scratch_database, dba_settings, found) == ["0002"]
    with psycopg.connect(scratch_database) as conn:
        rows = conn.execute("SELECT template_version, sent_count, replies_received, reply_rate "
                            "FROM mv_template_performance ORDER BY 1").fetchall()
    assert [(t, s, r, float(rate)) for t, s, r, rate in rows] == [
        ("t1", 3, 1, 33.33), ("t2", 1, 1, 100.0)]


def test_hot_queries_are_recognised_as_pg_stat_statements_stores_them(scratch_database):
    """Q2's constant 'pending' and Q9's 75 are stored as parameters; an EXPLAIN ANALYZE of a
    hot query is not the hot query."""
    from reads.plan_tracker import hot_query_label

    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute((PROJECT_ROOT / "sql" / "demo" / "schema.sql").read_text())
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute(RESET_THIS_DATABASE)
        user = "00000000-0000-0000-0000-000000000001"
        for channel in ("email", "linkedin"):  # exactly as the workload sends Q2
            conn.execute("SELECT * FROM message_events WHERE user_id = %s AND autopilot_status = "
                         "'pending' AND channel = %s ORDER BY created_at ASC LIMIT 100",
                         (user, channel))
        conn.execute("SELECT id, name, p_score FROM leads WHERE user_id = %s AND p_score >= 75 "
                     "ORDER BY p_score DESC LIMIT 50", (user,))
        conn.execute("EXPLAIN (ANALYZE) SELECT id, name, p_score FROM leads WHERE user_id = %s "
                     "AND p_score >= 75 ORDER BY p_score DESC LIMIT 50", (user,))
        rows = conn.execute("SELECT query, calls FROM pg_stat_statements WHERE dbid = (SELECT oid "
                            "FROM pg_database WHERE datname = current_database())").fetchall()
    labelled = {}
    for text, calls in rows:
        label = hot_query_label(text)
        if label:
            labelled[label] = labelled.get(label, 0) + calls
    assert labelled == {"Q2 pending events": 2, "Q9 hot leads": 1}, rows


def test_kill_9_mid_run_leaves_an_exact_ledger_and_the_rerun_repeats_nothing(
        scratch_database, tmp_path):
    import signal
    import time

    from foundation.config import Settings

    folder = _dir(tmp_path, {"0001_mixed.sql": (
        "CREATE TABLE IF NOT EXISTS crash_rows (id int);\n"
        "INSERT INTO crash_rows VALUES (1);\n"
        "CREATE INDEX CONCURRENTLY crash_rows_id ON crash_rows (id);\n"
        "INSERT INTO crash_rows VALUES (2);\n")})
    env = {**os.environ, "DATABASE_URL": scratch_database, "DBPULSE_ROLE": "dba",
           "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")}
    env.pop("DATABASE_ADMIN_URL", None)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE other (id int)")
    holder = psycopg.connect(scratch_database)  # an old snapshot: the build waits in statement 3
    holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT count(*) FROM other").fetchone()
    runner = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "cli.py"), "migrate", "apply",
                               "--dir", str(folder)], env=env, stdout=subprocess.PIPE, text=True)
    for line in runner.stdout:
        if "[3/4]" in line:
            break
    time.sleep(1)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    settings = Settings(role="dba")
    found = migration_files.discover(folder)
    assert _status(scratch_database, settings, found)["0001"] == "running (apply)"  # its backend
    holder.commit()  # the orphaned build finishes, its backend notices the client is gone
    holder.close()
    deadline = time.monotonic() + 20
    while _status(scratch_database, settings, found)["0001"] != "interrupted (apply)":
        assert time.monotonic() < deadline, _status(scratch_database, settings, found)
        time.sleep(0.2)
    assert _runs(scratch_database)[-1] == ("0001", "apply", "running", 2, 4)
    messages = []
    with admin_connection(scratch_database, settings) as conn:
        assert migrations.apply(conn, as_actor(settings, scratch_database), found,
                                progress=messages.append) == ["0001"]
    assert any("continuing after statement 2" in m for m in messages), messages
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT array_agg(id ORDER BY id) FROM crash_rows").fetchone()[0] \
            == [1, 2]  # no INSERT ran twice


def test_a_failure_is_blamed_on_its_own_statement_and_an_edit_is_understood(
        scratch_database, tmp_path):
    from foundation.config import Settings

    settings = Settings(role="dba")
    folder = _dir(tmp_path, {"0001_four.sql": (
        "CREATE TABLE four_a (id int);\n"
        "CREATE INDEX CONCURRENTLY four_a_id ON four_a (id);\n"
        "INSERT INTO four_a VALUES (1);\n"
        "INSERT INTO no_such_table VALUES (1);\n")})
    with pytest.raises(migration_files.MigrationError, match="statement 4 failed.*2 of 4"):
        _apply(scratch_database, settings, migration_files.discover(folder))
    status = _admin_status(scratch_database, settings, folder)
    assert status["state"] == "failed (apply)" and status["error"].startswith("statement 4:")
    # the failing statement is fixed in the file: statements 1-2 are unchanged and done
    (folder / "0001_four.sql").write_text(
        "CREATE TABLE four_a (id int);\n"
        "CREATE INDEX CONCURRENTLY four_a_id ON four_a (id);\n"
        "INSERT INTO four_a VALUES (1);\n"
        "INSERT INTO four_a VALUES (2);\n")
    assert _apply(scratch_database, settings, migration_files.discover(folder)) == ["0001"]
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT count(*) FROM four_a").fetchone()[0] == 2
    # a statement that already ran, edited: refused, naming it
    (tmp_path / "second").mkdir()
    two = ("CREATE TABLE two_a (id int);\nCREATE INDEX CONCURRENTLY two_a_id ON two_a (id);\n"
           "INSERT INTO nowhere VALUES (1);\n")
    folder2 = _dir(tmp_path / "second", {"0002_two.sql": two})
    with pytest.raises(migration_files.MigrationError, match="2 of 3"):
        _apply(scratch_database, settings, migration_files.discover(folder2))
    (folder2 / "0002_two.sql").write_text(two.replace("two_a (id int)", "two_a (id bigint)"))
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE nowhere (id int)")
    with pytest.raises(migration_files.MigrationError, match=r"statement\(s\) 1 that already ran"):
        _apply(scratch_database, settings, migration_files.discover(folder2))


def _admin_status(url, settings, folder):
    with admin_connection(url, settings) as conn:
        return migrations.status(conn, migration_files.discover(folder)).iloc[0]


def test_the_plan_says_when_a_migration_builds_a_twin_or_makes_an_index_redundant(
        scratch_database):
    """Before apply: an index of the same columns exists (a twin), one already leads with them,
    or the new one makes an existing one redundant; compared by columns and direction."""
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE ev (user_id int, status text, created_at timestamptz)")
        conn.execute("CREATE INDEX ev_user ON ev (user_id)")
        conn.execute("CREATE INDEX ev_user_status_created ON ev (user_id, status, created_at)")
        notes = {text: migrations.overlap_note(conn, text) for text in (
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_twin ON public.ev (user_id)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_us ON public.ev (user_id, status)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_desc ON ev (user_id DESC)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_part ON ev (user_id) WHERE status = 'x'")}
    twin, prefix, desc, partial = notes.values()
    assert "the same columns as ev_user, which exists: this builds a twin" in twin
    assert "ev_user_status_created already leads with these columns" in prefix
    assert "makes ev_user redundant" in prefix
    assert desc == "" and partial == ""  # another order, a predicate: not compared


def test_the_demo_after_every_migration_gives_no_contradictory_index_advice(demo_db,
                                                                            dba_settings):
    """The demo with every prepared migration applied: no index is named "which stays" and
    proposed for DROP, every duplicate group keeps one index, the Overview's counts are the
    Indexes page's, and running every proposed DROP leaves no duplicate behind."""
    from dataclasses import replace

    from foundation.connections import monitoring_connection
    from operations import checks

    settings = replace(dba_settings, unused_index_min_age_days=0)
    _apply(demo_db, settings, migration_files.discover())
    with monitoring_connection(demo_db, settings) as conn:
        found = checks.index_review(conn, settings)
        overview = {f.check: f.count for f in checks.check_indexes(conn, settings)}
    dropped = {f.index_name for f in found.duplicates}
    stays = {f.covered_by for f in found.duplicates}
    assert found.duplicates and not dropped & stays
    assert overview["duplicate_indexes"] == len(found.duplicates)
    assert overview["unused_indexes"] == len(found.unused)
    with psycopg.connect(demo_db, autocommit=True) as conn:
        for finding in found.duplicates:
            conn.execute(finding.fix)
        left = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes "
                                           "WHERE schemaname = 'public'")}
    assert stays <= left and not dropped & left
    with monitoring_connection(demo_db, settings) as conn:
        assert checks.index_review(conn, settings).duplicates == []
