"""The README's "Use it on your own database", followed as written on a PostgreSQL 15 shaped like
Supabase: pg_cron in the `postgres` database, `pg_stat_statements` in an `extensions` schema, the
application's tables and statements under a role of their own, a pg_cron job of the admin's. The
only things done here that the README does not say are what a Supabase project already has."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import psycopg
import pytest
from psycopg import conninfo

from demo import loader
from demo.stack import EmbeddedStack, free_port, install_extensions
from tests.conftest import PG15_BIN, PROJECT_ROOT, TEST_DIR

README = (PROJECT_ROOT / "README.md").read_text()
PASSWORD = "readme-test"


def _section(title: str) -> str:
    start = README.index(title)
    following = re.search(r"^#{2,3} ", README[start + len(title):], re.M)
    return README[start:start + len(title) + (following.start() if following else len(README))]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def supabase_shaped():
    """The admin's URL of `postgres` on a PostgreSQL 15 with pg_cron there, the demo's tables
    owned by the application's role, its statements run as that role, a view refreshed by a
    pg_cron job of the admin's."""
    if not (PG15_BIN / "postgres").exists() or not (PG15_BIN.parent / "lib" / "pg_cron.so").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL 15 with pg_cron is missing; .ci/run should install it")
        pytest.skip("PostgreSQL 15 with pg_cron not installed")
    stack = EmbeddedStack(root=TEST_DIR / "test-pg15-supabase", pg_port=free_port(),
                          database="postgres", pg_bin_dir=PG15_BIN, with_redis=False,
                          extra_settings={"shared_preload_libraries": "'pg_stat_statements,pg_cron'",
                                          "cron.database_name": "'postgres'",
                                          "cron.use_background_workers": "on",
                                          "max_worker_processes": "16"})
    stack.destroy()
    admin = stack.up().state.database_url("postgres")
    install_extensions(admin, "pg_stat_statements", "pgstattuple")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("CREATE ROLE salesapp LOGIN PASSWORD 'app'")
    loader.load(admin, "small")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO salesapp")
        view = conn.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' "
                            "ORDER BY 1 LIMIT 1").fetchone()[0]
        conn.execute("SELECT cron.schedule('nightly-view', '0 3 * * *', %s)",
                     (f"REFRESH MATERIALIZED VIEW public.{view}",))
    app = conninfo.make_conninfo(admin, user="salesapp", password="app")
    with psycopg.connect(app) as conn:  # the application's own statements
        for user_id in range(20):
            conn.execute("SELECT count(*) FROM leads WHERE p_score >= %s", (user_id,)).fetchall()
    yield admin
    stack.destroy()


def _follow(block: str, env: dict, values: dict) -> list[subprocess.CompletedProcess]:
    """Each line of a README shell block: `export NAME=...` takes this server's value for
    NAME; `make venv` is the suite's own set-up; `serve` would not return; the rest runs as
    written, from the project's folder."""
    done = []
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if not command or command == "make venv" or command.endswith("cli.py serve"):
            continue
        if command.startswith("export "):
            name = command.split()[1].split("=")[0]
            env[name] = values[name]
            continue
        result = subprocess.run(["bash", "-c", command], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        done.append(result)
    return done


def test_the_readme_on_a_supabase_shaped_postgresql_15(supabase_shaped):
    admin = supabase_shaped
    # step 1: the monitoring login, as the README's SQL says, with a password of ours
    [role_sql] = _blocks(_section("### A monitoring role"), "sql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(role_sql.replace("'...'", f"'{PASSWORD}'"))
    monitor = conninfo.make_conninfo(admin, user="dbpulse_monitor", password=PASSWORD)
    # steps 2 to 4, the shell blocks of "Use it on your own database", as written
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "DBPULSE_SECRETS_FILE": str(TEST_DIR / "readme-no-secrets.toml")}
    values = {"DATABASE_URL": monitor, "DATABASE_ADMIN_URL": admin}
    install, look = _blocks(_section("## Use it on your own database"), "bash")
    [installed] = _follow(install, env, values)
    assert installed.returncode == 0, installed.stderr
    assert "dbpulse.cron_jobs" not in installed.stderr
    [checked] = _follow(look, env, values)
    assert checked.returncode in (0, 1), checked.stderr  # 1: a red finding, not a failure
    assert "permission denied" not in checked.stdout + checked.stderr
    # what it saw, through the monitoring login alone
    report = json.loads(subprocess.run(
        [".venv/bin/python", "cli.py", "check", "--json"], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300).stdout)
    grey = {f["check"]: f["summary"] for f in report["findings"] if f["severity"] == "grey"}
    assert not grey, grey
    missing = [i for i in report["postgres"]["capability_issues"] if i["severity"] != "info"]
    assert not missing, missing  # only optional extensions may be absent (hypopg)
    assert report["postgres"]["extensions"]["pg_stat_statements"]
    listed = subprocess.run(shlex.split(".venv/bin/python cli.py schedule list"),
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "nightly-view" in listed.stdout, listed.stdout + listed.stderr
