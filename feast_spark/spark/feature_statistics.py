"""Feature statistics computed while an ingest writes its rows (no second read of the data).

:func:`statistics_columns` gives one aggregate per figure (see :mod:`feast_spark.statistics`)
that Spark evaluates as rows flow through the write: attached with ``DataFrame.observe``, the
aggregates are folded into the write's own tasks and collected when it finishes, or added to a
pass that runs anyway (add mode's time-range pass). :func:`to_statistics` turns the collected row
into an :class:`~feast_spark.statistics.IngestStatistics`, which
:func:`feast_spark.statistics.write_statistics` writes beside the offline table.

Example (feature ``trips`` INT64, rows 3, 5, null)::

    aggregate        ->  figure
    s0_count  2          count 2, nulls 1 (rows 3 - count 2)
    s0_min    3          min 3
    s0_max    5          max 5
    s0_mean   4.0        mean 4.0
    s0_q      [3,...]    quantiles (percentile_approx at QUANTILE_PROBABILITIES)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.definitions import FeatureTable
from feast_spark.spark.identifiers import quote
from feast_spark.statistics import (
    QUANTILE_ACCURACY,
    QUANTILE_PROBABILITIES,
    FeatureStatistics,
    IngestStatistics,
)
from feast_spark.types import ValueType

ROWS = "s_rows"
_NUMERIC = {ValueType.INT32, ValueType.INT64, ValueType.FLOAT, ValueType.DOUBLE}
_FLOATING = {ValueType.FLOAT, ValueType.DOUBLE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def statistics_columns(table: FeatureTable, valid: Column | None = None) -> list[Column]:
    """The aggregates of every feature of ``table`` (and the row count), named ``s<i>_<figure>``.

    Args:
        table: The feature table (its features are columns of the rows aggregated).
        valid: Only rows where this holds count (None: every row), so the aggregates can ride
            on a pass over rows that also holds rejected ones.
    """
    row = F.lit(1) if valid is None else F.when(valid, F.lit(1))
    columns = [F.count(row).alias(ROWS)]
    for i, feature in enumerate(table.features):
        column = F.col(quote(feature.name))
        if valid is not None:
            column = F.when(valid, column)
        columns += _feature_columns(f"s{i}", feature.dtype, column)
    return columns


def _feature_columns(prefix: str, dtype: ValueType, column: Column) -> list[Column]:
    count = F.count(column).alias(f"{prefix}_count")
    if dtype in _NUMERIC or dtype is ValueType.BOOL:
        value = column.cast("int") if dtype is ValueType.BOOL else column
        extra = []
        if dtype in _FLOATING:
            # NaN sorts above every number and NaN or infinity poisons a mean (and JSON):
            # left out, and counted apart.
            value = F.when(~F.isnan(column) & (F.abs(column) != float("inf")), column)
            extra.append(F.count(value).alias(f"{prefix}_finite"))
        figures = [
            count,
            *extra,
            F.min(value).alias(f"{prefix}_min"),
            F.max(value).alias(f"{prefix}_max"),
            F.avg(value.cast("double")).alias(f"{prefix}_mean"),
        ]
        if dtype in _NUMERIC:
            probabilities = list(QUANTILE_PROBABILITIES)
            figures.append(
                F.percentile_approx(value.cast("double"), probabilities, QUANTILE_ACCURACY)
                .alias(f"{prefix}_q")
            )  # fmt: skip
        return figures
    if dtype is ValueType.UNIX_TIMESTAMP:
        # Micros, not timestamps: Python would turn those into local, naive datetimes.
        micros = F.unix_micros(column)
        return [count, F.min(micros).alias(f"{prefix}_min"), F.max(micros).alias(f"{prefix}_max")]
    # Strings, bytes and lists: their length (characters, bytes, elements).
    length = F.size(column) if dtype.is_list else F.length(column)
    length = F.when(column.isNotNull(), length)
    return [
        count,
        F.min(length).alias(f"{prefix}_min"),
        F.max(length).alias(f"{prefix}_max"),
        F.avg(length.cast("double")).alias(f"{prefix}_mean"),
    ]


def to_statistics(
    values: Mapping[str, Any],
    table: FeatureTable,
    *,
    version: int,
    job_id: str,
    ingested_at: datetime,
    mode: str,
) -> IngestStatistics:
    """The record of one ingest from the aggregates of :func:`statistics_columns`."""
    rows = int(values[ROWS] or 0)
    features = []
    for i, feature in enumerate(table.features):
        prefix, dtype = f"s{i}", feature.dtype
        count = int(values[f"{prefix}_count"] or 0)
        finite = values.get(f"{prefix}_finite")
        lowest, highest = values.get(f"{prefix}_min"), values.get(f"{prefix}_max")
        if dtype is ValueType.UNIX_TIMESTAMP:
            lowest, highest = _instant(lowest), _instant(highest)
        mean = values.get(f"{prefix}_mean")
        quantiles = values.get(f"{prefix}_q")
        features.append(
            FeatureStatistics(
                name=feature.name,
                value_type=dtype.value,
                measure=_measure(dtype),
                count=count,
                nulls=rows - count,
                non_finite=0 if finite is None else count - int(finite),
                min=lowest,
                max=highest,
                mean=None if mean is None else float(mean),
                quantiles=None if quantiles is None else tuple(float(q) for q in quantiles),
            )
        )
    return IngestStatistics(
        version=version,
        job_id=job_id,
        ingested_at=ingested_at,
        mode=mode,
        rows=rows,
        features=tuple(features),
    )


def _measure(dtype: ValueType) -> str:
    if dtype is ValueType.UNIX_TIMESTAMP:
        return "time"
    if dtype in _NUMERIC or dtype is ValueType.BOOL:
        return "value"
    return "length"


def _instant(micros: Any) -> str | None:
    if micros is None:
        return None
    moment: datetime = _EPOCH + timedelta(microseconds=int(micros))
    return moment.isoformat()
