"""Settings sized to a job from its inputs: Delta snapshot partitions and a short run's JVM."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.launcher import JobState, JobStore, Launcher
from feast_spark.launcher.sizing import (
    DRIVER_JAVA_OPTIONS,
    MIB,
    JobFootprint,
    measure,
    sized_conf,
)
from feast_spark.launcher.submit import SparkSettings, SparkTarget
from feast_spark.specs import HistoricalRetrievalOptions, JobSpec, StreamOptions, Window

from .test_process_jobs import FAKE_SPARK_SUBMIT

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)
C1_ONLY = "-XX:TieredStopAtLevel=1"


def sized_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes (sparse: no time spent writing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def make_spec(tmp_path: Path, job_type: str = "ingest", **changes: object) -> JobSpec:
    driver = Entity("driver_id", "INT64")
    source = FileSource(
        path=str(tmp_path / "source.parquet"), file_format="parquet", event_timestamp_column="ts"
    )
    tables = tuple(
        FeatureTable(name, ("driver_id",), (Feature("trips", "INT64"),), source)
        for name in ("trips", "new_table")
    )
    fields: dict[str, object] = {
        "offline_store_path": str(tmp_path / "offline"),
        "window": Window(T0, T1),
        **changes,
    }
    return JobSpec(
        f"{job_type}-trips-1",
        job_type,
        "demo",
        (driver,),
        tables,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture()
def tables(tmp_path: Path) -> Path:
    """``trips`` with 20 MiB of Delta log and 1 MiB of data; ``new_table`` not written yet."""
    table = tmp_path / "offline" / "demo" / "trips"
    sized_file(table / "_delta_log" / "00000000000000000000.json", 12 * MIB)
    sized_file(table / "_delta_log" / "00000000000000000001.json", 8 * MIB)
    sized_file(table / "part-0000.parquet", 1 * MIB)
    sized_file(tmp_path / "source.parquet", 2 * MIB)
    return tmp_path


def test_a_small_local_job_gets_c1_only_and_a_cluster_job_never_does() -> None:
    small = JobFootprint(delta_log_bytes=20 * MIB, input_bytes=3 * MIB)
    assert sized_conf(small, local_master=True) == {
        "spark.databricks.delta.snapshotPartitions": "3",
        "spark.driver.extraJavaOptions": C1_ONLY,
    }
    assert sized_conf(small, local_master=False) == {
        "spark.databricks.delta.snapshotPartitions": "3"
    }


@pytest.mark.parametrize("input_bytes", [None, 65 * MIB])
def test_a_large_or_unmeasured_local_job_keeps_the_full_jit(input_bytes: int | None) -> None:
    footprint = JobFootprint(delta_log_bytes=0, input_bytes=input_bytes)
    assert sized_conf(footprint, local_master=True) == {
        "spark.databricks.delta.snapshotPartitions": "1"
    }


def test_an_ingest_is_measured_by_its_tables_logs_and_its_batch_source(tables: Path) -> None:
    # given an ingest of a table with a 20 MiB log and one not written yet, from a 2 MiB file
    spec = make_spec(tables)

    # when it is measured
    footprint = measure(spec, inputs=True)

    # then the logs count once, the inputs are the tables' files and the batch source
    assert footprint == JobFootprint(delta_log_bytes=20 * MIB, input_bytes=23 * MIB)
    assert measure(spec, inputs=False) == JobFootprint(delta_log_bytes=20 * MIB)


def test_a_retrieval_counts_its_entity_rows_not_the_batch_source(tables: Path) -> None:
    entity_rows = tables / "entities.parquet"
    sized_file(entity_rows, 5 * MIB)
    options = HistoricalRetrievalOptions(
        ("trips:trips",),
        FileSource(path=str(entity_rows), file_format="parquet", event_timestamp_column="ts"),
        str(tables / "out"),
    )
    spec = make_spec(tables, "historical_retrieval", window=Window(), options=options)
    assert measure(spec, inputs=True) == JobFootprint(20 * MIB, 26 * MIB)


def test_a_stream_never_counts_as_a_short_run(tables: Path) -> None:
    # given a stream job whose offline table is small (its input is a Kafka topic, unbounded)
    options = StreamOptions(SqliteOnlineStoreConfig(path=str(tables / "online.db")),
                            checkpoint_path=str(tables / "checkpoint"),
                            stop_path=str(tables / "stop"))  # fmt: skip
    spec = make_spec(tables, "stream_ingestion", window=Window(), options=options)

    # when it is measured and sized for a local master
    footprint = measure(spec, inputs=True)

    # then its input size is unknown, so it keeps the full JIT: it runs for hours, and C1-only
    # code ran its micro-batches a third slower (BENCHMARKS: stream ingestion)
    assert footprint == JobFootprint(20 * MIB, None)
    assert DRIVER_JAVA_OPTIONS not in sized_conf(footprint, local_master=True)


def test_a_remote_input_leaves_the_size_unknown(tables: Path) -> None:
    options = HistoricalRetrievalOptions(
        ("trips:trips",),
        FileSource(path="s3a://bucket/rows", file_format="parquet", event_timestamp_column="ts"),
        "s3a://bucket/out",
    )
    spec = make_spec(tables, "historical_retrieval", window=Window(), options=options)
    assert measure(spec, inputs=True) == JobFootprint(20 * MIB, None)


@pytest.fixture()
def launcher(tables: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Launcher, JobSpec]]:
    fake = tables / "spark" / "bin" / "spark-submit"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    jobs = tables / "jobs_dir"
    jobs.mkdir()
    (jobs / "ingest.py").write_text("print('ingested')\n")
    monkeypatch.setenv("FEAST_SPARK_JOBS_DIR", str(jobs))
    launcher = Launcher(
        SparkTarget("local", "local[1]", "client", str(fake)),
        JobStore(str(tables / "job_store")),
        settings=SparkSettings(conf={"spark.sql.shuffle.partitions": "4"}, python=sys.executable),
    )
    yield launcher, make_spec(tables)
    for record in launcher.store.list():
        if not record.state.is_final:
            launcher.get(record.job_id).cancel(timeout=30)


def test_the_launcher_passes_the_sized_settings_to_spark_submit(
    launcher: tuple[Launcher, JobSpec],
) -> None:
    # given a local launcher and an ingest of small inputs whose table has a 20 MiB log
    local, spec = launcher

    # when it is submitted
    job = local.submit(spec)

    # then its command carries the sized settings among the config's
    assert job.wait(60) is JobState.SUCCEEDED, job.logs()
    command = list(job.record.command)
    conf = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    conf = [c for c in conf if "pyspark" not in c]
    # (the driver's class-data sharing options follow the sized ones: test_class_archive.py)
    assert conf[1].startswith(f"spark.driver.extraJavaOptions={C1_ONLY} -XX:"), conf
    assert [conf[0], conf[2]] == [
        "spark.databricks.delta.snapshotPartitions=3",
        "spark.sql.shuffle.partitions=4",
    ]


def test_a_setting_the_caller_gives_wins_over_the_sized_one(
    launcher: tuple[Launcher, JobSpec],
) -> None:
    local, spec = launcher
    job = local.submit(spec, conf={"spark.databricks.delta.snapshotPartitions": "7"})
    assert job.wait(60) is JobState.SUCCEEDED, job.logs()
    assert "spark.databricks.delta.snapshotPartitions=7" in job.record.command
    assert "spark.databricks.delta.snapshotPartitions=3" not in job.record.command


def test_a_log_that_cannot_be_listed_leaves_deltas_default(tmp_path: Path) -> None:
    # given a table on a file system the launcher cannot reach (no HDFS client here)
    spec = make_spec(tmp_path, offline_store_path="hdfs://nowhere:9000/offline")
    # when it is measured
    footprint = measure(spec, inputs=False)
    # then its log size is unknown, and no snapshot setting is chosen for it: a large table
    # must not be read with the single partition of a one-commit table
    assert footprint == JobFootprint(delta_log_bytes=None)
    assert "spark.databricks.delta.snapshotPartitions" not in sized_conf(
        footprint, local_master=False
    )
