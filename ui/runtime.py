"""The dashboard process's Python runtime, tuned once per process.

A dashboard process holds about 170,000 objects the garbage collector tracks (Streamlit's
runtime, pandas, numpy, plotly, psycopg, the cached frames, whose text columns it walks cell
by cell). Each full collection walked all of them with the GIL held: 95-190 ms on the big
catalogue, and Streamlit ran one after every script run (`runner.postScriptGC`, now off in
.streamlit/config.toml; Python's own collections still run). Freezing what is alive after
start-up takes it out of every later collection: in one round of bench/pages_in_browser.py,
6 full collections of 17-47 ms instead of 16 of 95-190 ms."""

from __future__ import annotations

import gc
import importlib
import threading

_lock = threading.Lock()
_frozen = False


def freeze_startup_objects() -> None:
    """Once per process, on the first script run, in a thread of its own: garbage is collected
    first (a frozen object is never collected), then everything alive is frozen. What a page
    imports lazily (plotly) is imported there, so it is frozen with the rest. The first
    session's own objects are frozen too: if they form cycles, they stay when it ends (once,
    one session's worth). In the script's thread it held up the first page by the import and
    the collection (58 and 109 ms): beside it, they run while the page waits for its
    database."""
    global _frozen
    with _lock:
        if _frozen:
            return
        _frozen = True
    threading.Thread(target=_freeze, name="dbpulse-freeze", daemon=True).start()


def _freeze() -> None:
    importlib.import_module("plotly.express")  # the pages' charts
    gc.collect()
    gc.freeze()
