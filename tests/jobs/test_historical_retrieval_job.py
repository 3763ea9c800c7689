"""jobs/historical_retrieval.py: offline Delta tables + entity rows in, training dataset out."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.job_results import read_result
from feast_spark.join_tuning import JoinTuning
from feast_spark.online.base import to_micros
from feast_spark.spark.ingest import ingest_table
from feast_spark.spark.point_in_time import EntitySummary
from feast_spark.spark.training_data import (
    EntityRows,
    build_training_dataset,
    prepare_entity_rows,
)
from feast_spark.specs import HistoricalRetrievalOptions, JobSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")  # type: ignore[arg-type]
CUSTOMER = Entity("customer_id", "STRING")  # type: ignore[arg-type]


def load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "hr_job", ROOT / "jobs" / "historical_retrieval.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def at(hour: int, minute: int = 0, second: float = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def driver_table(path: str) -> FeatureTable:
    return FeatureTable(
        "driver_stats",
        ["driver_id"],
        [Feature("conv_rate", "DOUBLE"), Feature("trips", "INT64")],  # type: ignore[arg-type]
        FileSource(path=path, event_timestamp_column="ts", created_timestamp_column="created"),
        max_age=timedelta(hours=2),
    )


def customer_table(path: str) -> FeatureTable:
    return FeatureTable(
        "customer_profile",
        ["customer_id"],
        [Feature("premium", "BOOL")],  # type: ignore[arg-type]
        FileSource(path=path, event_timestamp_column="ts"),
    )


@pytest.fixture(scope="module")
def offline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("hr")
    driver_rows = [
        (1, 0.1, 10, at(8), at(8)),
        (1, 0.2, 20, at(9), at(9)),
        (1, 0.3, 30, at(9), at(9, 30)),  # same event time, created later: wins at 9:00+
        (1, None, 40, at(10, 0, 0.4)),  # 400 ms after 10:00
        (2, 0.9, 90, at(5), at(5)),  # older than max_age (2h) for a 10:00 entity row
    ]
    rows = [(*r, None) if len(r) == 4 else r for r in driver_rows]
    spark.createDataFrame(
        rows, "driver_id bigint, conv_rate double, trips bigint, ts timestamp, created timestamp"
    ).write.parquet(str(root / "driver_src"))
    spark.createDataFrame(
        [("a", True, at(1)), ("b", False, at(11))],
        "customer_id string, premium boolean, ts timestamp",
    ).write.parquet(str(root / "customer_src"))
    tables = {
        "driver_stats": driver_table(str(root / "driver_src")),
        "customer_profile": customer_table(str(root / "customer_src")),
    }
    for name, table in tables.items():
        entity = DRIVER if name == "driver_stats" else CUSTOMER
        ingest_table(
            spark,
            table=table,
            entities=[entity],
            source=table.batch_source,
            window=None,
            table_path=str(root / "offline" / "demo" / name),
            job_id=f"ingest-{name}",
            ingested_at=at(12),
        )
    return {"root": root, "tables": tables}


def run_job(
    spark: SparkSession,
    tmp_path: Path,
    offline: dict[str, object],
    entity_source: FileSource,
    refs: tuple[str, ...],
    output: str | None = None,
    output_format: str = "parquet",
    tuning: JoinTuning | None = None,
) -> tuple[int, dict[str, object], str]:
    tables: dict[str, FeatureTable] = offline["tables"]  # type: ignore[assignment]
    output_path = output or str(tmp_path / "dataset")
    spec = JobSpec(
        job_id="historical-retrieval-test",
        job_type="historical_retrieval",
        project="demo",
        entities=(DRIVER, CUSTOMER),
        feature_tables=tuple(tables.values()),
        offline_store_path=str(offline["root"] / "offline"),  # type: ignore[operator]
        result_path=str(tmp_path / "result.json"),
        options=HistoricalRetrievalOptions(
            refs, entity_source, output_path, output_format, join_tuning=tuning or JoinTuning()
        ),
    )
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    status = load_job().main(["--spec", str(spec_path)], spark=spark)
    return status, read_result(str(tmp_path / "result.json")).to_dict(), output_path


@pytest.mark.parametrize("hot_keys_split", [False, True], ids=["whole-keys", "hot-keys-split"])
def test_a_dataset_is_point_in_time_correct(
    spark: SparkSession,
    tmp_path: Path,
    offline: dict[str, object],
    hot_keys_split: bool,
) -> None:
    # (split: keys on 40% or more of the entity rows count as hot, in 3 time buckets)
    tuning = (
        JoinTuning(hot_key_min_rows=1, hot_key_min_share=0.4, hot_key_time_buckets=3)
        if hot_keys_split
        else JoinTuning()
    )
    # given entity rows as csv with ISO-8601 strings in another time zone and an int driver key
    entities = tmp_path / "entities.csv"
    entities.write_text(
        "driver,customer_id,when,label\n"
        "1,a,2024-03-01T11:00:00+02:00,x\n"  # 09:00 UTC: the 9:00 row created last wins
        "1,a,2024-03-01T11:00:00+02:00,x\n"  # a duplicate stays
        "1,b,2024-03-01T12:00:00+02:00,y\n"  # 10:00 UTC: the 10:00:00.4 row must not match
        "2,b,2024-03-01T10:00:00Z,z\n"  # driver 2's only row is 5h old: outside max_age
        "3,c,2024-03-01T10:00:00Z,w\n"  # no rows at all
    )
    source = FileSource(
        path=str(entities),
        file_format="csv",
        event_timestamp_column="when",
        timestamp_format="iso8601",
        field_mapping={"driver_id": "driver"},
    )
    # (split: the job's validation pass finds driver 1 and customers a and b hot)
    summary = prepare_entity_rows(
        spark, source, [DRIVER, CUSTOMER], [["driver_id"], ["customer_id"]], tuning
    ).summary
    hot = {keys: len(hashes) for keys, hashes in summary.hot_keys.items()}
    assert hot == (
        {("driver_id",): 1, ("customer_id",): 2}
        if hot_keys_split
        else {("driver_id",): 0, ("customer_id",): 0}
    )
    # when the job runs
    status, result, output = run_job(
        spark,
        tmp_path,
        offline,
        source,
        ("driver_stats:*", "customer_profile:premium"),
        tuning=tuning,
    )
    # then it succeeds and every entity row comes out once, with the values of its time
    assert status == 0, result
    assert result["rows_written"] == 5
    table = pq.read_table(output).sort_by([("label", "ascending"), ("driver_id", "ascending")])
    rows = table.select(
        [
            "driver_id",
            "customer_id",
            "label",
            "driver_stats__conv_rate",
            "driver_stats__trips",
            "customer_profile__premium",
        ]
    ).to_pylist()
    assert [tuple(r.values()) for r in rows] == [
        (3, "c", "w", None, None, None),
        (1, "a", "x", 0.3, 30, True),
        (1, "a", "x", 0.3, 30, True),
        (1, "b", "y", 0.3, 30, None),
        (2, "b", "z", None, None, None),
    ]
    assert table.schema.field("when").type == pa.timestamp("us", tz="UTC")


def test_a_max_age_reaching_before_year_one_bounds_nothing(
    spark: SparkSession, offline: dict[str, object]
) -> None:
    # given driver_stats with a max_age of about 2,200 years, and entity rows at 10:00
    tables: dict[str, FeatureTable] = offline["tables"]  # type: ignore[assignment]
    ancient = dataclasses.replace(tables["driver_stats"], max_age=timedelta(days=800_000))
    rows = spark.createDataFrame(
        [(1, at(10)), (2, at(10))], "driver_id bigint, event_timestamp timestamp"
    )
    micros = to_micros(at(10))
    entity_rows = EntityRows(rows, "event_timestamp", EntitySummary(micros, micros))
    path = str(offline["root"] / "offline" / "demo" / "driver_stats")  # type: ignore[operator]
    # when the training set is built
    dataset = build_training_dataset(
        spark, entity_rows, [ancient], {"driver_stats": ["trips"]}, {"driver_stats": path}
    )
    # then every older row is a candidate, driver 2's five-hour-old one included
    got = sorted((r.driver_id, r.driver_stats__trips) for r in dataset.collect())
    assert got == [(1, 30), (2, 90)]


def test_an_existing_output_is_never_overwritten(
    spark: SparkSession, tmp_path: Path, offline: dict[str, object]
) -> None:
    entities = tmp_path / "e.parquet"
    pq.write_table(
        pa.table(
            {"driver_id": [1], "event_timestamp": pa.array([at(9)], pa.timestamp("us", tz="UTC"))}
        ),
        entities,
    )
    source = FileSource(path=str(entities), event_timestamp_column="event_timestamp")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "keep.txt").write_text("mine")
    status, result, _ = run_job(spark, tmp_path, offline, source, ("driver_stats:trips",))
    assert status == 1 and "already exists" in str(result["error"])
    assert (tmp_path / "dataset" / "keep.txt").read_text() == "mine"


def test_a_delta_dataset_never_lands_in_an_existing_folder_that_is_not_a_delta_table(
    spark: SparkSession, tmp_path: Path, offline: dict[str, object]
) -> None:
    # Given a folder holding someone's files (e.g. a parquet dataset, rebuilt with --format delta)
    entities = tmp_path / "e.parquet"
    pq.write_table(
        pa.table(
            {"driver_id": [1], "event_timestamp": pa.array([at(9)], pa.timestamp("us", tz="UTC"))}
        ),
        entities,
    )
    source = FileSource(path=str(entities), event_timestamp_column="event_timestamp")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "keep.txt").write_text("mine")
    # When a delta dataset is written there
    status, result, _ = run_job(
        spark, tmp_path, offline, source, ("driver_stats:trips",), output_format="delta"
    )
    # Then the job fails naming the output, and the folder holds only what it held
    assert status == 1 and "already exists" in str(result["error"]), result["error"]
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"event_timestamp": [at(9)]}, "'driver_id' is missing"),
        ({"driver_id": [1]}, "'event_timestamp' is missing"),
        ({"driver_id": [1.5], "event_timestamp": [at(9)]}, "cannot be converted"),
        (
            {
                "driver_id": pa.array([], pa.int64()),
                "event_timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
            },
            "has no rows",
        ),
    ],
)
def test_bad_entity_rows_fail_with_a_clear_error(
    spark: SparkSession,
    tmp_path: Path,
    offline: dict[str, object],
    columns: dict[str, object],
    message: str,
) -> None:
    entities = tmp_path / "e.parquet"
    pq.write_table(pa.table(columns), entities)
    source = FileSource(path=str(entities), event_timestamp_column="event_timestamp")
    status, result, _ = run_job(spark, tmp_path, offline, source, ("driver_stats:trips",))
    assert status == 1
    assert message in str(result["error"]), result["error"]
    assert "entity rows" in str(result["error"])


def test_a_bad_spec_exits_2(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"spec_version": 99}))
    assert load_job().main(["--spec", str(tmp_path / "spec.json")]) == 2


class FinishedJob:
    """Stands in for the launcher's handle of a job that has succeeded."""

    id = "historical-retrieval-test"

    def result(self, timeout: float | None = None) -> dict[str, object]:
        return {}


def dataset_rows(table: pa.Table) -> list[tuple[object, ...]]:
    columns = ["driver_id", "event_timestamp", "driver_stats__trips"]
    return sorted(tuple(row.values()) for row in table.select(columns).to_pylist())


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_a_delta_dataset_reads_back_without_spark(
    spark: SparkSession, tmp_path: Path, offline: dict[str, object], as_uri: bool
) -> None:
    from feast_spark.retrieval_job import RetrievalJob

    # given a training set written as Delta by the job, at a path or a file:// URI
    entities = tmp_path / "e.parquet"
    times = pa.array([at(9), at(10, 30), at(10, 30)], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"driver_id": [1, 1, 2], "event_timestamp": times}), entities)
    source = FileSource(path=str(entities), event_timestamp_column="event_timestamp")
    output = f"file://{tmp_path / 'dataset'}" if as_uri else str(tmp_path / "dataset")
    status, result, _ = run_job(
        spark, tmp_path, offline, source, ("driver_stats:trips",), output, "delta"
    )
    assert status == 0, result
    # and then changed by later commits: a checkpoint, and a row deleted with a deletion vector
    spark.sql(
        f"ALTER TABLE delta.`{output}` SET TBLPROPERTIES "
        "('delta.checkpointInterval' = '1', 'delta.enableDeletionVectors' = 'true')"
    )
    spark.sql(f"OPTIMIZE delta.`{output}`")  # one file: the DELETE below marks a row in it
    spark.sql(f"DELETE FROM delta.`{output}` WHERE driver_id = 2")
    log = sorted((tmp_path / "dataset" / "_delta_log").glob("*.json"))[-1].read_text()
    assert '"deletionVector":{' in log.replace(" ", "")  # the row is deleted by a vector
    assert list((tmp_path / "dataset" / "_delta_log").glob("*.checkpoint.parquet"))
    expected = spark.read.format("delta").load(output).toPandas()
    # when read back through the client's handle, without Spark
    table = RetrievalJob(FinishedJob(), output, "delta").to_arrow()  # type: ignore[arg-type]
    # then it holds exactly the rows Spark reads, with their types
    assert len(expected) == 2
    assert dataset_rows(table) == [(1, at(9), 30), (1, at(10, 30), 40)]
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing", "no Delta table"),
        ("plain-folder", "no Delta table"),
        ("unknown://bucket/dataset", "unknown://bucket/dataset"),
    ],
)
def test_a_delta_dataset_that_cannot_be_read_is_an_error_not_zero_rows(
    tmp_path: Path, where: str, message: str
) -> None:
    from feast_spark.errors import FeastSparkError
    from feast_spark.retrieval_job import RetrievalJob

    (tmp_path / "plain-folder").mkdir()
    (tmp_path / "plain-folder" / "part-0.parquet").write_bytes(b"")
    path = where if "://" in where else str(tmp_path / where)
    with pytest.raises(FeastSparkError, match=message):
        RetrievalJob(FinishedJob(), path, "delta").to_arrow()  # type: ignore[arg-type]
