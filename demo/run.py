"""`make demo`: the SalesFlow demo built like the deployment DB Pulse is for, and the processes
that run on it. cli.py parses and prints; the orchestration is here.

On the embedded stack: the primary with a streaming standby (the analytics reads), PgBouncer in
front when the machine has it, the application's own role, a pg_monitor-only monitoring login,
a plan login and the superuser as the admin login. With --database-url (someone's own server)
no login, standby or pooler is made there, and DB Pulse's event trigger and the synthetic
history are written only when asked for."""

from __future__ import annotations

import getpass
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from psycopg import conninfo

from demo import history as demo_history
from demo import loader, pooler
from demo import logins as demo_logins
from demo.stack import DEMO_PASSWORD, EmbeddedStack, StackError, record_process
from demo.workload import Workload
from foundation.config import Settings, Target
from foundation.connections import admin_connection, monitoring_connection
from foundation.roles import Actor
from operations import actions
from reads import matviews

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Demo:
    """What was built: the target as DB Pulse watches it, and how the workload reaches it."""
    target: Target
    app_url: str                      # the application's connection (through PgBouncer if any)
    read_url: str | None              # the standby, for the analytics reads
    redis_url: str | None
    environment: dict = field(default_factory=dict)  # DATABASE_URL & co. for DB Pulse
    root: Path | None = None          # the embedded stack's folder (logs, pids)


def actor(target: Target) -> Actor:
    """The demo's own set-up acts as the DBA of the demo it builds."""
    return Actor(f"cli:{getpass.getuser()}", "dba", target, Settings(role="dba"))


def prepare(stack: EmbeddedStack | None, scale: str, database_url: str | None = None,
            redis_url: str | None = None, standby_port: int = 55433,
            pooler_port: int = 56432, extras: bool = True,
            say: Callable[[str], None] = print) -> Demo:
    """Load the demo and give it the production shape; `extras`: the event trigger and the
    synthetic history (always on the embedded stack, only when asked elsewhere)."""
    if database_url is None:
        state = stack.up().state
        database_url, redis_url = state.database_url(), state.redis_url()
    say(f"loading the {scale} demo data ...")
    result = loader.load(database_url, scale, progress=lambda m: say("  " + m))
    say(f"demo data ({result.scale}) was already loaded" if result.already_loaded else
        f"loaded the {result.scale} demo in {result.seconds:.1f} s: "
        f"{result.row_counts['message_events']:,} message_events, "
        f"{result.row_counts['leads']:,} leads")
    demo = (_embedded(stack, database_url, redis_url, standby_port, pooler_port, say)
            if stack is not None else
            Demo(Target("demo", database_url, database_url,
                        (redis_url,) if redis_url else ()), database_url, None, redis_url,
                 {"DATABASE_URL": database_url, "DBPULSE_TARGET_NAME": "demo"}))
    who = actor(demo.target)
    actions.install_schema(who)
    with admin_connection(demo.target.admin_url, who.settings) as conn:
        installed = matviews.event_trigger_installed(conn)
        unrefreshed = [v for v in matviews.list_matviews(conn).itertuples()
                       if v.last_refresh is None]
    for view in unrefreshed:  # a known start: fresh now, stale in 15 minutes
        actions.refresh_view(who, view.schema_name, view.view_name, allow_blocking=True)
    if not extras:
        say("not written into this database (ask with --extras): DB Pulse's refresh event "
            "trigger and two weeks of synthetic history")
        return demo
    if not installed:  # so refreshes by anyone are logged
        actions.install_event_trigger(who)
    synthetic_history(who, demo, say)
    return demo


def _embedded(stack: EmbeddedStack, database_url: str, redis_url: str, standby_port: int,
              pooler_port: int, say: Callable[[str], None]) -> Demo:
    logins = demo_logins.ensure(database_url)
    standby = stack.start_standby(standby_port)
    say(f"streaming standby on port {standby_port} (its slot: {stack.STANDBY_SLOT})")
    app = conninfo.conninfo_to_dict(logins.app_url)
    read_url = conninfo.make_conninfo(standby, user=app["user"], password=app["password"])
    environment = {**logins.environment(), "DBPULSE_TARGET_NAME": "demo"}
    app_url, pooler_url = _pooler(stack, pooler_port, logins.app_url, say)
    if pooler_url:
        environment["PGBOUNCER_URL"] = pooler_url
    target = Target("demo", logins.monitor_url, logins.admin_url, (redis_url,),
                    has_separate_admin_url=True, plan_url=logins.plan_url,
                    probe_url=logins.probe_url,
                    pooler_url=pooler_url or "")
    return Demo(target, app_url, read_url, redis_url, environment, stack.root)


def _pooler(stack: EmbeddedStack, port: int, app_url: str,
            say: Callable[[str], None]) -> tuple[str, str | None]:
    """PgBouncer in front of the primary when the machine has it: (the application's URL
    through it, the monitoring login's console URL), else (app_url, None), said."""
    if pooler.binary() is None:
        say("PgBouncer is not installed: the workload connects to PostgreSQL directly "
            "(apt-get install pgbouncer puts it in front)")
        return app_url, None
    users = {demo_logins.APP_ROLE: DEMO_PASSWORD, demo_logins.MONITOR_ROLE: DEMO_PASSWORD,
             "postgres": DEMO_PASSWORD}
    state = stack.load_state()
    bouncer = pooler.PgBouncer(stack.root / "pgbouncer", port, state.pg_port, users,
                               (demo_logins.MONITOR_ROLE,))
    try:
        bouncer.start()
    except StackError as exc:
        say(f"PgBouncer did not start ({exc}): the workload connects directly")
        return app_url, None
    record_process(stack.root, "pgbouncer", bouncer.pid())
    say(f"PgBouncer on port {port} in front of the primary (transaction pooling)")
    return (bouncer.url(demo_logins.APP_ROLE, state.database),
            bouncer.url(demo_logins.MONITOR_ROLE, "pgbouncer"))


def synthetic_history(who: Actor, demo: Demo, say: Callable[[str], None]) -> None:
    """Two weeks of synthetic history (once), from the demo's real statements after a short
    warm-up of the workload, then a first real snapshot."""
    target, settings = who.target, who.settings
    with admin_connection(target.admin_url, settings) as history, \
            monitoring_connection(target.database_url, settings) as monitor:
        if demo_history.has_synthetic_history(history, target.history_source):
            return
        say("warming up the workload for the synthetic history ...")
        workload = Workload(demo.app_url, demo.redis_url, read_url=demo.read_url)
        try:
            workload.run(rate_per_s=500, duration_s=8)
        finally:
            workload.close()
        written = demo_history.create(monitor, history, who, source=target.history_source,
                                      redis_urls=target.redis_urls)
    say(f"wrote {written} hourly snapshots of synthetic demo history (two weeks, phase 1 in "
        "the middle)" if written else
        "no synthetic history: pg_stat_statements is not readable in this database")
    actions.take_snapshot(who)


def start(demo: Demo, env: dict, port: int, rate: float, snapshot_every: float,
          metrics_port: int, state_dir: Path) -> tuple[subprocess.Popen, ...]:
    """The dashboard (single-user local mode, this machine only), the workload and the agent;
    each recorded so that `stack down` stops it."""
    cli = str(PROJECT_ROOT / "cli.py")
    workload = subprocess.Popen([sys.executable, cli, "workload",
                                 *(["--read-url", demo.read_url] if demo.read_url else []),
                                 *(["--redis-url", demo.redis_url] if demo.redis_url else []),
                                 "--database-url", demo.app_url, "--rate", str(rate)], env=env)
    record_process(state_dir, "workload", workload.pid)
    # the agent keeps the history, the Redis samples and /metrics, as it would in production;
    with open(state_dir / "agent.log", "a") as log:
        agent = subprocess.Popen(
            [sys.executable, cli, "agent", "--target", demo.target.name, "--every", "60",
             "--snapshot-every", str(snapshot_every), "--metrics-port", str(metrics_port),
             "--state-file", str(state_dir / "agent-state.json")],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    record_process(state_dir, "agent", agent.pid)
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1"], env=env, cwd=PROJECT_ROOT)
    record_process(state_dir, "dashboard", dashboard.pid)
    return dashboard, workload, agent
