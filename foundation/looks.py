"""One look at a database: the reads several checks make of the same state (the standbys, the
latency probes' ledger, the connection count) made once while the look lasts, so that the
checks judge one value and DB Pulse's statements per look stay few (the agent's cost is
measured per look)."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# connection -> {read: its result} while a look on that connection lasts
_looks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextmanager
def one_look(conn: psycopg.Connection) -> Iterator[None]:
    """Reads marked read_once are made once on conn until the block ends (the outermost block,
    when looks nest)."""
    outermost = conn not in _looks
    if outermost:
        _looks[conn] = {}
    try:
        yield
    finally:
        if outermost:
            _looks.pop(conn, None)


def read_once(read):
    """read(conn), made once per look on conn (one_look) and its result shared: callers must
    not change it. Outside a look, or given more arguments, it reads every time."""
    @functools.wraps(read)
    def once(conn: psycopg.Connection, *args, **kwargs):
        results = _looks.get(conn)
        if results is None or args or kwargs:
            return read(conn, *args, **kwargs)
        if read not in results:
            results[read] = read(conn)
        return results[read]
    return once
