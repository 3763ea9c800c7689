"""The latest row per entity key, as online materialization writes it.

Rules, the same as the point-in-time join's choice among candidates:

1. Only rows with ``start <= event_timestamp < end`` count (either bound may be omitted), and only
   rows whose key columns and ``event_timestamp`` are all non-null.
2. Per key, the row with the latest ``event_timestamp`` wins, then the latest ``created_timestamp``
   (null counts as the oldest). If rows are still tied, the one whose remaining columns are
   greatest wins, comparing them in the frame's column order with Spark's ordering (null first,
   i.e. smallest). The result depends only on the rows, never on partitioning.
3. The winning row comes out whole and as stored, nulls included.

Algorithm: one ``max`` aggregate of the struct ``(event_timestamp, created_timestamp, other
columns...)`` grouped by key. Struct ordering is exactly rule 2, and unlike a ``row_number``
window the aggregate is partially computed before the shuffle, so each input partition sends at
most one row per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.online.base import to_micros
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.schema import check_offline_rows, check_orderable

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_LATEST = "_latest_row"


def latest_rows(
    rows: DataFrame,
    entity_columns: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    table_name: str = "latest_rows input",
) -> DataFrame:
    """Keep, per entity key, the latest row whose event time lies in ``[start, end)``.

    Rules are in the module docstring: latest ``event_timestamp``, then latest
    ``created_timestamp``, then greatest remaining columns in column order.

    Args:
        rows: Offline rows: the entity columns, ``event_timestamp`` and ``created_timestamp``
            (both ``TimestampType``) and any other columns (the features).
        entity_columns: The key columns.
        start: Inclusive lower bound on ``event_timestamp``; must be timezone-aware.
        end: Exclusive upper bound on ``event_timestamp``; must be timezone-aware.
        table_name: Names the input in error messages.

    Returns:
        One row per distinct non-null key, with the columns of ``rows`` in their order.

    Raises:
        TypeError: ``rows`` is not a DataFrame, or a bound is not a datetime.
        ValueError: A bound is naive, ``start`` is not before ``end``, or ``entity_columns`` is
            empty or repeats a name.
        SourceSchemaError: A column is missing or has the wrong type.

    Example:
        ``latest_rows(rows, ["driver"], end=datetime(2021, 1, 2, tzinfo=UTC))``::

            +------+----+-------------------+-----------------+
            |driver|rate|    event_timestamp|created_timestamp|
            +------+----+-------------------+-----------------+
            |     1| 0.5|2021-01-01 09:00:00|            09:00|
            |     1|null|2021-01-01 10:00:00|            10:00|  <- latest: kept, null and all
            |     2| 0.7|2021-01-01 09:00:00|            09:00|
            |     2| 0.8|2021-01-01 09:00:00|            09:30|  <- created later wins the tie
            |     2| 0.9|2021-01-02 00:00:00|            00:00|  (at end: excluded)
            +------+----+-------------------+-----------------+
                                    ↓
            +------+----+-------------------+-----------------+
            |driver|rate|    event_timestamp|created_timestamp|
            +------+----+-------------------+-----------------+
            |     1|null|2021-01-01 10:00:00|            10:00|
            |     2| 0.8|2021-01-01 09:00:00|            09:30|
            +------+----+-------------------+-----------------+

    """
    from pyspark.sql import functions as sf

    keys = list(entity_columns)
    others = _check_inputs(rows, keys, start, end, table_name)

    keep: Column = sf.col(EVENT_TIMESTAMP).isNotNull()
    for key in keys:
        keep = keep & sf.col(_quote(key)).isNotNull()
    # Bounds as microsecond literals: exact instants whatever the session time zone, and
    # constant-folded so Delta/parquet can skip files on statistics.
    if start is not None:
        keep = keep & (sf.col(EVENT_TIMESTAMP) >= sf.timestamp_micros(sf.lit(to_micros(start))))
    if end is not None:
        keep = keep & (sf.col(EVENT_TIMESTAMP) < sf.timestamp_micros(sf.lit(to_micros(end))))

    # Positional field names: column names are free to be anything, struct fields are not.
    ordered = [EVENT_TIMESTAMP, CREATED_TIMESTAMP, *others]
    latest = sf.max(sf.struct(*[sf.col(_quote(c)).alias(f"c{i}") for i, c in enumerate(ordered)]))
    grouped = (
        rows.filter(keep).groupBy(*[sf.col(_quote(k)) for k in keys]).agg(latest.alias(_LATEST))
    )
    by_name = {c: sf.col(_LATEST).getField(f"c{i}").alias(c) for i, c in enumerate(ordered)}
    return grouped.select(*[by_name.get(c, sf.col(_quote(c))) for c in rows.columns])


def _check_inputs(
    rows: DataFrame,
    keys: list[str],
    start: datetime | None,
    end: datetime | None,
    table_name: str,
) -> list[str]:
    """Validate the arguments; return the non-key, non-timestamp columns in frame order."""
    from pyspark.sql import DataFrame

    if not isinstance(rows, DataFrame):
        raise TypeError(f"rows must be a pyspark DataFrame, got {type(rows)!r}")
    if isinstance(keys, str) or not keys:
        raise ValueError(f"entity_columns must name at least one column, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"entity_columns repeat a name: {keys!r}")
    for name, bound in (("start", start), ("end", end)):
        if bound is None:
            continue
        if not isinstance(bound, datetime):
            raise TypeError(f"{name} must be a datetime, got {type(bound)!r}")
        if bound.tzinfo is None or bound.utcoffset() is None:
            raise ValueError(
                f"{name} = {bound.isoformat()} has no time zone; pass an aware datetime, "
                "e.g. datetime(..., tzinfo=UTC)"
            )
    if start is not None and end is not None and not start < end:
        raise ValueError(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")

    types = check_offline_rows(rows, keys, table_name, "in the rows")
    others = [c for c in types if c not in keys and c not in (EVENT_TIMESTAMP, CREATED_TIMESTAMP)]
    for column in others:
        check_orderable(types, column, table_name)
    return others
