"""Exact Spark literals for instants and dates, whatever the year.

``F.lit(datetime)`` and ``F.lit(date)`` travel to the JVM as ``java.sql.Timestamp`` /
``java.sql.Date``, which use the hybrid Julian/Gregorian calendar: before the 1582-10-15 switch
they land days away from the proleptic Gregorian instant Python and Spark SQL mean (two days
off in year 1). Microseconds (days) since the epoch are calendar-free, so these literals are
exact from 0001-01-01 to 9999-12-31, and constant-folded, so Delta and parquet still skip files
on them.

Example::

    timestamp_literal(datetime(1, 1, 1, tzinfo=UTC))  ->  timestamp_micros(-62135596800000000)
    date_literal(date(1582, 10, 4))                   ->  date_from_unix_date(-141428)
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.online.base import to_micros

_EPOCH_DAY = date(1970, 1, 1)


def timestamp_literal(instant: datetime) -> Column:
    """``instant`` (aware) as an exact Spark ``timestamp`` literal.

    Raises:
        ValueError: ``instant`` has no time zone.
    """
    return F.timestamp_micros(F.lit(to_micros(instant)))


def date_literal(day: date) -> Column:
    """``day`` (proleptic Gregorian, as Python and Spark SQL count) as a Spark ``date`` literal."""
    return F.date_from_unix_date(F.lit((day - _EPOCH_DAY).days))
