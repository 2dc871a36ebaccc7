"""The embedded stack on its own folder and ports: up, reuse, status lines, down."""

import os
import shlex
import subprocess
import sys

import psutil
import psycopg
import pytest
import redis

from demo.stack import EmbeddedStack, free_port
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def own_stack(tmp_path_factory):
    root = PROJECT_ROOT / ".dbpulse" / f"test-stack-{os.getpid()}"
    stack = EmbeddedStack(root=root, pg_port=free_port(), redis_port=free_port())
    yield stack
    stack.destroy()


def _cli(*args, env_root):
    env = {**os.environ, "DBPULSE_STACK_DIR": str(env_root)}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_up_reuse_status_and_down(own_stack):
    state = own_stack.requested
    up = _cli("stack", "up", "--pg-port", str(state.pg_port), "--redis-port",
              str(state.redis_port), env_root=own_stack.root)
    assert up.returncode == 0, up.stderr
    pg_pid, redis_pid = own_stack.postgres_pid(), own_stack.redis_pid()
    assert pg_pid and redis_pid

    # a second up reuses what runs
    again = _cli("stack", "up", env_root=own_stack.root)
    assert again.returncode == 0, again.stderr
    assert (own_stack.postgres_pid(), own_stack.redis_pid()) == (pg_pid, redis_pid)

    # status prints lines a shell can eval, and the URLs work
    status = _cli("stack", "status", env_root=own_stack.root)
    assert status.returncode == 0
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
               for line in status.stdout.splitlines() if line and not line.startswith("#"))
    assert set(env) == {"DATABASE_URL", "REDIS_URL"}
    # exported: the next command (a child process, like `cli.py check`) sees them
    evaluated = subprocess.run(["bash", "-c", 'eval "$(cat)"; bash -c "printenv DATABASE_URL"'],
                               input=status.stdout, capture_output=True, text=True)
    assert evaluated.stdout.strip() == env["DATABASE_URL"]
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0] \
            == "pg_stat_statements"
        assert conn.execute("SHOW track_io_timing").fetchone()[0] == "on"
        assert conn.execute("SHOW pg_stat_statements.track_planning").fetchone()[0] == "on"
        assert conn.execute("SHOW track_functions").fetchone()[0] == "all"
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()
    assert status.stdout.splitlines()[1].startswith("export DATABASE_URL=")

    down = _cli("stack", "down", env_root=own_stack.root)
    assert down.returncode == 0
    assert not psutil.pid_exists(pg_pid) or psutil.Process(pg_pid).status() == psutil.STATUS_ZOMBIE
    assert not psutil.pid_exists(redis_pid) or \
        psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    stopped = _cli("stack", "status", env_root=own_stack.root)
    assert stopped.returncode == 1 and "postgres stopped, redis stopped" in stopped.stdout


def test_taken_port_is_a_clear_error(own_stack):
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", own_stack.requested.pg_port))
        blocker.listen()
        result = _cli("stack", "up", "--pg-port", str(own_stack.requested.pg_port),
                      "--redis-port", str(own_stack.requested.redis_port), env_root=own_stack.root)
    assert result.returncode == 2
    assert f"port {own_stack.requested.pg_port} is taken" in result.stderr


def test_dropped_databases_take_their_statements_with_them(servers, database_url):
    """A benchmark's database is dropped with its pg_stat_statements entries, which outlive the
    database otherwise; other databases' entries stay."""
    import uuid

    from demo.stack import EXTENSION_SCHEMA, create_database, drop_databases

    def entries(dbid) -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute(f"SELECT count(*) FROM {EXTENSION_SCHEMA}.pg_stat_statements "
                                "WHERE dbid = %s", (dbid,)).fetchone()[0]

    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = create_database(servers[0], name)
    with psycopg.connect(url) as conn:
        dropped = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                               ).fetchone()[0]
        conn.execute("SELECT 42")
    with psycopg.connect(database_url) as conn:
        kept = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                            ).fetchone()[0]
    kept_before = entries(kept)
    assert entries(dropped) >= 1 and kept_before >= 1
    drop_databases(database_url, [name])
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (name,)).fetchone()[0] == 0
    assert entries(dropped) == 0
    assert entries(kept) >= kept_before


def test_the_tools_databases_leave_no_statement_in_the_watched_one(servers, database_url):
    """The databases benchmarks and tests make and drop through the URL of the demo's database
    leave no statement of the application's there: CREATE and DROP DATABASE run in the
    maintenance database, the entries' reset is tagged as DB Pulse's own."""
    import uuid

    from demo.stack import EXTENSION_SCHEMA, create_database, drop_databases
    from foundation.connections import OWN_STATEMENT_TAG

    name = f"tool_{uuid.uuid4().hex[:8]}"
    create_database(database_url, name)
    drop_databases(database_url, [name])
    with psycopg.connect(database_url) as conn:
        named = conn.execute(f"""
            SELECT query FROM {EXTENSION_SCHEMA}.pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND strpos(query, %s) > 0""", (name,)).fetchall()
        # drop_databases' own reads (other tests reset pg_stat_statements their own way)
        lookups = conn.execute(f"""
            SELECT query FROM {EXTENSION_SCHEMA}.pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND (query LIKE '%%pg_stat_statements_reset($2, oid, $3)%%'
                   OR query LIKE '%%WHERE e.extname = $1%%')""").fetchall()
    assert named == []  # CREATE and DROP DATABASE ran in the maintenance database
    assert lookups and all(q.endswith(OWN_STATEMENT_TAG) for (q,) in lookups), lookups
