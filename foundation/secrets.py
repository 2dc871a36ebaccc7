"""Secrets never leave DB Pulse: a password in a connection string (a mistyped one too) or in a
statement's text is masked before the text is shown, printed, logged or stored.

The rules look at the shape of the text, not at a known list of secrets, so they also catch a
password DB Pulse was never told about (a `CREATE ROLE … PASSWORD` someone else ran). SQL is
read with PostgreSQL's own lexer (pglast), so every form of a string constant after PASSWORD is
found: quoted, E'', U&'', dollar-quoted, with no space or with comments between the tokens."""

from __future__ import annotations

import re

from pglast import parser

MASK = "***"

# user:password@ after "//" or at the start of a word: also "postgress://u:pw@h", "rediss//:pw@h"
_URL_PASSWORD = re.compile(r"(?P<head>(?:(?<=/)|(?<![\w.:/-]))[^\s:/@'\"]*:)"
                           r"(?P<secret>[^\s@/'\"]+)@")
# password=... in a libpq key/value string, quoted or not
_KEY_VALUE = re.compile(r"(?P<head>\bpassword\s*=\s*)(?!\*\*\*)"  # not one masked already
                        r"(?P<secret>'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.I)
# when the text does not lex (an unterminated quote): everything after PASSWORD and a quote
_UNLEXED_PASSWORD = re.compile(r"(?P<head>\bpassword\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*)"
                               r"(?P<secret>(?:[EeUu]&?)?['$].*)$", re.I | re.S)
_STRINGS = {"SCONST", "USCONST", "XCONST", "BCONST"}
_COMMENTS = {"C_COMMENT", "SQL_COMMENT"}
_DOLLAR_QUOTED = re.compile(r"^(\$\w*\$)(.*)(\1)$", re.S)
_QUOTED = re.compile(r"^((?:[EeUu]&?)?')(.*)(')$", re.S)


def redact_text(text: str) -> str:
    """
    >>> redact_text('missing "=" after "postgress://u:Pw1@db:5432/x" in connection info')
    'missing "=" after "postgress://u:***@db:5432/x" in connection info'
    >>> redact_text("rediss//:Pw2@cache:6380/0"), redact_text("host=db password='a b' user=x")
    ('rediss//:***@cache:6380/0', 'host=db password=*** user=x')
    >>> redact_text("ALTER ROLE app WITH LOGIN PASSWORD 'it''s' VALID UNTIL 'infinity'")
    "ALTER ROLE app WITH LOGIN PASSWORD '***' VALID UNTIL 'infinity'"
    >>> redact_text("ALTER ROLE x PASSWORD'a', y PASSWORD/* c */U&'b' VALID UNTIL 'z'")
    "ALTER ROLE x PASSWORD'***', y PASSWORD/* c */'***' VALID UNTIL 'z'"
    >>> redact_text("SELECT dblink_connect($$host=db password=s$x user=u$$)")
    'SELECT dblink_connect($$host=db password=*** user=u$$)'
    >>> redact_text("SELECT dblink_connect($$host=db password=s$x$$)")
    'SELECT dblink_connect($$host=db password=***$$)'
    >>> redact_text("ALTER ROLE x PASSWORD 'unterminated")
    "ALTER ROLE x PASSWORD '***'"
    >>> redact_text("postgres:/h:Pw3@db/x")
    'postgres:/h:***@db/x'
    >>> redact_text("redis://:s3@cache:6379/0 and postgres@db:5432/x")
    'redis://:***@cache:6379/0 and postgres@db:5432/x'
    >>> redact_text("SELECT a FROM t WHERE x = $1 AND t.at > now() - interval '1 h'")
    "SELECT a FROM t WHERE x = $1 AND t.at > now() - interval '1 h'"
    """
    if not isinstance(text, str) or not text:
        return text
    # each rule needs its word or sign: most texts (a page of statements) skip the patterns,
    # whose look-behinds cost more than the rest of reading them
    if "password" in text.lower():
        text = _mask_password_constants(text)
        text = _KEY_VALUE.sub(lambda m: m["head"] + MASK, text)
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return text


def _mask_password_constants(text: str) -> str:
    """Every string constant that follows the PASSWORD keyword (or a "password" option name)
    becomes '***'; a password=... inside any other string constant is masked within it."""
    try:
        tokens = parser.scan(text)
    except parser.ParseError:
        return _UNLEXED_PASSWORD.sub(lambda m: m["head"] + "'" + MASK + "'", text)
    significant = [t for t in tokens if t.name not in _COMMENTS]
    spans = []  # (start, end, replacement), in order
    for before, token in zip([None] + significant, significant):
        if token.name not in _STRINGS:
            continue
        if before is not None and _names_password(text, before):
            spans.append((token.start, token.end, "'" + MASK + "'"))
        else:
            constant = text[token.start:token.end + 1]
            masked = _mask_inside(constant)
            if masked != constant:
                spans.append((token.start, token.end, masked))
    for start, end, replacement in reversed(spans):
        text = text[:start] + replacement + text[end + 1:]
    return text


def _names_password(text: str, token) -> bool:
    word = text[token.start:token.end + 1].strip('"').lower()
    return token.name in ("PASSWORD", "IDENT") and word == "password"


def _mask_inside(constant: str) -> str:
    """A libpq key/value or URL password inside one string constant, its quotes kept."""
    match = _DOLLAR_QUOTED.match(constant) or _QUOTED.match(constant)
    if not match or "password" not in match[2].lower() and "@" not in match[2]:
        return constant
    inner = re.sub(r"(?P<head>\bpassword\s*=\s*)(?P<secret>''(?:[^']|'(?!'))*''|\S+)",
                   lambda m: m["head"] + MASK, match[2], flags=re.I)
    inner = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", inner)
    return match[1] + inner + match[3]
