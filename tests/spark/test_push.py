"""jobs/push.py in the test session: a file's rows checked and written online (SQLite, Cassandra),
rejected with reasons, never regressing a newer value, appended offline once per job."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from feast_spark.config import SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.job_results import FAILED, SUCCEEDED, JobResult, read_result
from feast_spark.online.service import get_online_features
from feast_spark.online.stores import open_online_store
from feast_spark.specs import JobSpec, PushOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")
TABLE = FeatureTable(
    "driver_push", ["driver_id"], [Feature("trips", "INT64"), Feature("rate", "DOUBLE")],
    FileSource(path="/tmp/unused.parquet", event_timestamp_column="ts",
               field_mapping={"trips": "trip_count"}),
)  # fmt: skip
COLUMNS = pa.schema(
    [("driver_id", pa.int64()), ("ts", pa.string()), ("trip_count", pa.string()),
     ("rate", pa.float64())]
)  # fmt: skip


def load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("push_job", ROOT / "jobs" / "push.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows_file(folder: Path, rows: list[tuple[Any, ...]], schema: pa.Schema = COLUMNS) -> str:
    path = folder / f"rows-{uuid.uuid4().hex[:6]}.parquet"
    pq.write_table(pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows],
                                        schema=schema), path)  # fmt: skip
    return str(path)


def push(
    spark: SparkSession, tmp_path: Path, store: Any, path: str, to: str = "online",
    job_id: str | None = None,
) -> JobResult:  # fmt: skip
    job_id = job_id or f"push-{uuid.uuid4().hex[:6]}"
    spec = JobSpec(
        job_id=job_id, job_type="push", project="demo", entities=(DRIVER,),
        feature_tables=(TABLE,), offline_store_path=str(tmp_path / "offline"),
        result_path=str(tmp_path / "results" / f"{job_id}.json"),
        options=PushOptions(store, path, to),
    )  # fmt: skip
    spec_path = tmp_path / f"{job_id}.spec.json"
    spec_path.write_text(spec.to_json())
    load_job().main(["--spec", str(spec_path)], spark=spark)
    return read_result(str(tmp_path / "results" / f"{job_id}.json"))


def online(store: Any, drivers: list[int]) -> list[Any]:
    with open_online_store(store) as opened:
        values = get_online_features(
            opened, "demo", [TABLE], [DRIVER], ["driver_push:trips"],
            [{"driver_id": d} for d in drivers],
        ).to_dict()  # fmt: skip
    return list(values["driver_push:trips"])


def offline(spark: SparkSession, tmp_path: Path) -> list[tuple[int, int, int]]:
    frame = spark.read.format("delta").load(str(tmp_path / "offline" / "demo" / "driver_push"))
    ordered = frame.orderBy("driver_id", "event_timestamp").collect()
    return [(r["driver_id"], r["event_timestamp"].hour, r["trips"]) for r in ordered]


def test_pushed_rows_go_online_bad_rows_are_rejected_and_older_rows_never_regress(
    spark: SparkSession, tmp_path: Path, online_store: Any
) -> None:
    # given a file of rows shaped like the batch source (trips in trip_count), three of them bad
    first = rows_file(tmp_path, [
        (1, "2024-01-01T12:00:00Z", "9", 0.5),
        (2, "2024-01-01T10:00:00Z", "x", 0.1),        # trips is not an integer
        (None, "2024-01-01T10:00:00Z", "3", 0.1),     # no key
        (3, "yesterday", "3", 0.1),                   # no readable event time
        (4, "2024-01-01T10:00:00Z", "4", None),
    ])  # fmt: skip

    # when it is pushed
    result = push(spark, tmp_path, online_store, first)

    # then the valid rows are online, the others rejected under the job id with their reason
    assert result.status == SUCCEEDED, result.error
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (5, 2, 3)
    assert result.details["rows_offline"] == 0 and result.delta_version is None
    assert online(online_store, [1, 2, 3, 4]) == [9, None, None, 4]
    rejected = spark.read.format("delta").load(result.details["rejected_path"]).collect()
    assert {r["ingestion_job_id"] for r in rejected} == {result.job_id}
    reasons = {json.loads(r["source_row"]).get("driver_id"): r["reason"] for r in rejected}
    assert "trips (source column trip_count): x is not a valid INT64" in reasons[2]
    assert "driver_id: entity key is null" in reasons[None]
    assert "yesterday" in reasons[3]

    # when an older row of driver 1 and a newer one of driver 4 are pushed afterwards
    second = rows_file(tmp_path, [(1, "2024-01-01T11:00:00Z", "8", 0.4),
                                  (4, "2024-01-01T11:00:00Z", "5", 0.2)])  # fmt: skip
    again = push(spark, tmp_path, online_store, second)

    # then driver 1 keeps its newer value, driver 4 moves on
    assert again.status == SUCCEEDED, again.error
    assert online(online_store, [1, 4]) == [9, 5]


def test_to_both_appends_once_per_job_and_each_push_is_its_own_job(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a file of two rows, pushed to both stores
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    path = rows_file(tmp_path, [(1, "2024-01-01T10:00:00Z", "7", 0.5),
                                (2, "2024-01-01T11:00:00Z", "3", 0.1)])  # fmt: skip
    first = push(spark, tmp_path, store, path, "both", job_id="push-once")
    assert first.status == SUCCEEDED, first.error
    assert first.details["rows_offline"] == 2 and first.delta_version is not None

    # when the same job runs again (a retried spec), then nothing more is appended
    rerun = push(spark, tmp_path, store, path, "both", job_id="push-once")
    assert rerun.status == SUCCEEDED and rerun.delta_version == first.delta_version
    assert offline(spark, tmp_path) == [(1, 10, 7), (2, 11, 3)]

    # when the file is pushed again by a new job, then its rows are appended again (documented)
    other = push(spark, tmp_path, store, path, "both")
    assert other.status == SUCCEEDED
    assert offline(spark, tmp_path) == [(1, 10, 7), (1, 10, 7), (2, 11, 3), (2, 11, 3)]
    assert online(store, [1, 2]) == [7, 3]


def test_an_empty_file_or_a_missing_column_fails_the_job_and_writes_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    # given a parquet file without rows, and a csv file without the rate column
    empty = rows_file(tmp_path, [])
    no_rate = tmp_path / "rows.csv"
    no_rate.write_text("driver_id,ts,trip_count\n1,2024-01-01T10:00:00Z,7\n")

    # when each is pushed to both stores
    nothing = push(spark, tmp_path, store, empty, "both")
    missing = push(spark, tmp_path, store, str(no_rate), "both")

    # then both jobs fail, saying why, and no table was written or created
    assert nothing.status == FAILED
    assert nothing.error == (
        f"push to feature table 'driver_push': {empty} holds no rows; nothing was pushed "
        "(give at least one row)"
    )
    assert missing.status == FAILED
    assert "column 'rate' is missing from the source" in (missing.error or "")
    assert not (tmp_path / "offline").exists() and not (tmp_path / "online.db").exists()
