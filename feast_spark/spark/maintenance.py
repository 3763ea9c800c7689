"""Maintenance of the offline tables: compaction into time-ordered files and vacuuming.

Neither changes data: :func:`compact` rewrites files (a ``dataChange=false`` commit, retried on
conflicts like every commit), :func:`vacuum` deletes files no version within the retention
needs. ``jobs/maintenance.py`` runs them as a job.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying


def compact(
    spark: SparkSession, path: str, *, retry: RetryPolicy = DEFAULT_RETRY
) -> dict[str, int]:
    """Rewrite the table's files into few, large, time-ordered ones (Delta ``OPTIMIZE``).

    ``OPTIMIZE ZORDER BY event_timestamp`` of the whole table (on one column, Z-ordering sorts by
    it), so that a table loaded in one unordered backfill becomes files of disjoint time ranges
    that range reads can skip. Delta rewrites every file each time; a part of a table cannot be
    chosen, since Delta optimizes a part by partition only.

    Data is unchanged (the commit has ``dataChange=false``); readers are not disturbed.

    Returns:
        ``{"files_added": n, "files_removed": m}``.

    """
    from delta.tables import DeltaTable

    def attempt() -> dict[str, int]:
        result = DeltaTable.forPath(spark, path).optimize().executeZOrderBy(EVENT_TIMESTAMP)
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
