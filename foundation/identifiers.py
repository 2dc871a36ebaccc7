"""Names in SQL shown to people (fix statements to copy). Executed SQL uses sql.Identifier.

A name is left bare only when PostgreSQL would read it back unchanged: lower case, plain
characters, and not a keyword that needs quoting as a column or table name (the keyword lists
come from PostgreSQL's own grammar, through pglast)."""

from __future__ import annotations

import functools
import re

from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
# every keyword that is not "unreserved" can break a statement somewhere as a bare name
NEEDS_QUOTES = frozenset(RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS | COL_NAME_KEYWORDS)


@functools.lru_cache(maxsize=65536)  # a big catalogue's fixes quote the same names many times
def quote_ident(name: str) -> str:
    """
    >>> quote_ident("leads"), quote_ident("Odd Table"), quote_ident("end"), quote_ident('a"b')
    ('leads', '"Odd Table"', '"end"', '"a""b"')
    """
    if PLAIN.fullmatch(name) and name not in NEEDS_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """
    >>> qualified("a.b", "seq tbl")
    '"a.b"."seq tbl"'
    """
    return f"{quote_ident(schema)}.{quote_ident(name)}"
