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
  loaded window by window is ordered by time as it grows; :func:`compact` rewrites a table
  loaded in one unordered backfill into time-ordered files (``OPTIMIZE ZORDER BY
  event_timestamp``).
- Why not day partitions (this module's first layout): a partitioned write sorts every task by
  day and writes tasks x days files. On a 30-day backfill of 10M rows that alone cost 1.5-1.75x
  a plain Delta append, against 1.0x unpartitioned (``benchmarks/ingest.py``), and most feature
  tables are far below the size at which Delta advises partitioning (about 1 GB per partition),
  so days mean small files. Liquid clustering measured 2x a plain append here (it clusters on
  write). What day partitions gave and this layout does not: Delta checks commit conflicts per
  partition, so on an unpartitioned table two concurrent window writes conflict; the later one
  is retried from its source (see :func:`write_window`): concurrent jobs all land, one after the
  other. Tables written with day partitions keep working: writes fill their ``event_date`` and
  predicates keep the day bounds that prune them.
- File statistics (data skipping) are kept for the keys and timestamps only
  (``delta.dataSkippingStatsColumns``): reads filter on those, and skipping per-feature
  statistics makes writes cheaper.
- Every commit of an ingest job carries its job id as Delta ``userMetadata``, so
  ``DESCRIBE HISTORY`` says which job wrote which version.

What an ingest writes (a window replaced, or rows added) is :mod:`feast_spark.spark.ingest`.
Writes are idempotent per window (Delta ``replaceWhere``, see :func:`write_window`); commit
conflicts between concurrent jobs are retried with backoff; the schema only grows, by explicit
``ALTER TABLE ADD COLUMNS`` (``spark.databricks.delta.schema.autoMerge.enabled`` stays false).

Rejected rows go to ``<offline table path>.rejected``: a dot cannot occur in a feature table
name (``[a-z_][a-z0-9_]*``), so that path never collides with a table. It is an audit log of
rejections: one row per rejected source row and job. A rerun of the same job id that rejects rows
replaces that job's earlier rows; a rerun that rejects none writes nothing there (its result
record says 0), so query by the job id of the result you trust.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)
from pyspark.sql import types as T  # noqa: N812

from feast_spark.columns import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feast_spark.definitions import Entity, FeatureTable
from feast_spark.errors import (
    CompatibilityError,
    JobFailedError,
    JobSpecError,
    NotFoundError,
    SourceSchemaError,
)
from feast_spark.online.base import to_micros
from feast_spark.spark.identifiers import quote as _quote
from feast_spark.spark.literals import timestamp_literal
from feast_spark.spark.sources import require_utc_session
from feast_spark.specs import Window

#: The partition column of tables written with the first, day-partitioned layout.
EVENT_DATE = "event_date"
INGESTION_JOB_ID = "ingestion_job_id"
REJECTED_SUFFIX = ".rejected"

#: Columns of the rejected-rows table.
REJECTED_SCHEMA = T.StructType(
    [
        T.StructField(INGESTION_JOB_ID, T.StringType()),
        T.StructField("rejected_at", T.TimestampType()),
        T.StructField("window_start", T.TimestampType()),
        T.StructField("window_end", T.TimestampType()),
        T.StructField("reason", T.StringType()),
        T.StructField(EVENT_TIMESTAMP, T.TimestampType()),
        T.StructField("source_row", T.StringType()),
    ]
)

# Set by Delta after every commit, per SparkSession.
_LAST_COMMIT = "spark.databricks.delta.lastCommitVersionInSession"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a conflicting Delta commit is retried.

    Attributes:
        attempts: Tries in all, the first included.
        first_delay_s: Upper bound of the first random wait; doubles at every retry.
        max_delay_s: Cap of the wait's upper bound.

    """

    attempts: int = 8
    first_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): full jitter."""
        bound = min(self.max_delay_s, self.first_delay_s * 2 ** (retry - 1))
        return random.uniform(0, bound)  # jitter, not cryptography


DEFAULT_RETRY = RetryPolicy()


def rejected_table_path(table_path: str) -> str:
    """Where the rejected rows of the offline table at ``table_path`` go (``<path>.rejected``)."""
    return table_path.rstrip("/") + REJECTED_SUFFIX


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


def with_event_date(rows: DataFrame) -> DataFrame:
    """Add ``event_date``, the UTC date of ``event_timestamp`` (for day-partitioned tables).

    Example::

        event_timestamp          ->  event_timestamp      event_date
        2024-01-01 23:59:59          2024-01-01 23:59:59  2024-01-01
    """
    require_utc_session(rows.sparkSession)
    return rows.withColumn(EVENT_DATE, F.to_date(F.col(EVENT_TIMESTAMP)))


# --- schema -------------------------------------------------------------------------------------


def missing_columns(
    spark: SparkSession, path: str, table: FeatureTable, entities: Sequence[Entity]
) -> list[T.StructField] | None:
    """Columns the Delta table at ``path`` lacks, or None when there is no table yet.

    Commits nothing: reads the table's schema from its log.

    Raises:
        CompatibilityError: A column of the definition has another type in the table, or the
            table is partitioned by a column other than ``event_date`` (it was not written by
            feast-spark).
    """
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    partitions = _partition_columns(spark, path)
    if partitions not in ([], [EVENT_DATE]):
        raise CompatibilityError("feature table", table.name, "partitioning", partitions,
                                 "none (or event_date, the first layout)")  # fmt: skip
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
    return {"delta.dataSkippingStatsColumns": ",".join(stats)}


# --- writes -------------------------------------------------------------------------------------


def replace_predicate(window: Window | None, *, day_partitioned: bool = False) -> str | None:
    """The ``replaceWhere`` (and range read) predicate of a window; None: the whole table.

    Bounds on ``event_timestamp``, which the files' statistics prune by. On a day-partitioned
    table (the first layout) ``event_date`` bounds are added: they let Delta find the files by
    partition and keep its conflict check to those partitions.

    Example::

        [2024-01-01T12:00Z, 2024-01-03T00:00Z) ->
        event_timestamp >= timestamp_micros(1704110400000000)
        AND event_timestamp < timestamp_micros(1704240000000000)
        (day-partitioned: event_date >= DATE'2024-01-01' AND event_timestamp >= ...
        AND event_date <= DATE'2024-01-02' AND event_timestamp < ...)
    """
    if window is None:
        return None
    parts = []
    if window.start is not None:
        if day_partitioned:
            parts.append(f"{EVENT_DATE} >= DATE'{_utc_date(window.start)}'")
        parts.append(f"{EVENT_TIMESTAMP} >= timestamp_micros({to_micros(window.start)})")
    if window.end is not None:
        if day_partitioned:
            last = _utc_date(window.end - timedelta(microseconds=1))
            parts.append(f"{EVENT_DATE} <= DATE'{last}'")
        parts.append(f"{EVENT_TIMESTAMP} < timestamp_micros({to_micros(window.end)})")
    return " AND ".join(parts) or None


def write_window(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    window: Window | None,
    job_id: str,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> int | None:
    """Replace the rows of ``window`` in the offline table at ``path`` with ``rows``.

    Rules:

    - One atomic Delta commit (``replaceWhere``): readers see the old window or the new one,
      never a mix. Running the same window again with the same source leaves the same rows;
      with corrected source data, the window holds exactly the new rows.
    - A window with an open bound replaces everything on that side: with both open, the table
      becomes exactly ``rows``. Ingest therefore calls this with both bounds only (or to create
      a table); without them it adds rows (:mod:`feast_spark.spark.ingest`).
    - Columns of the table that ``rows`` lacks (features removed from the definition) are
      written as null; a day-partitioned table's ``event_date`` is added here.
    - Commit conflicts with concurrent jobs are retried with backoff (the write is recomputed
      from its source each time); Delta never commits a partial write. On the unpartitioned
      layout every concurrent window write conflicts (Delta checks per partition), so
      concurrent jobs commit one after the other.

    Example (window ``[Jan 2, Jan 3)``)::

        table before     rows           table after
        Jan 1  a=1                      Jan 1  a=1
        Jan 2  a=2   +   Jan 2  a=20 -> Jan 2  a=20
        Jan 3  a=3                      Jan 3  a=3

    Args:
        spark: The session.
        rows: Offline rows (keys, timestamps, features), all inside ``window``.
        path: The table (it must exist: see :func:`ensure_table`).
        window: The event-time window the rows replace.
        job_id: Recorded as the commit's ``userMetadata``.
        retry: Conflict retry policy.

    Returns:
        The Delta version committed; None when there was nothing to commit (no rows written
        into a window that held none: Delta records no empty commit).

    Raises:
        JobFailedError: Concurrent commits kept conflicting through every retry.

    """
    return _retrying(
        lambda: _write(spark, rows, path, window, job_id),
        what=f"write {path}",
        job_id=job_id,
        retry=retry,
    )  # fmt: skip


def write_rejected(
    spark: SparkSession,
    rejected: DataFrame,
    path: str,
    job_id: str,
    window: Window | None,
    rejected_at: datetime,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    private: bool = False,
) -> int | None:
    """Record a job's rejected rows in the rejected-rows table at ``path``.

    The rows of an earlier run with the same job id are replaced, so a rerun of one spec does
    not list its rejections twice. Other jobs' rows are kept.

    Example (job ``ingest-1``, window ``[Jan 1, Jan 2)``)::

        reason                           event_timestamp  source_row
        trips: abc is not a valid INT64  2024-01-01 10:00 {"driver_id":2,"trips":"abc",...}
        ->
        ingestion_job_id  rejected_at       window_start  window_end  reason  event_timestamp...
        ingest-1          2024-02-01 12:00  2024-01-01    2024-01-02  trips:  2024-01-01 10:00

    Args:
        spark: The session.
        rejected: ``reason``, ``event_timestamp``, ``source_row`` (see sources.CheckedRows).
        path: The rejected-rows table (see :func:`rejected_table_path`); created if missing.
        job_id: The job.
        window: The job's window (recorded with each row).
        rejected_at: The job's start.
        retry: Conflict retry policy.
        private: Whether ``spark`` is this job's own session (then the version committed is
            read from the session instead of the table history).

    Returns:
        The Delta version committed.

    """
    bounds = window or Window()
    frame = rejected.select(
        F.lit(job_id).alias(INGESTION_JOB_ID),
        _timestamp(rejected_at).alias("rejected_at"),
        _timestamp(bounds.start).alias("window_start"),
        _timestamp(bounds.end).alias("window_end"),
        F.col("reason"),
        F.col(EVENT_TIMESTAMP),
        F.col("source_row"),
    )
    predicate = f"{INGESTION_JOB_ID} = {_sql_string(job_id)}"

    def attempt() -> int | None:
        # The first write creates the table; later ones replace this job's earlier rows.
        if private:
            spark.conf.unset(_LAST_COMMIT)
        (
            frame.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .option("userMetadata", job_id)
            .save(path)
        )
        return _committed_version(spark, path, job_id, private=private)

    return _retrying(attempt, what=f"write {path}", job_id=job_id, retry=retry)


# --- reads and maintenance ----------------------------------------------------------------------


def read_offline_table(
    spark: SparkSession,
    path: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    version: int | None = None,
) -> DataFrame:
    """Rows of the offline table with ``start <= event_timestamp < end``.

    Delta skips the files whose ``event_timestamp`` statistics lie outside the range (and, on a
    day-partitioned table, the other days' partitions); the bounds are exact. ``version`` reads
    an older snapshot (time travel).

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
    day_partitioned = _day_partitioned(frame.columns)
    predicate = replace_predicate(Window(start, end), day_partitioned=day_partitioned)
    return frame if predicate is None else frame.where(predicate)


def compact(
    spark: SparkSession,
    path: str,
    start: date | None = None,
    end: date | None = None,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> dict[str, int]:
    """Rewrite the table's files into few, large, time-ordered ones (Delta ``OPTIMIZE``).

    - The unpartitioned layout: ``OPTIMIZE ZORDER BY event_timestamp`` of the whole table (on one
      column, Z-ordering sorts by it), so that a table loaded in one unordered backfill becomes
      files of disjoint time ranges that range reads can skip. Delta rewrites every file each
      time. Days cannot be chosen: Delta optimizes a part of a table by partition only.
    - A day-partitioned table (the first layout): ``OPTIMIZE`` of the days
      ``start <= event_date <= end`` (bin packing; a day is already one time range).

    Data is unchanged (the commit has ``dataChange=false``); readers are not disturbed.

    Returns:
        ``{"files_added": n, "files_removed": m}``.

    Raises:
        JobSpecError: Days were given for an unpartitioned table.

    """
    from delta.tables import DeltaTable

    def attempt() -> dict[str, int]:
        table = DeltaTable.forPath(spark, path)
        builder = table.optimize()
        bounds = []
        if start is not None:
            bounds.append(f"{EVENT_DATE} >= DATE'{start.isoformat()}'")
        if end is not None:
            bounds.append(f"{EVENT_DATE} <= DATE'{end.isoformat()}'")
        if not _day_partitioned(table.toDF().columns):
            if bounds:
                raise JobSpecError(
                    "window",
                    f"offline table {path} is not partitioned, so it is compacted whole; "
                    "omit --start and --end",
                )
            result = builder.executeZOrderBy(EVENT_TIMESTAMP)
        else:
            if bounds:
                builder = builder.where(" AND ".join(bounds))
            result = builder.executeCompaction()
        row = result.select("metrics").first()
        metrics = row["metrics"] if row is not None else None
        return {
            "files_added": int(metrics["numFilesAdded"]) if metrics else 0,
            "files_removed": int(metrics["numFilesRemoved"]) if metrics else 0,
        }

    return _retrying(attempt, what=f"optimize {path}", job_id="-", retry=retry)


def vacuum(spark: SparkSession, path: str, retention_hours: float | None = None) -> None:
    """Delete files that no version within the table's retention needs (Delta ``VACUUM``).

    The retention is the table's ``delta.deletedFileRetentionDuration`` (7 days by default):
    Delta 4.4 ignores any ``retention_hours`` other than 0 ("Vacuum with retention threshold
    other than 0 hours is ignored"), and refuses 0 with its safety check, which stays on: it
    protects running readers and writers. Time travel is limited to the retention afterwards.
    """
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, path).vacuum(retention_hours)


# --- internals ----------------------------------------------------------------------------------


def _write(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    window: Window | None,
    job_id: str,
    *,
    table: FeatureTable | None = None,
    entities: Sequence[Entity] = (),
    private: bool = False,
    create_only: bool = False,
) -> int | None:
    """One replaceWhere commit; creates the table (layout and properties) when there is none.

    ``create_only`` writes only if there is no table yet (else Delta raises
    ``AnalysisException``, and a table created concurrently makes the commit conflict): the
    first write of an add-mode ingest, which must never replace another job's rows.

    Creating the table with its first write saves a commit; if two jobs create it at once, one
    gets a conflict and its retry writes into the table the other created. Returns None when
    Delta committed nothing: a window with no rows written over a window with no rows (Delta
    skips empty commits).
    """
    from delta.tables import DeltaTable

    exists = DeltaTable.isDeltaTable(spark, path)
    if exists:
        schema = spark.read.format("delta").load(path).schema
    elif table is not None:
        schema = offline_schema(table, entities)
    else:
        raise NotFoundError("offline table", path, hint="create it first with ensure_table")
    day_partitioned = _day_partitioned(schema.fieldNames())
    aligned = _aligned(with_event_date(rows) if day_partitioned else rows, schema)
    mode = "errorifexists" if create_only else "overwrite"
    writer = aligned.write.format("delta").mode(mode).option("userMetadata", job_id)
    if day_partitioned:
        writer = writer.partitionBy(EVENT_DATE)
    if not exists and table is not None:
        for key, value in _table_properties(table).items():
            writer = writer.option(key, value)  # "delta.*" options become table properties
    predicate = replace_predicate(window, day_partitioned=day_partitioned)
    if predicate is not None:
        writer = writer.option("replaceWhere", predicate)
    before = table_version(spark, path) if exists else None
    if private:
        spark.conf.unset(_LAST_COMMIT)
    writer.save(path)
    return _committed_version(spark, path, job_id, private=private, after=before)


def _day_partitioned(columns: Sequence[str]) -> bool:
    """Whether a table with these columns has the first layout (``event_date`` partitions).

    The column is enough: no other table has it, ``event_date`` being a reserved name.
    """
    return EVENT_DATE in columns


def _aligned(rows: DataFrame, schema: T.StructType) -> DataFrame:
    """``rows`` in the table's column order, with null for the table's columns it lacks."""
    have = set(rows.columns)
    extra = have - set(schema.fieldNames())
    if extra:  # pragma: no cover - ensure_table adds every declared column first
        raise SourceSchemaError("?", ", ".join(sorted(extra)), "is not a column of the table")
    return rows.select(
        *[
            F.col(_quote(f.name)) if f.name in have else F.lit(None).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )


def _committed_version(
    spark: SparkSession, path: str, job_id: str, *, private: bool, after: int | None = None
) -> int | None:
    """The version just committed by ``job_id`` to ``path``; None when nothing was committed.

    In a private session (see :func:`_private_session`) Delta's own record of the session's last
    commit is exact and free: unset after a write, the write committed nothing (Delta skips
    empty commits). Elsewhere other threads may share the session, so the table history is
    searched for the newest commit carrying ``job_id`` later than version ``after``.
    """
    from delta.tables import DeltaTable

    if private:
        last = spark.conf.get(_LAST_COMMIT, None)
        return None if last in (None, "", "None") else int(str(last))

    history = DeltaTable.forPath(spark, path).history(100).where(F.col("userMetadata") == job_id)
    if after is not None:
        history = history.where(F.col("version") > after)
    row = history.agg(F.max("version").alias("version")).first()
    if row is None or row["version"] is None:
        return None
    return int(row["version"])


def table_version(spark: SparkSession, path: str) -> int | None:
    """The latest version of the Delta table at ``path`` (None: no table there)."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row["version"])


def _private_session(spark: SparkSession) -> SparkSession:
    """A child session (same SparkContext) with the caller's SQL settings, for one job's writes.

    Its own SQL conf makes ``lastCommitVersionInSession`` this job's alone, even when several
    jobs run in threads of one session.
    """
    child = spark.newSession()
    for key, value in spark.conf.getAll.items():
        if child.conf.get(key, None) != value and child.conf.isModifiable(key):
            child.conf.set(key, value)
    return child


def _conflict_types() -> tuple[type[BaseException], ...]:
    import delta.exceptions as conflicts

    return (
        conflicts.DeltaConcurrentModificationException,
        conflicts.ConcurrentWriteException,
        conflicts.MetadataChangedException,
        conflicts.ProtocolChangedException,
        conflicts.ConcurrentAppendException,
        conflicts.ConcurrentDeleteReadException,
        conflicts.ConcurrentDeleteDeleteException,
        conflicts.ConcurrentTransactionException,
    )


def _retrying(action: Callable[[], _T], *, what: str, job_id: str, retry: RetryPolicy) -> _T:
    """Run ``action``; on a Delta commit conflict, wait (full jitter) and run it again.

    Safe because a conflicting commit is not committed at all: the retry starts from the table's
    new state. Anything else is raised at once.
    """
    conflicts = _conflict_types()
    for number in range(1, retry.attempts + 1):
        try:
            return action()
        except conflicts as error:
            if number == retry.attempts:
                raise JobFailedError(
                    job_id,
                    "FAILED",
                    f"{what}: concurrent commits conflicted with each of {retry.attempts} "
                    f"attempts ({type(error).__name__}), so it was not committed; rerun the job "
                    "(window writes are idempotent)",
                ) from error
            pause = retry.delay(number)
            _log.warning(
                "%s: %s on attempt %d; retrying in %.1fs",
                what,
                type(error).__name__,
                number,
                pause,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _spark_type(ddl: str) -> T.DataType:
    return T.DataType.fromDDL(ddl)


def _utc_date(instant: datetime) -> str:
    return instant.astimezone(UTC).date().isoformat()


def _timestamp(instant: datetime | None) -> Any:
    if instant is None:
        return F.lit(None).cast("timestamp")
    return timestamp_literal(instant)


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
