"""Enumerating an online table's keys (the full audit's online side), on real SQLite and Cassandra."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.online.base import OnlineTableSchema, online_store_mapping, to_micros
from feast_spark.online.key_scan import scan_keys, scan_parts
from feast_spark.online.stores import open_online_store

if TYPE_CHECKING:
    from cassandra.cluster import Session

NOW = datetime.now(UTC)


def schema(max_age: timedelta | None) -> OnlineTableSchema:
    table = FeatureTable(
        "trips", ["driver_id", "active"], [Feature("n", "INT64")],
        FileSource(path="/tmp/unused", event_timestamp_column="ts"), max_age=max_age,
    )  # fmt: skip
    entities = [Entity("driver_id", "INT64"), Entity("active", "BOOL")]
    return OnlineTableSchema.of("demo", table, entities)


def test_sqlite_scan_returns_every_retained_key_once_in_part_zero(tmp_path: Path) -> None:
    # given three stored rows, one of them older than 2 x max_age when scanned
    store = online_store_mapping(SqliteOnlineStoreConfig(path=str(tmp_path / "online.db")))
    table = schema(timedelta(hours=1))
    events = [NOW - timedelta(minutes=10), NOW - timedelta(minutes=90), NOW - timedelta(hours=3)]
    written = schema(None)  # written without max_age, so the old row is stored
    with open_online_store(store) as opened:
        opened.ensure_table(written)
        opened.write_batch(
            written,
            pa.RecordBatch.from_pydict(
                {
                    "driver_id": [1, 2, 3],
                    "active": [True, False, True],
                    "n": [10, 20, 30],
                    "event_timestamp": pa.array(events, pa.timestamp("us", tz="UTC")),
                }
            ),
        )

    # when the table is scanned
    now_us = to_micros(NOW)
    parts = scan_parts(store, 4)
    found = [
        k for part in range(parts) for k in scan_keys(store, table, part, parts, now_us=now_us)
    ]

    # then SQLite is one part and holds the two retained keys, booleans as booleans
    assert parts == 1
    assert sorted(found) == [((1, True), to_micros(events[0])), ((2, False), to_micros(events[1]))]


def test_a_table_or_file_that_does_not_exist_has_no_keys(tmp_path: Path) -> None:
    store = online_store_mapping(SqliteOnlineStoreConfig(path=str(tmp_path / "none.db")))
    assert list(scan_keys(store, schema(None), 0, 1, now_us=to_micros(NOW))) == []
    with open_online_store(store):  # the file now exists, the table does not
        pass
    assert list(scan_keys(store, schema(None), 0, 1, now_us=to_micros(NOW))) == []


@pytest.fixture(scope="module")
def cassandra_keyspace(cassandra_session: Session) -> Iterator[str]:
    keyspace = f"test_scan_{uuid.uuid4().hex[:10]}"
    yield keyspace
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


@pytest.mark.cassandra
def test_cassandra_token_ranges_together_hold_every_retained_key_once(
    cassandra_node: Any, cassandra_keyspace: str
) -> None:
    # given 50 stored keys, 10 of them older than 2 x max_age when scanned
    store = online_store_mapping(
        CassandraOnlineStoreConfig(
            hosts=(cassandra_node.host,), port=cassandra_node.port, keyspace=cassandra_keyspace,
            local_dc=cassandra_node.local_dc, write_consistency="ONE", read_consistency="ONE",
        )
    )  # fmt: skip
    written = schema(None)
    events = [NOW - timedelta(hours=3 if d < 10 else 0, minutes=d) for d in range(50)]
    with open_online_store(store) as opened:
        opened.ensure_table(written)
        opened.write_batch(
            written,
            pa.RecordBatch.from_pydict(
                {
                    "driver_id": list(range(50)),
                    "active": [d % 2 == 0 for d in range(50)],
                    "n": list(range(50)),
                    "event_timestamp": pa.array(events, pa.timestamp("us", tz="UTC")),
                }
            ),
        )

    # when the ring is scanned in 3 parts with max_age 1h
    parts = scan_parts(store, 3)
    table = schema(timedelta(hours=1))
    found = [
        k
        for part in range(parts)
        for k in scan_keys(store, table, part, parts, now_us=to_micros(NOW))
    ]

    # then each retained key comes once, with its event time
    assert parts == 3
    expected = [((d, d % 2 == 0), to_micros(events[d])) for d in range(10, 50)]
    assert sorted(found) == expected
