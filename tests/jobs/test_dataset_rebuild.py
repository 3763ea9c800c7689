"""Reproducible training datasets: record, rebuild row for row, refuse what cannot be rebuilt.

Real Delta tables on the test run's local Spark; the Client builds every spec and the jobs run
in this process (``InProcessLauncher``), so only spark-submit is left out.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from pyspark.testing import assertDataFrameEqual

from feast_spark.client import Client
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import DatasetGoneError, JobFailedError
from feast_spark.job_results import JobResult, read_result
from feast_spark.specs import JobSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")  # type: ignore[arg-type]
CONFIG = "project: demo\nregistry: data/registry.json\noffline_store: {path: data/offline}\n"
SOURCE_SCHEMA = "driver_id bigint, trips bigint, conv_rate double, ts timestamp"


def at(day: int, hour: int) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def load_job(job_type: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"{job_type}_job", ROOT / "jobs" / f"{job_type}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FinishedJob:
    """What a launcher returns, for a job that already ran."""

    def __init__(self, result: JobResult) -> None:
        self.id = result.job_id
        self._result = result

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        if not self._result.succeeded:
            raise JobFailedError(self.id, self._result.status, self._result.error or "?")
        return self._result.to_dict()


class InProcessLauncher:
    """Runs each submitted spec's job in this process, on the test run's session."""

    def __init__(self, spark: SparkSession, folder: Path) -> None:
        self.spark = spark
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def submit(self, spec: JobSpec) -> FinishedJob:
        spec = dataclasses.replace(spec, result_path=str(self.folder / f"{spec.job_id}.json"))
        spec_path = self.folder / f"{spec.job_id}.spec.json"
        spec_path.write_text(spec.to_json())
        load_job(spec.job_type).main(["--spec", str(spec_path)], spark=self.spark)
        return FinishedJob(read_result(str(spec.result_path)))


def driver_table(source: Path) -> FeatureTable:
    return FeatureTable(
        "driver_stats",
        ["driver_id"],
        [Feature("trips", "INT64"), Feature("conv_rate", "DOUBLE")],  # type: ignore[list-item]
        FileSource(path=str(source), event_timestamp_column="ts"),
        max_age=timedelta(hours=3),
    )


@dataclasses.dataclass
class Project:
    client: Client
    folder: Path
    spark: SparkSession

    def source(self, name: str, rows: list[tuple[Any, ...]], schema: str = SOURCE_SCHEMA) -> str:
        path = self.folder / "sources" / name
        self.spark.createDataFrame(rows, schema).write.parquet(str(path))
        return str(path)

    def ingest(self, source: str) -> None:
        self.client.ingest("driver_stats", source, start=at(1, 0), end=at(2, 0)).result()

    def table_path(self) -> str:
        return f"{self.client.config.offline_store.path}/demo/driver_stats"


@pytest.fixture
def project(spark: SparkSession, tmp_path: Path) -> Iterator[Project]:
    """A project whose driver_stats table has one ingest (of March 1st)."""
    (tmp_path / "feature_store.yaml").write_text(CONFIG)
    client = Client(tmp_path / "feature_store.yaml")
    client.__dict__["launcher"] = InProcessLauncher(spark, tmp_path / "ran")
    made = Project(client, tmp_path, spark)
    first = made.source(
        "first",
        [(1, 10, 0.1, at(1, 8)), (1, 11, 0.2, at(1, 10)), (2, 20, 0.5, at(1, 9))],
    )
    client.apply(DRIVER, driver_table(Path(first)))
    made.ingest(first)
    yield made
    client.close()


def entity_parquet(project: Project, name: str = "entities") -> str:
    return project.source(
        name,
        [(1, at(1, 9)), (1, at(1, 11)), (2, at(1, 10)), (3, at(1, 10))],
        "driver_id bigint, event_timestamp timestamp",
    )


def sorted_rows(frame: DataFrame) -> DataFrame:
    return frame.orderBy(*frame.columns)


def test_a_dataset_rebuilt_after_two_ingests_and_a_new_feature_equals_the_original(
    project: Project, spark: SparkSession
) -> None:
    client = project.client
    # given two datasets: entity rows from parquet files and from a Delta table
    from_files = client.get_historical_features(
        "driver_stats:*", entity_parquet(project), output_path=str(project.folder / "ds1")
    )
    from_files.result()
    entity_delta = str(project.folder / "entity_delta")
    spark.read.parquet(entity_parquet(project, "entities2")).write.format("delta").save(
        entity_delta
    )
    from_delta = client.get_historical_features(
        "driver_stats:trips", entity_delta, output_path=str(project.folder / "ds2")
    )
    from_delta.result()
    originals = {
        from_files.id: spark.read.parquet(str(project.folder / "ds1")),
        from_delta.id: spark.read.parquet(str(project.folder / "ds2")),
    }
    records = {r.dataset_id: r for r in client.list_datasets()}
    assert set(records) == set(originals)
    version = records[from_files.id].table_versions["driver_stats"]
    assert records[from_delta.id].table_versions == {"driver_stats": version}
    assert records[from_files.id].rows == 4
    assert records[from_delta.id].entity_source.delta_version == 0

    # when two more ingests replace March 1st, and an apply adds a feature the second one loads
    project.ingest(project.source("second", [(1, 99, 0.9, at(1, 8)), (2, 98, 0.8, at(1, 9))]))
    table = client.get_feature_table("driver_stats")
    client.apply(dataclasses.replace(table, features=[*table.features, Feature("bonus", "DOUBLE")]))  # type: ignore[list-item]
    project.ingest(
        project.source(
            "third",
            [(1, 77, 0.7, 1.5, at(1, 8))],
            "driver_id bigint, trips bigint, conv_rate double, bonus double, ts timestamp",
        )
    )
    # and rows are appended to the entity Delta table
    spark.createDataFrame(
        [(1, at(1, 12))], "driver_id bigint, event_timestamp timestamp"
    ).write.format("delta").mode("append").save(entity_delta)
    today = client.get_historical_features(
        "driver_stats:*",
        entity_parquet(project, "entities3"),
        output_path=str(project.folder / "now"),
    )
    today.result()
    assert "driver_stats__bonus" in spark.read.parquet(str(project.folder / "now")).columns

    # then each rebuild equals its original, row for row, and records what it rebuilt
    for dataset_id, original in originals.items():
        output = str(project.folder / f"rebuilt-{dataset_id}")
        rebuilt = client.rebuild_dataset(dataset_id, output)
        rebuilt.result()
        assertDataFrameEqual(
            sorted_rows(spark.read.parquet(output)), sorted_rows(original), checkRowOrder=True
        )
        again = client.get_dataset(rebuilt.id)
        assert again.rebuild_of == dataset_id
        assert again.table_versions == records[dataset_id].table_versions
        assert again.entity_source == records[dataset_id].entity_source
    latest = spark.read.parquet(str(project.folder / "now")).drop("driver_stats__bonus")
    with pytest.raises(AssertionError):  # the data did change: the rebuild did not read it
        assertDataFrameEqual(sorted_rows(latest), sorted_rows(originals[from_files.id]))


def test_a_changed_or_added_entity_file_is_refused(project: Project) -> None:
    client = project.client
    # given a dataset from a folder of entity files
    entities = entity_parquet(project)
    job = client.get_historical_features(
        "driver_stats:trips", entities, output_path=str(project.folder / "ds")
    )
    job.result()
    files = client.get_dataset(job.id).entity_source.files
    assert files and all(len(f.sha256) == 64 for f in files)
    # when a file is added to the folder, then the rebuild job refuses, naming it
    extra = Path(entities) / "part-99999-extra.parquet"
    extra.write_bytes(Path(files[0].path.removeprefix("file:")).read_bytes())
    with pytest.raises(JobFailedError, match=f"now lists a file it did not: .*{extra.name}"):
        client.rebuild_dataset(job.id, str(project.folder / "again")).result()
    extra.unlink()
    # when a recorded file changes, then the rebuild is refused before any job, naming it
    changed = Path(files[0].path.removeprefix("file:"))
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(DatasetGoneError, match=f"entity file .*{changed.name} changed"):
        client.rebuild_dataset(job.id, str(project.folder / "again"))


def test_vacuum_keeps_a_dataset_version_unless_forced_and_a_vacuumed_one_is_reported(
    project: Project, spark: SparkSession
) -> None:
    client = project.client
    # given a dataset, then an ingest that replaces the files it read
    job = client.get_historical_features(
        "driver_stats:trips", entity_parquet(project), output_path=str(project.folder / "ds")
    )
    job.result()
    version = client.get_dataset(job.id).table_versions["driver_stats"]
    project.ingest(project.source("second", [(1, 99, 0.9, at(1, 8))]))
    # and a table whose vacuum keeps no history (the default keeps 7 days)
    spark.sql(
        f"ALTER TABLE delta.`{project.table_path()}` SET TBLPROPERTIES "
        "('delta.deletedFileRetentionDuration' = 'interval 0 hours')"
    )
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        # when vacuumed, then it is refused, naming the version and the dataset, deleting nothing
        with pytest.raises(JobFailedError) as refused:
            client.vacuum("driver_stats").result()
        assert f"would delete files of version {version}, which dataset(s) {job.id} read" in str(
            refused.value
        )
        assert "--force" in str(refused.value)
        # when forced, then the version's files go and a rebuild names what is gone
        client.vacuum("driver_stats", force=True).result()
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
    with pytest.raises(JobFailedError) as gone:
        client.rebuild_dataset(job.id, str(project.folder / "again")).result()
    message = str(gone.value)
    assert f"dataset '{job.id}' cannot be rebuilt: version {version} of offline table" in message
    assert "was vacuumed" in message and "--force" in message and "\n" not in message
