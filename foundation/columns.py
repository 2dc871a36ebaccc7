"""How a query's columns are shown to people: a label, a unit, a format, a width and a help text
per column, written next to the query that produces the frame. The dashboard applies them with
one helper (ui/tables.py), so no page formats numbers by hand and no SQL alias reaches a
header."""

from __future__ import annotations

from dataclasses import dataclass

# what a column holds, and so how it is drawn:
#   text     words; an empty cell shows `missing` (or nothing)
#   count    whole numbers with thousands separators
#   number   decimals (`digits`) with thousands separators
#   bytes    a size, shown as kB/MB/GB
#   percent  a ratio 0..1 shown as a percentage with `digits` decimals
#   share    a ratio 0..1 drawn as a bar
#   time     a timestamp, shown in UTC to the minute
#   flag     yes/no as a tick box
#   list     several short values
KINDS = ("text", "count", "number", "bytes", "percent", "share", "time", "flag", "list")


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = "text"
    unit: str = ""
    help: str | None = None
    width: str | None = None  # "small", "medium", "large" or None (fit)
    pinned: bool = False  # stays on screen while the table scrolls sideways
    digits: int = 1
    missing: str = ""  # what an empty text cell means ("never", "unknown")
    # the words that explain a row (why, advice, what ends it): drawn wrapped under the grid, a
    # line per row, so they are read in full at any width; the grid keeps the figures
    explains: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")

    @property
    def header(self) -> str:
        """
        >>> Column("Total time", "number", unit="ms").header
        'Total time (ms)'
        >>> Column("Last vacuum", "time").header
        'Last vacuum (UTC)'
        """
        unit = "UTC" if self.kind == "time" and not self.unit else self.unit
        return f"{self.label} ({unit})" if unit else self.label


Columns = dict  # column name in the frame -> Column, in the order they are shown

# Columns several queries share
SCHEMA = Column("Schema", width="small")
TABLE = Column("Table", pinned=True)
INDEX = Column("Index", pinned=True)
ROLE = Column("Role", width="small")
DATABASE = Column("Database", width="small")
STATEMENT = Column("Statement", width="large", pinned=True)
SIZE = Column("Size", "bytes")
