"""jobs/audit.py: materialize a table, change it behind its back, and the audit finds exactly that.

Real Delta on the local Spark session, real SQLite, and the local Cassandra node for one case.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from feast_spark.audit import DIFFERS, MISSING_ONLINE, ONLINE_ONLY, AuditReport
from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.job_results import SUCCEEDED, read_result
from feast_spark.online.base import OnlineTableSchema, to_micros
from feast_spark.online.stores import open_online_store
from feast_spark.spark.offline_store import ensure_table
from feast_spark.spark.offline_writes import write_window
from feast_spark.specs import AuditOptions, JobSpec, MaterializeOptions, Window

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Entity("driver_id", "INT64")
SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")
STATS = FeatureTable(
    "driver_stats", ["driver_id"], [Feature("trips", "INT64"), Feature("rate", "DOUBLE")], SOURCE
)
FRESH = FeatureTable(
    "driver_fresh", ["driver_id"], [Feature("trips", "INT64"), Feature("rate", "DOUBLE")],
    SOURCE, max_age=timedelta(hours=1),
)  # fmt: skip
DDL = (
    "driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, "
    "trips bigint, rate double"
)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


# driver, event, created, trips, rate: every driver's latest row is on day 1
STATS_ROWS = [
    (1, at(1, 1), at(1, 1), 10, 0.1),
    (2, at(1, 2), at(1, 2), 20, 0.2),
    (2, at(1, 2), at(1, 3), 21, 0.3),  # same event, created later: the latest
    (3, at(1, 3), at(1, 3), 30, 0.4),
    (4, at(1, 4), at(1, 4), 40, None),
]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_job", ROOT / "jobs" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_offline(spark: SparkSession, root: Path, table: FeatureTable, rows: list[Any]) -> None:
    path = str(root / "demo" / table.name)
    ensure_table(spark, path, table, [DRIVER])
    events = [row[1] for row in rows]
    # a window around exactly these rows: earlier rows of the table stay
    window = Window(min(events), max(events) + timedelta(microseconds=1))
    write_window(spark, spark.createDataFrame(rows, DDL), path, window, "test-ingest")


def run_job(
    spark: SparkSession, tmp_path: Path, root: Path, store: Any, job_type: str,
    table: FeatureTable, options: AuditOptions | None = None,
) -> dict[str, Any]:  # fmt: skip
    options = options or MaterializeOptions(store)
    job_id = f"{job_type}-{uuid.uuid4().hex[:6]}"
    result_path = tmp_path / f"{job_id}.result.json"
    spec = JobSpec(
        job_id=job_id, job_type=job_type, project="demo", entities=(DRIVER,),
        feature_tables=(table,), offline_store_path=str(root), result_path=str(result_path),
        options=options,
    )  # fmt: skip
    spec_path = tmp_path / f"{job_id}.spec.json"
    spec_path.write_text(spec.to_json())
    assert load(job_type).main(["--spec", str(spec_path)], spark=spark) == 0
    result = read_result(str(result_path))
    assert result.status == SUCCEEDED, result.error
    return dict(result.details)


def audit(spark: SparkSession, tmp_path: Path, root: Path, store: Any, table: FeatureTable,
          sample: int | None = None) -> AuditReport:  # fmt: skip
    details = run_job(
        spark, tmp_path, root, store, "audit", table, AuditOptions(store, sample=sample)
    )
    return AuditReport.from_dict(details)


def keys(report: AuditReport, kind: str) -> list[int]:
    return sorted(e["key"]["driver_id"] for e in report.examples[kind])


def change_behind_its_back(spark: SparkSession, root: Path, store: Any, set_rate: Any) -> None:
    """Delete key 1 online, change key 2's rate online, add key 99 online, ingest key 3 anew."""
    schema = OnlineTableSchema.of("demo", STATS, [DRIVER])
    with open_online_store(store) as opened:
        assert opened.delete_keys(schema, [(1,)], latest_write=datetime.now(UTC)) == 1
        opened.write_batch(
            schema,
            pa.RecordBatch.from_pydict(
                {"driver_id": [99], "trips": [990], "rate": [9.9],
                 "event_timestamp": pa.array([at(1, 5)], pa.timestamp("us", tz="UTC"))}
            ),
        )  # fmt: skip
    set_rate(schema.name, 2, 0.75)
    write_offline(spark, root, STATS, [(3, at(2, 1), at(2, 1), 31, 0.45)])


def assert_finds_exactly_the_changes(report: AuditReport) -> None:
    assert report.keys_checked == 4 and not report.consistent
    assert dict(report.counts) == {MISSING_ONLINE: 1, ONLINE_ONLY: 1, DIFFERS: 2}
    assert keys(report, MISSING_ONLINE) == [1]
    assert keys(report, ONLINE_ONLY) == [99]
    differs = {e["key"]["driver_id"]: e for e in report.examples[DIFFERS]}
    assert sorted(differs) == [2, 3]
    assert differs[2]["cells"] == ["rate"]
    assert (differs[2]["offline"]["rate"], differs[2]["online"]["rate"]) == (0.3, 0.75)
    assert differs[3]["cells"] == ["event_timestamp", "trips", "rate"]
    assert differs[3]["offline"]["event_timestamp"] == "2024-01-02T01:00:00.000000+00:00"
    assert differs[3]["online"]["event_timestamp"] == "2024-01-01T03:00:00.000000+00:00"
    assert dict(report.cells) == {"event_timestamp": 1, "trips": 1, "rate": 2}


def test_audit_of_sqlite_finds_exactly_the_changes_made_behind_its_back(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a table materialized into SQLite
    root = tmp_path / "offline"
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    write_offline(spark, root, STATS, STATS_ROWS)
    run_job(spark, tmp_path, root, store, "materialize", STATS)

    # when it is audited, then it is consistent
    before = audit(spark, tmp_path, root, store, STATS)
    assert before.consistent and before.keys_checked == 4
    assert before.store == "sqlite" and before.sample is None

    # given changes behind its back
    def set_rate(table: str, driver: int, rate: float) -> None:
        with sqlite3.connect(store.path) as connection:
            connection.execute(f'UPDATE "{table}" SET rate = ? WHERE driver_id = ?', (rate, driver))

    change_behind_its_back(spark, root, store, set_rate)

    # when audited again, then exactly those keys and cells are found
    assert_finds_exactly_the_changes(audit(spark, tmp_path, root, store, STATS))

    # and a sample audits that many offline keys and does not look for online-only keys
    sampled = audit(spark, tmp_path, root, store, STATS, sample=2)
    assert sampled.keys_checked == 2 and sampled.sample == 2
    assert sampled.counts[ONLINE_ONLY] == 0


def test_expired_and_future_rows_are_not_reported_missing(
    spark: SparkSession, tmp_path: Path
) -> None:
    # given a table with max_age 1h: a fresh key, one past 2 x max_age, one dated next week
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        (1, now - timedelta(minutes=10), now, 1, 0.1),
        (2, now - timedelta(hours=3), now, 2, 0.2),
        (3, now + timedelta(days=7), now, 3, 0.3),
    ]
    root = tmp_path / "offline"
    store = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    write_offline(spark, root, FRESH, rows)
    run_job(spark, tmp_path, root, store, "materialize", FRESH)

    # when audited
    report = audit(spark, tmp_path, root, store, FRESH)

    # then it is consistent: the expired key and the future row are not expected online
    assert report.consistent, report.to_dict()
    assert report.keys_checked == 2  # the future row's key has no other row: not a key yet


# --- Cassandra ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_session: Session) -> Iterator[str]:
    keyspace = f"test_audit_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


@pytest.mark.cassandra
def test_audit_of_cassandra_finds_exactly_the_changes_made_behind_its_back(
    spark: SparkSession, tmp_path: Path, cassandra_node: Any, cassandra_keyspace: str,
    cassandra_session: Session,
) -> None:  # fmt: skip
    # given a table materialized into Cassandra, consistent
    root = tmp_path / "offline"
    store = CassandraOnlineStoreConfig(
        hosts=(cassandra_node.host,), port=cassandra_node.port, keyspace=cassandra_keyspace,
        local_dc=cassandra_node.local_dc, write_consistency="ONE", read_consistency="ONE",
    )  # fmt: skip
    write_offline(spark, root, STATS, STATS_ROWS)
    run_job(spark, tmp_path, root, store, "materialize", STATS)
    assert audit(spark, tmp_path, root, store, STATS).consistent

    # given changes behind its back (the rate written with a later write timestamp)
    def set_rate(table: str, driver: int, rate: float) -> None:
        stamp = to_micros(datetime.now(UTC))
        cassandra_session.execute(
            f'UPDATE {cassandra_keyspace}."{table}" USING TIMESTAMP {stamp} '
            "SET rate = %s WHERE driver_id = %s",
            (rate, driver),
        )

    change_behind_its_back(spark, root, store, set_rate)

    # when audited again, then exactly those keys and cells are found
    assert_finds_exactly_the_changes(audit(spark, tmp_path, root, store, STATS))
