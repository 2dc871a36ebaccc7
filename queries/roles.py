"""The role model: a viewer reads, a DBA may act. Checked inside every action function, so a
forged button press from a viewer's session is refused by the core, not only hidden by the UI."""

from __future__ import annotations

from queries.config import Settings


class PermissionDenied(PermissionError):
    pass


def require_dba(settings: Settings, action: str) -> None:
    if not settings.is_dba:
        raise PermissionDenied(f"{action} needs the DBA role; this session is {settings.role!r}. "
                               "Set role = \"dba\" in the configuration for DBA sessions.")
