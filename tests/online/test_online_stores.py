"""Online stores (SQLite and the real local Cassandra): same behaviour, parametrized by store.

Cassandra cases use one keyspace per test run (dropped at the end) and one project per test, so
tests never see each other's tables.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import DefinitionError, NotFoundError, OnlineStoreError
from feast_spark.online.base import (
    FeatureStatus,
    OnlineStore,
    OnlineTableSchema,
    online_store_config,
    online_store_mapping,
    to_micros,
)
from feast_spark.online.service import (
    OnlineReadPlan,
    get_online_features,
    read_plan_from_registry,
)
from feast_spark.online.stores import open_online_store
from feast_spark.registry import Registry

if TYPE_CHECKING:
    from cassandra.cluster import Session

SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")
DRIVER = Entity("driver_id", "INT64")
CUSTOMER = Entity("customer", "STRING")
NOW = datetime.now(UTC).replace(microsecond=123456)

PRESENT = FeatureStatus.PRESENT
NULL_VALUE = FeatureStatus.NULL_VALUE
NOT_FOUND = FeatureStatus.NOT_FOUND
OUTSIDE = FeatureStatus.OUTSIDE_MAX_AGE


def driver_table(*features: Feature, max_age: timedelta | None = None) -> FeatureTable:
    chosen = features or (Feature("rate", "DOUBLE"), Feature("name", "STRING"))
    return FeatureTable("driver_stats", ["driver_id"], chosen, SOURCE, max_age=max_age)


def batch(rows: list[dict[str, Any]], **types: pa.DataType) -> pa.RecordBatch:
    names = list(rows[0])
    arrays = {n: pa.array([r[n] for r in rows], type=types.get(n)) for n in names}
    return pa.RecordBatch.from_pydict(arrays)


def read(
    store: OnlineStore,
    project: str,
    table: FeatureTable,
    refs: list[str],
    keys: list[Any],
    now: datetime | None = None,
) -> dict[str, list[Any]]:
    response = get_online_features(
        store, project, [table], [DRIVER], refs, [{"driver_id": k} for k in keys], now=now
    )
    return response.to_dict()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_session: Session) -> Iterator[str]:
    """A fresh keyspace for this module's run (created by the store); dropped afterwards."""
    keyspace = f"test_online_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


@pytest.fixture(
    params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)],
)
def store_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> SqliteOnlineStoreConfig | CassandraOnlineStoreConfig:
    if request.param == "sqlite":
        return SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
    node = request.getfixturevalue("cassandra_node")
    return cassandra_config(node, request.getfixturevalue("cassandra_keyspace"))


def cassandra_config(node: Any, keyspace: str) -> CassandraOnlineStoreConfig:
    return CassandraOnlineStoreConfig(
        hosts=(node.host,),
        port=node.port,
        keyspace=keyspace,
        local_dc=node.local_dc,
        write_consistency="ONE",
        read_consistency="ONE",
        request_timeout_s=30.0,
    )


@pytest.fixture
def store(
    store_config: SqliteOnlineStoreConfig | CassandraOnlineStoreConfig,
) -> Iterator[OnlineStore]:
    with open_online_store(store_config) as opened:
        yield opened


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """A project name unique to the test (tables of tests never collide in the keyspace)."""
    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]


# --- behaviour --------------------------------------------------------------------------------------


def test_every_value_type_round_trips(store: OnlineStore, project: str) -> None:
    # given a table with a feature of every type
    types = ["BYTES", "STRING", "INT32", "INT64", "DOUBLE", "FLOAT", "BOOL", "UNIX_TIMESTAMP"]
    features = [Feature(t.lower(), t) for t in types] + [
        Feature(t.lower() + "_list", t + "_LIST") for t in types
    ]
    table = driver_table(*features)
    schema = OnlineTableSchema.of(project, table, [DRIVER])
    store.ensure_table(schema)
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)  # microseconds must survive
    scalars = [b"\x00\xff", "héllo", -(2**31), 2**62, 0.1, 0.5, True, moment]
    row: dict[str, Any] = {"driver_id": 1, "event_timestamp": NOW}
    for t, value in zip(types, scalars, strict=True):
        row[t.lower()] = value
        row[t.lower() + "_list"] = [value, value]
    arrow_types = {f.name: f.dtype.arrow_type() for f in features}
    null_row = {k: None for k in row} | {"driver_id": 2, "event_timestamp": NOW}

    # when it is written and read back
    counts = store.write_batch(schema, batch([row, null_row], **arrow_types))
    result = read(store, project, table, [f"driver_stats:{f.name}" for f in features], [1, 2])

    # then every value is the same, with its native type, and nulls read as NULL_VALUE
    assert counts.written == 2
    for feature in features:
        ref = f"driver_stats:{feature.name}"
        assert result[ref + "__status"] == ["PRESENT", "NULL_VALUE"], ref
        assert result[ref][1] is None
        assert result[ref][0] == row[feature.name], ref
    assert result["driver_stats:int32"][0] == -(2**31)
    assert result["driver_stats:unix_timestamp"][0] == moment


def test_older_rows_rerun_and_retries_never_roll_a_value_back(
    store: OnlineStore, project: str
) -> None:
    # given a value at t2 (a list feature too: a rewrite must not append to it)
    table = driver_table(
        Feature("rate", "DOUBLE"), Feature("name", "STRING"), Feature("trips", "INT32_LIST")
    )
    schema = OnlineTableSchema.of(project, table, [DRIVER])
    store.ensure_table(schema)
    t1, t2, t3 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    types = {"trips": pa.list_(pa.int32())}
    newer = {"driver_id": 1, "rate": 2.0, "name": "t2", "trips": [2, 2], "event_timestamp": t2}
    store.write_batch(schema, batch([newer], **types))
    refs = ["driver_stats:rate", "driver_stats:name", "driver_stats:trips"]

    # when an older row arrives later, and the same row is written again (rerun, retry)
    older = {**newer, "rate": 1.0, "name": "t1", "trips": [1], "event_timestamp": t1}
    store.write_batch(schema, batch([older], **types))
    store.write_batch(schema, batch([newer], **types))
    store.write_batch(schema, batch([newer], **types))

    # then the value of t2 stays, exactly
    result = read(store, project, table, refs, [1])
    assert (result["driver_stats:name"], result["driver_stats:trips"]) == (["t2"], [[2, 2]])

    # when one batch holds the key twice, newest first
    store.write_batch(
        schema,
        batch(
            [
                {"driver_id": 1, "rate": 3.0, "name": "t3", "trips": [3], "event_timestamp": t3},
                {
                    "driver_id": 1,
                    "rate": 0.0,
                    "name": "t1 again",
                    "trips": [0],
                    "event_timestamp": t1,
                },
            ],
            **types,
        ),
    )
    # then the newest wins
    result = read(store, project, table, refs, [1])
    assert (result["driver_stats:rate"], result["driver_stats:name"]) == ([3.0], ["t3"])
    assert result["driver_stats:trips"] == [[3]]

    # when a newer row holds nulls, then the nulls replace the values
    store.write_batch(
        schema,
        batch(
            [{"driver_id": 1, "rate": None, "name": None, "trips": None, "event_timestamp": NOW}],
            **types,
        ),
    )
    result = read(store, project, table, refs, [1])
    assert result["driver_stats:rate__status"] == ["NULL_VALUE"]
    assert result["driver_stats:name__status"] == ["NULL_VALUE"]
    assert result["driver_stats:trips__status"] == ["NULL_VALUE"]


def test_all_four_statuses_and_retention(store: OnlineStore, project: str) -> None:
    # given a table with max_age 1 hour (values kept 2 hours after their event)
    table = driver_table(max_age=timedelta(hours=1))
    schema = OnlineTableSchema.of(project, table, [DRIVER])
    store.ensure_table(schema)
    rows = [
        {
            "driver_id": 1,
            "rate": 1.0,
            "name": "fresh",
            "event_timestamp": NOW - timedelta(minutes=5),
        },
        {"driver_id": 2, "rate": None, "name": None, "event_timestamp": NOW - timedelta(minutes=5)},
        {
            "driver_id": 3,
            "rate": 3.0,
            "name": "stale",
            "event_timestamp": NOW - timedelta(minutes=90),
        },
        {"driver_id": 5, "rate": 5.0, "name": "gone", "event_timestamp": NOW - timedelta(hours=3)},
    ]

    # when written (key 4 never is)
    counts = store.write_batch(schema, batch(rows), now=NOW)

    # then the row past its retention is not written
    assert (counts.written, counts.expired) == (3, 1)
    # and reads give each status; withheld and missing values are None
    result = read(store, project, table, ["driver_stats:rate"], [1, 2, 3, 4, 5], now=NOW)
    assert result["driver_stats:rate__status"] == [
        "PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND", "NOT_FOUND",
    ]  # fmt: skip
    assert result["driver_stats:rate"] == [1.0, None, None, None, None]

    # when read at the edge of max_age: event time == now - max_age is still served
    edge = NOW - timedelta(minutes=5) + timedelta(hours=1)
    assert read(store, project, table, ["driver_stats:rate"], [1], now=edge)[
        "driver_stats:rate__status"
    ] == ["PRESENT"]
    later = edge + timedelta(microseconds=1)
    assert read(store, project, table, ["driver_stats:rate"], [1], now=later)[
        "driver_stats:rate__status"
    ] == ["OUTSIDE_MAX_AGE"]

    # when read at the end of retention (event time + 2 x max_age), then it is gone; 1 µs
    # before, it is still there, withheld
    retention_end = NOW - timedelta(minutes=5) + timedelta(hours=2)
    for moment, status in ((retention_end - timedelta(microseconds=1), "OUTSIDE_MAX_AGE"),
                           (retention_end, "NOT_FOUND")):  # fmt: skip
        assert read(store, project, table, ["driver_stats:rate"], [1], now=moment)[
            "driver_stats:rate__status"
        ] == [status]

    # when read after every retention ended, then nothing is found, in both stores
    result = read(
        store, project, table, ["driver_stats:rate"], [1, 2, 3], now=NOW + timedelta(hours=3)
    )
    assert result["driver_stats:rate__status"] == ["NOT_FOUND"] * 3


def test_feature_added_later_adds_a_column_and_old_rows_read_null(
    store: OnlineStore, project: str
) -> None:
    # given a table materialized with one feature
    old = driver_table(Feature("rate", "DOUBLE"))
    old_schema = OnlineTableSchema.of(project, old, [DRIVER])
    store.ensure_table(old_schema)
    store.write_batch(old_schema, batch([{"driver_id": 1, "rate": 1.0, "event_timestamp": NOW}]))
    new = driver_table(Feature("rate", "DOUBLE"), Feature("trips", "INT32_LIST"))
    new_schema = OnlineTableSchema.of(project, new, [DRIVER])
    refs = ["driver_stats:rate", "driver_stats:trips"]

    # when the new feature is read before any materialization added its column
    before = read(store, project, new, refs, [1])
    # then it is not found, and the old feature is still served
    assert before["driver_stats:trips__status"] == ["NOT_FOUND"]
    assert before["driver_stats:rate"] == [1.0]

    # when the schema is ensured again (ALTER TABLE ADD) and a new key is written
    store.ensure_table(new_schema)
    store.ensure_table(new_schema)  # idempotent
    store.write_batch(
        new_schema,
        batch([{"driver_id": 2, "rate": 2.0, "trips": [1, 2], "event_timestamp": NOW}],
              trips=pa.list_(pa.int32())),
    )  # fmt: skip

    # then the old row reads the new feature as null, the new row has it
    after = read(store, project, new, refs, [1, 2])
    assert after["driver_stats:trips__status"] == ["NULL_VALUE", "PRESENT"]
    assert after["driver_stats:trips"] == [None, [1, 2]]
    assert after["driver_stats:rate"] == [1.0, 2.0]


def test_several_tables_composite_keys_and_repeated_rows_in_request_order(
    store: OnlineStore, project: str
) -> None:
    # given a table keyed by driver and one keyed by (driver, customer)
    drivers = driver_table(Feature("rate", "DOUBLE"))
    trips = FeatureTable("trips", ["driver_id", "customer"], [Feature("count", "INT64")], SOURCE)
    entities = [DRIVER, CUSTOMER]
    for table, rows in (
        (drivers, [{"driver_id": i, "rate": i / 10, "event_timestamp": NOW} for i in range(5)]),
        (
            trips,
            [
                {"driver_id": i, "customer": c, "count": i * 100 + ord(c), "event_timestamp": NOW}
                for i in range(5)
                for c in "ab"
            ],
        ),
    ):
        schema = OnlineTableSchema.of(project, table, entities)
        store.ensure_table(schema)
        store.write_batch(schema, batch(rows))
    entity_rows = [
        {"driver_id": 3, "customer": "b"},
        {"driver_id": 0, "customer": "a"},
        {"driver_id": 3, "customer": "b"},
        {"driver_id": 9, "customer": "a"},
        {"driver_id": 1, "customer": "z"},
    ]

    # when both tables are read in one request
    response = get_online_features(
        store, project, [drivers, trips], entities, ["trips:count", "driver_stats:rate"],
        entity_rows,
    )  # fmt: skip

    # then every row gets its own values, in request order
    result = response.to_dict()
    assert list(result) == [
        "driver_id", "customer", "trips:count", "trips:count__status",
        "driver_stats:rate", "driver_stats:rate__status",
    ]  # fmt: skip
    assert result["driver_id"] == [3, 0, 3, 9, 1]
    assert result["trips:count"] == [398, 97, 398, None, None]
    assert result["trips:count__status"] == ["PRESENT"] * 3 + ["NOT_FOUND"] * 2
    assert result["driver_stats:rate"] == [0.3, 0.0, 0.3, None, 0.1]
    table = response.to_arrow()
    assert table.schema.field("trips:count").type == pa.int64()
    assert table.num_rows == 5
    assert list(response.to_pandas()["driver_stats:rate__status"]) == [
        "PRESENT", "PRESENT", "PRESENT", "NOT_FOUND", "PRESENT",
    ]  # fmt: skip


def test_a_table_never_materialized_reads_as_not_found(store: OnlineStore, project: str) -> None:
    # given no online table at all; when read
    result = read(store, project, driver_table(), ["driver_stats:rate"], [1])
    # then the key is not found (not an error)
    assert result["driver_stats:rate__status"] == ["NOT_FOUND"]


def test_a_column_of_another_type_is_refused(store: OnlineStore, project: str) -> None:
    # given an online table whose feature 'rate' is a double
    store.ensure_table(OnlineTableSchema.of(project, driver_table(), [DRIVER]))
    # when a definition says it is a string
    changed = driver_table(Feature("rate", "STRING"), Feature("name", "STRING"))
    # then the store refuses and says how to fix it
    with pytest.raises(OnlineStoreError, match=r"rate.*(double|REAL).*drop the"):
        store.ensure_table(OnlineTableSchema.of(project, changed, [DRIVER]))


def test_a_batch_missing_a_column_or_with_a_bad_value_is_refused(
    store: OnlineStore, project: str
) -> None:
    schema = OnlineTableSchema.of(project, driver_table(Feature("small", "INT32")), [DRIVER])
    store.ensure_table(schema)
    with pytest.raises(DefinitionError, match="no column 'small'"):
        store.write_batch(schema, batch([{"driver_id": 1, "event_timestamp": NOW}]))
    with pytest.raises(DefinitionError, match="'small' of type int64 cannot be stored as INT32"):
        store.write_batch(schema, batch([{"driver_id": 1, "small": 2**40, "event_timestamp": NOW}]))
    with pytest.raises(DefinitionError, match="'driver_id' has 1 null"):
        store.write_batch(
            schema,
            batch([{"driver_id": None, "small": 1, "event_timestamp": NOW}], driver_id=pa.int64()),
        )


# --- Cassandra specifics ------------------------------------------------------------------------


@pytest.mark.cassandra
def test_cassandra_write_timestamp_is_the_event_time_and_ttl_the_retention(
    cassandra_session: Session, cassandra_node: Any, project: str
) -> None:
    # given a Cassandra store and a table with max_age 1 hour
    keyspace = f"test_online_{uuid.uuid4().hex[:10]}"
    config = cassandra_config(cassandra_node, keyspace)
    table = driver_table(max_age=timedelta(hours=1))
    # (now, not the module's NOW: the TTL counts down in real time from the write)
    event = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=30)
    try:
        with open_online_store(config) as store:
            schema = OnlineTableSchema.of(project, table, [DRIVER])
            store.ensure_table(schema)
            # when a row is written
            store.write_batch(
                schema,
                batch([{"driver_id": 7, "rate": 1.5, "name": "x", "event_timestamp": event}]),
            )
        # then cqlsh-readable columns hold it, with WRITETIME = event micros and TTL = the
        # remaining retention (event + 2 h - now = 90 minutes)
        row = cassandra_session.execute(
            f"SELECT rate, event_timestamp, WRITETIME(rate) AS wt, TTL(rate) AS ttl "
            f"FROM {keyspace}.{schema.name} WHERE driver_id = 7"
        ).one()
        assert row.rate == 1.5
        assert row.event_timestamp == to_micros(event)
        assert row.wt == to_micros(event)
        assert 90 * 60 - 60 <= row.ttl <= 90 * 60 + 1
        keyspace_row = cassandra_session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
        ).one()
        assert keyspace_row.replication["class"].endswith("SimpleStrategy")
        key = cassandra_session.execute(
            "SELECT column_name, kind FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, schema.name),
        )
        assert {(r.column_name, r.kind) for r in key} >= {("driver_id", "partition_key")}
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_unreachable_cassandra_names_the_hosts_and_the_driver_error() -> None:
    # given a port where no Cassandra listens
    config = CassandraOnlineStoreConfig(hosts=("127.0.0.1",), port=1, request_timeout_s=3.0)
    # when a store is opened, then an OnlineStoreError names the host and the driver's error
    with pytest.raises(OnlineStoreError) as caught:
        open_online_store(config)
    assert caught.value.store == "cassandra"
    assert caught.value.target == "127.0.0.1:1"
    assert "127.0.0.1:1" in str(caught.value)
    assert "refused" in str(caught.value).lower()


@pytest.mark.cassandra
def test_a_write_that_fails_raises_and_never_reports_success(
    cassandra_node: Any, cassandra_keyspace: str, cassandra_session: Session, project: str
) -> None:
    store_config = cassandra_config(cassandra_node, cassandra_keyspace)
    # given a store that wrote once, and its table dropped behind its back
    with open_online_store(store_config) as store:
        schema = OnlineTableSchema.of(project, driver_table(), [DRIVER])
        store.ensure_table(schema)
        store.write_batch(
            schema, batch([{"driver_id": 1, "rate": 1.0, "name": "a", "event_timestamp": NOW}])
        )
        cassandra_session.execute(f"DROP TABLE {store_config.keyspace}.{schema.name}")
        rows = [
            {"driver_id": i, "rate": 1.0, "name": "a", "event_timestamp": NOW} for i in range(10)
        ]
        # when it writes again, then the write raises, naming the table and the rows lost
        with pytest.raises(
            OnlineStoreError, match=rf"10 of 10 (rows for|keys of) table .*{schema.name}.* failed"
        ):
            store.write_batch(schema, batch(rows))


def test_cassandra_retries_only_failed_requests_then_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store writer's retry wiring, without a node: its concurrent runner is replaced."""
    from cassandra import InvalidRequest, OperationTimedOut

    from feast_spark.online import cassandra_writes as writes_module
    from feast_spark.online.cassandra_requests import Outcome

    calls: list[list[Any]] = []

    def fake_run(session: Any, jobs: list[Any], **kwargs: Any) -> list[Outcome]:
        requests = [request for request, _ in jobs]
        calls.append(requests)
        # r2 times out on its first two attempts, r3 always; "bad" is refused
        failing = {"r3"} | ({"r2"} if len(calls) <= 2 else set())
        return [
            Outcome(None, InvalidRequest("no such table"), "h:9042") if r == "bad"
            else Outcome(None, OperationTimedOut(last_host="h:9042")) if r in failing
            else Outcome([])
            for r in requests
        ]  # fmt: skip

    monkeypatch.setattr(writes_module, "run_concurrently", fake_run)
    monkeypatch.setattr("feast_spark.online.cassandra_requests.time.sleep", lambda s: None)
    writer = writes_module.CassandraWriter(
        CassandraOnlineStoreConfig(keyspace="ks"), "h:9042",
        session=None, cluster=None, statements=None,  # type: ignore[arg-type]
    )  # fmt: skip
    schema = OnlineTableSchema.of("p", driver_table(), [DRIVER])
    requests = [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4)]

    # when requests keep timing out, then only they are retried, and the write finally fails
    # naming the rows lost, the host and the cause
    with pytest.raises(
        OnlineStoreError,
        match=r"3 of 10 rows .* failed after 5 attempts.*OperationTimedOut: no answer from h:9042",
    ):
        writer._execute_all(schema, requests, 10)
    assert calls == [["r1", "r2", "r3", "r4"], ["r2", "r3"], ["r2", "r3"], ["r3"], ["r3"]]

    # when a request fails with an error retrying cannot fix, then it fails at once
    calls.clear()
    with pytest.raises(
        OnlineStoreError,
        match=r"2 of 3 rows .* failed; first error: InvalidRequest \(coordinator h:9042\)",
    ):
        writer._execute_all(schema, [("r1", 1), ("bad", 2)], 3)
    assert len(calls) == 1


# --- config round trip and request errors ---------------------------------------------------------


def test_store_settings_round_trip_through_a_job_spec_mapping() -> None:
    config = CassandraOnlineStoreConfig(
        hosts=("a", "b"), keyspace="ks", local_dc="dc1",
        replication={"class": "NetworkTopologyStrategy", "dc1": 3},
    )  # fmt: skip
    assert online_store_config(online_store_mapping(config)) == config
    sqlite = SqliteOnlineStoreConfig(path="/tmp/x.db")
    assert online_store_config(online_store_mapping(sqlite)) == sqlite


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[OnlineStore]:
    with open_online_store(SqliteOnlineStoreConfig(path=str(tmp_path / "o.db"))) as opened:
        yield opened


def test_unknown_refs_give_errors_naming_them(sqlite_store: OnlineStore) -> None:
    table = driver_table()
    with pytest.raises(NotFoundError, match=r"feature table 'nope' not found.*known: driver_stats"):
        get_online_features(sqlite_store, "p", [table], [DRIVER], ["nope:rate"], [{"driver_id": 1}])
    with pytest.raises(NotFoundError, match=r"feature 'driver_stats:speed' not found.*rate, name"):
        get_online_features(
            sqlite_store, "p", [table], [DRIVER], ["driver_stats:speed"], [{"driver_id": 1}]
        )
    with pytest.raises(DefinitionError, match=r"'rate': name its table, as 'table:rate'"):
        get_online_features(sqlite_store, "p", [table], [DRIVER], ["rate"], [{"driver_id": 1}])
    with pytest.raises(DefinitionError, match="requested twice"):
        get_online_features(
            sqlite_store, "p", [table], [DRIVER], ["driver_stats:rate", "driver_stats:*"],
            [{"driver_id": 1}],
        )  # fmt: skip


def test_missing_or_mistyped_entity_keys_give_errors_naming_them(sqlite_store: OnlineStore) -> None:
    table = driver_table()
    refs = ["driver_stats:rate"]
    with pytest.raises(
        DefinitionError, match=r"entity row 1 has no value for 'driver_id'.*driver_stats.*driver"
    ):
        get_online_features(
            sqlite_store, "p", [table], [DRIVER], refs, [{"driver_id": 1}, {"driver": 2}]
        )
    with pytest.raises(
        DefinitionError, match=r"entity row 0: value '1' \(str\) does not fit.*INT64"
    ):
        get_online_features(sqlite_store, "p", [table], [DRIVER], refs, [{"driver_id": "1"}])
    with pytest.raises(DefinitionError, match="null value for 'driver_id'"):
        get_online_features(sqlite_store, "p", [table], [DRIVER], refs, [{"driver_id": None}])
    with pytest.raises(NotFoundError, match="entity 'driver_id' not found"):
        get_online_features(sqlite_store, "p", [table], [], refs, [{"driver_id": 1}])


def test_entity_rows_may_be_columns_or_a_dataframe(sqlite_store: OnlineStore) -> None:
    import pandas as pd

    table = driver_table()
    for rows in ({"driver_id": [1, 2]}, pd.DataFrame({"driver_id": [1, 2]})):
        result = get_online_features(
            sqlite_store, "p", [table], [DRIVER], ["driver_stats:rate"], rows
        ).to_dict()
        assert result["driver_id"] == [1, 2]
        assert result["driver_stats:rate__status"] == ["NOT_FOUND", "NOT_FOUND"]


def test_sqlite_file_that_cannot_be_created_is_an_online_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OnlineStoreError, match=r"sqlite online store at .*file/o.db"):
        open_online_store(SqliteOnlineStoreConfig(path=str(blocker / "o.db")))


def test_reading_with_definitions_from_the_registry(
    sqlite_store: OnlineStore, tmp_path: Path
) -> None:
    # given a registry with the table and its entity, and one materialized row
    registry = Registry(str(tmp_path / "registry.json"))
    table = driver_table()
    registry.apply("demo", [DRIVER, table])
    schema = OnlineTableSchema.of("demo", table, [DRIVER])
    sqlite_store.ensure_table(schema)
    sqlite_store.write_batch(
        schema, batch([{"driver_id": 1, "rate": 0.5, "name": "a", "event_timestamp": NOW}])
    )
    # when read by reference, then the registry's definitions are used
    plan = read_plan_from_registry(registry, "demo", ["driver_stats:*"])
    result = plan.read(sqlite_store, [{"driver_id": 1}]).to_dict()
    assert result == {
        "driver_id": [1],
        "driver_stats:rate": [0.5], "driver_stats:rate__status": ["PRESENT"],
        "driver_stats:name": ["a"], "driver_stats:name__status": ["PRESENT"],
    }  # fmt: skip
    # and an unregistered table is a NotFoundError naming it
    with pytest.raises(NotFoundError, match="feature table 'nope' not found in project 'demo'"):
        read_plan_from_registry(registry, "demo", ["nope:x"])


def test_a_read_plan_is_built_once_and_read_many_times(sqlite_store: OnlineStore) -> None:
    # given a plan for two features, and two keys stored
    table = driver_table()
    schema = OnlineTableSchema.of("p", table, [DRIVER])
    sqlite_store.ensure_table(schema)
    sqlite_store.write_batch(
        schema,
        batch(
            [
                {"driver_id": k, "rate": k / 2, "name": str(k), "event_timestamp": NOW}
                for k in (1, 2)
            ]
        ),
    )
    plan = OnlineReadPlan.build("p", [table], [DRIVER], ["driver_stats:name", "driver_stats:rate"])
    # when it reads different rows, then each answer has its own rows, columns in ref order
    assert plan.read(sqlite_store, [{"driver_id": 2}]).to_dict()["driver_stats:name"] == ["2"]
    both = plan.read(sqlite_store, [{"driver_id": 1}, {"driver_id": 3}]).to_dict()
    assert list(both)[1:] == [
        "driver_stats:name", "driver_stats:name__status", "driver_stats:rate", "driver_stats:rate__status",
    ]  # fmt: skip
    assert both["driver_stats:rate"] == [0.5, None]


def test_projects_whose_names_spell_the_same_table_never_share_values(
    store: OnlineStore, project: str
) -> None:
    # given project '<p>__x' with table 't' and project '<p>' with table 'x__t'
    source = FileSource(path="/unused", event_timestamp_column="ts")
    first = FeatureTable("t", ["driver_id"], [Feature("rate", "DOUBLE")], source)
    second = FeatureTable("x__t", ["driver_id"], [Feature("rate", "DOUBLE")], source)
    pairs = [(f"{project}__x", first, 1.0), (project, second, 2.0)]
    for owner, table, value in pairs:
        schema = OnlineTableSchema.of(owner, table, [DRIVER])
        store.ensure_table(schema)
        # when each writes its own value for the same key
        store.write_batch(schema, batch([{"driver_id": 1, "rate": value, "event_timestamp": NOW}]))
    # then each project reads its own value back
    for owner, table, value in pairs:
        result = read(store, owner, table, [f"{table.name}:rate"], [1])
        assert result[f"{table.name}:rate"] == [value], owner


def tie_row(created: datetime | None, rate: float | None, name: str | None, **extra: Any) -> Any:
    return {
        "driver_id": 1, "rate": rate, "name": name, "event_timestamp": NOW - timedelta(hours=1),
        "created_timestamp": created, **extra,
    }  # fmt: skip


TIE_TYPES = {
    "rate": pa.float64(),
    "name": pa.string(),
    "created_timestamp": pa.timestamp("us", "UTC"),
}


def tie_table(store: OnlineStore, project: str) -> tuple[FeatureTable, OnlineTableSchema]:
    """The driver table with ``max_age`` (TTLs too), created in ``store``."""
    table = driver_table(max_age=timedelta(days=1))
    schema = OnlineTableSchema.of(project, table, [DRIVER])
    store.ensure_table(schema)
    return table, schema


def test_same_event_time_rows_follow_the_point_in_time_rule_across_writes(
    store: OnlineStore, project: str
) -> None:
    # given a table with max_age (TTLs too) and a row at event time T created at c1
    table, schema = tie_table(store, project)
    refs = ["driver_stats:rate", "driver_stats:name"]
    c1, c2 = NOW - timedelta(minutes=50), NOW - timedelta(minutes=40)
    store.write_batch(schema, batch([tie_row(c1, 9.0, None)], **TIE_TYPES))

    # when a correction of the same event time created later arrives, cell by cell "smaller"
    store.write_batch(schema, batch([tie_row(c2, 1.0, "a")], **TIE_TYPES))
    # then it replaces the whole row (no 9.0 from the first row, no null from it either)
    assert read(store, project, table, refs, [1]) | {} == {
        "driver_id": [1], "driver_stats:rate": [1.0], "driver_stats:rate__status": ["PRESENT"],
        "driver_stats:name": ["a"], "driver_stats:name__status": ["PRESENT"],
    }  # fmt: skip

    # when the older row is written again, and a row without created time, then nothing changes
    store.write_batch(schema, batch([tie_row(c1, 9.0, None)], **TIE_TYPES))
    store.write_batch(schema, batch([tie_row(None, 8.0, "z")], **TIE_TYPES))
    assert read(store, project, table, refs, [1])["driver_stats:rate"] == [1.0]

    # when a row with the same times but greater values arrives, then it wins whole
    store.write_batch(schema, batch([tie_row(c2, 2.0, None)], **TIE_TYPES))
    result = read(store, project, table, refs, [1])
    assert (result["driver_stats:rate"], result["driver_stats:name"]) == ([2.0], [None])

    # when a row one microsecond later, created earlier, arrives, then the later event wins
    later = tie_row(
        c1, 0.5, "b", event_timestamp=NOW - timedelta(hours=1) + timedelta(microseconds=1)
    )
    store.write_batch(schema, batch([later], **TIE_TYPES))
    result = read(store, project, table, refs, [1])
    assert (result["driver_stats:rate"], result["driver_stats:name"]) == ([0.5], ["b"])


def test_a_batch_of_many_keys_compares_each_with_its_own_stored_row(
    store: OnlineStore, project: str
) -> None:
    # given 250 keys stored at T created at c1 (more keys than one select of stored rows reads)
    table, schema = tie_table(store, project)
    c1, c2 = NOW - timedelta(minutes=50), NOW - timedelta(minutes=40)
    keys = list(range(250))
    store.write_batch(
        schema, batch([tie_row(c1, 1.0, "stored", driver_id=k) for k in keys], **TIE_TYPES)
    )
    # when one batch brings, per key by its remainder mod 4: a newer event, an older event, a
    # correction of the same event time (created later), the same row again
    times = {
        0: (NOW - timedelta(minutes=30), c1, "newer"),
        1: (NOW - timedelta(hours=2), c1, "older"),
        2: (NOW - timedelta(hours=1), c2, "correction"),
        3: (NOW - timedelta(hours=1), c1, "stored"),
    }
    rows = []
    for k in reversed(keys):
        event, created, name = times[k % 4]
        rows.append(tie_row(created, 1.0, name, driver_id=k, event_timestamp=event))
    store.write_batch(schema, batch(rows, **TIE_TYPES))
    # then each key kept what wins against its own stored row, whole
    result = read(store, project, table, ["driver_stats:name"], keys)
    expected = {0: "newer", 1: "stored", 2: "correction", 3: "stored"}
    assert result["driver_stats:name"] == [expected[k % 4] for k in keys]


@pytest.mark.cassandra
def test_cassandra_corrections_keep_ttl_and_event_time_and_upgrade_old_tables(
    cassandra_session: Session, cassandra_node: Any, project: str
) -> None:
    # given a table created before created times were stored, holding a row at T (write time T)
    keyspace = f"test_ties_{uuid.uuid4().hex[:10]}"
    config = cassandra_config(cassandra_node, keyspace)
    table = driver_table(max_age=timedelta(days=1))
    schema = OnlineTableSchema.of(project, table, [DRIVER])
    event = to_micros(NOW - timedelta(hours=1))
    cassandra_session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cassandra_session.execute(
        f'CREATE TABLE {keyspace}."{schema.name}" (driver_id bigint, rate double, name text, '
        "event_timestamp bigint, PRIMARY KEY ((driver_id)))"
    )
    cassandra_session.execute(
        f'INSERT INTO {keyspace}."{schema.name}" (driver_id, rate, name, event_timestamp) '
        f"VALUES (1, 9.0, 'old', {event}) USING TIMESTAMP {event} AND TTL 86400"
    )
    try:
        with open_online_store(config) as store:
            # when the table is ensured and a correction of the same event time is written
            store.ensure_table(schema)
            store.write_batch(
                schema, batch([tie_row(NOW - timedelta(minutes=5), 1.0, None)], **TIE_TYPES)
            )
            result = read(store, project, table, ["driver_stats:rate", "driver_stats:name"], [1])
        # then it replaced the old row whole, one microsecond after it, with the true event
        # time in event_timestamp and a TTL from max_age
        assert (result["driver_stats:rate"], result["driver_stats:name"]) == ([1.0], [None])
        row = cassandra_session.execute(
            f"SELECT event_timestamp, created_timestamp, WRITETIME(rate) AS wt, TTL(rate) AS ttl "
            f'FROM {keyspace}."{schema.name}" WHERE driver_id = 1'
        ).one()
        assert row.event_timestamp == event
        assert row.created_timestamp == to_micros(NOW - timedelta(minutes=5))
        assert row.wt == event + 1
        assert 0 < row.ttl <= 2 * 86400
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_a_batch_with_several_rows_of_a_key_writes_its_latest_and_counts_the_key_once(
    store: OnlineStore, project: str
) -> None:
    # given a table with max_age (one day) and one batch holding, in no order: three rows of
    # driver 1 (two of them tied on event time), two of driver 2 (one expired), and two expired
    # rows of driver 3 (a stream's micro-batch written without a latest-per-key pass)
    table, schema = tie_table(store, project)
    c1, c2 = NOW - timedelta(minutes=50), NOW - timedelta(minutes=40)
    old = NOW - timedelta(days=3)
    rows = [
        tie_row(c2, 3.0, "latest", driver_id=1),
        tie_row(c1, 1.0, "older", driver_id=1, event_timestamp=NOW - timedelta(hours=2)),
        tie_row(c1, 2.0, "same time, created earlier", driver_id=1),
        tie_row(c1, 5.0, "expired", driver_id=2, event_timestamp=old),
        tie_row(c1, 4.0, "kept", driver_id=2),
        tie_row(c1, 6.0, "expired", driver_id=3, event_timestamp=old),
        tie_row(c1, 7.0, "expired too", driver_id=3, event_timestamp=old - timedelta(hours=1)),
    ]

    # when the batch is written
    counts = store.write_batch(schema, batch(rows, **TIE_TYPES), now=NOW)

    # then each key holds its latest row, and counts are per key: two written, one expired
    result = read(store, project, table, ["driver_stats:name"], [1, 2, 3])
    assert result["driver_stats:name"] == ["latest", "kept", None]
    assert (counts.written, counts.expired) == (2, 1)
