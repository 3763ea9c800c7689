"""Test job: runs a Spark action, then fails with an error message of its own.

fail_job.py
"""

from __future__ import annotations

from feast_spark.spark.session import build_spark_session

spark = build_spark_session("feast-spark-fail-job")
seen = spark.range(10).count()
raise ValueError(f"no rows for table driver_stats in [2024-01-01, 2024-01-02) (saw {seen} others)")
