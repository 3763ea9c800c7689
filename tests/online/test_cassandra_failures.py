"""Cassandra writes and reads when the node fails: retries happen, errors name hosts and causes.

Failures are real where they can be: a node that goes away under a live session is a loopback
proxy that is stopped; an unmeetable consistency is THREE (or ALL) on a keyspace of replication
factor 1 on the real node, which answers Unavailable. The retry policy and the error texts are
also tested as pure logic with injected driver exceptions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from feast_spark.config import CassandraOnlineStoreConfig
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.errors import OnlineStoreError
from feast_spark.online.base import OnlineTableSchema, ReadRequest
from feast_spark.online.cassandra_requests import (
    Outcome,
    RetryPolicy,
    describe_error,
    retry_failed,
)
from feast_spark.online.stores import open_online_store

from .tcp_proxy import TcpProxy

DRIVER = Entity("driver_id", "INT64")
TABLE = FeatureTable(
    "driver_stats", ["driver_id"], [Feature("rate", "DOUBLE")],
    FileSource(path="/unused", event_timestamp_column="ts"),
)  # fmt: skip
SCHEMA = OnlineTableSchema.of("failures", TABLE, [DRIVER])
NOW = datetime.now(UTC)


def rows(count: int, first_key: int = 0) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "driver_id": list(range(first_key, first_key + count)),
            "rate": [0.5] * count,
            "event_timestamp": pa.array([NOW] * count),
        }
    )


def config(port: int, keyspace: str, **overrides: Any) -> CassandraOnlineStoreConfig:
    settings: dict[str, Any] = {
        "hosts": ("127.0.0.1",),
        "port": port,
        "keyspace": keyspace,
        "local_dc": "datacenter1",
        "write_consistency": "ONE",
        "read_consistency": "ONE",
        "request_timeout_s": 30.0,  # a loaded machine is slow; a dead node fails at once
    }
    return CassandraOnlineStoreConfig(**(settings | overrides))


@pytest.fixture
def keyspace(cassandra_session: Any) -> Iterator[str]:
    name = f"cassandra_failures_{uuid.uuid4().hex[:8]}"
    yield name
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


def retry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]


# --- a node that goes down under a live session ---------------------------------------------------


def before_sending_writes(store: Any, monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run ``action`` once the stored rows were read and the writes are built, before sending."""
    writer = store._writer
    build = writer._replica_batches

    def build_then_act(*args: Any) -> Any:
        requests = build(*args)
        action()
        return requests

    monkeypatch.setattr(writer, "_replica_batches", build_then_act)


@pytest.mark.cassandra
@pytest.mark.slow  # waits out the driver's retries against a dead node: CI runs it
@pytest.mark.parametrize("when", ["before-the-write", "between-reading-and-writing"])
def test_writes_to_a_node_that_went_down_are_retried_then_fail_naming_the_host(
    cassandra_node: Any,
    keyspace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    # given a store connected through a proxy, that wrote once
    with TcpProxy(cassandra_node.port) as proxy:
        store = open_online_store(config(proxy.port, keyspace))
        try:
            store.ensure_table(SCHEMA)
            store.write_batch(SCHEMA, rows(10, first_key=-10))
            # when the node goes away (before the write reads the stored rows, or after, just
            # before the rows are sent) and many rows (thousands of requests) are written
            if when == "before-the-write":
                proxy.stop()
            else:
                before_sending_writes(store, monkeypatch, proxy.stop)
            with caplog.at_level(logging.WARNING), pytest.raises(OnlineStoreError) as caught:
                store.write_batch(SCHEMA, rows(20_000))
        finally:
            store.close()

    # then every attempt was made (4 retries logged) and the final error names the rows,
    # the attempts, the host and the cause: not a TypeError from inside the driver
    message = str(caught.value)
    assert len(retry_warnings(caplog)) == 4, retry_warnings(caplog)
    expected = "20000 of 20000 rows" if when != "before-the-write" else "of 20000 keys"
    assert expected in message
    assert "after 5 attempts" in message
    assert f"127.0.0.1:{proxy.port}" in message
    assert "NoHostAvailable" in message
    assert "down" in message or "ConnectionShutdown" in message or "refused" in message.lower()


@pytest.mark.cassandra
def test_reads_from_a_node_that_went_down_fail_naming_the_host(
    cassandra_node: Any, keyspace: str
) -> None:
    # given a store connected through a proxy, with a row stored
    with TcpProxy(cassandra_node.port) as proxy:
        store = open_online_store(config(proxy.port, keyspace))
        try:
            store.ensure_table(SCHEMA)
            store.write_batch(SCHEMA, rows(3))
            request = ReadRequest(SCHEMA, ("rate",), ((0,), (1,), (2,)))
            assert store.read([request])[0].rows[0] is not None
            # when the node goes away and the keys are read (one and several)
            proxy.stop()
            errors = []
            for keys in (((0,),), ((0,), (1,), (2,))):
                with pytest.raises(OnlineStoreError) as caught:
                    store.read([ReadRequest(SCHEMA, ("rate",), keys)])
                errors.append(str(caught.value))
        finally:
            store.close()
    # then each read is an error naming the table, the host and the cause (never "not found")
    for message in errors:
        assert SCHEMA.name in message
        assert f"127.0.0.1:{proxy.port}" in message
        assert "NoHostAvailable" in message


# --- a consistency the ring cannot meet -----------------------------------------------------------


@pytest.mark.cassandra
@pytest.mark.parametrize("step", ["reading-stored-rows", "writing"])
def test_an_unmeetable_write_consistency_is_retried_and_named(
    cassandra_node: Any,
    keyspace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    # given a keyspace with replication factor 1, and a consistency of THREE for the whole
    # write (stored rows are read at the write consistency) or, once they are read, for the
    # writes alone
    with open_online_store(config(cassandra_node.port, keyspace)) as plain:
        plain.ensure_table(SCHEMA)
    if step == "writing":
        store = open_online_store(config(cassandra_node.port, keyspace))

        def demand_three() -> None:
            from cassandra import ConsistencyLevel

            profiles = store.session.cluster.profile_manager.profiles  # type: ignore[attr-defined]
            profiles["feast_spark_write"].consistency_level = ConsistencyLevel.THREE

        before_sending_writes(store, monkeypatch, demand_three)
    else:
        store = open_online_store(config(cassandra_node.port, keyspace, write_consistency="THREE"))
    # when rows are written, then the node answers Unavailable, the requests are retried, and
    # the final error gives the consistency, the replicas required and alive, and the host
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(OnlineStoreError) as caught:
            store.write_batch(SCHEMA, rows(25))
    finally:
        store.close()
    message = str(caught.value)
    assert len(retry_warnings(caplog)) == 4
    assert ("25 of 25 rows" if step == "writing" else "25 of 25 keys") in message
    assert "after 5 attempts" in message
    assert "Unavailable" in message
    assert "consistency THREE needs 3 live replicas, 1 alive" in message
    assert f"127.0.0.1:{cassandra_node.port}" in message


@pytest.mark.cassandra
def test_an_unmeetable_read_consistency_is_an_error_naming_its_cause(
    cassandra_node: Any, keyspace: str
) -> None:
    # given a stored row, and reads at consistency ALL... of a keyspace with one replica: ALL is
    # met; THREE is not
    with open_online_store(config(cassandra_node.port, keyspace)) as plain:
        plain.ensure_table(SCHEMA)
        plain.write_batch(SCHEMA, rows(2))
    store = open_online_store(config(cassandra_node.port, keyspace, read_consistency="THREE"))
    try:
        with pytest.raises(OnlineStoreError) as caught:
            store.read([ReadRequest(SCHEMA, ("rate",), ((0,), (1,)))])
    finally:
        store.close()
    message = str(caught.value)
    assert "consistency THREE needs 3 live replicas, 1 alive" in message
    assert SCHEMA.name in message


# --- pure logic: the retry policy and the error texts ---------------------------------------------


def test_retry_runs_only_the_failed_requests_until_they_succeed_or_attempts_end() -> None:
    from cassandra import InvalidRequest, OperationTimedOut

    calls: list[list[str]] = []

    def run(requests: Any) -> list[Outcome]:
        calls.append(list(requests))
        # r2 times out on its first two attempts, r3 always; "bad" is refused
        failing = {"r3"} | ({"r2"} if len(calls) <= 2 else set())
        return [
            Outcome(None, InvalidRequest("no such table"), "h:1") if r == "bad"
            else Outcome(None, OperationTimedOut(), "h:1") if r in failing
            else Outcome([])
            for r in requests
        ]  # fmt: skip

    def retryable(error: BaseException) -> bool:
        return isinstance(error, OperationTimedOut)

    waits: list[float] = []
    policy = RetryPolicy(attempts=5, backoff_s=0.1)

    # when requests keep timing out, then only they are retried, with doubling waits
    failures, attempts = retry_failed(
        run, ["r1", "r2", "r3", "r4"], policy=policy, retryable=retryable, sleep=waits.append
    )
    assert calls == [["r1", "r2", "r3", "r4"], ["r2", "r3"], ["r2", "r3"], ["r3"], ["r3"]]
    assert [f.request for f in failures] == ["r3"] and attempts == 5
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8])

    # when a request fails with an error retrying cannot fix, then retrying stops at once
    calls.clear()
    failures, attempts = retry_failed(
        run, ["r1", "bad"], policy=policy, retryable=retryable, sleep=waits.append
    )
    assert attempts == 1 and [f.request for f in failures] == ["bad"]

    # when everything succeeds, nothing is retried
    calls.clear()
    assert retry_failed(run, ["r1"], policy=policy, retryable=retryable) == ([], 1)


def test_error_texts_name_hosts_and_causes() -> None:
    from cassandra import ConsistencyLevel, OperationTimedOut, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable
    from cassandra.policies import WriteType

    unavailable = Unavailable(
        "Cannot achieve consistency", consistency=ConsistencyLevel.ALL, required_replicas=3,
        alive_replicas=1,
    )  # fmt: skip
    assert describe_error(unavailable, "10.0.0.1:9042") == (
        "Unavailable (coordinator 10.0.0.1:9042): consistency ALL needs 3 live replicas, 1 alive"
    )
    # (the replicas the coordinator misses: the hosts the driver knows to be down)
    hosts = [("10.0.0.1:9042", True), ("10.0.0.2:9042", False), ("10.0.0.3:9042", False)]
    assert describe_error(unavailable, "10.0.0.1:9042", hosts) == (
        "Unavailable (coordinator 10.0.0.1:9042): consistency ALL needs 3 live replicas, 1 alive; "
        "hosts down: 10.0.0.2:9042, 10.0.0.3:9042"
    )
    timeout = WriteTimeout(
        "timed out", consistency=ConsistencyLevel.QUORUM, required_responses=2,
        received_responses=1, write_type=WriteType.UNLOGGED_BATCH,
    )  # fmt: skip
    assert describe_error(timeout, "10.0.0.2:9042") == (
        "WriteTimeout (coordinator 10.0.0.2:9042) (unlogged_batch write): consistency QUORUM "
        "needs 2 replica responses, 1 received"
    )
    several = NoHostAvailable(
        "Unable to complete the operation against any hosts",
        {"10.0.0.1:9042": unavailable, "10.0.0.2:9042": ConnectionRefusedError(111, "refused")},
    )
    assert describe_error(several) == (
        "NoHostAvailable: no host could serve the request (10.0.0.1:9042: Unavailable: "
        "consistency ALL needs 3 live replicas, 1 alive; 10.0.0.2:9042: "
        "ConnectionRefusedError: [Errno 111] refused)"
    )
    # (the coordinator's Unavailable inside a NoHostAvailable names the down replicas too)
    assert describe_error(several, hosts=hosts).endswith(
        "; hosts down: 10.0.0.2:9042, 10.0.0.3:9042"
    )
    none_tried = NoHostAvailable("Unable to complete the operation against any hosts", {})
    assert describe_error(none_tried, hosts=[("10.0.0.1:9042", False)]) == (
        "NoHostAvailable: every host is down or unreachable (hosts: 10.0.0.1:9042 (down))"
    )
    assert describe_error(OperationTimedOut(last_host="10.0.0.3:9042")) == (
        "OperationTimedOut: no answer from 10.0.0.3:9042 within the request timeout"
    )
