"""Feature statistics per ingest: what each Delta version of an offline table brought.

Every ingest that commits records one row in ``<offline table path>.statistics``, a small Delta
table beside the offline table (like ``.rejected``), keyed by the offline table's version:

==============  ==============================================================================
column          meaning
==============  ==============================================================================
version         the offline table's Delta version the ingest committed
job_id          the ingest job
ingested_at     the job's start
mode            ``replace`` or ``add``
rows            rows the statistics describe (see below)
statistics      JSON: ``{"quantile_probabilities": [...], "features": [{...}, ...]}``
==============  ==============================================================================

Per feature: ``count`` (non-null values), ``nulls``, ``non_finite`` (NaN and infinities of
floating-point features, left out of the other figures), ``min``, ``max``, ``mean`` and, for
numeric features, approximate ``quantiles`` at :data:`QUANTILE_PROBABILITIES` (Spark's
``percentile_approx``: each is a value of the data whose rank is within
``rows / QUANTILE_ACCURACY`` of the exact one).
What ``min``/``max``/``mean`` measure depends on the type (``measure``):

===========================  =========  ====================================================
value type                   measure    min / max / mean of
===========================  =========  ====================================================
INT32 INT64 FLOAT DOUBLE     value      the values (and quantiles)
BOOL                         value      the values as 0/1 (mean: the share of ``true``)
UNIX_TIMESTAMP               time       the instants (ISO text); no mean
STRING BYTES                 length     characters / bytes per value
``*_LIST``                   length     elements per list
===========================  =========  ====================================================

The rows described are those the ingest committed: in replace mode every valid row of the
window; in add mode the valid rows of the source, rows the table already held included (a Delta
``MERGE`` does not expose which of them it inserted). Rejected rows are never included. They are
computed while the rows are written, from the same pass (``DataFrame.observe``), or in add mode
from the pass that finds the source's time range; see :mod:`feast_spark.spark.feature_statistics`.

Why a table beside and not the commit's own ``userMetadata``: the figures exist only once the
write's Spark job has run, and Delta fixes a commit's ``userMetadata`` before that job starts.
A commit after the data commit would take a version of the offline table itself. The table
beside is keyed by version all the same, is read without Spark (the ``deltalake`` package), and
travels with the offline table when its folder's parent is copied.

Drift (:func:`drift_flags`) compares each ingest with the one before it: a feature is flagged when
its null fraction moved by more than a threshold (absolute), or when its median left the previous
ingest's inter-quartile range ``[q25, q75]``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from feast_spark.errors import StatisticsReadError

STATISTICS_SUFFIX = ".statistics"
QUANTILE_PROBABILITIES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: percentile_approx's accuracy: a quantile's rank error is at most rows / accuracy.
QUANTILE_ACCURACY = 1000
DEFAULT_NULL_THRESHOLD = 0.05
STATISTICS_DDL = (
    "version bigint, job_id string, ingested_at timestamp, mode string, rows bigint, "
    "statistics string"
)


def statistics_table_path(table_path: str) -> str:
    """Where the statistics of the offline table at ``table_path`` go (``<path>.statistics``)."""
    return table_path.rstrip("/") + STATISTICS_SUFFIX


@dataclass(frozen=True)
class FeatureStatistics:
    """One feature's figures in one ingest (see the module docstring for each field).

    Attributes:
        name: The feature.
        value_type: Its ValueType name.
        measure: ``value``, ``time`` or ``length``: what ``min``, ``max`` and ``mean`` measure.
        count: Non-null values.
        nulls: Null values.
        non_finite: NaN and infinite values (floating-point features; 0 otherwise).
        min: Smallest (None without values).
        max: Largest.
        mean: Average (None without values, and for instants).
        quantiles: Approximate quantiles at the record's probabilities (numeric features only).
    """

    name: str
    value_type: str
    measure: str
    count: int
    nulls: int
    non_finite: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    quantiles: tuple[float, ...] | None = None

    @property
    def null_fraction(self) -> float | None:
        """``nulls / (count + nulls)``; None without rows."""
        rows = self.count + self.nulls
        return self.nulls / rows if rows else None


@dataclass(frozen=True)
class IngestStatistics:
    """The statistics one ingest recorded, keyed by the offline table version it committed.

    Attributes:
        version: The offline table's Delta version.
        job_id: The ingest job.
        ingested_at: The job's start (UTC).
        mode: ``replace`` or ``add``.
        rows: Rows described.
        features: Per feature, in table order.
        quantile_probabilities: The probabilities of every feature's ``quantiles``.
    """

    version: int
    job_id: str
    ingested_at: datetime
    mode: str
    rows: int
    features: tuple[FeatureStatistics, ...]
    quantile_probabilities: tuple[float, ...] = QUANTILE_PROBABILITIES

    def feature(self, name: str) -> FeatureStatistics | None:
        """The figures of feature ``name`` (None if this ingest had no such feature)."""
        return next((f for f in self.features if f.name == name), None)

    def quantile(self, feature: FeatureStatistics, probability: float) -> float | None:
        """``feature``'s quantile at ``probability`` (one of the record's probabilities)."""
        if feature.quantiles is None or probability not in self.quantile_probabilities:
            return None
        return feature.quantiles[self.quantile_probabilities.index(probability)]

    def statistics_json(self) -> str:
        """The ``statistics`` column: probabilities and features as compact JSON."""
        return json.dumps(
            {
                "quantile_probabilities": list(self.quantile_probabilities),
                "features": [_feature_dict(f) for f in self.features],
            },
            separators=(",", ":"),
            allow_nan=False,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (``-o json``)."""
        return {
            "version": self.version,
            "job_id": self.job_id,
            "ingested_at": self.ingested_at,
            "mode": self.mode,
            "rows": self.rows,
            "quantile_probabilities": list(self.quantile_probabilities),
            "features": [_feature_dict(f) for f in self.features],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> IngestStatistics:
        """Read one row of the statistics table."""
        document = json.loads(row["statistics"])
        ingested_at = row["ingested_at"]
        if isinstance(ingested_at, datetime) and ingested_at.tzinfo is None:
            ingested_at = ingested_at.replace(tzinfo=UTC)
        return cls(
            version=int(row["version"]),
            job_id=str(row["job_id"]),
            ingested_at=ingested_at,
            mode=str(row["mode"]),
            rows=int(row["rows"]),
            features=tuple(_feature_from(f) for f in document["features"]),
            quantile_probabilities=tuple(document["quantile_probabilities"]),
        )


def _feature_dict(feature: FeatureStatistics) -> dict[str, Any]:
    data = asdict(feature)
    data["quantiles"] = None if feature.quantiles is None else list(feature.quantiles)
    return data


def _feature_from(data: Mapping[str, Any]) -> FeatureStatistics:
    quantiles = data.get("quantiles")
    return FeatureStatistics(
        name=data["name"],
        value_type=data["value_type"],
        measure=data["measure"],
        count=int(data["count"]),
        nulls=int(data["nulls"]),
        non_finite=int(data.get("non_finite", 0)),
        min=data.get("min"),
        max=data.get("max"),
        mean=data.get("mean"),
        quantiles=None if quantiles is None else tuple(quantiles),
    )


# --- drift ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftFlag:
    """A feature whose distribution moved between two consecutive ingests.

    Attributes:
        feature: The feature.
        version: The later ingest's version.
        previous_version: The earlier one's.
        rule: ``nulls`` (null fraction moved beyond the threshold) or ``median`` (the median
            left the previous inter-quartile range).
        detail: What moved, in words.
    """

    feature: str
    version: int
    previous_version: int
    rule: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


def drift_flags(
    history: Sequence[IngestStatistics], null_threshold: float = DEFAULT_NULL_THRESHOLD
) -> list[DriftFlag]:
    """Flag the features that moved between each ingest of ``history`` and the one before it.

    Rules (a feature new in an ingest, or an ingest without rows, is never flagged):

    - ``nulls``: ``|null fraction - previous null fraction| > null_threshold``;
    - ``median``: the median is below the previous q25 or above the previous q75 (numeric
      features; a constant previous feature has an empty range, so any change flags).

    Example (``null_threshold=0.05``)::

        version  trips nulls  trips q25/q50/q75      ->  flags
        4        1%           10 / 20 / 30
        5        2%           12 / 21 / 31               (none)
        6        9%           40 / 45 / 50               v6 nulls (2% -> 9%), v6 median (45 > 31)

    Args:
        history: Ingests in ascending version order.
        null_threshold: Largest absolute move of the null fraction that is not flagged.
    """
    flags: list[DriftFlag] = []
    for before, after in itertools.pairwise(history):
        for feature in after.features:
            previous = before.feature(feature.name)
            if previous is None:
                continue
            flags.extend(_feature_flags(before, previous, after, feature, null_threshold))
    return flags


def _feature_flags(
    before: IngestStatistics,
    previous: FeatureStatistics,
    after: IngestStatistics,
    feature: FeatureStatistics,
    null_threshold: float,
) -> list[DriftFlag]:
    flags = []
    old, new = previous.null_fraction, feature.null_fraction
    if old is not None and new is not None and abs(new - old) > null_threshold:
        flags.append(
            DriftFlag(
                feature.name,
                after.version,
                before.version,
                "nulls",
                f"null fraction {old:.1%} -> {new:.1%}",
            )
        )
    median = after.quantile(feature, 0.5)
    low, high = before.quantile(previous, 0.25), before.quantile(previous, 0.75)
    if median is not None and low is not None and high is not None and not low <= median <= high:
        flags.append(
            DriftFlag(
                feature.name,
                after.version,
                before.version,
                "median",
                f"median {median:g} outside the previous [q25, q75] = [{low:g}, {high:g}]",
            )
        )
    return flags


# --- reading --------------------------------------------------------------------------------


def read_statistics(table_path: str, versions: int) -> list[IngestStatistics]:
    """The statistics of the last ``versions`` ingests of the offline table at ``table_path``.

    Read with the ``deltalake`` package (no Spark, no JVM). Ascending by version; empty when no
    ingest recorded statistics yet.

    Raises:
        StatisticsReadError: The statistics table exists but cannot be read.
    """
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import TableNotFoundError

    from feast_spark.job_results import pyarrow_uri

    path = statistics_table_path(table_path)
    try:
        table = DeltaTable(pyarrow_uri(path))
    except TableNotFoundError:
        return []
    except Exception as error:  # delta-rs raises plain exceptions for unknown schemes, I/O
        raise StatisticsReadError(path, _one_line(error)) from None
    try:
        query = f"SELECT * FROM s ORDER BY version DESC LIMIT {max(int(versions), 0)}"
        batches = QueryBuilder().register("s", table).execute(query)
        rows = pa.RecordBatchReader.from_stream(batches).read_all().to_pylist()
    except Exception as error:  # e.g. a reader feature delta-rs does not support yet
        raise StatisticsReadError(path, _one_line(error)) from None
    return sorted((IngestStatistics.from_row(row) for row in rows), key=lambda s: s.version)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
