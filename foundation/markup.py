"""Text that a database or a person named (identifiers, statement texts, Redis keys, e-mails,
error messages quoting them), made inert for the renderers it passes through: Markdown (every
Streamlit text element, the review's Markdown export) and Slack's mrkdwn. A name is shown as it
is; it never becomes an image the browser fetches, a link, HTML or formatting."""

from __future__ import annotations

import re

# Every ASCII punctuation character CommonMark, GFM and Streamlit give a meaning to; a
# backslash before any of them shows it literally. An underscore inside a word means nothing
# (no intraword emphasis with _), so snake_case names stay readable in the Markdown source.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*{}\[\]()#+\-.!|<>~$:&]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def md(text) -> str:
    """Literal text inside Markdown, on one line.

    >>> md("m![p](http://h/m.png)")
    'm\\\\!\\\\[p\\\\]\\\\(http\\\\://h/m\\\\.png\\\\)'
    >>> md("**b** <img src=x>")
    '\\\\*\\\\*b\\\\*\\\\* \\\\<img src=x\\\\>'
    >>> md("two\\nlines"), md(None), md("idx_user_id _x_")
    ('two lines', 'None', 'idx_user_id \\\\_x\\\\_')
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


def shown(markdown: str) -> str:
    """What a reader sees of escaped text (for tests and plain-text copies).

    >>> shown(md("a *b*: [c](d)")) == "a *b*: [c](d)"
    True
    """
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def code(text) -> str:
    """A Markdown code span that shows text as it is, backticks in it included.

    >>> code("idx_a"), code("a`b")
    ('`idx_a`', '`` a`b ``')
    """
    text = str(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    if not longest:
        return f"`{text}`"
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def slack(text) -> str:
    """Inert in Slack's mrkdwn: its control characters escaped as Slack asks, so <url|x>,
    <!channel> and <@user> are shown, not acted on.

    >>> slack("<!channel> a & b")
    '&lt;!channel&gt; a &amp; b'
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

