"""Feature statistics per ingest: what each Delta version of an offline table brought.

Every ingest that commits writes one small JSON file, named by the offline table version it
committed, beside the offline table (like ``.rejected``)::

    <offline table path>.statistics/00000000000000000007.json

    {"version": 7, "job_id": "ingest-...", "ingested_at": "2024-01-05T02:00:00+00:00",
     "mode": "replace", "rows": 86400, "quantile_probabilities": [0.01, ..., 0.99],
     "features": [{"name": "conv_rate", "value_type": "DOUBLE", "measure": "value",
                   "count": 85536, "nulls": 864, "min": 0.0001, ..., "quantiles": [...]}]}

Per feature: ``count`` (non-null values), ``nulls``, ``non_finite`` (NaN and infinities of
floating-point features, left out of the other figures), ``min``, ``max``, ``mean`` and, for
numeric features, ``quantiles`` at :data:`QUANTILE_PROBABILITIES` of the values of the rows
sampled (every row of a small ingest, a sample of about :data:`QUANTILE_SAMPLE_TARGET` rows of a
large one, picked by a hash of keys and event time, which adds a sampling error of about
0.5/sqrt(sample)): exact over the sample with feast-spark's jar, else Spark's
``percentile_approx`` (rank error at most 1/:data:`QUANTILE_ACCURACY` of the sample more).
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

Why files beside the table, and not the commit's own ``userMetadata``: the figures exist only
once the write's Spark job has run, and Delta fixes a commit's ``userMetadata`` before that job
starts; a second commit would take a version of the offline table itself. Why not a Delta table
beside it: appending one row costs a Spark job and a commit per ingest (seconds on a busy
machine), a file costs one write, is keyed by the version through its name (a rerun that
commits the same version again cannot happen: each commit is a new version) and is read
without Spark (``pyarrow.fs``: local, ``s3a://``, ``gs://``, ``hdfs://``).

Drift (:func:`drift_flags`) compares each ingest with the one before it: a feature is flagged when
its null fraction moved by more than a threshold (absolute), or when its median left the previous
ingest's inter-quartile range ``[q25, q75]``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from feast_spark.errors import StatisticsReadError
from feast_spark.storage import list_files, read_text, write_text

STATISTICS_SUFFIX = ".statistics"
QUANTILE_PROBABILITIES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: percentile_approx's accuracy: a quantile's rank error is at most rows / accuracy.
QUANTILE_ACCURACY = 1000
#: Quantiles are computed from a sample of about this many rows of a large ingest (chosen by
#: a hash of keys and event time); a small one feeds them every row.
QUANTILE_SAMPLE_TARGET = 20_000
DEFAULT_NULL_THRESHOLD = 0.05
_FILE_NAME = re.compile(r"^\d{20}\.json$")


def statistics_table_path(table_path: str) -> str:
    """The folder of the statistics of the offline table at ``table_path``."""
    return table_path.rstrip("/") + STATISTICS_SUFFIX


def statistics_file(table_path: str, version: int) -> str:
    """The statistics file of ``version`` of the offline table at ``table_path``."""
    return f"{statistics_table_path(table_path)}/{version:020d}.json"


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
        mean: Average (None without values, for instants, and when the sum of finite values
            overflows a double, e.g. values near 1.7e308: JSON holds no infinity).
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

    @property
    def non_finite_fraction(self) -> float | None:
        """``non_finite / (count + nulls)``: NaN and infinities among all rows; None without."""
        rows = self.count + self.nulls
        return self.non_finite / rows if rows else None


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the file's content, ``-o json``)."""
        return {
            "version": self.version,
            "job_id": self.job_id,
            "ingested_at": self.ingested_at.isoformat(),
            "mode": self.mode,
            "rows": self.rows,
            "quantile_probabilities": list(self.quantile_probabilities),
            "features": [_feature_dict(f) for f in self.features],
        }

    def to_json(self) -> str:
        """The statistics file's text (compact; non-finite numbers are never written)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestStatistics:
        """Read :meth:`to_dict`'s output."""
        return cls(
            version=int(data["version"]),
            job_id=str(data["job_id"]),
            ingested_at=datetime.fromisoformat(data["ingested_at"]),
            mode=str(data["mode"]),
            rows=int(data["rows"]),
            features=tuple(_feature_from(f) for f in data["features"]),
            quantile_probabilities=tuple(data["quantile_probabilities"]),
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
        rule: ``nulls`` (null fraction moved beyond the threshold), ``non_finite`` (the share
            of NaN and infinite values did) or ``median`` (the median left the previous
            inter-quartile range).
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
    - ``non_finite``: the same for the share of NaN and infinite values (floating-point
      features: a feature turning NaN has no nulls more, and its quantiles skip NaN);
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
    shares = (
        ("nulls", "null", previous.null_fraction, feature.null_fraction),
        ("non_finite", "NaN/infinite", previous.non_finite_fraction, feature.non_finite_fraction),
    )
    for rule, what, old, new in shares:
        if old is not None and new is not None and abs(new - old) > null_threshold:
            detail = f"{what} fraction {old:.1%} -> {new:.1%}"
            flags.append(DriftFlag(feature.name, after.version, before.version, rule, detail))
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


def write_statistics(table_path: str, statistics: IngestStatistics) -> str:
    """Write ``statistics`` to its file beside the offline table at ``table_path``; its path.

    One write (atomic on a local disk; a single object on object stores).
    """
    path = statistics_file(table_path, statistics.version)
    write_text(path, statistics.to_json())
    return path


def read_statistics(table_path: str, versions: int) -> list[IngestStatistics]:
    """The statistics of the last ``versions`` ingests of the offline table at ``table_path``.

    Read with ``pyarrow.fs`` (no Spark, no JVM). Ascending by version; empty when no ingest
    recorded statistics yet.

    Raises:
        StatisticsReadError: A statistics file or the folder cannot be read.
    """
    folder = statistics_table_path(table_path)
    try:
        names = sorted(n for n in list_files(folder) if _FILE_NAME.match(n))
    except OSError as error:
        raise StatisticsReadError(folder, _one_line(error)) from None
    records = []
    for name in names[-versions:] if versions > 0 else []:
        path = f"{folder}/{name}"
        try:
            text = read_text(path)
        except OSError as error:
            raise StatisticsReadError(path, _one_line(error)) from None
        records.append(_parse_record(path, text))
    return records


def _parse_record(path: str, text: str) -> IngestStatistics:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise StatisticsReadError(path, f"not JSON: {_one_line(error)}", damaged=True) from None
    if not isinstance(data, dict):
        raise StatisticsReadError(
            path, f"not a JSON object but a {type(data).__name__}", damaged=True
        )
    try:
        return IngestStatistics.from_dict(data)
    except KeyError as error:
        raise StatisticsReadError(path, f"missing field {error}", damaged=True) from None
    except (ValueError, TypeError, AttributeError) as error:
        reason = f"not a statistics record: {_one_line(error)}"
        raise StatisticsReadError(path, reason, damaged=True) from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
