"""Maintenance of the offline tables: compaction into time-ordered files and vacuuming.

Neither changes data: :func:`compact` rewrites files (a ``dataChange=false`` commit, retried on
conflicts like every commit), :func:`vacuum` deletes files no version within the retention
needs. ``jobs/maintenance.py`` runs them as a job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from urllib.parse import unquote

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from feast_spark.columns import EVENT_TIMESTAMP
from feast_spark.errors import VacuumRefusedError
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.dataset_pins import time_travel_past_retention


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


def check_vacuum_keeps(spark: SparkSession, path: str, table: str, keep: Mapping[str, int]) -> None:
    """Refuse a vacuum that would delete a file of a version a kept dataset read.

    Asks Delta which files the vacuum would delete (``VACUUM ... DRY RUN``, same retention),
    then looks for them among each kept version's files (its log only; no data is read).

    Args:
        spark: The session.
        path: The Delta table.
        table: The feature table, for the message.
        keep: ``{dataset id: version}`` of the kept datasets that read the table.

    Raises:
        VacuumRefusedError: Names the version and the datasets that need it.
    """
    if not keep:
        return
    quoted = path.replace("`", "``")
    listed = spark.sql(f"VACUUM delta.`{quoted}` DRY RUN").collect()
    doomed = {_file_name(row["path"]) for row in listed}
    if not doomed:
        return
    readers: dict[int, list[str]] = defaultdict(list)
    for dataset, version in keep.items():
        readers[int(version)].append(dataset)
    for version, datasets in sorted(readers.items()):
        try:
            with time_travel_past_retention(spark):  # the log only: no file is read
                reader = spark.read.format("delta").option("versionAsOf", str(version))
                files = reader.load(path).inputFiles()
        except AnalysisException:
            continue  # no longer in the log: nothing left to keep
        if any(_file_name(f) in doomed for f in files):
            raise VacuumRefusedError(table, version, sorted(datasets))


def _file_name(uri: str) -> str:
    """A data file's name, however a listing spells its path (``file:/x``, relative, encoded).

    Delta names every data file with a UUID, so the name alone identifies it.
    """
    return unquote(uri).rstrip("/").rpartition("/")[2]
