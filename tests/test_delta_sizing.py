"""The snapshot partitions rule shared by the launcher and the jobs."""

from __future__ import annotations

from feast_spark.delta_sizing import MIB, snapshot_partitions


def test_snapshot_partitions_follow_the_log_size_within_bounds() -> None:
    sizes = [0, 1, 8 * MIB, 8 * MIB + 1, 20 * MIB, 400 * MIB, 10_000 * MIB]
    assert [snapshot_partitions(size) for size in sizes] == [1, 1, 1, 2, 3, 50, 50]
