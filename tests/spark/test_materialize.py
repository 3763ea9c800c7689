"""Materialization through Spark into SQLite and the local Cassandra, against a Python oracle.

The offline rows live in a small Delta table written with the offline store; the oracle computes
each key's latest row (by event time, then created time) over the windows materialized so far in
plain Python, and the online store must hold exactly that, whatever order the windows ran in.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.online.base import (
    OnlineTableSchema,
    ReadRequest,
    from_micros,
    online_store_mapping,
)
from feast_spark.online.service import get_online_features
from feast_spark.online.stores import open_online_store
from feast_spark.spark.materialize import materialize_table, online_rows, write_online
from feast_spark.spark.offline_store import ensure_table, read_offline_table
from feast_spark.spark.offline_writes import write_window
from feast_spark.specs import Window

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from pyspark.sql import SparkSession


DAY = timedelta(days=1)
D1 = datetime(2024, 1, 1, tzinfo=UTC)
D2, D3, D4 = D1 + DAY, D1 + 2 * DAY, D1 + 3 * DAY
DRIVER = Entity("driver_id", "INT64")
TABLE = FeatureTable(
    "driver_stats",
    ["driver_id"],
    [Feature("rate", "DOUBLE"), Feature("name", "STRING"), Feature("trips", "INT32_LIST")],
    FileSource(path="/tmp/unused", event_timestamp_column="ts"),
)
FEATURES = TABLE.feature_names
SPARK_SCHEMA = (
    "driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, "
    "rate double, name string, trips array<int>"
)
KEYS = 25


def offline_rows(seed: int = 7) -> list[tuple[Any, ...]]:
    """~150 rows over 3 days: repeated event times with later created times, nulls, empty days."""
    rng = random.Random(seed)
    rows = []
    seen: set[tuple[int, datetime, datetime]] = set()
    for key in range(KEYS):
        for _ in range(rng.randint(1, 10)):
            event = D1 + timedelta(minutes=rng.randrange(3 * 24 * 60) // 30 * 30)
            created = event + timedelta(minutes=rng.randrange(4) * 7)
            if (key, event, created) in seen:
                continue  # (key, event, created) unique: the oracle needs no value tie-break
            seen.add((key, event, created))
            rate = None if rng.random() < 0.15 else round(rng.random(), 3)
            name = None if rng.random() < 0.1 else f"n{rng.randrange(1000)}"
            trips = None if rng.random() < 0.1 else [rng.randrange(50) for _ in range(3)]
            rows.append((key, event, created, rate, name, trips))
    return rows


def oracle(rows: list[tuple[Any, ...]], windows: list[Window]) -> dict[int, tuple[Any, ...]]:
    """Latest row per key among rows inside any of ``windows``: key -> (event, values...)."""
    latest: dict[int, tuple[Any, ...]] = {}
    for key, event, created, *values in rows:
        if not any(w.start <= event < w.end for w in windows):  # type: ignore[operator]
            continue
        current = latest.get(key)
        if current is None or (event, created) > current[:2]:
            latest[key] = (event, created, *values)
    return {key: (row[0], *row[2:]) for key, row in latest.items()}


def online_state(store_config: Any, project: str) -> dict[int, tuple[Any, ...]]:
    """What the store holds for keys 0..KEYS+1: key -> (event, values...)."""
    schema = OnlineTableSchema.of(project, TABLE, [DRIVER])
    keys = tuple((k,) for k in range(KEYS + 2))
    with open_online_store(store_config) as store:
        (answer,) = store.read([ReadRequest(schema, FEATURES, keys)])
    state = {}
    for (key,), row in zip(keys, answer.rows, strict=True):
        if row is not None:
            state[key] = (from_micros(row.event_timestamp_us), *row.values)
    return state


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("offline") / "driver_stats")
    ensure_table(spark, path, TABLE, [DRIVER])
    frame = spark.createDataFrame(offline_rows(), SPARK_SCHEMA)
    write_window(spark, frame, path, Window(D1, D4), "test-ingest")
    return path


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_session: Session) -> Iterator[str]:
    keyspace = f"test_materialize_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    node = request.getfixturevalue("cassandra_node")
    return CassandraOnlineStoreConfig(
        hosts=(node.host,),
        port=node.port,
        keyspace=request.getfixturevalue("cassandra_keyspace"),
        local_dc=node.local_dc,
        write_consistency="ONE",
        read_consistency="ONE",
        write_concurrency=16,
    )


def materialize(
    spark: SparkSession, path: str, store_config: Any, project: str, window: Window
) -> int:
    schema = OnlineTableSchema.of(project, TABLE, [DRIVER])
    offline = read_offline_table(spark, path, window.start, window.end)
    outcome = materialize_table(
        offline, schema, TABLE, window, online_store_mapping(store_config), tasks=2
    )
    return outcome.rows_written


# --- tests ----------------------------------------------------------------------------------------


def test_online_values_equal_the_latest_offline_row_of_every_key(
    spark: SparkSession, offline_table: str, store_config: Any
) -> None:
    # given the offline table; when the whole window is materialized
    project = f"p{uuid.uuid4().hex[:8]}"
    written = materialize(spark, offline_table, store_config, project, Window(D1, D4))

    # then each key holds its latest offline row, computed independently; nothing else is stored
    expected = oracle(offline_rows(), [Window(D1, D4)])
    assert written == len(expected) == KEYS
    assert online_state(store_config, project) == expected

    # and the reader serves the same values
    with open_online_store(store_config) as store:
        response = get_online_features(
            store, project, [TABLE], [DRIVER], ["driver_stats:rate", "driver_stats:trips"],
            [{"driver_id": k} for k in (3, KEYS + 1)],
        ).to_dict()  # fmt: skip
    assert response["driver_stats:rate"][0] == expected[3][1]
    assert response["driver_stats:trips"][0] == expected[3][3]
    assert response["driver_stats:rate__status"][1] == "NOT_FOUND"


def test_windows_in_any_order_reruns_and_older_windows_never_roll_back(
    spark: SparkSession, offline_table: str, store_config: Any
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    rows = offline_rows()

    # given the last day materialized first
    materialize(spark, offline_table, store_config, project, Window(D3, D4))
    assert online_state(store_config, project) == oracle(rows, [Window(D3, D4)])

    # when the older days are materialized afterwards
    materialize(spark, offline_table, store_config, project, Window(D1, D3))
    # then every key holds the latest row of all days, as if they had run in order
    everything = oracle(rows, [Window(D1, D4)])
    assert online_state(store_config, project) == everything

    # when an old window and the full window run again (reruns, retries)
    materialize(spark, offline_table, store_config, project, Window(D1, D2))
    materialize(spark, offline_table, store_config, project, Window(D1, D4))
    # then nothing changes
    assert online_state(store_config, project) == everything


def test_a_feature_missing_offline_is_materialized_as_null(spark: SparkSession) -> None:
    # given offline rows without the 'trips' column (added to the definition since)
    frame = spark.createDataFrame(
        [(1, D1, D1, 0.5, "a"), (1, D2, D2, 0.7, "b")],
        "driver_id bigint, event_timestamp timestamp, created_timestamp timestamp, "
        "rate double, name string",
    )
    # when shaped for the online store
    result = online_rows(frame, TABLE, Window(D1, D4)).collect()
    # then the latest row comes with a null 'trips' of the declared type
    assert [r.asDict() for r in result] == [
        {"driver_id": 1, "rate": 0.7, "name": "b", "trips": None,
         "event_timestamp": D2.replace(tzinfo=None), "created_timestamp": D2.replace(tzinfo=None)}
    ]  # fmt: skip


def test_a_write_task_that_cannot_reach_cassandra_fails_the_write(spark: SparkSession) -> None:
    # given rows and a Cassandra where nothing listens
    rows = online_rows(spark.createDataFrame(offline_rows()[:5], SPARK_SCHEMA), TABLE, Window())
    bad = online_store_mapping(
        CassandraOnlineStoreConfig(hosts=("127.0.0.1",), port=1, request_timeout_s=2.0)
    )
    schema = OnlineTableSchema.of("p", TABLE, [DRIVER])
    # when written from the executors, then the Spark action fails with the store's error
    with pytest.raises(Exception, match=r"OnlineStoreError[\s\S]*127\.0\.0\.1:1"):
        write_online(rows, schema, bad, tasks=1)


# --- ties on event time across runs ---------------------------------------------------------------

T = D1 + timedelta(hours=9, microseconds=123456)
C1, C2 = T + timedelta(minutes=1), T + timedelta(minutes=2)
#: Run rows for key 1 at the same event time. Cell by cell, Cassandra's tie rule (greater value,
#: a null's tombstone beating any value) would mix them: rate 9.0 > 1.0 from A, name 'z' from B,
#: trips null from A.
ROW_A = (1, T, C1, 9.0, "a", None)
ROW_B = (1, T, C2, 1.0, "z", [1])
#: The same event and created time, other values: the greater values win (rate first).
ROW_C = (1, T, C2, 5.0, "b", [0])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param([ROW_A], [ROW_B], id="correction-later"),
        pytest.param([ROW_B], [ROW_A], id="older-row-later"),
        pytest.param([ROW_B], [ROW_C], id="full-tie-greater-later"),
        pytest.param([ROW_C], [ROW_B], id="full-tie-smaller-later"),
        pytest.param([ROW_A, (2, T, C1, 1.0, "k", [2])], [ROW_B], id="with-other-keys"),
    ],
)
def test_rows_with_the_same_event_time_never_mix_across_runs(
    spark: SparkSession, store_config: Any, first: list[Any], second: list[Any]
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    schema = OnlineTableSchema.of(project, TABLE, [DRIVER])
    mapping = online_store_mapping(store_config)

    # given a first materialize run, then a second with another row of the same key and event
    for rows in (first, second):
        offline = spark.createDataFrame(rows, SPARK_SCHEMA)
        materialize_table(offline, schema, TABLE, Window(D1, D4), mapping, tasks=1)

    # then the online row is the offline winner over both runs' rows, cell for cell
    everything = spark.createDataFrame(first + second, SPARK_SCHEMA)
    winners = online_rows(everything, TABLE, Window(D1, D4)).collect()
    expected = {
        r.driver_id: (r.event_timestamp.replace(tzinfo=UTC), r.rate, r.name, r.trips)
        for r in winners
    }
    state = online_state(store_config, project)
    assert state == expected
    winner = ROW_C if ROW_C in first + second else ROW_B
    assert state[1] == (T, *winner[3:])
