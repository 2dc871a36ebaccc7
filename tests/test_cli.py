import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT, run_cli


def test_check_reports_the_target(database_url, redis_url, tmp_path):
    result = run_cli("check", "--json", env={"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                                "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["postgres"]["database"] == "salesflow_test"
    assert report["postgres"]["extensions"]["pg_stat_statements"]
    assert report["redis"][0]["version"]
    by_check = {f["check"]: f for f in report["findings"]}
    twins = {"public.idx_message_events_user", "public.idx_message_events_user_id"}
    assert len(twins & set(by_check["duplicate_indexes"]["objects"])) == 1  # drop one, keep one
    assert not twins & set(by_check["unused_indexes"]["objects"])
    assert "public.dm_conversations" in by_check["bloat"]["objects"]
    assert all(f["severity"] in ("green", "amber", "red", "grey") for f in report["findings"])


def test_check_prints_a_readable_report(database_url, redis_url, tmp_path):
    result = run_cli("check", env={"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                                "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[AMBER] Duplicate and redundant indexes" in result.stdout
    assert "overall: amber" in result.stdout
    assert "fix:" not in result.stdout
    verbose = run_cli("check", "--verbose", env={"DATABASE_URL": database_url,
                                              "REDIS_URL": redis_url,
                                              "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")})
    assert "fix:" in verbose.stdout and "DROP INDEX CONCURRENTLY" in verbose.stdout


def test_check_says_how_many_objects_it_left_out(capsys):
    import cli

    finding = {"severity": "amber", "title": "Unused indexes", "summary": "13 unused",
               "objects": [f"public.i{n}" for n in range(13)], "fix": "DROP INDEX i0;"}
    report = {"postgres": {"version": "18", "database": "d"}, "findings": [finding],
              "status": "amber"}
    cli._print_check(report)
    short = capsys.readouterr().out
    cli._print_check(report, verbose=True)
    full = capsys.readouterr().out
    assert "public.i9" in short and "public.i10" not in short
    assert "10 of 13 shown (--verbose lists all and the fix)" in short
    assert "public.i12" in full and "DROP INDEX i0;" in full and "of 13 shown" not in full


def test_check_fails_clearly_when_unreachable(closed_port, tmp_path):
    result = run_cli("check", "--json", env={"DATABASE_URL": f"postgresql://u:p@127.0.0.1:{closed_port}/db",
                                "REDIS_URL": f"redis://127.0.0.1:{closed_port}/0",
                                "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml")})
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "Cannot connect" in report["postgres"]["error"]
    assert "Cannot connect to Redis" in report["redis"][0]["error"]


def test_check_with_unknown_target_names_the_problem(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[targets.prod]\ndatabase_url = "postgresql://x@h/db"\n')
    env = {"DBPULSE_SECRETS_FILE": str(secrets), "DATABASE_URL": ""}
    result = run_cli("check", "--target", "staging", env=env)
    assert result.returncode == 2
    assert "no target named 'staging'" in result.stderr and "Traceback" not in result.stderr


def test_demo_loads_only_into_an_explicit_database(servers, scratch_database, tmp_path):
    """--database-url: no embedded server is started, and nothing beyond the demo's data and
    DB Pulse's schema is written there unless asked (--extras)."""
    env = {"DBPULSE_STACK_DIR": str(tmp_path / "no-stack"),
           # must be ignored: only --database-url chooses another database
           "DATABASE_URL": scratch_database + "_not_this_one"}
    result = run_cli("demo", "--scale", "small", "--no-ui", "--database-url", scratch_database,
                  env=env)
    assert result.returncode == 0, result.stderr
    assert "loaded the small demo" in result.stdout
    assert "ask with --extras" in result.stdout
    assert not (tmp_path / "no-stack" / "pg").exists()  # no embedded server started
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM dbpulse.audit_log "
                            "WHERE action = 'install_schema'").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dbpulse.snapshots").fetchone()[0] == 0
    again = run_cli("demo", "--scale", "small", "--no-ui", "--database-url", scratch_database, env=env)
    assert again.returncode == 0 and "already loaded" in again.stdout


@pytest.mark.server  # starts its own
def test_sigterm_to_serve_stops_the_dashboard_it_started(tmp_path):
    """systemctl stop sends SIGTERM to cli.py serve: the Streamlit process it started goes too."""
    import signal
    import time

    import psutil

    from demo.stack import free_port

    env = {**os.environ, "DBPULSE_SECRETS_FILE": str(tmp_path / "none.toml"),
           "DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db"}
    serve = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "cli.py"), "serve", "--port",
                              str(free_port())], env=env, cwd=PROJECT_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not psutil.Process(serve.pid).children() and time.monotonic() < deadline:
        time.sleep(0.2)
    [child] = psutil.Process(serve.pid).children()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(30) == 0
    child.wait(15)
    assert not child.is_running()
