"""jobs/ingest.py: spec in, Delta table and result record out; failures leave a FAILED record."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import JobFailedError, NotFoundError
from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, read_result, write_result
from feast_spark.specs import IngestOptions, JobSpec, Window
from feast_spark.storage import pyarrow_uri

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
DDL = "driver_id bigint, ts timestamp, trips bigint"


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ingest_job", ROOT / "jobs" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_spec(
    tmp_path: Path,
    source_path: str,
    *,
    job_id: str = "ingest-driver-stats-1",
    window: Window | None = None,
    options: IngestOptions | None = None,
    features: tuple[Feature, ...] = (Feature("trips", "INT64"),),
) -> Path:
    table = FeatureTable(
        name="driver_stats",
        entities=["driver_id"],
        features=list(features),
        batch_source=FileSource(path=source_path, event_timestamp_column="ts"),
    )
    spec = JobSpec(
        job_id=job_id,
        job_type="ingest",
        project="demo",
        entities=(Entity("driver_id", "INT64"),),
        feature_tables=(table,),
        offline_store_path=str(tmp_path / "offline"),
        window=window or Window(),
        result_path=str(tmp_path / "results" / f"{job_id}.json"),
        options=options,
    )
    path = tmp_path / f"{job_id}.spec.json"
    path.write_text(spec.to_json())
    return path


def write_source(
    spark: SparkSession, path: Path, rows: list[tuple[Any, ...]], ddl: str = DDL
) -> str:
    spark.createDataFrame(rows, ddl).write.parquet(str(path))
    return str(path)


# --- end to end through spark-submit ------------------------------------------------------------


def test_spark_submit_ingest_writes_the_table_and_a_result_record(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a small parquet source over two days and a spec for day 1
    source = write_source(
        spark, tmp_path / "source", [(1, at(1, 1), 3), (2, at(1, 2), 4), (3, at(2, 1), 5)]
    )
    spec_path = make_spec(tmp_path, source, window=Window(at(1), at(2)))

    # when the job is submitted
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    completed = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=2", "ingest", "--spec", str(spec_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    # then it succeeds, and its record says what it did
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = read_result(str(tmp_path / "results" / "ingest-driver-stats-1.json"))
    assert result.status == SUCCEEDED and result.error is None
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (2, 2, 0)
    assert result.delta_version == 0  # the first write creates the table
    assert result.window == Window(at(1), at(2))
    assert result.duration_s > 0
    table_path = tmp_path / "offline" / "demo" / "driver_stats"
    assert result.details["table_path"] == str(table_path)
    # and the table holds day 1
    rows = spark.read.format("delta").load(str(table_path)).collect()
    assert sorted((r.driver_id, r.trips) for r in rows) == [(1, 3), (2, 4)]


# --- in process (the fixture's session) -----------------------------------------------------------


def test_a_failing_job_writes_a_failed_record_and_exits_1(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a spec whose source lacks a declared feature
    source = write_source(spark, tmp_path / "source", [(1, at(1), 3)])
    spec_path = make_spec(
        tmp_path, source, features=(Feature("trips", "INT64"), Feature("rating", "DOUBLE"))
    )

    # when the job runs
    status = load_job().main(["--spec", str(spec_path)], spark=spark)

    # then it exits 1 with a FAILED record naming the problem, and nothing was written
    assert status == 1
    result = read_result(str(tmp_path / "results" / "ingest-driver-stats-1.json"))
    assert result.status == FAILED
    assert result.error is not None
    assert result.error.startswith("feature table 'driver_stats': column 'rating' is missing")
    assert not (tmp_path / "offline" / "demo" / "driver_stats").exists()
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == FAILED


def test_too_many_rejected_rows_fail_the_job_without_a_commit(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = write_source(
        spark,
        tmp_path / "source",
        [(1, at(1), "1"), (2, at(1), "two"), (3, at(1), "3")],
        "driver_id bigint, ts timestamp, trips string",
    )
    spec_path = make_spec(tmp_path, source, options=IngestOptions(max_rejected_fraction=0.1))

    assert load_job().main(["--spec", str(spec_path)], spark=spark) == 1

    result = read_result(str(tmp_path / "results" / "ingest-driver-stats-1.json"))
    assert result.error is not None and "1 of 3 rows rejected" in result.error
    assert not (tmp_path / "offline" / "demo").exists()


def test_rejected_rows_are_counted_in_the_record(spark: SparkSession, tmp_path: Path) -> None:
    source = write_source(
        spark,
        tmp_path / "source",
        [(1, at(1), "1"), (2, at(1), "two"), (None, at(1), "3")],
        "driver_id bigint, ts timestamp, trips string",
    )
    spec_path = make_spec(tmp_path, source)

    assert load_job().main(["--spec", str(spec_path)], spark=spark) == 0

    result = read_result(str(tmp_path / "results" / "ingest-driver-stats-1.json"))
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (3, 1, 2)
    assert result.details["rejected_version"] == 0  # the first write creates the table


def test_a_table_still_partitioned_by_day_is_refused_with_the_statement_that_rewrites_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as sf

    # given an offline table of the retired layout (partitioned by event_date), with table
    # properties and two versions of history
    table_path = str(tmp_path / "offline" / "demo" / "driver_stats")
    stats = "driver_id,event_timestamp,created_timestamp"
    spark.createDataFrame(
        [(1, at(1, 1), at(1, 1), 3)],
        "driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, trips bigint",
    ).withColumn("event_date", sf.to_date("event_timestamp")).write.format("delta").partitionBy(
        "event_date"
    ).option("delta.dataSkippingStatsColumns", stats).save(table_path)
    spark.sql(f"ALTER TABLE delta.`{table_path}` SET TBLPROPERTIES ('team' = 'rides')")

    def version() -> int:
        row = DeltaTable.forPath(spark, table_path).history(1).first()
        assert row is not None
        return int(row["version"])

    assert version() == 1
    source = write_source(spark, tmp_path / "source", [(2, at(2, 1), 5)])

    # when a job ingests into it
    status = load_job().main(["--spec", str(make_spec(tmp_path, source))], spark=spark)

    # then it fails with one line that names the layout and carries the statement, and
    # nothing was committed
    assert status == 1
    result = read_result(str(tmp_path / "results" / "ingest-driver-stats-1.json"))
    assert result.status == FAILED and result.error is not None
    assert "\n" not in result.error
    assert "is partitioned by event_date" in result.error and "nothing was written" in result.error
    statement = result.error[result.error.index("REPLACE TABLE") :]
    assert version() == 1

    # when the statement is run
    spark.sql(statement)

    # then the table is unpartitioned, its rows, properties and history kept
    detail = DeltaTable.forPath(spark, table_path).detail().first()
    assert detail is not None and list(detail["partitionColumns"]) == []
    assert detail["properties"]["team"] == "rides"
    assert detail["properties"]["delta.dataSkippingStatsColumns"] == stats
    assert version() == 2
    old = spark.read.format("delta").option("versionAsOf", "0").load(table_path)
    assert [(r.driver_id, r.event_date) for r in old.collect()] == [(1, at(1).date())]

    # and the ingest, run again, adds its row
    spec_path = make_spec(tmp_path, source, job_id="ingest-driver-stats-2")
    assert load_job().main(["--spec", str(spec_path)], spark=spark) == 0
    rows = spark.read.format("delta").load(table_path)
    assert "event_date" not in rows.columns
    assert sorted((r.driver_id, r.trips) for r in rows.collect()) == [(1, 3), (2, 5)]


def test_an_unreadable_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_job().main(["--spec", str(tmp_path / "missing.json")]) == 2
    assert "job spec" in capsys.readouterr().err


# --- result records -------------------------------------------------------------------------------


def test_result_records_round_trip_and_replace_atomically(tmp_path: Path) -> None:
    result = JobResult(
        job_id="j1",
        job_type="ingest",
        status=SUCCEEDED,
        started_at=at(1),
        finished_at=at(1, 1),
        window=Window(at(1), None),
        rows_read=3,
        rows_written=2,
        rows_rejected=1,
        delta_version=4,
        details={"table_path": "/x"},
    )
    path = tmp_path / "nested" / "j1.json"
    write_result(str(path), result)
    write_result(f"file://{path}", result)  # replaced, not appended; file: URIs are local
    assert read_result(str(path)) == result
    assert json.loads(path.read_text())["duration_s"] == 3600.0
    assert [p.name for p in path.parent.iterdir()] == ["j1.json"]  # no temporary left


def test_missing_and_unreadable_records(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="job result"):
        read_result(str(tmp_path / "none.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"result_version": 1, "job_id": ')
    with pytest.raises(JobFailedError, match="UNKNOWN"):
        read_result(str(broken))


def test_hadoop_schemes_map_to_pyarrow_file_systems() -> None:
    assert pyarrow_uri("s3a://bucket/results/j1.json") == "s3://bucket/results/j1.json"
    assert pyarrow_uri("gs://bucket/j1.json") == "gs://bucket/j1.json"
    assert pyarrow_uri("hdfs://nn:8020/r/j1.json") == "hdfs://nn:8020/r/j1.json"


def test_a_quiet_interval_succeeds_with_0_rows_and_history_is_never_deleted(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a table loaded from a file holding January 1 (no window: rows are added)
    jan1 = write_source(spark, tmp_path / "jan1", [(1, at(1, 1), 3), (2, at(1, 2), 4)])
    assert (
        load_job().main(["--spec", str(make_spec(tmp_path, jan1, job_id="j1"))], spark=spark) == 0
    )

    # when a file holding only January 2 is ingested without a window, and then a scheduled
    # run ingests a quiet interval (an empty file, a window with no rows in the table)
    jan2 = write_source(spark, tmp_path / "jan2", [(1, at(2, 1), 5)])
    assert (
        load_job().main(["--spec", str(make_spec(tmp_path, jan2, job_id="j2"))], spark=spark) == 0
    )
    empty = write_source(spark, tmp_path / "empty", [])
    quiet = make_spec(tmp_path, empty, job_id="j3", window=Window(at(5), at(6)))
    assert load_job().main(["--spec", str(quiet)], spark=spark) == 0

    # then January 1 is still there, and each record says what happened
    rows = spark.read.format("delta").load(str(tmp_path / "offline" / "demo" / "driver_stats"))
    assert sorted((r.driver_id, r.trips) for r in rows.collect()) == [(1, 3), (1, 5), (2, 4)]
    added = read_result(str(tmp_path / "results" / "j2.json"))
    assert (added.rows_written, added.rows_deleted, added.delta_version) == (1, 0, 1)
    assert added.details["mode"] == "add"
    result = read_result(str(tmp_path / "results" / "j3.json"))
    assert result.status == SUCCEEDED
    assert (result.rows_read, result.rows_written, result.rows_deleted) == (0, 0, 0)
    assert (result.delta_version, result.details["committed"]) == (1, False)
