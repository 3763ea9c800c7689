"""Feature statistics computed while an ingest writes its rows (no second read of the data).

:func:`feature_figures` gives what collects the figures (see :mod:`feast_spark.statistics`) as
rows flow through the write, folded into the write's own tasks and collected when it finishes,
or into a pass that runs anyway (add mode's time-range pass):

- :class:`FedStatistics`, when feast-spark's jar is on the classpath (every Spark that
  :mod:`feast_spark.spark_conf` configures): a condition, true for every row, whose generated
  code hands each value to a JVM accumulator (``conf/jvm/src``), in the stage's own loop.
- :class:`StatisticsPlan` otherwise (a Spark started without our jar): SQL aggregates attached
  with ``DataFrame.observe``, which Spark evaluates row by row outside generated code, at
  about three times the cost. Both give the same figures.

:func:`to_statistics` turns the collected figures into an
:class:`~feast_spark.statistics.IngestStatistics`, which
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

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
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
_LOG = logging.getLogger(__name__)
_JVM_PACKAGE = "io.feastspark"


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

    def aggregate(self, rows: DataFrame, *more: Column) -> dict[str, Any]:
        """One pass over ``rows``: ``more`` and the figures, by name."""
        row = self.widen(rows).agg(*more, *self.aggregate_columns()).first()
        return {} if row is None else row.asDict()

    def figures(self, collected: Mapping[str, Any]) -> Mapping[str, Any]:
        """The figures of the last pass, from what it collected (observed or aggregated)."""
        return collected


class FedStatistics:
    """The figures of a feature table, fed to a JVM accumulator by the stage's generated code.

    Each :meth:`observe` or :meth:`aggregate` attaches a new accumulator (a retried write
    starts from nothing), whose figures :meth:`figures` returns after the pass. The accumulator
    keeps them per partition, so a retried task or a re-run stage counts its rows once. Same
    figures, names and sampled rows as :func:`statistics_plan`; the quantiles are exact over
    the sampled values (``percentile_approx``'s rule), where the plan's are within
    1/``QUANTILE_ACCURACY`` of them in rank.
    """

    def __init__(
        self,
        session: SparkSession,
        table: FeatureTable,
        valid: str | None,
        sample: int,
        *,
        sample_target: int = QUANTILE_SAMPLE_TARGET,
    ) -> None:
        """See :func:`feature_figures`; ``sample_target``: the sampled values a partition keeps.

        The quantiles come from at most twice ``sample_target`` values (a uniform sample by
        hash), however many rows a source of unknown size turns out to hold.
        """
        self._session = session
        self._table = table
        self._valid = valid
        self._sample = sample
        self._sample_target = sample_target
        self._accumulator: Any = None

    def observe(self, rows: DataFrame, observation: Observation, *more: Column) -> DataFrame:
        """``rows`` feeding the figures, ``more`` observed into ``observation``, as they pass."""
        # Fed above the observation: Spark pushes a filter below the projections under it,
        # where ``valid`` would compute the columns it reads (a reject reason) a second time.
        return self._fed(rows.observe(observation, *more))

    def aggregate(self, rows: DataFrame, *more: Column) -> dict[str, Any]:
        """One pass over ``rows``: ``more`` and the figures, by name."""
        # An action must run the feeding pass, even when nothing else is asked for.
        row = self._fed(rows).agg(*(more or (F.count(F.lit(1)).alias("_fs_pass"),))).first()
        values = {} if row is None or not more else row.asDict()
        return {**values, **self.figures({})}

    def figures(self, collected: Mapping[str, Any]) -> Mapping[str, Any]:
        """The figures of the last pass (``collected`` holds none of them)."""
        if self._accumulator is None:
            return {}
        values: dict[str, Any] = json.loads(self._accumulator.figures())
        return values

    def _fed(self, rows: DataFrame) -> DataFrame:
        jvm = self._session._jvm
        if jvm is None:  # pragma: no cover - a classic session has one
            raise RuntimeError("feature statistics need a classic (py4j) Spark session")
        package = getattr(jvm, _JVM_PACKAGE)
        # Two calls to the JVM in all: a call per column cost more than a small ingest's figures.
        features = self._table.features
        accumulator = package.FeatureStatistics.register(
            self._session.sparkContext._jsc.sc(),
            ",".join(str(_jvm_kind(feature.dtype)) for feature in features),
            ",".join(repr(probability) for probability in QUANTILE_PROBABILITIES),
            self._sample,
            self._sample_target,
        )
        values = "".join(_jvm_value(f.dtype, quote(f.name)) + "\0" for f in features)
        condition = package.FeedStatistics.condition(
            accumulator, self._valid or "true", _sampling_hash(self._table), values
        )
        self._accumulator = accumulator
        return rows.where(Column(condition))


FeatureFigures = StatisticsPlan | FedStatistics
"""What collects an ingest's feature statistics (see :func:`feature_figures`)."""


def feature_figures(
    session: SparkSession, table: FeatureTable, valid: str | None = None, *, sample: int = 1
) -> FeatureFigures:
    """The fastest way this Spark has to compute ``table``'s figures (module docstring).

    Args:
        session: The session whose JVM runs the ingest.
        table: The feature table.
        valid: A SQL condition: only rows where it holds count (None: every row).
        sample: One row in this many feeds the quantiles (a power of two, see
            :func:`quantile_sample`).
    """
    if has_own_jar(session):
        return FedStatistics(session, table, valid, sample)
    _LOG.warning(
        "feast-spark's jar is not on this Spark's classpath (spark.jars): feature statistics "
        "are computed by Spark's observe instead, at several times the cost. Start Spark with "
        "feast_spark.spark.session.build_spark_session or ./spark-submit.sh to have it"
    )
    return statistics_plan(table, valid, sample=sample)


def has_own_jar(session: SparkSession) -> bool:
    """Whether feast-spark's JVM classes (``feast-spark-jvm.jar``) can be loaded by the JVM."""
    jvm = session._jvm
    if jvm is None:  # pragma: no cover - a classic session has one
        return False
    try:
        jvm.java.lang.Class.forName(
            f"{_JVM_PACKAGE}.FeedStatistics",
            False,
            jvm.Thread.currentThread().getContextClassLoader(),
        )
    except Exception:  # py4j's error for a missing class
        return False
    return True


# The flags of conf/jvm/src/io/feastspark/FeatureStatistics.java.
_KIND_LONG, _KIND_MEAN, _KIND_QUANTILES, _KIND_FINITE = 1, 2, 4, 8


def _jvm_kind(dtype: ValueType) -> int:
    if dtype in _FLOATING:
        return _KIND_FINITE | _KIND_MEAN | _KIND_QUANTILES
    if dtype in _NUMERIC:
        return _KIND_LONG | _KIND_MEAN | _KIND_QUANTILES
    if dtype is ValueType.UNIX_TIMESTAMP:
        return _KIND_LONG
    return _KIND_LONG | _KIND_MEAN  # a boolean (0 or 1), or a length


def _jvm_value(dtype: ValueType, column: str) -> str:
    """The SQL value fed for a feature: a BIGINT, or a DOUBLE for floating features."""
    if dtype in _FLOATING:
        return f"CAST({column} AS DOUBLE)"
    if dtype in _NUMERIC:
        return f"CAST({column} AS BIGINT)"
    if dtype is ValueType.BOOL:
        return f"CAST(CAST({column} AS INT) AS BIGINT)"
    if dtype is ValueType.UNIX_TIMESTAMP:
        return f"unix_micros({column})"
    length = f"size({column})" if dtype.is_list else f"length({column})"
    return f"CAST(CASE WHEN {column} IS NOT NULL THEN {length} END AS BIGINT)"


def _sampling_hash(table: FeatureTable) -> str:
    """A row's hash for sampling: rows whose hash is 0 modulo ``sample`` feed the quantiles."""
    keys = ", ".join(quote(name) for name in (*table.entities, EVENT_TIMESTAMP))
    return f"xxhash64({keys})"


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
        sample: One row in this many feeds the quantiles (a power of two; 1: every row).
    """
    helpers = ["1 AS _fs_row" if valid is None else f"CASE WHEN {valid} THEN 1 END AS _fs_row"]
    aggregates = [f"count(_fs_row) AS {ROWS}"]
    sampled = "true"
    if sample > 1:
        helpers.append(f"({_sampling_hash(table)} & {int(sample) - 1}) = 0 AS _fs_sampled")
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
    """One row in this many (a power of two) should feed the quantiles, for about ``target``.

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
    every = max(1, estimated_rows // max(target, 1))
    return 1 << (every.bit_length() - 1)  # a power of two: a mask picks the rows


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
