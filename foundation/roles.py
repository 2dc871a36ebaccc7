"""The role model and who acts. A viewer reads, a DBA may act. The role is decided for each
person and target (foundation/access.py) and checked inside every action function, so a forged
button press from a viewer's session is refused by the core, not only hidden by the UI."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.config import Settings, Target


class Refused(Exception):
    """DB Pulse declined to run an action (wrong role, one already running, not confirmed).
    Audited as 'refused'; the message says why and what would allow it."""

    kind = "refused"


class PermissionDenied(Refused, PermissionError):
    pass


class ActionError(RuntimeError):
    """An action was tried and failed for a reason DB Pulse can name. Audited as 'error'."""

    kind = "error"


@dataclass(frozen=True)
class Actor:
    """Who acts (an e-mail, `cli:<os user>` or `local:<os user>`), with which role, on which
    target and under which settings: everything an action needs to check, run and audit."""

    person: str
    role: str
    target: Target
    settings: Settings

    @property
    def is_dba(self) -> bool:
        return self.role == "dba"

    def denial(self, what: str) -> str:
        """
        >>> Actor("bob@example.com", "viewer", Target("prod", "x", "x"), Settings()).denial(
        ...     "Refreshing a materialized view")
        'Refreshing a materialized view needs the DBA role; bob@example.com is a viewer on prod.'
        """
        return f"{what} needs the DBA role; {self.person} is a {self.role} on {self.target.name}."

    def require_dba(self, what: str) -> None:
        if not self.is_dba:
            raise PermissionDenied(self.denial(what))
