"""Parsing and printing of durations such as ``max_age: 7d``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DAYS = timedelta.max.days
_MAX_SECONDS = _MAX_DAYS * 86400
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_duration(value: object) -> timedelta:
    """Parse ``7d``, ``12h``, ``30m``, ``3600s``, ``2w``, plain seconds, or a timedelta.

    Raises:
        ValueError: The value is not a duration.

    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return _seconds(value, value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return _seconds(float(match.group(1)) * _UNITS[match.group(2) or "s"], value)
    raise ValueError(f"{value!r} is not a duration; write e.g. 7d, 12h, 30m, 3600s or 3600")


def _seconds(seconds: float, written: object) -> timedelta:
    # timedelta raises OverflowError beyond 999999999 days, and takes inf/nan as that too.
    try:
        finite = math.isfinite(seconds) and abs(seconds) <= _MAX_SECONDS
    except OverflowError:  # an int beyond any float
        finite = False
    if not finite:
        raise ValueError(
            f"{written!r} is not a finite duration of at most {_MAX_DAYS} days; "
            "write e.g. 7d, 12h, 30m or 3600s, or leave it out for no limit"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Shortest exact form: ``7d``, ``36h``, ``90s``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"
