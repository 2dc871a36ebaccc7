"""Names in SQL shown to people (fix statements to copy). Executed SQL uses sql.Identifier."""

from __future__ import annotations

import re

PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
# reserved words that would need quotes even though they look plain (the common ones)
RESERVED = {"user", "order", "group", "table", "select", "where", "from", "limit", "check",
            "default", "primary", "references", "index", "column", "constraint", "all", "to"}


def quote_ident(name: str) -> str:
    if PLAIN.fullmatch(name) and name not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"
