"""The README's newcomer path on a fresh clone, with its commands as the README writes them:
`make demo` (small scale), the CLI on the running demo from another shell (`stack status`,
`check`, `report`), Ctrl-C, `stack down`. The clone shares this checkout's virtualenv: building
one is the first thing CI's own `make test` does on its fresh clone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import psutil
import pytest

from demo.stack import DEFAULT_PG_PORT, DEFAULT_REDIS_PORT
from tests.conftest import PROJECT_ROOT, TEST_DIR

pytestmark = pytest.mark.server  # starts the demo's servers, dashboard and agent
DASHBOARD_PORT = 8501
METRICS_PORT = 19187


def _block_after(readme: str, heading: str) -> list[str]:
    """The command lines of the first bash block after `heading`, comments dropped."""
    rest = readme[readme.index(heading):]
    block = re.search(r"```bash\n(.*?)```", rest, re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _left_running(clone) -> list[str]:
    """Processes started from the clone (its dashboard, workload, agent, servers)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(clone) in part for part in proc.info["cmdline"] or []):
                found.append(" ".join(proc.info["cmdline"])[:120])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_the_readmes_first_steps_on_a_fresh_clone():
    readme = (PROJECT_ROOT / "README.md").read_text()
    first = _block_after(readme, "## Two commands on a fresh machine")
    on_the_demo = _block_after(readme, "The CLI on the running demo")
    assert first == ["make demo", "make test"]
    assert "`make demo SCALE=small` loads" in readme
    assert on_the_demo == ['eval "$(.venv/bin/python cli.py stack status)"',
                           ".venv/bin/python cli.py check",
                           ".venv/bin/python cli.py report --out review.html"]
    assert ".venv/bin/python cli.py stack down` stops them" in readme
    busy = [p for p in (DEFAULT_PG_PORT, DEFAULT_REDIS_PORT, DASHBOARD_PORT, METRICS_PORT)
            if _listening(p)]
    if busy:  # a demo of this checkout is running: the README's ports are taken
        if os.environ.get("CI"):
            pytest.fail(f"the README's ports are taken on a CI machine: {busy}")
        pytest.skip(f"the README's ports are in use here: {busy}")

    # where the embedded server's own user may enter (pytest's tmp_path is private to root)
    clone = TEST_DIR / "newcomer"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "REDIS_", "DBPULSE_", "PGBOUNCER_", "HISTORY_"))}
    # `-o .venv/.installed`: the shared virtualenv is taken as built (the clone's
    # requirements.txt is newer than it only by its checkout time)
    def start_demo() -> tuple[subprocess.Popen, list[str]]:
        demo = subprocess.Popen(["make", "-o", ".venv/.installed", "demo", "SCALE=small"],
                                cwd=clone, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        said = []
        for line in demo.stdout:  # until the demo says it serves
            said.append(line)
            if "DB Pulse is serving" in line:
                break
        return demo, said

    # another test's connection may hold a README port for a moment as its own (ephemeral)
    # local port: the demo then refuses to start, as it should; it is started again. (A taken
    # PgBouncer port only leaves the pooler out: that demo serves and is kept.)
    for _ in range(3):
        demo, said = start_demo()
        serving = bool(said) and "DB Pulse is serving" in said[-1]
        if serving or "is taken by another program" not in "".join(said):
            break
        demo.wait(60)
        time.sleep(2)
    try:
        assert said and f"http://127.0.0.1:{DASHBOARD_PORT}" in said[-1], "".join(said[-20:])
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}/_stcore/health",
                                          timeout=2).read() == b"ok":
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.5)

        # the CLI block, in another shell, as written
        shell = subprocess.run(["bash", "-c", "\n".join(
            [on_the_demo[0], f"{on_the_demo[1]}; echo \"check exit $?\"", on_the_demo[2]])],
            cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert shell.returncode == 0, shell.stderr[-2000:]
        assert "no database configured" not in shell.stdout + shell.stderr
        assert re.search(r"check exit [01]\n", shell.stdout), shell.stdout[-2000:]
        assert "database salesflow" in shell.stdout  # the demo's, from stack status
        assert re.search(r"\[(AMBER|RED) *\] Duplicate and redundant indexes", shell.stdout)
        report = (clone / "review.html").read_text()
        assert report.startswith("<!DOCTYPE html>") and "DB Pulse weekly review" in report
    finally:
        if demo.poll() is None:  # Ctrl-C in the demo's terminal: SIGINT to its process group
            os.killpg(demo.pid, signal.SIGINT)
        stopped = demo.wait(60)
    assert stopped in (0, 130, 2, -signal.SIGINT), stopped
    time.sleep(1)
    assert not _listening(DASHBOARD_PORT) and not _listening(METRICS_PORT)
    # the servers keep running for the next `make demo`, as the README says
    assert _listening(DEFAULT_PG_PORT) and _listening(DEFAULT_REDIS_PORT)
    down = subprocess.run([str(clone / ".venv" / "bin" / "python"), "cli.py", "stack", "down"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 30
    while _left_running(clone) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _left_running(clone) == []
    assert not _listening(DEFAULT_PG_PORT) and not _listening(DEFAULT_REDIS_PORT)
    shutil.rmtree(clone, ignore_errors=True)
