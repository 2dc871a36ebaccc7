"""PgBouncer in front of the embedded primary, when the machine has it (Debian's pgbouncer): the
pooler the plan puts between the application and PostgreSQL. Transaction pooling, a small pool,
and DB Pulse's monitoring login as a stats user of its console."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from demo.stack import (
    DEFAULT_POOLER_PORT,
    PG_SYSTEM_USER,
    StackError,
    give_to_pg_user,
    pid_from_file,
    port_is_free,
    process_alive,
)

DEFAULT_PORT = DEFAULT_POOLER_PORT


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None)


class PgBouncer:
    def __init__(self, root: Path, port: int, pg_port: int, users: dict[str, str],
                 stats_users: tuple[str, ...], pool_size: int = 10):
        self.root, self.port, self.pg_port = Path(root), port, pg_port
        self.users, self.stats_users, self.pool_size = users, stats_users, pool_size
        self.ini = self.root / "pgbouncer.ini"
        self.pidfile = self.root / "pgbouncer.pid"

    def pid(self) -> int | None:
        pid = pid_from_file(self.pidfile)
        return pid if process_alive(pid, "pgbouncer") else None

    def start(self) -> None:
        """Start it (or keep the one running); StackError when it cannot."""
        if self.pid() is not None:
            return
        found = binary()
        if found is None:
            raise StackError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
        if not port_is_free(self.port):
            raise StackError(f"port {self.port} is taken by another program")
        self.root.mkdir(parents=True, exist_ok=True)
        userlist = self.root / "userlist.txt"
        userlist.write_text("".join(f'"{u}" "{p}"\n' for u, p in self.users.items()))
        self.ini.write_text(f"""[databases]
* = host=127.0.0.1 port={self.pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 200
stats_users = {", ".join(self.stats_users)}
admin_users = postgres
ignore_startup_parameters = extra_float_digits,options
logfile = {self.root / "pgbouncer.log"}
pidfile = {self.pidfile}
""")
        user = []
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            give_to_pg_user(self.root)
            user = ["-u", PG_SYSTEM_USER]
        result = subprocess.run([found, "-d", *user, str(self.ini)], capture_output=True,
                                text=True)
        deadline = time.monotonic() + 15
        while self.pid() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() is None:
            log = self.root / "pgbouncer.log"
            raise StackError(f"pgbouncer did not start: {result.stderr.strip()} "
                             + (log.read_text()[-1000:] if log.exists() else ""))

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(10)
        except psutil.Error:
            pass

    def url(self, user: str, database: str) -> str:
        return (f"postgresql://{user}:{self.users[user]}@127.0.0.1:{self.port}/{database}")
