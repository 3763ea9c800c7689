"""Read a batch source, pruning the partitions outside the window when the source allows it.

:func:`read_source` reads a :class:`~feast_spark.definitions.BatchSource` (parquet, csv, json
or Delta; a path or glob on any Hadoop URI), pruning files by ``date_partition_column`` when a
window is given. Its rows are then checked and turned into offline rows by
:func:`feast_spark.spark.row_checks.check_rows`.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.definitions import BatchSource, DeltaSource, FileSource
from feast_spark.errors import ConfigError, SourceSchemaError
from feast_spark.spark.identifiers import quote
from feast_spark.spark.literals import date_literal
from feast_spark.spark.schema import find_column
from feast_spark.specs import Window

_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00", "Zulu", "UCT"})


def read_source(
    spark: SparkSession,
    source: BatchSource,
    window: Window | None = None,
    *,
    table_name: str = "?",
) -> DataFrame:
    """Read a batch source, pruning partitions outside ``window`` when the source allows it.

    Rules:

    - ``FileSource``: ``spark.read`` with its ``file_format`` and ``options`` on its path or glob
      (any Hadoop URI). csv defaults to ``header=true`` unless the options say otherwise.
    - ``DeltaSource``: read at one version, pinned here (``versionAsOf`` in ``options`` wins), so
      that every pass of the job sees the same snapshot.
    - With a window and a ``date_partition_column``, only partitions whose date lies within the
      window, widened by one day on each side, are read: the partition date may be a local date,
      and no time zone is more than 14 hours from UTC. Partitions whose value is not a date are
      read too (never lose a row to pruning). Rows are cut to the exact window later, by event
      time, in :func:`~feast_spark.spark.row_checks.check_rows`.

    Example (window ``[2024-01-02, 2024-01-03)``, ``date_partition_column="dt"``)::

        files read:  dt=2024-01-01/  dt=2024-01-02/  dt=2024-01-03/
        not read:    dt=2023-12-30/  dt=2024-01-05/

    Args:
        spark: The session.
        source: Where the rows are.
        window: Event-time window, for partition pruning only.
        table_name: The feature table being loaded, for error messages.

    Returns:
        The raw rows, source column names and types.

    Raises:
        SourceSchemaError: ``date_partition_column`` is not a column of the source.

    """
    options = dict(source.options)
    if isinstance(source, DeltaSource):
        if "versionAsOf" not in options and "timestampAsOf" not in options:
            options["versionAsOf"] = str(_latest_delta_version(spark, source.path))
        frame = spark.read.format("delta").options(**options).load(source.path)
    elif isinstance(source, FileSource):
        if source.file_format == "csv":
            options.setdefault("header", "true")
        frame = spark.read.format(source.file_format).options(**options).load(source.path)
    else:  # pragma: no cover - BatchSource has exactly these two kinds
        raise TypeError(f"unknown source kind {type(source).__name__}")
    if window is not None and source.date_partition_column:
        if find_column(frame.schema, source.date_partition_column) is None:
            raise SourceSchemaError(
                table_name,
                source.date_partition_column,
                f"(date_partition_column) is missing from the source {source.path}; its "
                f"columns are {', '.join(frame.columns)}",
            )
        predicate = _partition_predicate(F.col(quote(source.date_partition_column)), window)
        if predicate is not None:
            frame = frame.where(predicate)
    return frame


def _partition_predicate(column: Column, window: Window) -> Column | None:
    """Partitions that may hold rows of ``window``: one day of slack each side, non-dates kept."""
    day = column.try_cast("date")
    predicate: Column | None = None
    if window.start is not None:
        first = window.start.astimezone(UTC).date() - timedelta(days=1)
        predicate = day >= date_literal(first)
    if window.end is not None:
        last = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)
        upper = day <= date_literal(last)
        predicate = upper if predicate is None else predicate & upper
    return None if predicate is None else day.isNull() | predicate


def _latest_delta_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row is not None else 0


def require_utc_session(spark: SparkSession) -> None:
    """Raise ConfigError unless the session time zone is UTC (dates and zone-less times use it)."""
    zone = spark.conf.get("spark.sql.session.timeZone") or ""
    if zone not in _UTC_ZONES:
        raise ConfigError(
            "spark.sql.session.timeZone",
            zone,
            "Spark session",
            "must be UTC (conf/spark-defaults.conf sets it): timestamps without an offset, "
            "dates and timestamp_ntz values are read in the session time zone",
        )
