"""DB Pulse without a browser: the embedded stack, the demo, checks and DBA actions.

The CLI acts as `cli:<os user>` with the configured role (`role` / DBPULSE_ROLE, or the [access]
map when it names cli:<user>): DBA commands are refused, and audited as refused, for a viewer.
Database commands take their target from DATABASE_URL / REDIS_URL / DATABASE_ADMIN_URL, or
--target NAME from .streamlit/secrets.toml.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from agent.metrics import serve
from agent.runner import Agent
from demo import run
from demo.loader import LoadError
from demo.stack import DEFAULT_PG_PORT, DEFAULT_REDIS_PORT, DEFAULT_ROOT, EmbeddedStack, StackError
from demo.workload import Workload
from foundation import access, migration_files
from foundation.access import AccessRefused
from foundation.config import ConfigError, find_target, load_settings, load_targets, read_secrets
from foundation.connections import DatabaseProblem, admin_connection, monitoring_connection
from foundation.migration_files import MigrationError
from foundation.roles import Actor
from operations import actions, fleet, history, migrations, review
from operations.alerts import Alerter, channels_from, policy_from
from reads import matviews, schedules
from reads.redis_cache import RedisProblem
from reports import weekly

# The demo agent's /metrics: outside 9100-9999, which Prometheus' list of exporter ports has
# handed out entirely (9187 is postgres_exporter's)
METRICS_PORT = 19187

PROJECT_ROOT = Path(__file__).resolve().parent


def _stack(args):

    # DBPULSE_STACK_DIR lets the test suite point the CLI at its own stack
    root = Path(os.environ.get("DBPULSE_STACK_DIR") or DEFAULT_ROOT)
    return EmbeddedStack(root=root, pg_port=args.pg_port, redis_port=args.redis_port)


def _acting(args):
    """Who runs this command (cli:<os user>), with the role the configuration gives them, on
    which target and with which settings."""

    settings = load_settings()
    target = find_target(getattr(args, "target", None), load_targets())
    person = access.os_person("cli")
    role = access.decide_role(access.load_policy(read_secrets(), settings), person, target.name)
    return Actor(person.name, role, target, settings)


# -- stack -------------------------------------------------------------------------------------
def cmd_stack(args) -> int:
    stack = _stack(args)
    if args.action == "up":
        status = stack.up()
        print("\n".join(status.env_lines()))
        return 0
    if args.action == "status":
        status = stack.status()
        if not status.state:
            print("# the embedded stack was never started; run: python cli.py stack up",
                  file=sys.stderr)
            return 1
        print(f"# postgres {'running' if status.postgres_running else 'stopped'}, "
              f"redis {'running' if status.redis_running else 'stopped'}")
        print("\n".join(status.env_lines()))
        return 0 if status.postgres_running and status.redis_running else 1
    stack.down()
    print("# embedded stack stopped")
    return 0


# -- demo --------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    stack = _stack(args)
    # Only an explicit --database-url loads elsewhere (with no embedded server started);
    # DATABASE_URL from the environment is deliberately ignored so nobody loads demo data into
    # production by accident.
    try:
        demo = run.prepare(None if args.database_url else stack, args.scale, args.database_url,
                           args.redis_url, args.standby_port, args.pooler_port,
                           extras=not args.database_url or args.extras,
                           say=lambda line: print(line, flush=True))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_ui:
        return 0
    env = {**os.environ, **demo.environment, "DBPULSE_ROLE": "dba"}
    for unset in {"DATABASE_ADMIN_URL", "DATABASE_PLAN_URL", "PGBOUNCER_URL",
                  "REDIS_URL"} - set(demo.environment):
        env.pop(unset, None)
    if demo.redis_url:
        env["REDIS_URL"] = demo.redis_url
    stack.root.mkdir(parents=True, exist_ok=True)
    processes = run.start(demo, env, args.port, args.rate, args.snapshot_every,
                          args.metrics_port, stack.root)
    print(f"\nDB Pulse is serving http://127.0.0.1:{args.port} to this machine only, in "
          "single-user local mode as DBA. Its agent takes a snapshot every "
          f"{args.snapshot_every:g} min and logs each minute to {stack.root / 'agent.log'}"
          + (f"; Prometheus metrics: http://127.0.0.1:{args.metrics_port}/metrics"
             if args.metrics_port else "")
          + ". Ctrl-C (or SIGTERM) stops the dashboard, the workload and the agent; "
          "`.venv/bin/python cli.py stack down` stops the servers.\n", flush=True)
    return _supervise(*processes)


def _supervise(main: subprocess.Popen, *others: subprocess.Popen) -> int:
    """Wait for `main`; on its end, Ctrl-C or SIGTERM (systemctl stop) stop every process
    started here, so none is left without its parent."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM as Ctrl-C
    try:
        return main.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (main, *others):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def cmd_serve(args) -> int:
    """Serve the dashboard, after checking that this configuration may serve on this address:
    a DBA without sign-in only on 127.0.0.1."""

    # the value this command gives Streamlit's server below
    problem = access.start_problem(access.load_policy(read_secrets(), load_settings()),
                                   args.address, forwarded_allow_ips="")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    secrets = Path(os.environ.get("DBPULSE_SECRETS_FILE")
                   or PROJECT_ROOT / ".streamlit" / "secrets.toml")
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
               "--server.port", str(args.port), "--server.address", args.address]
    if secrets.exists():  # st.login reads [auth] from the same file DB Pulse reads
        command += ["--secrets.files", str(secrets)]
    # Streamlit's server would replace a loopback peer by the X-Forwarded-For client; the
    # proxy-header mode must see the proxy's own address
    env = {**os.environ, "FORWARDED_ALLOW_IPS": ""}
    return _supervise(subprocess.Popen(command, env=env, cwd=PROJECT_ROOT))


def cmd_workload(args) -> int:
    workload = Workload(args.database_url, args.redis_url, read_url=args.read_url)
    try:
        stats = workload.run(rate_per_s=args.rate, duration_s=args.duration)
    finally:
        workload.close()
    print(json.dumps(dataclasses.asdict(stats)))
    return 0


# -- check -------------------------------------------------------------------------------------
def cmd_check(args) -> int:
    """Run the health checks on the target (or every configured target, concurrently); exit 1
    when any is red or a server is unreachable."""

    who = _acting(args)
    if args.all_targets:
        def read(targets):
            return fleet.fleet_reports(targets, who.settings, time_limit_s=args.time_limit)

        if args.json:  # whole reports, so read here
            reports = read(load_targets())
            print(json.dumps(reports, indent=2, default=str))
            return 1 if any(r["status"] in ("red", "down") for r in reports) else 0
        settings = dataclasses.replace(who.settings, agent_url="") if args.live else who.settings
        rows, from_agent, note = fleet.current_rows(load_targets(), settings, read)
        _print_fleet(rows)
        if from_agent or note:
            print(f"# {from_agent} of {len(rows)} as the agent measured them"
                  + (f"; {note}" if note else ""), file=sys.stderr)
        return 1 if any(r["status"] in ("red", "down") for r in rows) else 0
    report = fleet.target_report(who.target, who.settings)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_check(report, verbose=args.verbose)
    return 1 if report["status"] == "red" else 0


def _print_fleet(rows: list[dict]) -> None:
    """One line per target, worst first."""
    width = max(len(r["target"]) for r in rows) if rows else 6
    for r in rows:
        buffer, redis = r["buffer_hit_rate"], r["redis_hit_rate"]
        rate = "" if buffer is None else f", buffer hit {100 * buffer:.2f} %"
        redis = "" if redis is None else f", Redis hit {100 * redis:.1f} %"
        down = f" ({r['down_reason']})" if r["down_reason"] else ""
        print(f"{r['target']:<{width}}  {r['status'].upper():5}  {r['postgres']}{down}{rate}{redis}"
              + (f"; {r['red']} red, {r['amber']} amber: {r['worst']}" if r["worst"] else ""))


def _print_check(report: dict, verbose: bool = False) -> None:
    pg = report.get("postgres", {})
    if "error" in pg:
        print(f"PostgreSQL: ERROR {pg['error']}\n  {pg['hint']}")
    else:
        print(f"PostgreSQL {pg['version']}, database {pg['database']}")
    for f in report["findings"]:
        print(f"[{f['severity'].upper():5}] {f['title']}: {f['summary']}")
        shown = f["objects"] if verbose else f["objects"][:10]
        for name in shown:
            print(f"          {name}")
        if len(shown) < len(f["objects"]):
            print(f"          ... {len(shown)} of {len(f['objects'])} shown (--verbose lists all "
                  "and the fix)")
        if verbose and f.get("fix"):
            print("        fix:\n" + "\n".join(f"          {line}"
                                              for line in f["fix"].splitlines()))
    for r in report.get("redis", []):
        if "error" in r:
            print(f"Redis {r['url']}: ERROR {r['error']}")
        else:
            rate = "n/a" if r["hit_rate"] is None else f"{100 * r['hit_rate']:.1f} %"
            print(f"Redis {r['url']}: {r['version']}, hit rate {rate}, {r['keys']:,} keys")
    print(f"overall: {report['status']}")


def cmd_refresh(args) -> int:
    """Refresh one materialized view, or every stale one (for cron)."""

    who = _acting(args)
    if args.stale:
        outcomes = actions.refresh_stale(who, args.allow_blocking)
        for outcome in outcomes:
            print(f"{outcome.view}: {outcome}")
        if not outcomes:
            print("no stale materialized views")
        return 1 if any(isinstance(o, matviews.NotRefreshed) for o in outcomes) else 0
    schema, _, name = args.name.rpartition(".")
    try:
        result = actions.refresh_view(who, schema or "public", name, args.allow_blocking)
    except DatabaseProblem as problem:
        hint = (" (--allow-blocking confirms)"
                if problem.kind == matviews.BlockingNotConfirmed.kind else "")
        print(f"not refreshed: {problem}{hint}", file=sys.stderr)
        return 1
    print(f"refreshed {args.name} in {result.duration_ms:.0f} ms"
          + (" (concurrently)" if result.concurrently else " (plain, blocking readers)"))
    return 0


def cmd_schedule(args) -> int:
    """list | set | pause | resume | remove the pg_cron refresh schedule of a view (DBA)."""

    who = _acting(args)
    if args.action == "list":
        try:
            with monitoring_connection(who.target.database_url, who.settings) as conn, \
                    schedules.open_cron(conn, who.target.database_url, who.settings) as cron:
                if not cron.readable:
                    print(schedules.NOT_READABLE)
                    return 1
                jobs = schedules.schedules(cron)
        except schedules.ScheduleError as exc:
            print(exc)
            return 1
        for job in jobs.itertuples():
            last = ("never run" if job.last_status is None else
                    f"last {job.last_status} {job.last_start:%Y-%m-%d %H:%M} UTC"
                    + (f" in {job.last_ms:,.0f} ms" if job.last_ms == job.last_ms else ""))
            nxt = f"next {job.next_run:%H:%M} UTC" if job.next_run else "paused" \
                if not job.active else "next run unknown"
            print(f"{job.jobname}  [{job.schedule}]  {nxt}; {last}"
                  + (f"; {job.failure_streak} failures in a row: {job.last_error}"
                     if job.failure_streak else ""))
        if jobs.empty:
            print("no pg_cron job refreshes a materialized view here")
        return 0
    if not args.view:
        print(f"schedule {args.action} needs a view: schema.view", file=sys.stderr)
        return 2
    schema, _, name = args.view.rpartition(".")
    schema = schema or "public"
    try:
        if args.action == "set":
            job = actions.schedule_refresh(who, schema, name, args.every, args.allow_blocking)
            print(f"scheduled {args.view} [{args.every}] as pg_cron job {job}")
        elif args.action in ("pause", "resume"):
            actions.pause_schedule(who, schema, name, active=args.action == "resume")
            print(f"{args.action}d the schedule of {args.view}")
        else:
            actions.remove_schedule(who, schema, name)
            print(f"removed the schedule of {args.view}")
    except DatabaseProblem as problem:
        print(f"not done: {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_agent(args) -> int:
    """Run by itself: per target, checks and KPIs every cycle, history snapshots when due,
    alerts on changes, /metrics for Prometheus; one line per target and cycle."""
    settings, secrets = load_settings(), read_secrets()
    targets = (load_targets() if args.all_targets
               else [find_target(args.target, load_targets())])
    rules, person = access.load_policy(secrets, settings), access.os_person("cli")

    def actor_for(target):
        return Actor(person.name, access.decide_role(rules, person, target.name), target,
                     settings)

    config = secrets.get("alerts", {})
    agent = Agent(targets, settings, Alerter(channels_from(config), policy_from(config)),
                  snapshot_every=timedelta(minutes=args.snapshot_every),
                  snapshots_per_cycle=args.snapshots_per_cycle, actor_for=actor_for,
                  refresh_stale=args.refresh_stale, state_path=Path(args.state_file),
                  pool=args.pool,
                  log=lambda line: print(line, flush=True))
    if args.metrics_port:
        serve(agent.last, args.metrics_port, args.metrics_address)
        print(f"metrics on http://{args.metrics_address}:{args.metrics_port}/metrics",
              flush=True)
    return agent.run(args.every, once=args.once)


def cmd_migrate(args) -> int:
    """status | plan | apply | rollback of the prepared migrations (admin connection)."""
    who = _acting(args)
    if args.dir:
        who = dataclasses.replace(who, settings=dataclasses.replace(who.settings,
                                                                    migrations_dir=args.dir))
    found = migration_files.discover(migration_files.migrations_dir(who.settings))
    if args.action in ("apply", "rollback"):
        try:
            done = actions.migrate(who, args.action, args.up_to if args.action == "apply"
                                   else args.to, progress=lambda m: print(m, flush=True))
        except DatabaseProblem as problem:
            print(f"stopped: {problem}", file=sys.stderr)
            return 1
        verb = "applied" if args.action == "apply" else "rolled back"
        print(f"{verb}: {', '.join(done) if done else 'nothing to do'}")
        return 0
    with admin_connection(who.target.admin_url, who.settings) as conn:
        if args.action == "status":
            print("\n".join(_status_lines(migrations.status(conn, found))))
            for m in found:
                for finding in migration_files.lint(m):
                    print(f"lint {m.path.name}:{finding['line']} [{finding['rule']}] "
                          f"{finding['explanation']}")
            return 0
        states = migrations.status(conn, found).set_index("version")["state"]
        for m in found:
            if states[m.version] == "applied":
                continue
            print(f"== {m.path.name} ({states[m.version]})")
            with pd.option_context("display.width", 250, "display.max_colwidth", 70):
                print(migrations.plan(conn, m).to_string(index=False))
        return 0


def _status_lines(status) -> list[str]:
    """The migrations' states as a plain table: whole numbers, no NaN, minutes in UTC."""

    rows = [("version", "name", "state", "done", "last run")]
    for r in status.itertuples():
        done = f"{int(r.completed)}/{r.statements}" if pd.notna(r.completed) else "-"
        when = (f"{pd.Timestamp(r.last_run_at).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC by "
                f"{r.last_run_by}" if pd.notna(r.last_run_at) else "never")
        rows.append((r.version, r.name, r.state, done, when))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return ["  ".join(str(v).ljust(w) for v, w in zip(row[:4], widths)) + "  " + row[4]
            for row in rows]


def cmd_schema(args) -> int:
    applied = actions.install_schema(_acting(args))
    print("applied: " + (", ".join(applied) if applied else "nothing, the schema is current"))
    return 0


# -- history -----------------------------------------------------------------------------------
def cmd_snapshot(args) -> int:
    """Store one snapshot of the counters (run it from cron, e.g. hourly) and prune old ones."""

    who = _acting(args)
    target, settings = who.target, who.settings
    result = actions.take_snapshot(who)
    print(f"snapshot {result.snapshot_id} of {target.history_source} at "
          f"{result.taken_at:%Y-%m-%d %H:%M:%S %Z}: {result.statements} statements "
          + ("(all stored: a complete snapshot), " if result.complete else
             f"({result.statements_stored} changed, stored), ")
          + f"collected in {result.collect_ms:.0f} ms, stored in {result.store_ms:.0f} ms"
          + (f"; pruned {result.pruned} older than {settings.history_retention_days} days"
             if result.pruned else ""))
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def _moment(text: str):
    """An ISO date (midnight UTC) or date and time; without a zone, UTC."""

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use 2026-11-15 or "
                                         "2026-11-15T09:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def cmd_report(args) -> int:
    """The weekly review of a period (default the last 7 days) against the period of the same
    length before it, written as self-contained HTML or Markdown."""
    who = _acting(args)
    target, settings = who.target, who.settings
    out = Path(args.out)
    fmt = {".html": "html", ".htm": "html", ".md": "md"}.get(out.suffix.lower())
    if fmt is None:
        print("error: --out must end in .html or .md", file=sys.stderr)
        return 2
    end = args.to or datetime.now(timezone.utc)
    start = args.from_ or end - timedelta(days=7)
    if start >= end:
        print("error: --from must be before --to", file=sys.stderr)
        return 2
    current = history.Period(start, end)
    previous = history.Period(start - (end - start), start)
    marks = None  # migrations and refreshes come from the watched database; optional
    try:
        with monitoring_connection(target.database_url, settings) as conn:
            marks = history.target_events(conn, review.span(previous, current))
    except DatabaseProblem as problem:
        print(f"warning: no migration or refresh marks: {problem}", file=sys.stderr)
    with monitoring_connection(target.history_read_url, settings) as hist, \
            monitoring_connection(target.history_read_url, settings) as spare:
        try:
            result = review.build_review(hist, target.history_source, previous, current,
                                         settings, marks, spare_conn=spare)
        except history.HistoryUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    out.write_text(weekly.render(result, settings, fmt), encoding="utf-8")
    print(f"wrote {out} ({fmt}): {result.headline}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cli.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_ports(p):
        p.add_argument("--pg-port", type=int, default=DEFAULT_PG_PORT)
        p.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT)

    p = sub.add_parser("stack", help="start, show or stop the embedded PostgreSQL and Redis")
    p.add_argument("action", choices=["up", "status", "down"])
    stack_ports(p)
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("demo", help="start the stack, load the demo data, run workload + dashboard")
    p.add_argument("--scale", choices=["small", "default"], default="default")
    p.add_argument("--no-ui", action="store_true", help="load the data and exit")
    p.add_argument("--database-url", help="load into this database instead of the embedded one")
    p.add_argument("--port", type=int, default=8501, help="dashboard port")
    p.add_argument("--rate", type=float, default=15.0, help="workload operations per second")
    p.add_argument("--snapshot-every", type=float, default=15.0,
                   help="minutes between the demo agent's history snapshots")
    p.add_argument("--metrics-port", type=int, default=METRICS_PORT,
                   help="the demo agent's /metrics port (0: off)")
    p.add_argument("--standby-port", type=int, default=55433,
                   help="the demo's streaming standby (the analytics reads go there)")
    p.add_argument("--pooler-port", type=int, default=56432,
                   help="PgBouncer in front of the primary, when installed")
    p.add_argument("--redis-url", help="with --database-url: the Redis for the workload's "
                   "cache (default: none)")
    p.add_argument("--extras", action="store_true",
                   help="with --database-url: also install DB Pulse's refresh event trigger "
                        "and write two weeks of synthetic history into that database")
    stack_ports(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve the dashboard (refused for a DBA without sign-in on a "
                       "network address)")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1: "
                   "single-user local mode; another address needs sign-in for DBA actions)")
    p.add_argument("--port", type=int, default=8501)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("workload", help="run the demo's workload (the demo starts it)")
    p.add_argument("--database-url", required=True)
    p.add_argument("--redis-url")
    p.add_argument("--read-url", help="a read replica for the analytics reads")
    p.add_argument("--rate", type=float, default=15.0)
    p.add_argument("--duration", type=float, help="seconds; default: until stopped")
    p.set_defaults(func=cmd_workload)

    p = sub.add_parser("check", help="run the health checks; exit 1 when any is red")
    p.add_argument("--target", help="a target name from .streamlit/secrets.toml")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--verbose", action="store_true",
                   help="every object of each finding, and the SQL that fixes it")
    p.add_argument("--all-targets", action="store_true",
                   help="every configured target side by side, read concurrently")
    p.add_argument("--time-limit", type=float, default=10.0,
                   help="seconds a target's read may take before it is shown as down "
                        "(--all-targets)")
    p.add_argument("--live", action="store_true",
                   help="read every target now, not what the agent (setting agent_url) "
                        "measured (--all-targets)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("agent", help="run by itself: checks, snapshots, alerts, /metrics")
    p.add_argument("--every", type=float, default=60, help="seconds between cycles")
    p.add_argument("--snapshot-every", type=float, default=60, help="minutes between snapshots")
    p.add_argument("--snapshots-per-cycle", type=int, default=25,
                   help="at most this many snapshots a cycle, the longest due first; the others "
                        "wait (a start over many targets does not snapshot them all at once)")
    p.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here (0: off)")
    p.add_argument("--metrics-address", default="127.0.0.1")
    p.add_argument("--all-targets", action="store_true", help="every configured target")
    p.add_argument("--pool", action="store_true",
                   help="one of several agents on the same targets: each target is watched by "
                        "one at a time, and this one stays to take over the targets of an agent "
                        "that stops (give each its own --state-file)")
    p.add_argument("--refresh-stale", action="store_true",
                   help="refresh stale views each cycle (CONCURRENTLY only), with back-off "
                        "after a failure; for targets where pg_cron does not")
    p.add_argument("--state-file", default=".dbpulse/agent-state.json",
                   help="what is red and what is still to send, kept across restarts")
    p.add_argument("--once", action="store_true", help="one cycle, then exit")
    p.add_argument("--target")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("schedule", help="pg_cron refresh schedules of materialized views")
    p.add_argument("action", choices=["list", "set", "pause", "resume", "remove"])
    p.add_argument("view", nargs="?", help="schema.view (schema defaults to public)")
    p.add_argument("--every", default="*/10 * * * *",
                   help="a cron expression pg_cron accepts (default: every 10 minutes)")
    p.add_argument("--allow-blocking", action="store_true",
                   help="schedule a plain refresh for a view that cannot be refreshed "
                        "CONCURRENTLY (every run locks its readers out)")
    p.add_argument("--target")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("refresh", help="refresh a materialized view, or all stale ones (DBA)")
    p.add_argument("name", nargs="?", help="schema.view (schema defaults to public); names "
                   "are taken literally, no quoting needed")
    p.add_argument("--stale", action="store_true", help="refresh every stale view")
    p.add_argument("--allow-blocking", action="store_true",
                   help="also refresh views that cannot be refreshed CONCURRENTLY (takes an "
                        "ACCESS EXCLUSIVE lock that blocks readers)")
    p.add_argument("--target")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("migrate", help="the prepared migrations: status, plan, apply, rollback")
    p.add_argument("action", choices=["status", "plan", "apply", "rollback"])
    p.add_argument("--dir", help="migrations directory (default: the setting migrations_dir, "
                                 "else sql/migrations)")
    p.add_argument("--up-to", help="apply: stop after this version")
    p.add_argument("--to", help="rollback: roll back every applied migration after this version")
    p.add_argument("--target")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("snapshot", help="store a snapshot of the counters for the history "
                       "(for cron); prunes snapshots past the retention")
    p.add_argument("--target")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("report", help="the weekly review as HTML or Markdown: a period against "
                       "the one of the same length before it")
    p.add_argument("--from", dest="from_", type=_moment, help="start (default: 7 days before --to)")
    p.add_argument("--to", type=_moment, help="end (default: now)")
    p.add_argument("--out", required=True, help="FILE.html (self-contained) or FILE.md")
    p.add_argument("--target")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("schema", help="install or upgrade DB Pulse's own schema (DBA)")
    p.add_argument("action", choices=["install"])
    p.add_argument("--target")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):
        print("DB Pulse needs Python 3.11 or newer", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "refresh" and not (args.stale or args.name):
        parser.error("refresh needs a view name or --stale")

    try:
        return args.func(args)
    except (ConfigError, DatabaseProblem, RedisProblem, AccessRefused, StackError, LoadError,
            MigrationError) as exc:  # plainly, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
