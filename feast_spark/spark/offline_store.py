"""The offline store: one Delta table per feature table, written window by window.

Layout of ``<offline root>/<project>/<table>``::

    driver_id  event_timestamp      created_timestamp    trips  rating
    1          2024-01-01 10:00:00  2024-01-02 00:00:00  7      4.5

- Entity keys, ``event_timestamp``, ``created_timestamp`` (the source's; without one, when the
  row's source file was last modified, so reruns write the same value), then the features in
  declaration order; features added later are appended as new columns.
- Not partitioned: laid out by event time through file statistics. Every write replaces an
  event-time window and every later read (point-in-time joins, materialization) asks for an
  event-time range; Delta keeps each file's min and max ``event_timestamp`` and skips files
  outside the range. A window ingest writes files holding only that window's rows, so a table
  loaded window by window is ordered by time as it grows;
  :func:`~feast_spark.spark.maintenance.compact` rewrites a table loaded in one unordered
  backfill into time-ordered files (``OPTIMIZE ZORDER BY event_timestamp``).
- Why not day partitions (this module's first layout): a partitioned write sorts every task by
  day and writes tasks x days files, and most feature tables are far below the size at which
  Delta advises partitioning, so days mean small files (``BENCHMARKS.md`` has the measurements).
  What day partitions gave and this layout does not: Delta checks commit conflicts per
  partition, so on an unpartitioned table two concurrent window writes conflict; the later one
  is retried from its source (see :func:`~feast_spark.spark.offline_writes.write_window`):
  concurrent jobs all land, one after the other. A table still partitioned by ``event_date`` is
  refused before anything is written (:class:`~feast_spark.errors.OfflineLayoutError`), with
  the ``REPLACE TABLE`` statement that rewrites it unpartitioned (:func:`unpartition_statement`).
- File statistics (data skipping) are kept for the keys and timestamps only
  (``delta.dataSkippingStatsColumns``): reads filter on those, and skipping per-feature
  statistics makes writes cheaper.
- Every commit of an ingest job carries its job id as Delta ``userMetadata``, so
  ``DESCRIBE HISTORY`` says which job wrote which version.

What an ingest writes (a window replaced, or rows added) is :mod:`feast_spark.spark.ingest`; the
commits themselves are :mod:`feast_spark.spark.offline_writes`. Writes are idempotent per window
(Delta ``replaceWhere``); commit conflicts between concurrent jobs are retried with backoff
(:mod:`feast_spark.spark.commit_retry`); the schema only grows, by explicit ``ALTER TABLE ADD
COLUMNS`` (``spark.databricks.delta.schema.autoMerge.enabled`` stays false). Rejected rows:
:mod:`feast_spark.spark.rejected_rows`; compaction and vacuum: :mod:`feast_spark.spark.maintenance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T  # noqa: N812

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_DATE, EVENT_TIMESTAMP
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import CompatibilityError, OfflineLayoutError, SourceSchemaError
from feast_spark.online.base import to_micros
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.specs import Window

_STATS_COLUMNS = "delta.dataSkippingStatsColumns"


def offline_schema(table: FeatureTable, entities: Sequence[Entity]) -> T.StructType:
    """The Delta schema of ``table``: keys, timestamps, features."""
    types = {entity.name: entity.value_type.spark_ddl for entity in entities}
    fields = []
    for name in table.entities:
        if name not in types:
            raise SourceSchemaError(
                table.name, name, "is an entity of the table but its definition was not given"
            )
        fields.append(T.StructField(name, _spark_type(types[name])))
    fields += [
        T.StructField(EVENT_TIMESTAMP, T.TimestampType()),
        T.StructField(CREATED_TIMESTAMP, T.TimestampType()),
    ]
    fields += [T.StructField(f.name, _spark_type(f.dtype.spark_ddl)) for f in table.features]
    return T.StructType(fields)


# --- schema -------------------------------------------------------------------------------------


def missing_columns(
    spark: SparkSession, path: str, table: FeatureTable, entities: Sequence[Entity]
) -> list[T.StructField] | None:
    """Columns the Delta table at ``path`` lacks, or None when there is no table yet.

    Commits nothing: reads the table's schema from its log.

    Raises:
        OfflineLayoutError: The table is partitioned by ``event_date`` (the first layout).
        CompatibilityError: A column of the definition has another type in the table, or the
            table is partitioned by another column (it was not written by feast-spark).
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    partitions = _partition_columns(spark, path)
    if partitions == [EVENT_DATE]:
        raise OfflineLayoutError(
            table.name,
            path,
            f"partitioned by {EVENT_DATE}",
            unpartition_statement(spark, path),
        )
    if partitions:
        raise CompatibilityError("feature table", table.name, "partitioning", partitions, "none")
    existing = {f.name: f for f in spark.read.format("delta").load(path).schema.fields}
    missing = []
    for field in offline_schema(table, entities).fields:
        have = existing.get(field.name)
        if have is None:
            missing.append(field)
        elif have.dataType != field.dataType:
            raise CompatibilityError(
                "feature table",
                table.name,
                f"column '{field.name}' type",
                have.dataType.simpleString(),
                field.dataType.simpleString(),
            )
    return missing


def _partition_columns(spark: SparkSession, path: str) -> list[str]:
    """Partition columns from the table's metadata (DESCRIBE DETAIL would scan every file)."""
    rows = spark.sql(f"DESCRIBE TABLE delta.{_quote(path)}").collect()
    names = [row["col_name"] for row in rows]
    if "# Partition Information" not in names:
        return []
    section = names[names.index("# Partition Information") + 2 :]  # skip the "# col_name" header
    return [name for name in section if name and not name.startswith("#")]


def unpartition_statement(spark: SparkSession, path: str) -> str:
    """The Delta SQL that rewrites the day-partitioned table at ``path`` unpartitioned.

    ``REPLACE TABLE ... AS SELECT`` of every column but ``event_date``: one commit, so the
    table's history stays (time travel to the old versions still works), with the table's
    properties restated so that they are kept.

    Example::

        REPLACE TABLE delta.`/offline/demo/driver_stats` USING delta
        TBLPROPERTIES ('delta.dataSkippingStatsColumns' = 'driver_id,event_timestamp,...')
        AS SELECT `driver_id`, `event_timestamp`, `created_timestamp`, `trips`
        FROM delta.`/offline/demo/driver_stats`

    (one line).
    """
    from delta.tables import DeltaTable

    table = f"delta.{_quote(path)}"
    columns = [c for c in spark.read.format("delta").load(path).columns if c != EVENT_DATE]
    row = DeltaTable.forPath(spark, path).detail().select("properties").first()
    properties = dict(row["properties"]) if row is not None and row["properties"] else {}
    stats = properties.get(_STATS_COLUMNS)
    if stats is not None:  # a statistics column that no longer exists would be refused
        properties[_STATS_COLUMNS] = ",".join(c for c in stats.split(",") if c != EVENT_DATE)
    restated = ", ".join(
        f"{_string_literal(k)} = {_string_literal(v)}" for k, v in sorted(properties.items())
    )
    return (
        f"REPLACE TABLE {table} USING delta"
        + (f" TBLPROPERTIES ({restated})" if restated else "")
        + f" AS SELECT {', '.join(_quote(c) for c in columns)} FROM {table}"
    )


def _string_literal(text: str) -> str:
    """``text`` as a Spark SQL string literal (backslashes are escapes there)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ensure_table(
    spark: SparkSession,
    path: str,
    table: FeatureTable,
    entities: Sequence[Entity],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> None:
    """Create the offline table, or add the columns of features it does not have yet.

    A new feature becomes a nullable column (null in older rows) through ``ALTER TABLE ADD
    COLUMNS``: a metadata-only commit, no file is rewritten. A removed feature keeps its column
    (old rows keep their values; new rows get null). Types never change.

    Example (``rating`` added to the definition)::

        driver_id  event_timestamp  ...  trips   ->  driver_id  event_timestamp  ...  trips  rating
        1          2024-01-01       ...  7           1          2024-01-01       ...  7      null

    Raises:
        CompatibilityError: See :func:`missing_columns`.
        JobFailedError: Concurrent commits kept conflicting through every retry.
    """
    from delta.tables import DeltaTable

    def attempt() -> None:
        if missing_columns(spark, path, table, entities) is None:
            builder = (
                DeltaTable.createIfNotExists(spark)
                .location(path)
                .addColumns(offline_schema(table, entities))
            )
            for key, value in _table_properties(table).items():
                builder = builder.property(key, value)
            builder.execute()
        _add_missing_columns(spark, path, table, entities)

    _retrying(attempt, what=f"create or alter {path}", job_id="-", retry=retry)


def _add_missing_columns(
    spark: SparkSession, path: str, table: FeatureTable, entities: Sequence[Entity]
) -> None:
    """ALTER TABLE ADD COLUMNS for declared columns the existing table lacks (none: no commit)."""
    missing = missing_columns(spark, path, table, entities)
    if not missing:
        return
    columns = ", ".join(f"{_quote(f.name)} {f.dataType.simpleString()}" for f in missing)
    try:
        spark.sql(f"ALTER TABLE delta.{_quote(path)} ADD COLUMNS ({columns})")
    except Exception:
        # Another job may have added them between our read and our ALTER.
        if missing_columns(spark, path, table, entities):
            raise


def _table_properties(table: FeatureTable) -> dict[str, str]:
    # Statistics for keys and timestamps only: reads filter on those.
    stats = [*table.entities, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
    return {_STATS_COLUMNS: ",".join(stats)}


# --- writes -------------------------------------------------------------------------------------


def replace_predicate(window: Window | None) -> str | None:
    """The ``replaceWhere`` (and range read) predicate of a window; None: the whole table.

    Bounds on ``event_timestamp``, which the files' statistics prune by.

    Example::

        [2024-01-01T12:00Z, 2024-01-03T00:00Z) ->
        event_timestamp >= timestamp_micros(1704110400000000)
        AND event_timestamp < timestamp_micros(1704240000000000)
    """
    if window is None:
        return None
    parts = []
    if window.start is not None:
        parts.append(f"{EVENT_TIMESTAMP} >= timestamp_micros({to_micros(window.start)})")
    if window.end is not None:
        parts.append(f"{EVENT_TIMESTAMP} < timestamp_micros({to_micros(window.end)})")
    return " AND ".join(parts) or None


# --- reads ----------------------------------------------------------------------------------------


def read_offline_table(
    spark: SparkSession,
    path: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    version: int | None = None,
) -> DataFrame:
    """Rows of the offline table with ``start <= event_timestamp < end``.

    Delta skips the files whose ``event_timestamp`` statistics lie outside the range; the bounds
    are exact. ``version`` reads an older snapshot (time travel).

    Example (``start=2024-01-02, end=2024-01-03``)::

        event_timestamp        ->  event_timestamp
        2024-01-01 23:00           2024-01-02 00:00
        2024-01-02 00:00           2024-01-02 23:59
        2024-01-02 23:59
        2024-01-03 00:00

    """
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", str(version))
    frame = reader.load(path)
    predicate = replace_predicate(Window(start, end))
    return frame if predicate is None else frame.where(predicate)


def table_version(spark: SparkSession, path: str) -> int | None:
    """The latest version of the Delta table at ``path`` (None: no table there)."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row["version"])


def _spark_type(ddl: str) -> T.DataType:
    return T.DataType.fromDDL(ddl)
