"""An unreachable online store: 503 naming it, /ready follows it, the server keeps serving.

Cassandra "goes down" by closing a loopback forwarder between the server and the shared local
node (failure injection that leaves the node alone). The variant that really stops and restarts
the node is marked ``fault`` and runs only in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Project, write_config
from .forwarder import Forwarder

GOOD = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1001]}}

pytestmark = pytest.mark.cassandra


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    relay = Forwarder(9042)
    yield relay
    relay.close()


def through(project: Project, forwarder: Forwarder) -> Any:
    """Point the project's config at the forwarder."""
    return write_config(project.folder, "cassandra", cassandra_port=forwarder.port,
                        keyspace=project.keyspace)  # fmt: skip


def wait_for(server: Any, path: str, status: int, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got, body = server.get(path)
        if got == status or time.monotonic() > deadline:
            return got, body
        time.sleep(0.25)


def check_down(server: Any, port: int) -> None:
    status, body = server.post(GOOD)
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable"
    assert body["error"]["name"] == "cassandra" and f"127.0.0.1:{port}" in body["detail"]
    status, body = server.get("/ready")
    assert status == 503 and f"127.0.0.1:{port}" in body["detail"], body
    assert server.get("/health")[0] == 200  # alive all along


def test_store_going_down_and_back(
    cassandra_project: Project, forwarder: Forwarder, start_server: Any
) -> None:
    # given a server reading Cassandra through the forwarder
    server = start_server(through(cassandra_project, forwarder))
    assert server.post(GOOD)[0] == 200
    assert server.get("/ready")[0] == 200
    # when the store goes down: 503 naming it, /ready 503, /health 200
    forwarder.close()
    check_down(server, forwarder.port)
    check_down(server, forwarder.port)  # and again: the server keeps answering
    # when it comes back: /ready 200 and reads succeed, without a restart
    forwarder.open()
    assert wait_for(server, "/ready", 200)[0] == 200
    status, body = server.post(GOOD)
    assert status == 200 and body["results"][1]["values"] == [7]
    assert "store_errors_total" in server.get("/metrics")[1]


def test_store_down_at_start_is_served_once_it_comes_up(
    cassandra_project: Project, forwarder: Forwarder, start_server: Any
) -> None:
    # given a server started while its store is unreachable
    config = through(cassandra_project, forwarder)
    forwarder.close()
    server = start_server(config)
    # then it is alive but not ready, and requests get 503
    check_down(server, forwarder.port)
    # when the store comes up, it connects and serves
    forwarder.open()
    assert wait_for(server, "/ready", 200)[0] == 200
    assert server.post(GOOD)[0] == 200


@pytest.mark.fault
@pytest.mark.skipif(not os.environ.get("CI"), reason="stops the shared Cassandra node: CI only")
def test_node_stopped_and_restarted(
    cassandra_project: Project, start_server: Any, local_cassandra_cli: Any, cassandra_session: Any
) -> None:
    # given a server on the real node
    server = start_server(cassandra_project.config)
    assert server.post(GOOD)[0] == 200
    # when the node stops: 503 naming the store, /ready 503
    result = local_cassandra_cli("stop")
    try:
        assert result.returncode == 0, result.stderr
        check_down(server, 9042)
    finally:
        # when it starts again: /ready 200 and reads succeed, without a restart
        assert local_cassandra_cli("start", restoring=True).returncode == 0
    assert wait_for(server, "/ready", 200, timeout=180)[0] == 200
    assert server.post(GOOD)[0] == 200
    # and the tests' own session is back too (the fixtures after this one need it)
    wait_until_reconnected(cassandra_session)


def wait_until_reconnected(session: Any, timeout: float = 60) -> None:
    from cassandra.cluster import NoHostAvailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            session.execute("SELECT release_version FROM system.local")
            return
        except NoHostAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
