"""Feature statistics computed while an ingest writes its rows (no second read of the data).

:func:`statistics_plan` gives one aggregate per figure (see :mod:`feast_spark.statistics`)
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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.definitions import FeatureTable
from feast_spark.spark.identifiers import quote
from feast_spark.statistics import (
    QUANTILE_ACCURACY,
    QUANTILE_PROBABILITIES,
    QUANTILE_SAMPLE_TARGET,
    FeatureStatistics,
    IngestStatistics,
)
from feast_spark.types import ValueType

ROWS = "s_rows"
_NUMERIC = {ValueType.INT32, ValueType.INT64, ValueType.FLOAT, ValueType.DOUBLE}
_FLOATING = {ValueType.FLOAT, ValueType.DOUBLE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StatisticsPlan:
    """The figures of a feature table: helper columns, and aggregates over them (SQL text).

    The helpers (each feature's value made ready: NaN left out, a length, a sampled copy) are
    computed by a projection, which Spark compiles with the rest of the pass; the aggregates
    then only read columns (``percentile_approx`` evaluates its input interpreted, row by row).
    Both are SQL text, parsed by the JVM in one call each: built as Python ``Column`` objects,
    the few hundred calls to the JVM took longer than the aggregates of a 10,000-row ingest.

    Attributes:
        helpers: Expressions to add to the rows, named ``_fs*``.
        aggregates: The aggregates, named ``s<i>_<figure>`` (see :func:`to_statistics`).
    """

    helpers: tuple[str, ...]
    aggregates: tuple[str, ...]

    def widen(self, rows: DataFrame) -> DataFrame:
        """``rows`` with the helper columns (for an ``agg`` of :meth:`aggregate_columns`)."""
        return rows.selectExpr("*", *self.helpers)

    def aggregate_columns(self) -> list[Column]:
        """The aggregates as columns."""
        return [F.expr(aggregate) for aggregate in self.aggregates]

    def observe(self, rows: DataFrame, observation: Observation, *more: Column) -> DataFrame:
        """``rows`` (same columns) with the figures (and ``more``) observed into ``observation``.

        Collected as the next action reads the rows.
        """
        observed = self.widen(rows).observe(observation, *more, *self.aggregate_columns())
        return observed.select(*[quote(c) for c in rows.columns])


def statistics_plan(
    table: FeatureTable, valid: str | None = None, *, sample: int = 1
) -> StatisticsPlan:
    """The helpers and aggregates of every feature of ``table`` (and the row count).

    Counts, nulls, min, max and mean are exact, over every row. Quantiles are computed from a
    sample of one row in ``sample``, chosen by a hash of the row's keys and event time (a rerun
    picks the same rows): ``percentile_approx`` costs far more per value than the rest (over
    every row of a 2M-row ingest it made the ingest 2-3x slower); see :func:`quantile_sample`.

    Args:
        table: The feature table (its features are columns of the rows aggregated).
        valid: A SQL condition: only rows where it holds count (None: every row), so the
            aggregates can ride on a pass over rows that also holds rejected ones.
        sample: One row in this many feeds the quantiles (1: every row).
    """
    helpers = ["1 AS _fs_row" if valid is None else f"CASE WHEN {valid} THEN 1 END AS _fs_row"]
    aggregates = [f"count(_fs_row) AS {ROWS}"]
    sampled = "true"
    if sample > 1:
        keys = ", ".join(quote(name) for name in (*table.entities, EVENT_TIMESTAMP))
        helpers.append(f"pmod(xxhash64({keys}), {int(sample)}) = 0 AS _fs_sampled")
        sampled = "_fs_sampled"
    for i, feature in enumerate(table.features):
        column = quote(feature.name)
        if valid is not None:
            column = f"CASE WHEN {valid} THEN {column} END"
        more_helpers, more_aggregates = _feature_plan(i, feature.dtype, column, sampled)
        helpers += more_helpers
        aggregates += more_aggregates
    return StatisticsPlan(tuple(helpers), tuple(aggregates))


_QUANTILES = "array({})".format(", ".join(f"CAST({p!r} AS DOUBLE)" for p in QUANTILE_PROBABILITIES))


def _feature_plan(
    i: int, dtype: ValueType, column: str, sampled: str
) -> tuple[list[str], list[str]]:
    prefix, name = f"s{i}", f"_fs{i}"
    helpers = [f"{column} AS {name}_c"]
    aggregates = [f"count({name}_c) AS {prefix}_count"]
    value = f"{name}_v"
    if dtype in _NUMERIC or dtype is ValueType.BOOL:
        if dtype in _FLOATING:
            # NaN sorts above every number and NaN or infinity poisons a mean (and JSON):
            # left out, and counted apart.
            finite = (
                f"CASE WHEN NOT isnan({column}) AND abs({column}) != CAST('Infinity' AS DOUBLE)"
                f" THEN CAST({column} AS DOUBLE) END"
            )
            helpers.append(f"{finite} AS {value}")
            aggregates.append(f"count({value}) AS {prefix}_finite")
        else:
            cast = "INT" if dtype is ValueType.BOOL else "DOUBLE"
            helpers.append(f"CAST({column} AS {cast}) AS {value}")
        # Integers: min and max of the column itself, so they stay exact integers.
        exact = dtype in _NUMERIC and dtype not in _FLOATING
        original = f"{name}_c" if exact else value
        aggregates += [
            f"min({original}) AS {prefix}_min",
            f"max({original}) AS {prefix}_max",
            f"avg({value}) AS {prefix}_mean",
        ]
        if dtype in _NUMERIC:
            helpers.append(f"CASE WHEN {sampled} THEN {value} END AS {name}_q")
            aggregates.append(
                f"percentile_approx({name}_q, {_QUANTILES}, {QUANTILE_ACCURACY}) AS {prefix}_q"
            )
        return helpers, aggregates
    if dtype is ValueType.UNIX_TIMESTAMP:
        # Micros, not timestamps: Python would turn those into local, naive datetimes.
        helpers.append(f"unix_micros({column}) AS {value}")
        aggregates += [f"min({value}) AS {prefix}_min", f"max({value}) AS {prefix}_max"]
        return helpers, aggregates
    # Strings, bytes and lists: their length (characters, bytes, elements).
    length = f"size({column})" if dtype.is_list else f"length({column})"
    helpers.append(f"CASE WHEN {column} IS NOT NULL THEN {length} END AS {value}")
    aggregates += [
        f"min({value}) AS {prefix}_min",
        f"max({value}) AS {prefix}_max",
        f"avg(CAST({value} AS DOUBLE)) AS {prefix}_mean",
    ]
    return helpers, aggregates


def quantile_sample(rows: DataFrame, target: int = QUANTILE_SAMPLE_TARGET) -> int:
    """One row in this many should feed the quantiles, for about ``target`` sampled rows.

    From Spark's size estimate of ``rows`` (the source files' bytes: no pass over the data)
    at 8 bytes a column, which overestimates a row of compressed files, so the sample is
    larger than ``target`` rather than smaller. Small sources (and sources of unknown size)
    give 1: every row.
    """
    try:
        plan = rows._jdf.queryExecution().optimizedPlan()
        size = int(str(plan.stats().sizeInBytes()))  # a Python int or a JVM BigInt
    except Exception:  # pragma: no cover - an estimate is an optimisation only
        return 1
    if size >= 2**62:  # Spark's "unknown" (Long.MaxValue and above)
        return 1
    estimated_rows = size // (8 * max(len(rows.columns), 1))
    return max(1, estimated_rows // max(target, 1))


def to_statistics(
    values: Mapping[str, Any],
    table: FeatureTable,
    *,
    version: int,
    job_id: str,
    ingested_at: datetime,
    mode: str,
) -> IngestStatistics:
    """The record of one ingest from the aggregates of :func:`statistics_plan`."""
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
                # Spark sums doubles: finite values near 1.7e308 give an infinite mean.
                mean=None if mean is None or not math.isfinite(mean) else float(mean),
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
