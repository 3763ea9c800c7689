"""Which of two rows of one key wins online: the point-in-time rule, in Python.

The same order as :mod:`feast_spark.spark.latest` (and the point-in-time join): the latest
``event_timestamp``, then the latest ``created_timestamp`` (null is the oldest), then the
greatest feature values compared in declaration order with Spark's ordering: null first, numbers
by value (NaN greatest, ``-0.0 == 0.0``), strings by code point (UTF-8 bytes), bytes unsigned,
``False < True``, lists element by element and then the shorter first.

Stores apply it to values in their stored form (:mod:`feast_spark.online.base`), where an empty
list is null: two rows tied on times that differ only by ``[]`` against null compare equal here
and may be decided by a later feature, unlike Spark; they are stored identically either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: ``created_timestamp`` of a row without one: older than every real time.
OLDEST_CREATED = -(2**63)


def value_key(value: Any) -> tuple[Any, ...]:
    """A sort key for one stored value that orders like Spark (see the module docstring)."""
    if value is None:
        return (0,)
    if isinstance(value, float):
        return (1, 1, 0.0) if math.isnan(value) else (1, 0, value + 0.0)
    if isinstance(value, list | tuple):
        return (1, tuple(value_key(element) for element in value))
    return (1, value)


def times_key(event_us: int, created_us: int | None) -> tuple[int, int]:
    """The times part of a row's order: ``(event, created)``, a missing created time oldest.

    Rows equal on it are ordered by ``tuple(value_key(v) for v in values)``.
    """
    return (event_us, OLDEST_CREATED if created_us is None else created_us)


def winners_per_key(
    keys: Sequence[tuple[Any, ...]],
    event_us: Sequence[int],
    created_us: Sequence[int | None],
    features: Sequence[Sequence[Any]],
) -> list[int]:
    """Indices of the winning row of every distinct key, in first-seen key order.

    Args:
        keys: Each row's key.
        event_us: Each row's event time.
        created_us: Each row's created time (None: unknown, the oldest).
        features: One sequence per feature, each holding every row's value.
    """
    best: dict[tuple[Any, ...], int] = {}
    for index, key in enumerate(keys):
        current = best.get(key)
        if current is None:
            best[key] = index
            continue
        new = times_key(event_us[index], created_us[index])
        old = times_key(event_us[current], created_us[current])
        if new > old or (
            new == old
            and tuple(value_key(f[index]) for f in features)
            > tuple(value_key(f[current]) for f in features)
        ):
            best[key] = index
    return list(best.values())


def next_write_timestamp(event_us: int, stored_write_us: int | None) -> int:
    """The write timestamp of a row that must replace the stored one (Cassandra).

    The event time, unless the stored row was written at that time or later (a row of the same
    event time with an older created time, or a correction just before it): then one microsecond
    after the stored write, since Cassandra settles equal timestamps cell by cell (a null's
    tombstone first, then the greater value) and would mix the two rows.
    """
    if stored_write_us is None or stored_write_us < event_us:
        return event_us
    return stored_write_us + 1
