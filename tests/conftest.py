"""Shared fixtures: one small local SparkSession per test run; the local Cassandra node.

CI starts the Cassandra node once before the tests; the ``cassandra_node`` fixture starts it only
when it is not up yet (the script is idempotent) and leaves it running afterwards. Tests that need
it are marked ``@pytest.mark.cassandra``; ``pytest -m "not cassandra"`` skips them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from pyspark.sql import SparkSession

# Small on purpose: 2 cores, few shuffle partitions, no UI (see delta's python/delta/testing/utils.py).
TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    "spark.databricks.delta.snapshotPartitions": "2",
}


# Python workers (mapInArrow, UDFs) must run this interpreter, which has pyarrow and feast_spark,
# not whatever "python3" is on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The one SparkSession of this test run, with Delta."""
    from feast_spark.spark.session import build_spark_session

    session = build_spark_session("feast-spark-tests", master="local[2]", conf=TEST_SPARK_CONF)
    yield session
    session.stop()


# --- Cassandra ---------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_CASSANDRA = REPO_ROOT / "conf" / "cassandra" / "local-cassandra.sh"
LOCAL_CASSANDRA_HOME = Path(os.environ.get("LOCAL_CASSANDRA_HOME", REPO_ROOT / ".cassandra"))
CQL_HOST = "127.0.0.1"
CQL_PORT = 9042
LOCAL_DC = "datacenter1"  # SimpleSnitch's data center name


@dataclass(frozen=True)
class CassandraNode:
    """Where the local node answers CQL, and its state folder (pid file, logs, data)."""

    host: str
    port: int
    local_dc: str
    home: Path

    @property
    def pid_file(self) -> Path:
        return self.home / "cassandra.pid"


def run_local_cassandra(command: str) -> subprocess.CompletedProcess[str]:
    """Run ``conf/cassandra/local-cassandra.sh <command>`` and return its result (never raises on exit code)."""
    start_timeout = int(os.environ.get("CASSANDRA_START_TIMEOUT", "180"))
    return subprocess.run(
        [str(LOCAL_CASSANDRA), command],
        capture_output=True,
        text=True,
        timeout=start_timeout + 120,
        check=False,
    )


@pytest.fixture(scope="session")
def cassandra_node() -> CassandraNode:
    """The local Cassandra node, started if it is not running yet (and left running)."""
    result = run_local_cassandra("start")
    if result.returncode != 0:
        pytest.fail(
            f"{LOCAL_CASSANDRA} start failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return CassandraNode(host=CQL_HOST, port=CQL_PORT, local_dc=LOCAL_DC, home=LOCAL_CASSANDRA_HOME)


@pytest.fixture(scope="session")
def local_cassandra_cli() -> Callable[[str], subprocess.CompletedProcess[str]]:
    """``run("status")`` runs ``conf/cassandra/local-cassandra.sh status`` and returns the result."""
    return run_local_cassandra


@pytest.fixture(scope="session")
def cassandra_session(cassandra_node: CassandraNode) -> Iterator[Session]:
    """A cassandra-driver Session connected to the local node (no keyspace set)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=cassandra_node.local_dc),
        request_timeout=30.0,
    )
    cluster = Cluster(
        [cassandra_node.host],
        port=cassandra_node.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=30,
    )
    session = cluster.connect()
    try:
        yield session
    finally:
        cluster.shutdown()
