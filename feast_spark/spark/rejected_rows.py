"""The rejected-rows table of an offline table: an audit log of the source rows a job rejected.

Rejected rows go to ``<offline table path>.rejected``: a dot cannot occur in a feature table
name (``[a-z_][a-z0-9_]*``), so that path never collides with a table. It is an audit log of
rejections: one row per rejected source row and job. A rerun of the same job id that rejects rows
replaces that job's earlier rows; a rerun that rejects none writes nothing there (its result
record says 0), so query by the job id of the result you trust.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the conventional alias)

from feast_spark.columns import EVENT_TIMESTAMP, INGESTION_JOB_ID
from feast_spark.spark.commit_retry import DEFAULT_RETRY, RetryPolicy, _retrying
from feast_spark.spark.literals import timestamp_literal
from feast_spark.spark.offline_writes import _LAST_COMMIT, _committed_version
from feast_spark.specs import Window

REJECTED_SUFFIX = ".rejected"


def rejected_table_path(table_path: str) -> str:
    """Where the rejected rows of the offline table at ``table_path`` go (``<path>.rejected``)."""
    return table_path.rstrip("/") + REJECTED_SUFFIX


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
    txn: tuple[str, int] | None = None,
) -> int | None:
    """Record a job's rejected rows in the rejected-rows table at ``path``.

    The rows of an earlier run with the same job id are replaced, so a rerun of one spec does
    not list its rejections twice. Other jobs' rows are kept. With ``txn`` (a stream's
    micro-batch, a push), the rows are appended once per ``(txnAppId, txnVersion)`` instead:
    Delta skips a replayed write, and an append does not search the table for the rows it
    would replace (a ``replaceWhere`` took seconds per micro-batch with a single bad message).

    Example (job ``ingest-1``, window ``[Jan 1, Jan 2)``)::

        reason                           event_timestamp  source_row
        trips: abc is not a valid INT64  2024-01-01 10:00 {"driver_id":2,"trips":"abc",...}
        ->
        ingestion_job_id  rejected_at       window_start  window_end  reason  event_timestamp...
        ingest-1          2024-02-01 12:00  2024-01-01    2024-01-02  trips:  2024-01-01 10:00

    Args:
        spark: The session.
        rejected: ``reason``, ``event_timestamp``, ``source_row`` (see row_checks.CheckedRows).
        path: The rejected-rows table (see :func:`rejected_table_path`); created if missing.
        job_id: The job.
        window: The job's window (recorded with each row).
        rejected_at: The job's start.
        retry: Conflict retry policy.
        private: Whether ``spark`` is this job's own session (then the version committed is
            read from the session instead of the table history).
        txn: Delta's ``txnAppId`` and ``txnVersion`` of an append (None: replace the job's rows).

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
        # The first write creates the table; later ones replace this job's earlier rows (or, with
        # txn, append them once).
        if private:
            spark.conf.unset(_LAST_COMMIT)
        writer = frame.write.format("delta").option("userMetadata", job_id)
        if txn is None:
            writer = writer.mode("overwrite").option("replaceWhere", predicate)
        else:
            app_id, version = txn
            writer = writer.mode("append").option("txnAppId", app_id)
            writer = writer.option("txnVersion", str(version))
        writer.save(path)
        return _committed_version(spark, path, job_id, private=private)

    return _retrying(attempt, what=f"write {path}", job_id=job_id, retry=retry)


def _timestamp(instant: datetime | None) -> Any:
    if instant is None:
        return F.lit(None).cast("timestamp")
    return timestamp_literal(instant)


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
