"""The agent's cycle, per target: measure (checks, KPIs, top statements, view ages, scans), take
a history snapshot when one is due, turn changes into alerts, keep the figures for /metrics,
and log one line. A target that is down is measured as down and tried again next cycle; an
advisory lock held on each target for the agent's life keeps a second agent off it
(agent/locks.py)."""

from __future__ import annotations

import functools
import getpass
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pandas as pd
import psycopg

from agent.locks import AlreadyRunning, Locks
from agent.metrics import LastCycle, TargetFigures
from foundation import capabilities
from foundation.config import Settings, Target
from foundation.connections import (
    DatabaseProblem,
    MonitoringPool,
    admin_connection,
    monitoring_connection,
)
from foundation.frames import rows
from foundation.plan import current as current_plan
from foundation.roles import Actor
from operations import actions, alert_log, fleet
from operations.alerts import Alerter
from reads import activity, indexes, matviews, probes, statements

TOP_STATEMENTS = 10           # bounded labels for Prometheus


def measure(target: Target, settings: Settings,
            connect: fleet.Connect | None = None) -> TargetFigures:
    """The figures of one target now, on one connection (connect's, else a new one); only the
    report when PostgreSQL is down."""
    figures = TargetFigures({})

    def kpis(conn: psycopg.Connection, caps: capabilities.Capabilities,
             kpi: statements.SlowQueryKpi | None, views: pd.DataFrame | None) -> None:
        if kpi is not None:  # the checks' own read: the busiest statements come from it too
            figures.slow_calls = (kpi.slow_calls_low, kpi.slow_calls_high, kpi.total_calls)
            figures.exec_ms = kpi.total_exec_ms
            # another role's statements have no queryid without pg_read_all_stats
            known = kpi.entries[kpi.entries["queryid"].notna()]
            figures.statements = [
                {"queryid": statements.queryid_text(r.queryid), "calls": int(r.calls),
                 "exec_ms": float(r.total_exec_ms)}
                for r in rows(known.nlargest(TOP_STATEMENTS, "total_exec_ms"))]
        if views is not None:  # the checks' own read too
            figures.view_ages = {f"{r.schema_name}.{r.view_name}":
                                 None if pd.isna(r.age_minutes) else float(r.age_minutes)
                                 for r in views.itertuples()}
        figures.connections = activity.connection_use(conn)
        figures.index_scans, figures.seq_scans = map(int, indexes.scan_totals(conn))

    # the database's size is no figure of the agent's, and reading it visits every file
    figures.report = fleet.target_report(target, settings, also=kpis, with_size=False,
                                         connect=connect)
    figures.report.pop("also", None)
    return figures


DOWN_RETRY_MAX_MINUTES = 5  # a target that is down is tried at least this often
# An agent watching at most this many targets keeps each one's measuring connection from one
# cycle to the next: on a new connection every catalogue read first fills the backend's caches
# (on the small demo a cycle's statements took 5.3 ms against 3.8-4.2 kept), and connecting
# costs the server a fork and an authentication. As many as a cycle measures at once, so it
# holds no more connections than before; one watching more connects every cycle, since kept
# connections would sit idle beside the ones measuring (200 targets: 21 against 12 at peak).
KEPT_CONNECTIONS = fleet.WORKERS


@dataclass
class Agent:
    targets: list[Target]
    settings: Settings
    alerter: Alerter
    last: LastCycle = field(default_factory=LastCycle)
    snapshot_every: timedelta = timedelta(hours=1)
    # at most this many snapshots a cycle, the longest due first; the others wait for the next
    # cycles: a first cycle (or a restart) over a big fleet does not snapshot every target at
    # once, which took it over its interval and loaded every server together
    snapshots_per_cycle: int = 25
    log: Callable[[str], None] = print
    actor_for: Callable[[Target], Actor] | None = None  # who takes the snapshots
    refresh_stale: bool = False   # refresh stale views (where pg_cron does not)
    state_path: Path | None = None  # the alerts' memory across restarts
    locks: Locks | None = None  # made with the agent's settings and log
    adopted: set = field(default_factory=set)  # targets whose alert log this process has read
    next_snapshot: dict = field(default_factory=dict)
    refresh_retry: dict = field(default_factory=dict)  # target -> view -> (failures, not before)
    next_probe: dict = field(default_factory=dict)  # target -> when its probes run next
    down_retry: dict = field(default_factory=dict)  # target -> (failures in a row, not before)
    others: dict = field(default_factory=dict)  # target -> why another agent watches it
    pool: bool = False  # stay with no target of its own, to take over those of one that stops
    kept: dict = field(default_factory=dict)  # target -> its measuring connection's pool

    def __post_init__(self):
        if self.locks is None:
            self.locks = Locks(self.settings, self.log)

    def actor(self, target: Target) -> Actor:
        if self.actor_for is not None:
            return self.actor_for(target)
        return Actor(f"cli:{getpass.getuser()}", self.settings.role, target, self.settings)

    def claim(self) -> list[Target]:
        """Take the lock of every target not yet ours; those another agent holds are left to
        it (said once, and again when that changes). Called every cycle, so agents sharing
        targets form a pool: when one dies its locks go with its sessions, and another takes
        its targets on its next cycle. A target that is down is claimed when it comes back."""
        mine = []
        for target in self.targets:
            try:
                self._lock(target)
                mine.append(target)
                if self.others.pop(target.name, None):
                    self.log(f"taking over {target.name}: no other agent holds it any more")
            except AlreadyRunning as exc:
                if target.name not in self.others:
                    self.log(f"skipping {target.name}: {exc}")
                self.others[target.name] = str(exc)
            except psycopg.OperationalError:
                mine.append(target)  # down now: locked on a later cycle
        return mine

    def _lock(self, target: Target) -> None:
        self.locks.take(target)
        if target.name not in self.adopted:  # first held by this process: what others
            self.adopted.add(target.name)      # already announced stands
            self._adopt(target)

    def close(self) -> None:
        """Let the targets go, as the process's end does."""
        self.locks.close()
        for kept in self.kept.values():
            kept.close()
        self.kept.clear()

    def _connectors(self, targets: list[Target]) -> dict[str, fleet.Connect]:
        """How each target (by name) is measured: on its kept connection (one that went away,
        as in a server's restart, is replaced), unless the agent watches more than
        KEPT_CONNECTIONS targets; a target no longer watched, or moved, has it closed."""
        keep = len(targets) <= KEPT_CONNECTIONS
        wanted = {target.name: target.database_url for target in targets} if keep else {}
        for name in [n for n, kept in self.kept.items() if wanted.get(n) != kept.dsn]:
            self.kept.pop(name).close()
        if not keep:
            return {target.name: functools.partial(monitoring_connection, target.database_url,
                                                   self.settings) for target in targets}
        for target in targets:
            if target.name not in self.kept:
                self.kept[target.name] = MonitoringPool(target.database_url, self.settings,
                                                        max_idle=1)
        return {name: kept.connection for name, kept in self.kept.items()}

    def _adopt(self, target: Target) -> None:
        try:
            with monitoring_connection(target.history_read_url, self.settings) as conn:
                self.alerter.adopt(target.name, alert_log.still_raised(
                    conn, target.history_source, target.name))
        except (DatabaseProblem, psycopg.Error) as exc:
            self.log(f"{target.name}: the alert log could not be read ({exc}); conditions "
                     "still red may be announced again")

    def cycle(self, targets: list[Target], now: datetime | None = None) -> None:
        now = now or datetime.now(timezone.utc)
        due = []
        for target in targets:
            failures, not_before = self.down_retry.get(target.name, (0, now))
            if now < not_before:  # down: tried again after 1, 2, 4, then every 5 minutes
                self.log(f"{now:%Y-%m-%d %H:%M:%S} {target.name}: down ({failures} failed "
                         f"tries in a row), next try after {not_before:%H:%M:%S}")
                continue
            try:
                self._lock(target)  # again after a restart of the server
            except psycopg.OperationalError:
                pass  # down: the measurement says so
            except AlreadyRunning as exc:
                self.log(f"{now:%H:%M:%S} {target.name}: {exc}; not measured")
                continue
            due.append(target)
        # measured side by side, then the snapshots due of the targets that answered, the
        # longest due first (most of it is waiting for the servers); the rest one target at a
        # time: the alerts and their outbox, the refreshes and probes in order
        pool = ThreadPoolExecutor(fleet.WORKERS)
        try:
            connect = self._connectors(targets)
            measured = list(pool.map(
                lambda target: self._measure(target, now, connect[target.name]), due))
            answered = [t for t, (figures, _, _) in zip(due, measured) if figures.answered]
            snapshot_due = sorted((t for t in answered
                                   if now >= self.next_snapshot.get(t.name, now)),
                                  key=lambda t: (self.next_snapshot.get(t.name, now), t.name))
            placed = snapshot_due[:self.snapshots_per_cycle]
            snapshots = dict(zip((t.name for t in placed), pool.map(
                lambda target: self._timed_snapshot(target, now), placed)))
        finally:  # on a SIGTERM only the running ones finish
            pool.shutdown(cancel_futures=True)
        for target, (figures, notes, measure_s) in zip(due, measured):
            if target.name in snapshots:  # its snapshot's note first, or why it waits
                snapshot_notes, snapshot_s = snapshots[target.name]
                notes, measure_s = snapshot_notes + notes, measure_s + snapshot_s
            elif figures.answered:
                notes = self._snapshot(target, now, may=False) + notes
            t0 = time.monotonic()
            failures, _ = self.down_retry.get(target.name, (0, now))
            report = figures.report
            up = figures.answered
            if up:
                self.down_retry.pop(target.name, None)
            else:
                self.down_retry[target.name] = (failures + 1, now + timedelta(
                    minutes=min(DOWN_RETRY_MAX_MINUTES, 2 ** failures)))
            if up and self.refresh_stale:
                notes += self._refresh(target, now)
            if up:
                notes += self._probe(target, now)
            fired = self.alerter.observe(target.name, report, now)
            self._save()  # the outbox holds them before anything is sent
            notes += self._log_alerts(target)
            seconds = measure_s + time.monotonic() - t0
            self.last.store(target.name, figures, seconds, failed=not up)
            red = sum(f["severity"] == "red" for f in report["findings"])
            amber = sum(f["severity"] == "amber" for f in report["findings"])
            self.log(f"{now:%Y-%m-%d %H:%M:%S} {target.name}: {report['status']}"
                     + (f" ({report['postgres']['error']})" if not up else
                        f", {red} red, {amber} amber")
                     + "".join(f"; {n}" for n in notes)
                     + (f"; {len(fired)} alert(s)" if fired else "") + f"; {seconds:.2f} s")
        # each send is written down as it happens: a crash resends only what was not marked
        sent = self.alerter.flush(now, marked=self._save)
        self._save()
        if sent or self.alerter.pending:
            self.log(f"alerts: {sent} sent, {len(self.alerter.pending)} waiting"
                     + (f" (last error: {self.alerter.last_error})"
                        if self.alerter.pending and self.alerter.last_error else ""))

    def _measure(self, target: Target, now: datetime, connect: fleet.Connect
                 ) -> tuple[TargetFigures, list[str], float]:
        """The target's figures (down when it went away between the checks and the rest) and
        its connection use recorded, with notes of how that went, and the seconds it all took.
        Runs in a thread of its own, beside other targets'."""
        t0 = time.monotonic()
        try:
            figures = measure(target, self.settings, connect)
        except DatabaseProblem as problem:
            figures = TargetFigures({"target": target.name, "findings": [], "status": "down",
                                     "postgres": {"error": str(problem)},
                                     "measured_at": datetime.now(timezone.utc)})
        if not figures.answered:
            return figures, [], time.monotonic() - t0
        return figures, self._record_connections(target, now, figures), time.monotonic() - t0

    def _timed_snapshot(self, target: Target, now: datetime) -> tuple[list[str], float]:
        t0 = time.monotonic()
        return self._snapshot(target, now), time.monotonic() - t0

    def _snapshot(self, target: Target, now: datetime, may: bool = True) -> list[str]:
        """The target's history snapshot when one is due (again in 5 minutes at most after a
        failure), unless this cycle has taken its share of snapshots already."""
        if now < self.next_snapshot.get(target.name, now):
            return []
        if not may:
            return [f"snapshot due, taken in a later cycle (at most {self.snapshots_per_cycle} "
                    "a cycle)"]
        try:
            snap = actions.take_snapshot(self.actor(target))
        except DatabaseProblem as problem:
            self.next_snapshot[target.name] = now + min(self.snapshot_every,
                                                        timedelta(minutes=5))
            return [f"no snapshot: {problem}"]
        self.next_snapshot[target.name] = now + self.snapshot_every
        return [f"snapshot {snap.snapshot_id}"]

    def _save(self) -> None:
        if self.state_path is not None:
            self.alerter.save(self.state_path)

    def _log_alerts(self, target: Target) -> list[str]:
        """Write the target's new alerts to its history database's alert log; kept for the
        next cycle when it cannot be reached (a "down" alert is written once it is back)."""
        alerts = self.alerter.take_unlogged(target.name)
        if not alerts:
            return []
        try:
            with admin_connection(target.history_write_url, self.settings) as conn:
                alert_log.record(conn, target.history_source, [a.as_dict() for a in alerts])
        except (DatabaseProblem, psycopg.Error) as exc:
            self.alerter.unlogged = alerts + self.alerter.unlogged
            return [f"{len(alerts)} alert(s) not logged yet: {exc}"]
        return []

    def _refresh(self, target: Target, now: datetime) -> list[str]:
        """Refresh the stale views that can be refreshed CONCURRENTLY (and, unless the setting
        agent_refreshes_cron_views says otherwise, that no pg_cron job refreshes). A view whose
        refresh failed is tried again after 1, 2, 4 … minutes (at most
        refresh_retry_max_minutes), on its own: the others go on being refreshed."""
        waits = self.refresh_retry.setdefault(target.name, {})  # view -> (failures, not before)
        try:
            outcomes = actions.refresh_stale(
                self.actor(target), allow_blocking=False,
                leave_scheduled=not self.settings.agent_refreshes_cron_views,
                waiting={view: until for view, (_, until) in waits.items() if now < until})
        except DatabaseProblem as problem:
            self.last.count_refreshes(target.name, "failed")
            return [f"refresh failed: {problem}"]
        done = [o for o in outcomes if isinstance(o, matviews.Refreshed)]
        failed = [o for o in outcomes if isinstance(o, matviews.NotRefreshed)]
        waiting = [o for o in outcomes if isinstance(o, matviews.Waiting)]
        self.last.count_refreshes(target.name, "ok", len(done))
        self.last.count_refreshes(target.name, "failed", len(failed))
        for o in done:
            waits.pop(o.view, None)
        notes = [f"refreshed {len(done)} stale view(s)"] if done else []
        for o in failed:
            failures = waits.get(o.view, (0, now))[0]
            wait = timedelta(minutes=min(self.settings.refresh_retry_max_minutes, 2 ** failures))
            waits[o.view] = (failures + 1, now + wait)
            notes.append(f"refresh of {o.view} failed ({o.reason}), next try in {wait}")
        notes += [f"{o.view}: refresh retried after {o.until:%H:%M:%S}" for o in waiting]
        return notes

    def _record_connections(self, target: Target, now: datetime,
                            figures: TargetFigures) -> list[str]:
        """This cycle's connection use, for the peak the plan's KPI is judged on."""
        if figures.connections is None:
            return []
        try:
            with admin_connection(target.history_write_url, self.settings) as conn:
                activity.store_use(conn, target.history_source, now, figures.connections)
        except (DatabaseProblem, psycopg.Error) as exc:
            return [f"connection use not recorded: {exc}"]
        return []

    def _probe(self, target: Target, now: datetime) -> list[str]:
        """The plan's latency probes, once per probe interval, on the target's probe login;
        stored in its history and counted in the metrics' histogram."""
        queries = current_plan(self.settings).probes
        if (self.settings.probe_interval_s <= 0 or not target.probe_url or not queries
                or now < self.next_probe.get(target.name, now)):
            return []
        self.next_probe[target.name] = now + timedelta(seconds=self.settings.probe_interval_s)
        try:
            done = probes.run_round(target, self.settings, queries)
            with admin_connection(target.history_write_url, self.settings) as conn:
                probes.store(conn, target.history_source, now, done)
        except (DatabaseProblem, probes.ProbeRefused, psycopg.Error) as exc:
            return [f"probes not run: {exc}"]
        for sample in done.samples:
            self.last.observe_probe(target.name, sample.name, sample.seconds)
        failed = [s for s in done.samples if s.seconds is None]
        return [f"{len(done.samples) - len(failed)} probe(s) timed"
                + (f", {len(failed)} failed ({failed[0].name}: {failed[0].error})"
                   if failed else "")]

    def run(self, every_s: float, once: bool = False) -> int:
        # SIGTERM (systemctl stop/restart) ends the process like Ctrl-C: the cycle is left
        # where it is, the outbox as last written; what was not marked sent goes next start.
        # The flag too: Python drops an exception raised while a __del__ or a callback runs,
        # and the agent must still stop, at the latest when its cycle ends. Caught from the
        # start, so that a stop while it claims its targets is clean too.
        stopping = threading.Event()

        def stop(signum, frame):
            stopping.set()
            raise Stopped()

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            if self.state_path is not None:
                self.alerter.load(self.state_path)
            targets = self.claim()
            if not targets and not self.pool:
                self.log("no target left to watch: every one has an agent already")
                return 2
            while not stopping.is_set():
                started = time.monotonic()
                self.cycle(targets)
                if once:
                    return 0
                if stopping.wait(max(0.0, every_s - (time.monotonic() - started))):
                    break
                targets = self.claim()  # a pool: the targets of an agent that died
        except Stopped:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.close()
        self.log("stopped (SIGTERM)")
        return 0


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt: no `except Exception` on the way
    (a channel's failure, say) may take it for an error and go on."""


