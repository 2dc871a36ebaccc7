"""Plain formatting for people: units, ages, percentages, traffic-light states."""

from __future__ import annotations

from datetime import timedelta

from queries.checks import state_for_ratio  # noqa: F401  (pages judge ratios with it)


def human_bytes(n: int | float | None) -> str:
    """
    >>> human_bytes(None), human_bytes(float("nan")), human_bytes(2048)
    ('n/a', 'unknown', '2.0 kB')
    """
    if n is None:
        return "n/a"
    value = float(n)
    if value != value:  # NaN: a figure DB Pulse could not estimate
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def human_duration(delta: timedelta | float | None) -> str:
    if delta is None:
        return "n/a"
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def percent(ratio: float | None, digits: int = 1) -> str:
    return "n/a" if ratio is None else f"{100 * ratio:.{digits}f} %"
