"""jobs/materialize.py: spec in, online values and a result record out; failures leave FAILED."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.job_results import FAILED, SUCCEEDED, read_result
from feast_spark.online.service import get_online_features
from feast_spark.online.stores import open_online_store
from feast_spark.online_store_config import serialize_online_store
from feast_spark.spark.offline_store import ensure_table
from feast_spark.spark.offline_writes import write_window
from feast_spark.specs import JobSpec, MaterializeOptions, Window

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from pyspark.sql import SparkSession

# Python workers of the in-process session must be this venv's Python (see test_materialize.py).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")
TABLES = (
    FeatureTable(
        "driver_stats", ["driver_id"], [Feature("trips", "INT64"), Feature("rate", "DOUBLE")],
        FileSource(path="/tmp/unused", event_timestamp_column="ts"),
    ),
    FeatureTable(
        "driver_daily", ["driver_id"], [Feature("km", "INT32_LIST")],
        FileSource(path="/tmp/unused", event_timestamp_column="ts"),
    ),
)  # fmt: skip


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


# rows: driver, event, created, features...
STATS = [
    (1, at(1, 1), at(1, 1), 10, 0.1),
    (1, at(1, 5), at(1, 5), 11, 0.2),  # latest of driver 1 in day 1
    (1, at(2, 5), at(2, 5), 12, 0.3),  # day 2: outside the window
    (2, at(1, 3), at(1, 3), 20, None),
    (2, at(1, 3), at(1, 4), 21, 0.5),  # same event, created later: wins
    (3, at(1, 9), at(1, 9), 30, 0.9),
]
DAILY = [(1, at(1, 0), at(1, 0), [1, 2]), (4, at(1, 2), at(1, 2), [7])]


def load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "materialize_job", ROOT / "jobs" / "materialize.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def offline_root(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Both tables' Delta tables, written with plain offline-store writes."""
    root = tmp_path_factory.mktemp("offline")
    for table, rows, ddl in (
        (TABLES[0], STATS, "trips bigint, rate double"),
        (TABLES[1], DAILY, "km array<int>"),
    ):
        path = str(root / "demo" / table.name)
        ensure_table(spark, path, table, [DRIVER])
        frame = spark.createDataFrame(
            rows, f"driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, {ddl}"
        )
        write_window(spark, frame, path, Window(), "test-ingest")
    return str(root)


def make_spec(
    tmp_path: Path,
    offline_root: str,
    store: Any,
    *,
    tables: tuple[FeatureTable, ...] = TABLES,
    window: Window | None = None,
) -> tuple[Path, Path]:
    job_id = f"materialize-{uuid.uuid4().hex[:6]}"
    result_path = tmp_path / "results" / f"{job_id}.json"
    spec = JobSpec(
        job_id=job_id,
        job_type="materialize",
        project="demo",
        entities=(DRIVER,),
        feature_tables=tables,
        offline_store_path=offline_root,
        window=window or Window(at(1), at(2)),
        result_path=str(result_path),
        options=MaterializeOptions(store),
    )
    path = tmp_path / f"{job_id}.spec.json"
    path.write_text(spec.to_json())
    return path, result_path


def online_values(store: Any) -> dict[str, list[Any]]:
    with open_online_store(store) as opened:
        return get_online_features(
            opened, "demo", TABLES, [DRIVER],
            ["driver_stats:trips", "driver_stats:rate", "driver_daily:km"],
            [{"driver_id": d} for d in (1, 2, 3, 4)],
        ).to_dict()  # fmt: skip


def stage_tasks(log: str) -> list[int]:
    """Tasks of each stage a job ran, from Spark's scheduler log."""
    return [int(n) for n in re.findall(r"Submitting (\d+) missing tasks", log)]


def assert_day_one_online(store: Any) -> None:
    values = online_values(store)
    assert values["driver_stats:trips"] == [11, 21, 30, None]
    assert values["driver_stats:rate"] == [0.2, 0.5, 0.9, None]
    assert values["driver_stats:rate__status"] == ["PRESENT", "PRESENT", "PRESENT", "NOT_FOUND"]
    assert values["driver_daily:km"] == [[1, 2], None, None, [7]]


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_session: Session) -> Iterator[str]:
    keyspace = f"test_job_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


# --- end to end through spark-submit ------------------------------------------------------------


@pytest.mark.cassandra
def test_spark_submit_materialize_writes_latest_rows_to_cassandra_and_a_result_record(
    offline_root: str, tmp_path: Path, cassandra_node: Any, cassandra_keyspace: str
) -> None:
    # given two Delta tables and a spec for day 1 into the local Cassandra
    store = CassandraOnlineStoreConfig(
        hosts=(cassandra_node.host,), port=cassandra_node.port, keyspace=cassandra_keyspace,
        local_dc=cassandra_node.local_dc, write_consistency="ONE",
    )  # fmt: skip
    spec_path, result_path = make_spec(tmp_path, offline_root, store)

    # when the job is submitted
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    completed = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=2", "materialize", "--spec", str(spec_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip

    # then it succeeds, and its record counts the rows written per table
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = read_result(str(result_path))
    assert result.status == SUCCEEDED and result.error is None
    assert result.rows_written == 5
    assert result.window == Window(at(1), at(2))
    assert result.details["online_store"] == "cassandra"
    assert [(t["table"], t["rows_written"]) for t in result.details["tables"]] == [
        ("driver_stats", 3),
        ("driver_daily", 2),
    ]
    # and Cassandra serves each key's latest day-1 row
    assert_day_one_online(store)
    # and no stage ran more tasks than the 2 shuffle partitions: the job sized Delta's snapshot
    # to the tables' small logs (Delta's default, 50 tasks, was a third of this job)
    assert max(stage_tasks(completed.stderr)) <= 2, stage_tasks(completed.stderr)


# --- in process (the fixture's session) -----------------------------------------------------------


def test_materialize_job_into_sqlite_then_rerun_changes_nothing(
    spark: SparkSession, offline_root: str, tmp_path: Path
) -> None:
    # given a spec into SQLite
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    spec_path, result_path = make_spec(tmp_path, offline_root, store)
    job = load_job()

    # when the job runs, twice
    assert job.main(["--spec", str(spec_path)], spark=spark) == 0
    first = online_values(store)
    assert job.main(["--spec", str(spec_path)], spark=spark) == 0

    # then the store holds the day-1 latest rows, unchanged by the rerun
    assert_day_one_online(store)
    assert online_values(store) == first
    assert read_result(str(result_path)).rows_written == 5


def test_unreachable_cassandra_fails_the_job_with_a_record_naming_the_hosts(
    spark: SparkSession, offline_root: str, tmp_path: Path
) -> None:
    store = CassandraOnlineStoreConfig(hosts=("127.0.0.1",), port=1, request_timeout_s=2.0)
    spec_path, result_path = make_spec(tmp_path, offline_root, store)

    status = load_job().main(["--spec", str(spec_path)], spark=spark)

    assert status == 1
    result = read_result(str(result_path))
    assert result.status == FAILED
    assert result.error is not None
    assert "cassandra online store at 127.0.0.1:1" in result.error
    assert not result.rows_written  # 0 or None: nothing was written


def test_a_write_task_failure_is_reported_with_the_store_error(
    spark: SparkSession, offline_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a store the driver reaches, but whose writes fail on the executors
    from feast_spark.spark import materialize

    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    spec_path, result_path = make_spec(tmp_path, offline_root, store, tables=TABLES[:1])
    broken = serialize_online_store(SqliteOnlineStoreConfig(path=str(tmp_path / "file" / "x.db")))
    (tmp_path / "file").write_text("a file where the folder should be")
    original = materialize.write_online
    monkeypatch.setattr(
        materialize,
        "write_online",
        lambda rows, schema, _, **kw: original(rows, schema, broken, **kw),
    )

    # when the job runs
    status = load_job().main(["--spec", str(spec_path)], spark=spark)

    # then it fails, and the record carries the task's OnlineStoreError, not a JVM trace
    assert status == 1
    result = read_result(str(result_path))
    assert result.status == FAILED
    assert result.error is not None
    assert result.error.startswith("OnlineStoreError: sqlite online store at "), result.error


def test_missing_offline_table_and_bad_spec(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    spec_path, result_path = make_spec(tmp_path, str(tmp_path / "empty"), store)
    job = load_job()

    assert job.main(["--spec", str(spec_path)], spark=spark) == 1
    error = read_result(str(result_path)).error
    assert error is not None and "has no Delta table yet; ingest it first" in error

    bad = tmp_path / "bad.json"
    bad.write_text('{"spec_version": 99}')
    assert job.main(["--spec", str(bad)], spark=spark) == 2
    assert "spec_version" in capsys.readouterr().err


# --- future event times and the online repair commands --------------------------------------------

FAR = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def test_a_2099_value_online_is_repaired_and_rematerialized_right(
    spark: SparkSession, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    import pyarrow as pa
    from click.testing import CliRunner

    from feast_spark.cli import cli
    from feast_spark.client import Client
    from feast_spark.online.base import OnlineTableSchema

    # given a project whose offline table still holds a row dated 2099 (ingested before the
    # future check existed) beside the right value, and whose online store serves the 2099 value
    table = TABLES[0]
    if kind == "sqlite":
        store: Any = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
        online_yaml = f"{{type: sqlite, path: {store.path}}}"
    else:
        node, keyspace = (
            request.getfixturevalue("cassandra_node"),
            f"test_fix_{uuid.uuid4().hex[:8]}",
        )
        store = CassandraOnlineStoreConfig(
            hosts=(node.host,), port=node.port, keyspace=keyspace, local_dc=node.local_dc,
            write_consistency="ONE", read_consistency="ONE", request_timeout_s=30.0,
        )  # fmt: skip
        online_yaml = (
            f"{{type: cassandra, hosts: [{node.host}], port: {node.port}, keyspace: {keyspace}, "
            f"local_dc: {node.local_dc}, write_consistency: ONE, read_consistency: ONE}}"
        )
    (tmp_path / "feature_store.yaml").write_text(
        f"project: demo\nregistry: {tmp_path}/registry.json\n"
        f"offline_store: {{path: {tmp_path}/offline}}\nonline_store: {online_yaml}\n"
    )
    Client(str(tmp_path)).apply(DRIVER, table)
    offline = str(tmp_path / "offline" / "demo" / table.name)
    ensure_table(spark, offline, table, [DRIVER])
    rows = [
        (1, at(1, 1), at(1, 1), 5, 0.5),
        (1, FAR, FAR, 99, 9.9),
        (2, at(1, 2), at(1, 2), 7, 0.7),
    ]
    frame = spark.createDataFrame(
        rows, "driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, "
        "trips bigint, rate double",
    )  # fmt: skip
    write_window(spark, frame, offline, Window(), "old-ingest")
    schema = OnlineTableSchema.of("demo", table, [DRIVER])
    poisoned = pa.RecordBatch.from_pydict(
        {"driver_id": [1], "trips": [99], "rate": [9.9], "event_timestamp": [FAR]},
        schema=pa.schema([("driver_id", pa.int64()), ("trips", pa.int64()),
                          ("rate", pa.float64()), ("event_timestamp", pa.timestamp("us", "UTC"))]),
    )  # fmt: skip
    with open_online_store(store) as opened:
        opened.ensure_table(schema)
        opened.write_batch(schema, poisoned)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--config", str(tmp_path), *args])
        return result.exit_code, result.output

    def trips(driver: int) -> tuple[Any, str]:
        with open_online_store(store) as opened:
            got = get_online_features(
                opened, "demo", [table], [DRIVER], ["driver_stats:trips"], [{"driver_id": driver}]
            ).to_dict()
        return got["driver_stats:trips"][0], got["driver_stats:trips__status"][0]

    try:
        # when the key is deleted with the repair command (Cassandra refuses a key written in
        # the future: its tombstone would hide the key until 2099; the table is purged instead)
        code, out = run("online", "delete", table.name, "--entity", "driver_id=1", "--yes")
        if kind == "sqlite":
            assert (code, out.strip()) == (0, (
                "deleted the online rows of 1 of 1 key(s) of 'driver_stats' (0 had none); "
                "materialize 'driver_stats' to write their latest values"
            ))  # fmt: skip
        else:
            assert code == 1 and "written at 2099-01-01T00:00:00+00:00" in out, out
            assert "nothing was deleted" in out and "online purge driver_stats" in out
            assert trips(1) == (99, "PRESENT")
            code, out = run("online", "purge", table.name, "--yes")
            assert code == 0, out
            assert trips(1) == (None, "NOT_FOUND")

        # and the table is materialized again, the 2099 row still in Delta
        spec_path, result_path = make_spec(
            tmp_path, str(tmp_path / "offline"), store, tables=(table,),
            window=Window(at(1), datetime(2100, 1, 1, tzinfo=UTC)),
        )  # fmt: skip
        assert load_job().main(["--spec", str(spec_path)], spark=spark) == 0

        # then the right value is served, and the job counted the future row it skipped
        assert trips(1) == (5, "PRESENT")
        assert read_result(str(result_path)).details["rows_future"] == 1
        # and a key written in the past is deleted at its own write time: it reads NOT_FOUND
        code, out = run("online", "delete", table.name, "--entity", "driver_id=2", "--yes")
        assert code == 0 and "1 of 1 key(s)" in out, out
        assert trips(2) == (None, "NOT_FOUND")
    finally:
        if kind == "cassandra":
            request.getfixturevalue("cassandra_session").execute(
                f"DROP KEYSPACE IF EXISTS {store.keyspace}"
            )
