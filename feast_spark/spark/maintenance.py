"""Maintenance of the offline tables: compaction into time-ordered files and vacuuming.

Neither changes data: :func:`compact` rewrites files (a ``dataChange=false`` commit, retried on
conflicts like every commit), :func:`vacuum` deletes files no version within the retention
needs. ``jobs/maintenance.py`` runs them as a job.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from feast_spark.columns import EVENT_DATE, EVENT_TIMESTAMP
from feast_spark.errors import JobSpecError
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.offline_store import _day_partitioned


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
