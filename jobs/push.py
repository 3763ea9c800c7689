"""Push job: a small batch of rows from a file straight to the online store (and offline table).

    ./spark-submit.sh --master 'local[2]' push --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "push") names one feature table, its entities, the
offline store root and the push options (the online store's settings, the rows' path, ``to``:
online or both). The rows are checked like a batch ingest's and written like a stream's
micro-batch (feast_spark.spark.push). The result record (feast_spark.job_results) says SUCCEEDED
with the counts (rows read, written online, rejected; details: rows appended offline, rows
expired, the offline version), or FAILED with the error: a missing column, a file without rows.

Exit status and records: feast_spark.spark.job_entry.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, _progress: JobProgress
) -> JobResult:
    """Push the spec's rows and return the SUCCEEDED record (errors propagate)."""
    from feast_spark.spark.push import push_rows

    outcome = push_rows(spark, spec, started_at)
    return succeeded(
        spec,
        started_at,
        rows_read=outcome.rows_read,
        rows_written=outcome.rows_written,
        rows_rejected=outcome.rows_rejected,
        delta_version=outcome.offline_version,
        details=outcome.to_dict(),
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("push", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
