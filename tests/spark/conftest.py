"""Fixtures of the Spark tests that write online."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feast_spark.config import CassandraOnlineStoreConfig, SqliteOnlineStoreConfig


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The SQLite store, and the local Cassandra node (a keyspace of its own, dropped after)."""
    if request.param == "sqlite":
        yield SqliteOnlineStoreConfig(path=str(tmp_path / "online.db"))
        return
    node = request.getfixturevalue("cassandra_node")
    session = request.getfixturevalue("cassandra_session")
    keyspace = f"test_spark_{uuid.uuid4().hex[:10]}"
    yield CassandraOnlineStoreConfig(
        hosts=(node.host,), port=node.port, keyspace=keyspace, local_dc=node.local_dc,
        write_consistency="ONE",
    )  # fmt: skip
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
