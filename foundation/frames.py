"""Query results as pandas frames with dtypes from the column types, so that an empty result
still has boolean and numeric columns (a mask over an empty object column would otherwise
select columns instead of rows)."""

from __future__ import annotations

import gc
from collections import namedtuple
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import numpy as np
import pandas as pd
import psycopg

BOOL_OIDS = {16}
NUMBER_OIDS = {20, 21, 23, 26, 700, 701, 1700}  # int8, int2, int4, oid, float4, float8, numeric
INT8_OID = 20  # the only integer type beyond a float's exact range


@contextmanager
def no_collection():
    """The rows of a big result are not garbage, but tens of thousands of new tuples make the
    garbage collector traverse every object of the process, more than once per result: a
    fifth of reading 25,000 indexes, a third of judging 28,800 (as a decorator too:
    @no_collection()). They are freed by reference counting when done."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def to_frame(cur: psycopg.Cursor) -> pd.DataFrame:
    """Column by column: building an object frame row by row and converting it afterwards
    costs four times as much on the tens of thousands of rows of a big catalogue."""
    with no_collection():
        return _columns_to_frame(cur)


def _columns_to_frame(cur: psycopg.Cursor) -> pd.DataFrame:
    rows = cur.fetchall()
    description = cur.description  # psycopg builds it anew on every access
    index = pd.RangeIndex(len(rows))
    values = list(zip(*rows)) if rows else [() for _ in description]
    data = {}  # by position: two columns may share a name
    for position, (column, cells) in enumerate(zip(description, values)):
        complete = None not in cells
        # with NULLs, numbers become floats with NaN as pandas makes them: exact up to 2**53
        # (counts, sizes); a 64-bit hash such as a query id beside a NULL stays Python ints,
        # or it would be rounded to another id
        number = column.type_code in NUMBER_OIDS and (
            complete or column.type_code != INT8_OID or not _beyond_float(cells))
        if number:
            # straight to numpy, far faster
            numbers = np.array(cells, dtype=(np.int64 if not cells else None if complete
                                              else float))
            if numbers.dtype.kind in "if":
                data[position] = numbers  # an array: no index to align
                continue
        elif column.type_code in BOOL_OIDS and complete:
            data[position] = np.array(cells, dtype=bool)
            continue
        # object dtype keeps text as Python str/None and times as datetime (pandas 3 would
        # infer Arrow strings from an array: slow to iterate row by row, NaN for NULL);
        # fromiter, as a cell may itself be a list (an array column)
        series = pd.Series(np.fromiter(cells, dtype=object, count=len(rows)), dtype=object,
                           index=index, copy=False)
        if number:  # numeric (Decimal) without NULLs
            series = pd.to_numeric(series, errors="coerce")
        data[position] = series
    # the index given: pandas aligns nothing (from Series alone it unions their indexes);
    # copied, so that columns of one dtype share a block: with a block per column, each row
    # selection (a mask, a sort) costs five times as much on a frame of 30 columns
    frame = pd.DataFrame(data, columns=range(len(description)), index=index)
    frame.columns = [c.name for c in description]
    return frame


FLOAT_EXACT = 2 ** 53  # a float64 holds every integer up to this exactly


def _beyond_float(cells) -> bool:
    """Whether an integer among the cells would be rounded as a float.

    >>> _beyond_float((1, None, 2 ** 40)), _beyond_float((-1118924422343236163, None))
    (False, True)
    """
    return any(type(v) is int and not -FLOAT_EXACT <= v <= FLOAT_EXACT for v in cells)


def rows(frame: pd.DataFrame, index: bool = True) -> Iterator[tuple]:
    """frame.itertuples(index): the same named tuples of the same values, without pandas 3's
    lookup of each column by position on every call (about 0.1 ms a column, rows or not: most
    of a check's time on a small database, where most frames are short or empty); the values
    come a block at a time (one per dtype), as Python objects.

    >>> frame = pd.DataFrame({"a": [1, 2], "b": pd.Series(["x", None], dtype=object),
    ...                       "c": [0.5, 1.5], "d": [True, False]})
    >>> list(rows(frame)) == list(frame.itertuples())
    True
    >>> [tuple(r) for r in rows(frame.assign(c=[0.5, None]), index=False)]
    [(1, 'x', 0.5, True), (2, None, nan, False)]
    >>> list(rows(frame.iloc[:0]))
    []
    >>> [type(v).__name__ for v in next(rows(frame))]
    ['int', 'int', 'str', 'float', 'bool']
    >>> big = pd.concat([frame] * 600, ignore_index=True)  # read by column
    >>> [tuple(r) for r in rows(big)][-2:]
    [(1198, 1, 'x', 0.5, True), (1199, 2, None, 1.5, False)]
    >>> [type(v).__name__ for v in next(rows(big))]
    ['int', 'int', 'str', 'float', 'bool']
    """
    if frame.empty:
        return iter(())
    if not frame.columns.is_unique:  # frame[name] would be a frame: pandas' own way
        return frame.itertuples(index=index)
    row = _row_type((("Index",) if index else ()) + tuple(frame.columns))
    if len(frame) >= BY_COLUMN_FROM_ROWS:
        # a list per column, zipped: for thousands of rows, less than half of converting the
        # whole frame to objects (each column costs a fixed 0.01 ms more, hence not always)
        columns = [values.tolist() for _, values in frame.items()]
        return map(row._make, zip(frame.index.tolist(), *columns) if index else zip(*columns))
    values = frame.to_numpy(dtype=object).tolist()
    if index:
        return map(row._make, ((i, *v) for i, v in zip(frame.index.tolist(), values)))
    return map(row._make, values)


BY_COLUMN_FROM_ROWS = 1000  # 6,000 rows of 23 columns: 2.2 ms by column, 5.3 at once


@lru_cache(maxsize=256)
def _row_type(fields: tuple) -> type:
    return namedtuple("Pandas", fields, rename=True)
