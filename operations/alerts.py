"""Alerts: one message when a check turns red or a target goes down, one when it recovers; not
one per cycle. Quiet hours hold messages back (they are sent when the quiet hours end); a
condition still red is repeated only after the repeat interval. Channels: a generic JSON
webhook, a Slack-compatible incoming webhook, e-mail over SMTP. A message a channel could not
take is kept and sent again with back-off: none is lost, and a broken channel cannot make a
storm."""

from __future__ import annotations

import hashlib
import json
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

from foundation import markup

OBJECTS_IN_TEXT = 10  # objects a message names; the rest are counted


@dataclass(frozen=True)
class Alert:
    target: str
    check: str
    title: str
    state: str            # "red" (or "down") when it fires, "recovered" when it clears
    summary: str
    at: datetime          # when the change was first seen
    link: str = ""        # the page that explains it, on the dashboard (dashboard_url)
    objects: tuple = ()   # what it is about: the finding's objects
    page: str = ""        # that page's id (Finding.page; "" where none explains it)

    @property
    def id(self) -> str:
        """The same for every send of this change, across restarts: receivers deduplicate on
        it, and the alert log holds it once.

        >>> Alert("prod", "invalid_indexes", "Invalid indexes", "red", "",
        ...       datetime(2026, 1, 1)).id
        'e58905b2c7e359022d7e'
        """
        key = f"{self.target}|{self.check}|{self.state}|{self.at.isoformat()}"
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    def text(self) -> str:
        head = (f"[{self.target}] {self.title}: recovered" if self.state == "recovered"
                else f"[{self.target}] {self.title} is {self.state.upper()}")
        more = len(self.objects) - OBJECTS_IN_TEXT
        named = (" Objects: " + ", ".join(self.objects[:OBJECTS_IN_TEXT])
                 + (f" and {more} more" if more > 0 else "")) if self.objects else ""
        return head + (f" — {self.summary}" if self.summary else "") + named \
            + f" (first seen {self.at:%Y-%m-%d %H:%M} UTC, alert {self.id})" \
            + (f"\n{self.link}" if self.link else "")

    def as_dict(self) -> dict:
        return {"id": self.id, "target": self.target, "check": self.check, "title": self.title,
                "state": self.state, "summary": self.summary, "at": self.at.isoformat(),
                "link": self.link, "objects": list(self.objects), "page": self.page}


@dataclass
class Policy:
    quiet_from: time | None = None      # e.g. 22:00 UTC
    quiet_until: time | None = None     # e.g. 07:00 UTC
    repeat_after: timedelta | None = None  # None: never repeat a condition still red
    dashboard_url: str = ""

    def describe(self) -> str:
        """
        >>> Policy(time(22), time(7), timedelta(hours=4)).describe()
        'quiet 22:00–07:00 UTC (held back, sent when they end); repeated every 240 min while still red; no links (dashboard_url is not set)'
        """
        quiet = (f"quiet {self.quiet_from:%H:%M}–{self.quiet_until:%H:%M} UTC (held back, sent "
                 "when they end)" if self.quiet_from and self.quiet_until else "no quiet hours")
        repeat = (f"repeated every {self.repeat_after.total_seconds() / 60:g} min while still red"
                  if self.repeat_after else "not repeated while still red (repeat_minutes)")
        links = (f"links to {self.dashboard_url}" if self.dashboard_url
                 else "no links (dashboard_url is not set)")
        return f"{quiet}; {repeat}; {links}"

    def quiet(self, now: datetime) -> bool:
        """
        >>> p = Policy(time(22), time(7))
        >>> p.quiet(datetime(2026, 1, 1, 23, 0)), p.quiet(datetime(2026, 1, 1, 12, 0))
        (True, False)
        """
        if self.quiet_from is None or self.quiet_until is None:
            return False
        t = now.time()
        if self.quiet_from <= self.quiet_until:
            return self.quiet_from <= t < self.quiet_until
        return t >= self.quiet_from or t < self.quiet_until


def conditions(report: dict) -> dict[str, tuple[str, str, str, str, tuple]]:
    """The red conditions of one target's report (operations.fleet.target_report): check ->
    (title, state, summary, the page that explains it: the finding's own, its objects)."""
    if report["status"] == "down" or "error" in report.get("postgres", {}):
        return {"down": ("PostgreSQL", "down", report.get("postgres", {}).get("error", ""), "",
                         ())}
    found = {f["check"]: (f["title"], "red", f["summary"], f["page"],
                          tuple(f.get("objects") or ()))
             for f in report["findings"] if f["severity"] == "red"}
    for entry in report.get("redis", []):
        if "error" in entry:
            found[f"redis {entry['url']}"] = (f"Redis {entry['url']}", "down", entry["error"],
                                              "", ())
    return found


@dataclass
class Alerter:
    """Remembers what is red per target and turns changes into alerts for the channels. The
    pending list is the outbox: an alert is in it (and, with a state file, on disk) before it
    is sent, and leaves it (on disk too) once sent; a restart resends only what was not marked
    sent, with the same id."""
    channels: list[Callable[[Alert], None]]
    policy: Policy = field(default_factory=Policy)
    active: dict = field(default_factory=dict)     # (target, check) -> (last sent at, page)
    pending: list = field(default_factory=list)    # [alert, channel index, attempts, not before]
    unlogged: list = field(default_factory=list)   # alerts not yet in the alert log
    sent: int = 0
    failures: int = 0
    last_error: str = ""

    def save(self, path: Path) -> None:
        """What is red and what is still to send, so that a restarted agent neither says again
        what it said nor forgets what it could not send (written whole, then renamed)."""
        state = {"active": [[t, c, at.isoformat(), page]
                            for (t, c), (at, page) in self.active.items()],
                 "pending": [[a.as_dict(), ch, n, nb.isoformat()]
                             for a, ch, n, nb in self.pending],
                 "unlogged": [a.as_dict() for a in self.unlogged]}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        partial.replace(path)

    def load(self, path: Path) -> None:
        if not path.exists():
            return
        state = json.loads(path.read_text())
        self.active = {(t, c): (datetime.fromisoformat(at), page)
                       for t, c, at, page in state["active"]}
        self.pending = [[_alert_from(a), ch, n, datetime.fromisoformat(nb)]
                        for a, ch, n, nb in state["pending"] if ch < len(self.channels)]
        self.unlogged = [_alert_from(a) for a in state.get("unlogged", [])]

    def adopt(self, target: str, raised: list[tuple]) -> None:
        """What another agent already announced for a target this one now watches (the alert
        log's (check, raised at, page)): not announced again, its recovery will be. A change
        this process saw that is not in the log yet is newer than the log: a recovery noted
        before a restart, and not written, must not be taken back for a red to recover again."""
        unwritten = {a.check for a in self.unlogged if a.target == target}
        for check, at, page in raised:
            if check not in unwritten:
                self.active.setdefault((target, check), (at, page))

    def take_unlogged(self, target: str) -> list[Alert]:
        """The target's alerts still to write to its alert log (handed over: put back what
        could not be written)."""
        mine = [a for a in self.unlogged if a.target == target]
        self.unlogged = [a for a in self.unlogged if a.target != target]
        return mine

    def observe(self, target: str, report: dict, now: datetime) -> list[Alert]:
        """Compare this cycle with the last; queue an alert per change (and per repeat due)."""
        current = conditions(report)
        new = []
        for check, (title, state, summary, page, objects) in current.items():
            key = (target, check)
            last = self.active.get(key)
            repeat = (last is not None and self.policy.repeat_after is not None
                      and now - last[0] >= self.policy.repeat_after)
            if last is None or repeat:
                self.active[key] = (now, page)
                new.append(self._alert(target, check, title, state, summary, now, page,
                                       objects))
        for key in [k for k in self.active if k[0] == target and k[1] not in current]:
            _, page = self.active.pop(key)
            new.append(self._alert(target, key[1], key[1].replace("_", " ").capitalize()
                                   if key[1] != "down" else "PostgreSQL", "recovered", "", now,
                                   page))
        for alert in new:
            for i in range(len(self.channels)):
                self.pending.append([alert, i, 0, now])
        self.unlogged += new
        return new

    def _alert(self, target, check, title, state, summary, now, page, objects=()) -> Alert:
        link = (f"{self.policy.dashboard_url.rstrip('/')}/{page}"
                if self.policy.dashboard_url else "")
        return Alert(target, check, title, state, summary, now, link, tuple(objects), page)

    def flush(self, now: datetime, marked: Callable[[], None] = lambda: None) -> int:
        """Send what is due (not in quiet hours), one message at a time, calling `marked`
        after each change of the outbox (a send or a failure) so it can be written down; a
        failure is kept with back-off (1, 2, 4 … minutes, at most an hour). Returns the
        messages sent."""
        if self.policy.quiet(now):
            return 0
        sent = 0
        for item in list(self.pending):
            alert, channel, attempts, not_before = item
            if now < not_before:
                continue
            try:
                self.channels[channel](alert)
                sent += 1
                self.sent += 1
                self.pending.remove(item)
            except Exception as exc:  # noqa: BLE001  (any channel failure: keep and retry)
                self.failures += 1
                item[2:] = [attempts + 1, now + timedelta(minutes=min(60, 2 ** attempts))]
                self.last_error = f"{type(exc).__name__}: {exc}"
            marked()
        return sent


def _alert_from(saved: dict) -> Alert:
    fields_ = {k: v for k, v in saved.items() if k != "id"}  # the id follows from the rest
    return Alert(**{**fields_, "at": datetime.fromisoformat(saved["at"]),
                    "objects": tuple(saved.get("objects") or ())})


# --- channels ---------------------------------------------------------------------------------

def _post(url: str, payload: dict, timeout_s: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered {response.status}")


def webhook(url: str, timeout_s: float = 5.0) -> Callable[[Alert], None]:
    """A generic webhook: the alert as JSON."""
    return lambda alert: _post(url, alert.as_dict(), timeout_s)


def slack(url: str, timeout_s: float = 5.0) -> Callable[[Alert], None]:
    """A Slack-compatible incoming webhook (also Mattermost, Rocket.Chat): {"text": …}."""
    # names are shown, never acted on: <url|x>, <!channel> in an object's name stay text
    return lambda alert: _post(url, {"text": markup.slack(alert.text())}, timeout_s)


def email(host: str, port: int, sender: str, recipients: list[str], *, user: str = "",
          password: str = "", starttls: bool = False,
          timeout_s: float = 10.0) -> Callable[[Alert], None]:
    def send(alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = alert.text().splitlines()[0]
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["X-DBPulse-Alert-Id"] = alert.id  # the same on a resend: filters deduplicate
        message.set_content(alert.text())
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if starttls:
                smtp.starttls()
            if user:
                smtp.login(user, password)
            smtp.send_message(message)
    return send


def channels_from(config: dict) -> list[Callable[[Alert], None]]:
    """The channels of an [alerts] settings table: webhook_url, slack_url, and smtp_host,
    smtp_port, smtp_from, smtp_to (a list), smtp_user, smtp_password, smtp_starttls."""
    found = []
    if config.get("webhook_url"):
        found.append(webhook(config["webhook_url"]))
    if config.get("slack_url"):
        found.append(slack(config["slack_url"]))
    if config.get("smtp_host"):
        found.append(email(config["smtp_host"], int(config.get("smtp_port", 25)),
                           config.get("smtp_from", "dbpulse@localhost"),
                           list(config.get("smtp_to", [])), user=config.get("smtp_user", ""),
                           password=config.get("smtp_password", ""),
                           starttls=bool(config.get("smtp_starttls", False))))
    return found


def _where(url: str) -> str:
    """A webhook's address without its path, which is often the secret itself.

    >>> _where("https://hooks.slack.com/services/T0/B0/XXXX")
    'https://hooks.slack.com/…'
    """
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "") \
        + "/…"


def describe_channels(config: dict) -> list[str]:
    """The channels of an [alerts] table in words, in the order channels_from builds them, with
    no secret in them.

    >>> describe_channels({"slack_url": "https://hooks.slack.com/services/T0/B0/XXXX",
    ...                    "smtp_host": "mail.example.com", "smtp_port": 587,
    ...                    "smtp_to": ["dba@example.com"], "smtp_password": "s3cret"})
    ['Slack-compatible webhook at https://hooks.slack.com/…', 'e-mail to dba@example.com via mail.example.com:587']
    """
    found = []
    if config.get("webhook_url"):
        found.append(f"JSON webhook at {_where(config['webhook_url'])}")
    if config.get("slack_url"):
        found.append(f"Slack-compatible webhook at {_where(config['slack_url'])}")
    if config.get("smtp_host"):
        found.append(f"e-mail to {', '.join(config.get('smtp_to', [])) or 'nobody (smtp_to)'} "
                     f"via {config['smtp_host']}:{int(config.get('smtp_port', 25))}")
    return found


def send_test(config: dict, target: str, now: datetime) -> list[tuple[str, str]]:
    """A test message through every channel at once (no quiet hours, no retry): (channel,
    "sent" or why not) each."""
    alert = Alert(target, "test", "Test message", "test",
                  "sent from DB Pulse's Alerts page: this channel works", now,
                  policy_from(config).dashboard_url)
    outcomes = []
    for described, channel in zip(describe_channels(config), channels_from(config)):
        try:
            channel(alert)
            outcomes.append((described, "sent"))
        except Exception as exc:  # noqa: BLE001  (each channel's own failure, said as it is)
            outcomes.append((described, f"not sent: {type(exc).__name__}: {exc}"))
    return outcomes


def policy_from(config: dict) -> Policy:
    """The [alerts] settings: quiet_hours = "22:00-07:00" (UTC), repeat_minutes, dashboard_url.

    >>> p = policy_from({"quiet_hours": "22:00-07:00", "repeat_minutes": 240})
    >>> p.quiet_from, p.quiet_until, p.repeat_after
    (datetime.time(22, 0), datetime.time(7, 0), datetime.timedelta(seconds=14400))
    """
    quiet = config.get("quiet_hours")
    start = end = None
    if quiet:
        first, _, last = str(quiet).partition("-")
        start, end = time.fromisoformat(first.strip()), time.fromisoformat(last.strip())
    repeat = config.get("repeat_minutes")
    return Policy(start, end, timedelta(minutes=float(repeat)) if repeat else None,
                  config.get("dashboard_url", ""))
