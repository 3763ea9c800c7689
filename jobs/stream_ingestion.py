"""Stream ingestion job: a feature table's Kafka topic to the online store (and offline table).

    ./spark-submit.sh --master 'local[2]' stream_ingestion --spec /path/or/uri/of/spec.json

The spec (feast_spark.specs.JobSpec, job_type "stream_ingestion") names one feature table with a
``stream_source``, its entities, the offline store root, the online store's settings and the
stream options (checkpoint, stop file, ``to``: online or both). The job runs until it is asked to
stop (the stop file, SIGTERM) or its query fails (feast_spark.spark.stream_query); each
micro-batch is checked and written by feast_spark.spark.stream. The result record
(feast_spark.job_results) says SUCCEEDED with the totals when it was stopped, FAILED with the
query's error otherwise.

Exit status and records: feast_spark.spark.job_entry.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feast_spark.job_results import JobResult
from feast_spark.spark.job_entry import JobProgress, run_job, succeeded
from feast_spark.specs import JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run(
    spark: SparkSession, spec: JobSpec, started_at: datetime, progress: JobProgress
) -> JobResult:
    """Run the spec's stream until stopped; return its SUCCEEDED record (errors propagate)."""
    from feast_spark.spark.stream_query import run_stream

    def seen(record: dict[str, Any]) -> None:
        progress.rows_written = record["rows_written"]
        progress.details = record

    final = run_stream(spark, spec, on_progress=seen)
    return succeeded(
        spec,
        started_at,
        rows_read=final["messages"],
        rows_written=final["rows_written"],
        rows_rejected=final["rows_rejected"],
        details=final,
    )


def main(argv: list[str] | None = None, *, spark: SparkSession | None = None) -> int:
    """Run the job; ``spark`` is for tests (a given session is used and left running)."""
    return run_job("stream_ingestion", run, argv, spark=spark)


if __name__ == "__main__":
    sys.exit(main())
