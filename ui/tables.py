"""One way to show a query's frame: its column specification (foundation/columns.py) decides the
headers, units, formats and widths, so pages stay thin and no page formats numbers by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pandas as pd
import streamlit as st

from foundation.columns import Column
from foundation.format import known
from foundation.markup import md

MISSING = "—"  # an empty number or time: not measured, not applicable
SAFE_INTEGER = 2 ** 53  # beyond it the browser's numbers lose digits: shown as text instead


def _text(value, missing: str) -> str:
    """
    >>> _text(None, "never"), _text(float("nan"), ""), _text(["a", "b"], ""), _text({"k": 1}, "")
    ('never', '', 'a, b', 'k: 1')
    >>> _text(4321.0, ""), _text('{"up_to": "0001"}', "")
    ('4321', 'up_to: 0001')
    """
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return missing
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id column that pandas made float because of a gap
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_text(v, '')}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_text(v, "") for v in value)
    if isinstance(value, str) and value[:1] in "{[":
        try:  # a JSON document stored as text reads like the mapping it holds
            return _text(json.loads(value), missing)
        except ValueError:
            return value
    return str(value)


def prepare(frame: pd.DataFrame, columns: dict[str, Column]) -> tuple[pd.DataFrame, dict]:
    """The frame's spec'd columns, in the spec's order, with values fit for their kind, and the
    column configuration that draws them. A spec'd column the frame lacks is an error: a
    renamed alias must not silently vanish from a page."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} are specified but not in the frame")
    shown = frame[list(columns)].copy()
    config = {}
    for name, col in columns.items():
        common = {"help": col.help, "width": col.width, "pinned": col.pinned or None}
        values = shown[name]
        if col.kind in ("count", "number", "bytes", "percent"):
            numbers = pd.to_numeric(values, errors="coerce").astype(float)
            if col.kind == "count" and (numbers.abs() >= SAFE_INTEGER).any():
                # the frame's own integers where it has them: a float has lost the digits too
                exact = [v if isinstance(v, int) else n
                         for v, n in zip(values, pd.to_numeric(values, errors="coerce"))]
                shown[name] = [f"{int(v):,}" if known(v) else MISSING for v in exact]
                config[name] = st.column_config.TextColumn(col.header, **common)
                continue
            if col.kind == "percent":
                shown[name] = (100 * numbers).round(col.digits)
                fmt = f"%.{col.digits}f %%"
            elif col.kind == "bytes":
                shown[name], fmt = numbers, "bytes"
            else:
                shown[name] = numbers.round(0 if col.kind == "count" else col.digits)
                fmt = "localized"
            config[name] = st.column_config.NumberColumn(col.header, format=fmt, **common)
        elif col.kind == "share":
            shown[name] = pd.to_numeric(values, errors="coerce").astype(float)
            config[name] = st.column_config.ProgressColumn(col.header, min_value=0, max_value=1,
                                                           format="percent", **common)
        elif col.kind == "time":
            shown[name] = pd.to_datetime(values, utc=True, errors="coerce")
            config[name] = st.column_config.DatetimeColumn(col.header, format="YYYY-MM-DD HH:mm",
                                                           timezone="UTC", **common)
        elif col.kind == "flag":
            shown[name] = values.map(lambda v: bool(v) if known(v) else None)
            config[name] = st.column_config.CheckboxColumn(col.header, **common)
        elif col.kind == "list":
            shown[name] = values.map(lambda v: [str(x) for x in v]
                                     if isinstance(v, (list, tuple, set)) else
                                     [] if v is None or v != v else [str(v)])
            config[name] = st.column_config.ListColumn(col.header, **common)
        else:
            shown[name] = values.map(lambda v: _text(v, col.missing))
            config[name] = st.column_config.TextColumn(col.header, **common)
    return shown, config


def show(frame: pd.DataFrame | None, columns: dict[str, Column], empty_note: str = "", *,
         max_rows: int | None = None, missing: str = MISSING, height: int | None = None,
         key: str | None = None, total: int | None = None,
         completed: Callable[[pd.DataFrame], pd.DataFrame] | None = None
         ) -> pd.DataFrame | None:
    """Draw the frame as its spec says, or the note when there is nothing. The frame comes
    worst first: with more than `max_rows` rows, one page of them is drawn at a time, with a
    page selector (the browser never gets thousands of rows at once). `total`: how many rows
    the frame was already cut from, when the query read only the first. `completed`: the rows
    to draw with what is read for them alone. Returns the rows drawn, so a page can show the
    fixes of exactly those."""
    if frame is None or len(frame) == 0:
        if empty_note:
            st.caption(empty_note)
        return frame
    read, total = len(frame), max(total or 0, len(frame))
    start = 0
    if max_rows is not None and len(frame) > max_rows:
        pages = -(-len(frame) // max_rows)
        number = st.number_input(
            f"Page of {pages:,}", min_value=1, max_value=pages, value=1, step=1,
            # a new selector when the number of pages changes: the old choice may be past it
            key=f"page:{key or '|'.join(columns)}:{empty_note}:{pages}",
            help=f"{max_rows:,} rows a page, worst first")
        start = (int(number) - 1) * max_rows
        frame = frame.iloc[start:start + max_rows]
    if completed:
        frame = completed(frame)
    grid = {name: col for name, col in columns.items() if not col.explains}
    shown, config = prepare(frame, grid)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config,
                 placeholder=missing, height=height or "auto", key=key)
    lines = explanations(frame, columns)
    if lines:
        st.markdown("\n".join(lines))
    if len(frame) < total:
        of = f"the first {read:,} of {total:,}" if read < total else f"{total:,}"
        st.caption(f"Rows {start + 1:,}–{start + len(frame):,} of {of}.")
    return frame


def explanations(frame: pd.DataFrame, columns: dict[str, Column]) -> list[str]:
    """A Markdown line per row for the columns that explain it, named by the row's pinned
    columns (else its first), as the grid shows them: wrapped text, in view at any width. All
    the pinned ones: a table's name alone named two indexes of one table alike.

    >>> spec = {"table": Column("Table", pinned=True), "index": Column("Index", pinned=True),
    ...         "why": Column("Why", explains=True)}
    >>> explanations(pd.DataFrame({"table": ["t", "t"], "index": ["a_b", "c"],
    ...                            "why": ["dup of *x*", None]}), spec)
    ['- **t · a_b** — Why: dup of \\\\*x\\\\*']
    >>> when = {"at": Column("Raised", "time", pinned=True), "what": Column("What", explains=True)}
    >>> explanations(pd.DataFrame({"at": [pd.Timestamp("2026-12-03 14:54:04.5", tz="UTC")],
    ...                            "what": ["Red"]}), when)
    ['- **2026\\\\-12\\\\-03 14\\\\:54 UTC** — What: Red']
    """
    explained = [name for name, col in columns.items() if col.explains and name in frame]
    if not explained or frame.empty:
        return []
    names = [n for n, c in columns.items() if c.pinned and not c.explains and n in frame] or \
        [next(n for n, c in columns.items() if not c.explains)]
    lines = []
    for _, row in frame.iterrows():
        parts = [f"{columns[name].label}: {md(str(row[name]))}" for name in explained
                 if known(row[name]) and str(row[name])]
        if parts:
            named = " · ".join(_named(row[n], columns[n]) for n in names)
            lines.append(f"- **{md(named)}** — " + "; ".join(parts))
    return lines


def _named(value, column: Column) -> str:
    """A row's name as its grid column shows it (a time to the minute, in UTC)."""
    if column.kind == "time" and known(value):
        when = pd.Timestamp(value)
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        return f"{when:%Y-%m-%d %H:%M} UTC"
    return str(value)


def show_text(header: list[str], rows: list[list[str]], empty_note: str = "") -> None:
    """A table whose cells are already worded (the weekly review's sections, shared with its
    Markdown and HTML exports)."""
    if not rows:
        if empty_note:
            st.caption(empty_note)
        return
    if len(header) == 1:  # a list, not a table
        st.markdown("\n".join(f"- {md(row[0])}" for row in rows))
        return
    frame = pd.DataFrame(rows, columns=[h[:1].upper() + h[1:] for h in header])
    st.dataframe(frame, hide_index=True, width="stretch", placeholder=MISSING)
