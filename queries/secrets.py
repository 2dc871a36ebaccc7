"""Secrets never leave DB Pulse: a password in a connection string (a mistyped one too) or in a
statement's text is masked before the text is shown, printed, logged or stored.

The rules look at the shape of the text, not at a known list of secrets, so they also catch a
password DB Pulse was never told about (a `CREATE ROLE … PASSWORD` someone else ran)."""

from __future__ import annotations

import re

MASK = "***"

# user:password@ after "//" or at the start of a word: also "postgress://u:pw@h", "rediss//:pw@h"
_URL_PASSWORD = re.compile(r"(?P<head>(?:(?<=/)|(?<![\w.:/-]))[^\s:/@'\"]*:)"
                           r"(?P<secret>[^\s@/'\"]+)@")
# password=... in a libpq key/value string, quoted or not
_KEY_VALUE = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s'\"]+)",
                        re.I)
# PASSWORD '...' (CREATE/ALTER ROLE/USER, user mappings): a quoted or dollar-quoted literal
_STATEMENT_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s+)(?P<secret>E?'(?:[^']|'')*'|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)",
    re.I | re.S)


def redact_text(text: str) -> str:
    """
    >>> redact_text('missing "=" after "postgress://u:Pw1@db:5432/x" in connection info')
    'missing "=" after "postgress://u:***@db:5432/x" in connection info'
    >>> redact_text("rediss//:Pw2@cache:6380/0"), redact_text("host=db password='a b' user=x")
    ('rediss//:***@cache:6380/0', 'host=db password=*** user=x')
    >>> redact_text("ALTER ROLE app WITH LOGIN PASSWORD 'it''s' VALID UNTIL 'infinity'")
    "ALTER ROLE app WITH LOGIN PASSWORD '***' VALID UNTIL 'infinity'"
    >>> redact_text("postgres:/h:Pw3@db/x")
    'postgres:/h:***@db/x'
    >>> redact_text("redis://:s3@cache:6379/0 and postgres@db:5432/x")
    'redis://:***@cache:6379/0 and postgres@db:5432/x'
    >>> redact_text("SELECT a FROM t WHERE x = $1 AND t.at > now() - interval '1 h'")
    "SELECT a FROM t WHERE x = $1 AND t.at > now() - interval '1 h'"
    """
    if not isinstance(text, str) or not text:
        return text
    text = _STATEMENT_PASSWORD.sub(lambda m: m["head"] + "'" + MASK + "'", text)
    text = _KEY_VALUE.sub(lambda m: m["head"] + MASK, text)
    return _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
