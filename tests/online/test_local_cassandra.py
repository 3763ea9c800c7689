"""The local single-node Cassandra (conf/cassandra/local-cassandra.sh) works for the online store."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cassandra.cluster import Session

RunScript = Callable[[str], "subprocess.CompletedProcess[str]"]

pytestmark = pytest.mark.cassandra


def test_driver_creates_a_table_writes_and_reads_back_a_row(cassandra_session: Session) -> None:
    # given a fresh keyspace (SimpleStrategy, replication factor 1) with a table
    keyspace = f"test_local_{uuid.uuid4().hex[:12]}"
    cassandra_session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    try:
        cassandra_session.execute(
            f"CREATE TABLE {keyspace}.driver_stats (driver_id bigint PRIMARY KEY, conv_rate double, name text)"
        )

        # when a row is written
        insert = cassandra_session.prepare(
            f"INSERT INTO {keyspace}.driver_stats (driver_id, conv_rate, name) VALUES (?, ?, ?)"
        )
        cassandra_session.execute(insert, (1001, 0.25, "alice"))

        # then it reads back unchanged
        row = cassandra_session.execute(
            f"SELECT driver_id, conv_rate, name FROM {keyspace}.driver_stats WHERE driver_id = %s",
            (1001,),
        ).one()
        assert row is not None
        assert (row.driver_id, row.conv_rate, row.name) == (1001, 0.25, "alice")
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_node_is_cassandra_5_0(cassandra_session: Session) -> None:
    # when the node is asked for its version
    row = cassandra_session.execute("SELECT release_version FROM system.local").one()

    # then it is a 5.0 release
    assert row is not None
    assert row.release_version.startswith("5.0.")


def skip_unless_from_home(node: Any) -> None:
    if not node.from_home:
        pytest.skip(
            f"the node on port {node.port} is not the one of LOCAL_CASSANDRA_HOME={node.home}"
        )


def test_status_reports_running(cassandra_node: Any, local_cassandra_cli: RunScript) -> None:
    # given the node is up (fixture); when its status is asked for
    skip_unless_from_home(cassandra_node)
    result = local_cassandra_cli("status")

    # then it reports running, answering CQL, with exit code 0
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running" in result.stdout
    assert f"CQL answers on {cassandra_node.host}:{cassandra_node.port}" in result.stdout


def test_start_is_idempotent(cassandra_node: Any, local_cassandra_cli: RunScript) -> None:
    # given the node is up (fixture) with a pid
    skip_unless_from_home(cassandra_node)
    pid_file = cassandra_node.pid_file
    pid_before = pid_file.read_text().strip() if pid_file.exists() else None

    # when start runs again
    result = local_cassandra_cli("start")

    # then it succeeds, says the node was already running and starts no second daemon
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout
    assert "started Cassandra" not in result.stdout
    if pid_before is not None:
        assert pid_file.read_text().strip() == pid_before
    assert local_cassandra_cli("status").returncode == 0
