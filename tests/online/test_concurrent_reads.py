"""Online reads send every key at once and answer in request order (SQLite and Cassandra).

Cassandra: ``start_read`` sends all selects (one ``IN`` select per KEYS_PER_SELECT keys of a
one-entity table, one per key otherwise; at most READ_CONCURRENCY in flight, each answer sending
the next) and returns at once; ``read`` (what ``Client.get_online_features``
uses) waits on it. SQLite: one query per table and chunk of keys.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import OnlineStore, OnlineTableSchema, ReadRequest
from feast_spark.online.cassandra import READ_CONCURRENCY
from feast_spark.online.cassandra_reads import KEYS_PER_SELECT, Fetch
from feast_spark.online.sqlite import READ_KEYS_PER_QUERY
from feast_spark.online.stores import open_online_store

SOURCE = FileSource(path="/tmp/unused", event_timestamp_column="ts")
DRIVER = Entity("driver_id", "INT64")
CUSTOMER = Entity("customer", "STRING")
CODE = Entity("code", "STRING")
SINGLE = FeatureTable("single", ["driver_id"], [Feature("rate", "DOUBLE")], SOURCE)
PAIR = FeatureTable("pair", ["driver_id", "customer"], [Feature("n", "INT64")], SOURCE)
CODES = FeatureTable("codes", ["code"], [Feature("n", "INT64")], SOURCE)
KEYS = max(READ_CONCURRENCY, READ_KEYS_PER_QUERY) + 100  # more than one round of either


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    yield from open_store(request.param, request, tmp_path)


@pytest.fixture
def cassandra_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    yield from open_store("cassandra", request, tmp_path)


def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if kind == "sqlite":
        config: Any = SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
        keyspace = None
    else:
        node = request.getfixturevalue("cassandra_node")
        keyspace = f"test_reads_{uuid.uuid4().hex[:10]}"
        config = CassandraOnlineStoreConfig(
            hosts=(node.host,), port=node.port, keyspace=keyspace, local_dc=node.local_dc,
            write_consistency="ONE", read_consistency="ONE", request_timeout_s=30.0,
        )  # fmt: skip
    with open_online_store(config) as opened:
        yield opened
        if keyspace:
            opened.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")  # type: ignore[attr-defined]


def write(
    store: OnlineStore, table: FeatureTable, columns: dict[str, list[Any]]
) -> OnlineTableSchema:
    schema = OnlineTableSchema.of("p", table, [DRIVER, CUSTOMER, CODE])
    store.ensure_table(schema)
    rows = len(next(iter(columns.values())))
    stamp = datetime.now(UTC) - timedelta(minutes=1)
    batch = pa.RecordBatch.from_pydict({**columns, "event_timestamp": [stamp] * rows})
    store.write_batch(schema, batch)
    return schema


def test_many_keys_and_tables_come_back_in_request_order(store: OnlineStore) -> None:
    # given every even key stored, and a composite-key table
    stored = list(range(0, KEYS, 2))
    single = write(store, SINGLE, {"driver_id": stored, "rate": [k / 10 for k in stored]})
    pair = write(store, PAIR, {"driver_id": [1, 1], "customer": ["a", "b"], "n": [10, 20]})
    # when all keys of both tables are read in one call, in a shuffled order
    keys = [(k,) for k in reversed(range(KEYS))]
    answers = store.read([
        ReadRequest(single, ("rate",), tuple(keys)),
        ReadRequest(pair, ("n",), ((1, "b"), (2, "a"), (1, "a"))),
    ])  # fmt: skip
    # then each key's row (or None) is in its place
    rates = [None if row is None else row.values[0] for row in answers[0].rows]
    assert rates == [k / 10 if k % 2 == 0 else None for (k,) in keys]
    assert [None if row is None else row.values[0] for row in answers[1].rows] == [20, None, 10]


@pytest.mark.cassandra
def test_start_read_returns_at_once_and_calls_back_when_done(cassandra_store: OnlineStore) -> None:
    store = cassandra_store
    schema = write(store, SINGLE, {"driver_id": [1, 2], "rate": [0.1, 0.2]})
    called = threading.Event()
    # when a read is started and a callback registered
    pending = store.start_read([ReadRequest(schema, ("rate",), ((1,), (3,), (2,)))])  # type: ignore[attr-defined]
    pending.add_done_callback(called.set)
    # then the callback comes, and the result is there without waiting
    assert called.wait(30)
    assert pending.done()
    assert [None if r is None else r.values for r in pending.result(0)[0].rows] == [
        (0.1,), None, (0.2,),
    ]  # fmt: skip


@pytest.mark.cassandra
def test_a_one_entity_table_is_read_with_one_select_per_hundred_keys(
    cassandra_store: OnlineStore,
) -> None:
    # given string keys that differ only in case, and a composite-key table
    stored = [f"k{i}" for i in range(0, 250, 2)] + ["K0"]
    codes = write(cassandra_store, CODES, {"code": stored, "n": list(range(len(stored)))})
    pair = write(cassandra_store, PAIR, {"driver_id": [1], "customer": ["a"], "n": [10]})
    # when 250 keys (each asked twice, some never stored) and 3 composite keys are read at once
    keys = [(f"k{i}",) for i in range(250)] + [("K0",), ("k0",)] + [(f"k{i}",) for i in range(250)]
    pending = cassandra_store.start_read([  # type: ignore[attr-defined]
        ReadRequest(codes, ("n",), tuple(keys)),
        ReadRequest(pair, ("n",), ((1, "a"), (2, "a"), (1, "b"))),
    ])  # fmt: skip
    answers = pending.result(30)
    # then the 250 distinct keys take ceil(250 / KEYS_PER_SELECT) selects, the pairs one each
    assert pending.selects == -(-251 // KEYS_PER_SELECT) + 3
    # and every key, duplicates included, gets its own row in request order
    position = {code: n for n, code in enumerate(stored)}
    got = [None if row is None else row.values[0] for row in answers[0].rows]
    assert got == [position.get(code) for (code,) in keys]
    assert [None if row is None else row.values[0] for row in answers[1].rows] == [10, None, None]


@pytest.mark.cassandra
def test_a_read_is_not_paged_whatever_the_sessions_page_size(cassandra_store: OnlineStore) -> None:
    # given a session whose default page is 3 rows (a driver setting a user may tune)
    stored = list(range(40))
    schema = write(cassandra_store, SINGLE, {"driver_id": stored, "rate": [k / 10 for k in stored]})
    cassandra_store.session.default_fetch_size = 3  # type: ignore[attr-defined]
    # when 40 keys are read (an IN select of more keys than a page holds)
    answers = cassandra_store.read([ReadRequest(schema, ("rate",), tuple((k,) for k in stored))])
    # then every key is found: the selects are unpaged (one answer each, the coordinator reading
    # the partitions as one group), never cut to their first page
    assert [None if row is None else row.values[0] for row in answers[0].rows] == [
        k / 10 for k in stored
    ]


class _FailingFuture:
    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: Any, errback_args: Any
    ) -> None:
        errback(TimeoutError("node overloaded"), *errback_args)


class _Session:
    def __init__(self) -> None:
        self.sent = 0

    def execute_async(self, *_args: Any, **_kwargs: Any) -> _FailingFuture:
        self.sent += 1
        return _FailingFuture()


def test_the_first_failed_select_fails_the_read_naming_the_table() -> None:
    # given a session whose selects fail (failure injection)
    session = _Session()
    fetch = Fetch(session, [(None, (k,), "p__single") for k in range(50)], "h:9042",  # type: ignore[arg-type]
                  "read", 8, (TimeoutError,))  # fmt: skip
    # when the fetch runs, it stops at the first error instead of sending the rest
    fetch.start()
    assert session.sent == 1
    with pytest.raises(OnlineStoreError) as raised:
        fetch.wait(1)
    assert "p__single" in str(raised.value) and "node overloaded" in str(raised.value)
