"""How many partitions Delta's snapshot of a job's tables gets: the rule, in pure Python.

``spark.databricks.delta.snapshotPartitions`` is 50 unless set, which turns the snapshot of a
one-commit table into a 50-task Spark job (seconds on two cores), while a table with a large log
needs the partitions. One partition per :data:`LOG_BYTES_PER_SNAPSHOT_PARTITION` of log, between 1
and :data:`MAX_SNAPSHOT_PARTITIONS`, whoever measures the log: the launcher before spark-submit
(:mod:`feast_spark.launcher.sizing`), or a job whose submission did not set the value
(:func:`feast_spark.spark.session.size_delta_snapshots`).
"""

from __future__ import annotations

import math

MIB = 1024 * 1024
SNAPSHOT_PARTITIONS = "spark.databricks.delta.snapshotPartitions"
# Delta's snapshot job shuffles the log's actions into this many partitions: one per 8 MiB of
# log keeps each task a fraction of a second, and 50 (Delta's default) is the most worth having.
LOG_BYTES_PER_SNAPSHOT_PARTITION = 8 * MIB
MAX_SNAPSHOT_PARTITIONS = 50


def snapshot_partitions(delta_log_bytes: int) -> int:
    """Delta snapshot partitions for a log of this size: ceil(bytes / 8 MiB), within 1..50.

    Example:
        >>> [snapshot_partitions(n * MIB) for n in (0, 1, 8, 9, 400, 4000)]
        [1, 1, 1, 2, 50, 50]
    """
    wanted = math.ceil(max(delta_log_bytes, 0) / LOG_BYTES_PER_SNAPSHOT_PARTITION)
    return min(max(wanted, 1), MAX_SNAPSHOT_PARTITIONS)
