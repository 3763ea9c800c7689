"""Training datasets: each offline table is read only over the time range the entity rows need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.spark.ingest import ingest_table
from feast_spark.spark.training_data import build_training_dataset, prepare_entity_rows
from feast_spark.specs import Window

from .plans import scanned_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DRIVER = Entity("driver_id", "INT64")


def day(number: int, hour: int = 0) -> datetime:
    return datetime(2024, 5, number, hour, tzinfo=UTC)


def test_an_offline_table_is_read_only_over_the_entity_rows_range(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given five days of driver stats, each ingested as its own window (its own file)
    table = FeatureTable(
        "driver_stats",
        ["driver_id"],
        [Feature("trips", "INT64")],
        FileSource(path=str(tmp_path / "src"), event_timestamp_column="ts"),
        max_age=timedelta(days=1),
    )
    offline = str(tmp_path / "offline" / "driver_stats")
    files_of_day: dict[int, set[str]] = {}
    for number in range(1, 6):
        source = tmp_path / f"src{number}"
        spark.createDataFrame(
            [(1, number * 10, day(number, 6)), (2, number * 10 + 1, day(number, 18))],
            "driver_id bigint, trips bigint, ts timestamp",
        ).coalesce(1).write.parquet(str(source))
        ingest_table(
            spark, table=table, entities=[DRIVER],
            source=FileSource(path=str(source), event_timestamp_column="ts"),
            window=Window(day(number), day(number + 1)), table_path=offline,
            job_id=f"ingest-{number}", ingested_at=day(20),
        )  # fmt: skip
        files = set(spark.read.format("delta").load(offline).inputFiles())
        files_of_day[number] = files.difference(*files_of_day.values())

    # and entity rows on day 3, whose max_age of one day reaches back into day 2
    entities = tmp_path / "entities"
    spark.createDataFrame(
        [(1, day(3, 12)), (2, day(3, 12))], "driver_id bigint, event_timestamp timestamp"
    ).write.parquet(str(entities))
    entity_rows = prepare_entity_rows(
        spark,
        FileSource(path=str(entities), event_timestamp_column="event_timestamp"),
        [DRIVER],
        [["driver_id"]],
    )

    # when the training dataset is built
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        dataset = build_training_dataset(
            spark, entity_rows, [table], {"driver_stats": ["trips"]}, {"driver_stats": offline}
        )
        rows: list[Any] = sorted(dataset.collect())

        # then the values are the latest within max_age, and only days 2 and 3 were opened
        assert [(r.driver_id, r.driver_stats__trips) for r in rows] == [(1, 30), (2, 21)]
        assert all(len(files) == 1 for files in files_of_day.values())
        assert scanned_files(dataset, offline) == 2
    finally:
        spark.conf.unset("spark.sql.adaptive.enabled")
