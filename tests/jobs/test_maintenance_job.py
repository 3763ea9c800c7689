"""jobs/maintenance.py: compact and vacuum offline tables; data unchanged."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from pyspark.testing import assertDataFrameEqual

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.job_results import read_result
from feast_spark.spark.ingest import ingest_table
from feast_spark.specs import JobSpec, MaintenanceOptions, Window

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")  # type: ignore[arg-type]


def at(hour: int) -> datetime:
    return datetime(2024, 1, 1, hour, tzinfo=UTC)


def load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "maintenance_job", ROOT / "jobs" / "maintenance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Slow (a whole spark-submit job, about 30 s): CI runs it with the other slow tests.
@pytest.mark.slow
def test_compact_merges_files_and_vacuum_keeps_data(spark: SparkSession, tmp_path: Path) -> None:
    # given an offline table written by three ingestions of hours of one day (three small files)
    table = FeatureTable(
        "stats",
        ["driver_id"],
        [Feature("trips", "INT64")],  # type: ignore[list-item]
        FileSource(path=str(tmp_path / "src"), event_timestamp_column="ts"),
    )
    path = str(tmp_path / "offline" / "demo" / "stats")
    for hour in range(3):
        source = tmp_path / f"src{hour}"
        spark.createDataFrame(
            [(hour, hour * 10, at(hour))],
            "driver_id bigint, trips bigint, ts timestamp",
        ).write.parquet(str(source))
        ingest_table(
            spark, table=table, entities=[DRIVER], source=FileSource(path=str(source), event_timestamp_column="ts"),
            window=Window(at(hour), at(hour + 1)), table_path=path, job_id=f"ingest-{hour}", ingested_at=datetime(2024, 2, 1, tzinfo=UTC),
        )  # fmt: skip
    before = spark.read.format("delta").load(path)
    expected = before.collect()
    files_before = len(before.inputFiles())

    def run(action: str) -> dict[str, object]:
        spec = JobSpec(
            job_id=f"{action}-test", job_type="maintenance", project="demo", entities=(DRIVER,),
            feature_tables=(table,), offline_store_path=str(tmp_path / "offline"),
            result_path=str(tmp_path / f"{action}.json"), options=MaintenanceOptions(action),
        )  # fmt: skip
        (tmp_path / "spec.json").write_text(spec.to_json())
        assert load_job().main(["--spec", str(tmp_path / "spec.json")], spark=spark) == 0
        return read_result(str(tmp_path / f"{action}.json")).to_dict()

    # when compacted, then one file holds the same rows
    result = run("compact")
    after = spark.read.format("delta").load(path)
    assert files_before == 3 and len(after.inputFiles()) == 1
    assert result["details"]["tables"]["stats"] == {"files_added": 1, "files_removed": 3}  # type: ignore[index]
    assertDataFrameEqual(after, expected)
    # when vacuumed (7-day retention), then the data is unchanged and time travel still works
    run("vacuum")
    assertDataFrameEqual(spark.read.format("delta").load(path), expected)
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 1
    assert len(expected) == 3
