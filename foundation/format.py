"""Plain formatting for people: units, ages, percentages, traffic-light states."""

from __future__ import annotations

from datetime import timedelta


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


def known(value) -> bool:
    """A figure that is there: not None, not NaN.

    >>> known(0), known(None), known(float("nan"))
    (True, False, False)
    """
    return value is not None and value == value


def count(n) -> str:
    """
    >>> count(12345), count(None)
    ('12,345', 'n/a')
    """
    return f"{int(n):,}" if known(n) else "n/a"


def amount(value, unit: str = "", digits: int = 0) -> str:
    """A measured amount with thousands separators and its unit.

    >>> amount(1234.5, "ms"), amount(0.456, "s", 2), amount(3.14159, digits=2), amount(None, "ms")
    ('1,234 ms', '0.46 s', '3.14', 'n/a')
    """
    if not known(value):
        return "n/a"
    text = f"{float(value):,.{digits}f}"
    return f"{text} {unit}" if unit else text


def state_for_ratio(ratio: float | None, target: float, amber_margin: float = 0.05) -> str:
    """green at or above target, amber within the margin below it, red further below,
    grey when there is nothing to judge yet."""
    if ratio is None:
        return "grey"
    if ratio >= target:
        return "green"
    if ratio >= target - amber_margin:
        return "amber"
    return "red"
