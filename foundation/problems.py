"""One kind of error for a server DB Pulse could not use (PostgreSQL or Redis): `kind` is stable
for code to branch on; message and hint are for people."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.secrets import redact_text


@dataclass
class Problem(Exception):
    kind: str
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        # the one way out of every problem text: no password leaves, even from a mistyped URL
        # (hints are DB Pulse's own words, with example URLs that must stay readable)
        self.message = redact_text(self.message)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message
