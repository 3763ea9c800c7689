"""Test job: Spark tasks that take a while, so there is progress to watch and a driver to cancel.

    sleep_job.py SECONDS [--result PATH]

Runs 4 tasks of SECONDS/2 each on 2 partitions (so about SECONDS on one core), then writes a
SUCCEEDED result record at PATH. Uses feast_spark from the shipped zip (--py-files).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from feast_spark.job_results import SUCCEEDED, JobResult, write_result
from feast_spark.spark.session import build_spark_session


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", type=float)
    parser.add_argument("--result")
    args = parser.parse_args()
    started = datetime.now(UTC)
    spark = build_spark_session("feast-spark-sleep-job")
    pause = args.seconds / 4

    def slow(rows: Iterator[int]) -> Iterator[int]:
        for row in rows:
            time.sleep(pause)
            yield row

    count = spark.sparkContext.parallelize(range(4), 2).mapPartitions(slow).count()
    spark.stop()
    if args.result:
        write_result(
            args.result,
            JobResult("sleep", "sleep", SUCCEEDED, started, datetime.now(UTC), rows_written=count),
        )
    print(f"slept through {count} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
