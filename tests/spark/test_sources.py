"""Reading batch sources: formats, a pinned Delta version, pruned partitions (spark.sources)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from feast_spark.definitions import DeltaSource, FileSource
from feast_spark.errors import SourceSchemaError
from feast_spark.spark.sources import read_source
from feast_spark.specs import Window

from .source_rows import at, checked, instant, table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def test_csv_and_json_sources_are_read_and_parsed(spark: SparkSession, tmp_path: Path) -> None:
    # given the same rows as csv (all strings) and json
    csv = tmp_path / "rows.csv"
    csv.write_text("driver_id,ts,trips\n1,2024-01-01T10:00:00Z,3\n2,2024-01-01T11:00:00Z,x\n")
    json = tmp_path / "rows.json"
    json.write_text(
        '{"driver_id": 1, "ts": "2024-01-01T10:00:00Z", "trips": 3}\n'
        '{"driver_id": 2, "ts": "2024-01-01T11:00:00Z", "trips": 2.5}\n'
    )
    for path, fmt in ((csv, "csv"), (json, "json")):
        source = FileSource(path=str(path), event_timestamp_column="ts", file_format=fmt)
        frame = read_source(spark, source)

        # when checked
        valid, rejected = checked(frame, table(source=source))

        # then the good row lands with exact types and the bad one is rejected
        assert [(r.driver_id, instant(r.event_timestamp), r.trips) for r in valid] == [
            (1, at(1, 10), 3)
        ]
        assert len(rejected) == 1, fmt


def test_delta_source_is_read_at_one_pinned_version(spark: SparkSession, tmp_path: Path) -> None:
    # given a Delta source with two versions
    path = str(tmp_path / "delta_source")
    rows = "driver_id bigint, ts timestamp, trips bigint"
    spark.createDataFrame([(1, at(1), 1)], rows).write.format("delta").save(path)
    source = DeltaSource(path=path, event_timestamp_column="ts")
    frame = read_source(spark, source)

    # when the source changes after it was opened
    spark.createDataFrame([(2, at(1), 1)], rows).write.format("delta").mode("append").save(path)

    # then the opened frame still sees the version it was opened at
    assert [r.driver_id for r in frame.collect()] == [1]
    assert sorted(r.driver_id for r in read_source(spark, source).collect()) == [1, 2]


def scan_metrics(frame: DataFrame) -> dict[str, int]:
    """Run ``frame`` and return its file scan's metrics (numFiles, numPartitions, ...)."""
    frame.collect()
    leaves = frame._jdf.queryExecution().executedPlan().collectLeaves()
    scan = leaves.apply(0)
    metrics = scan.metrics()
    return {name: int(metrics.apply(name).value()) for name in ("numFiles", "numPartitions")}


def test_date_partitions_outside_the_window_are_not_read(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a parquet source partitioned by day over 10 days, one file per day
    path = str(tmp_path / "partitioned")
    rows = [(d, f"2024-01-{d:02d}", at(d, 12), d) for d in range(1, 11)]
    spark.createDataFrame(rows, "driver_id bigint, dt string, ts timestamp, trips bigint") \
        .repartition(1).write.partitionBy("dt").parquet(path)  # fmt: skip
    source = FileSource(path=path, event_timestamp_column="ts", date_partition_column="dt")

    # when the window [Jan 5, Jan 6) is read
    window = Window(at(5), at(6))
    frame = read_source(spark, source, window)

    # then only Jan 4..6 are listed and opened (one day of slack each side for local dates)
    assert scan_metrics(frame) == {"numFiles": 3, "numPartitions": 3}
    assert "PartitionFilters: [(isnull(dt" in frame._jdf.queryExecution().executedPlan().toString()
    # and the window itself is exact
    valid, _ = checked(frame, table(source=source), window)
    assert [r.driver_id for r in valid] == [5]
    # while without a window every file is read
    assert scan_metrics(read_source(spark, source)) == {"numFiles": 10, "numPartitions": 10}


def test_a_missing_date_partition_column_is_a_schema_error(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "flat")
    spark.createDataFrame([(1, at(1), 1)], "driver_id bigint, ts timestamp, trips bigint") \
        .write.parquet(path)  # fmt: skip
    source = FileSource(path=path, event_timestamp_column="ts", date_partition_column="dt")
    with pytest.raises(SourceSchemaError, match="column 'dt' \\(date_partition_column\\)"):
        read_source(spark, source, Window(at(1), at(2)), table_name="driver_stats")
