"""Threads beside the caller's: a read on another connection, or pure Python (judging what was
read) while the caller's connection reads on."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

# A thread whose server answer has come waits for the interpreter's lock until the thread
# computing beside it is made to give it up: 5 ms by default, after every statement. With the
# index checks judged beside the other checks' reads (25,000 indexes, one connection), run_all
# took 0.98 of its time without the thread at 5 ms, 0.91 at 1 ms (25 alternated runs).
PROMPT_SWITCH_S = 0.001

_held = threading.Lock()
_inside = 0          # how many prompt_switches blocks are open, in any thread
_interval_before = 0.005


@contextmanager
def prompt_switches() -> Iterator[None]:
    """The interpreter's switch interval at most PROMPT_SWITCH_S while the block runs. It is
    the process's: the last block to end puts back the one before the first began.

    >>> before = sys.getswitchinterval()
    >>> with prompt_switches():
    ...     with prompt_switches():
    ...         inner = sys.getswitchinterval()
    ...     outer = sys.getswitchinterval()
    >>> inner, outer, sys.getswitchinterval() == before
    (0.001, 0.001, True)
    """
    global _inside, _interval_before
    with _held:
        if _inside == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval_before, PROMPT_SWITCH_S))
        _inside += 1
    try:
        yield
    finally:
        with _held:
            _inside -= 1
            if _inside == 0:
                sys.setswitchinterval(_interval_before)


@contextmanager
def work_beside(threads: int = 1) -> Iterator[ThreadPoolExecutor]:
    """Threads (one by default) for work beside the caller's, with prompt switches while they
    live; the block ends when that work has."""
    with prompt_switches(), ThreadPoolExecutor(threads) as pool:
        yield pool
