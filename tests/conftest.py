"""Shared fixtures: one small local SparkSession per test run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Small on purpose: 2 cores, few shuffle partitions, no UI (see delta's python/delta/testing/utils.py).
TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    "spark.databricks.delta.snapshotPartitions": "2",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The one SparkSession of this test run, with Delta."""
    from feast_spark.spark.session import build_spark_session

    session = build_spark_session("feast-spark-tests", master="local[2]", conf=TEST_SPARK_CONF)
    yield session
    session.stop()
