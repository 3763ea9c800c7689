"""Shared fixtures: one local SparkSession per test run; the local Cassandra node; Kafka.

The ``cassandra_node`` fixture uses a node that already answers on 127.0.0.1:9042 and leaves it
running; otherwise it starts one (``conf/cassandra/local-cassandra.sh start``) and stops it at the
end of the run. Tests that need it are marked ``@pytest.mark.cassandra``; ``pytest -m "not
cassandra"`` skips them.

Every process the run starts inherits ``FEAST_SPARK_TEST_RUN`` (this run's id) in its environment;
at the end of the run any such process still alive (a Spark master, worker, driver or executor, a
Cassandra node, a job) fails the run, is listed, and is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
    stop_spark_gateway()


def stop_spark_gateway() -> None:
    """Stop any SparkContext of this process and end pyspark's gateway JVM now, not at exit."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:  # one a test made without the fixture
        SparkContext._active_spark_context.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is not None:
        # The gateway JVM exits when its stdin closes (pyspark's PythonGatewayServer).
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# --- Cassandra ---------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_CASSANDRA = REPO_ROOT / "conf" / "cassandra" / "local-cassandra.sh"
LOCAL_CASSANDRA_HOME = Path(os.environ.get("LOCAL_CASSANDRA_HOME", REPO_ROOT / ".cassandra"))
CQL_HOST = "127.0.0.1"
CQL_PORT = 9042
LOCAL_DC = "datacenter1"  # SimpleSnitch's data center name


@dataclass(frozen=True)
class CassandraNode:
    """Where the local node answers CQL, and its state folder (pid file, logs, data).

    ``from_home`` is False when the node answering is not the one of ``home`` (another
    ``LOCAL_CASSANDRA_HOME``'s node on the same port): ``local-cassandra.sh`` does not manage it.
    """

    host: str
    port: int
    local_dc: str
    home: Path
    from_home: bool = True

    @property
    def pid_file(self) -> Path:
        return self.home / "cassandra.pid"


# Seconds for the first fetch of the node's jars from Maven Central (an empty ~/.m2 included).
CASSANDRA_FETCH_TIMEOUT_S = 1200


def run_local_cassandra(
    command: str, *, restoring: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``conf/cassandra/local-cassandra.sh <command>`` and return its result (never raises on exit code).

    ``restoring``: the command brings back a node a test stopped. The node belongs to whoever
    owned it before (the run's fixture stops its own by the script), so it does not carry the
    run's tag and is not counted as a process the run left behind.
    """
    start_timeout = int(os.environ.get("CASSANDRA_START_TIMEOUT", "180"))
    env = dict(os.environ)
    if restoring:
        env.pop(RUN_ID_VARIABLE, None)
    return subprocess.run(
        [str(LOCAL_CASSANDRA), command],
        capture_output=True,
        text=True,
        env=env,
        timeout=CASSANDRA_FETCH_TIMEOUT_S if command == "fetch" else start_timeout + 120,
        check=False,
    )


def port_answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def launched_the_node(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether ``local-cassandra.sh start`` launched the node (rather than finding it running)."""
    return "started Cassandra (pid" in result.stdout


@contextmanager
def local_node(
    run: Callable[[str], subprocess.CompletedProcess[str]],
    answers: Callable[[], bool],
    node: CassandraNode,
) -> Iterator[CassandraNode]:
    """The node for the run: started (and stopped on exit) unless one already answers CQL.

    A node that was running before (this home's, or another one on the same port, e.g.
    ``LOCAL_CASSANDRA_HOME`` pointing elsewhere) is used and left running.
    """
    if answers():
        yield replace(node, from_home=run("status").returncode == 0)
        return
    # The jars first, under their own timeout: on a new machine Maven downloads them all.
    fetched = run("fetch")
    if fetched.returncode != 0:
        pytest.fail(
            f"{LOCAL_CASSANDRA} fetch failed with exit code {fetched.returncode}:\n"
            f"{fetched.stdout}\n{fetched.stderr}",
            pytrace=False,
        )
    result = run("start")
    try:
        if result.returncode != 0:
            pytest.fail(
                f"{LOCAL_CASSANDRA} start failed with exit code {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        yield node
    finally:
        # Also after a failed start: the node may have been launched and never answered.
        if launched_the_node(result):
            stopped = run("stop")
            if stopped.returncode != 0:
                print(f"{LOCAL_CASSANDRA} stop failed:\n{stopped.stdout}\n{stopped.stderr}")


@pytest.fixture(scope="session")
def cassandra_node() -> Iterator[CassandraNode]:
    """The local Cassandra node; stopped at the end of the run only if the run started it."""
    node = CassandraNode(host=CQL_HOST, port=CQL_PORT, local_dc=LOCAL_DC, home=LOCAL_CASSANDRA_HOME)
    with local_node(run_local_cassandra, lambda: port_answers(CQL_HOST, CQL_PORT), node) as up:
        yield up


@pytest.fixture(scope="session")
def local_cassandra_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run("status")`` runs ``conf/cassandra/local-cassandra.sh status`` and returns the result.

    ``run("start", restoring=True)`` brings back a node a test stopped (see run_local_cassandra).
    """
    return run_local_cassandra


@pytest.fixture(scope="session")
def cassandra_session(cassandra_node: CassandraNode) -> Iterator[Session]:
    """A cassandra-driver Session connected to the local node (no keyspace set)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=cassandra_node.local_dc),
        request_timeout=30.0,
    )
    cluster = Cluster(
        [cassandra_node.host],
        port=cassandra_node.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=30,
        # A fault test restarts the node: reconnect within a second, not after a growing backoff.
        reconnection_policy=ConstantReconnectionPolicy(delay=1.0),
    )
    session = cluster.connect()
    try:
        yield session
    finally:
        cluster.shutdown()


# --- Kafka ---------------------------------------------------------------------------------------

LOCAL_KAFKA = REPO_ROOT / "conf" / "kafka" / "local-kafka.sh"
KAFKA_PORT = int(os.environ.get("LOCAL_KAFKA_PORT", "9092"))
# The first start fetches the broker's jars with Maven (an empty ~/.m2 included).
KAFKA_START_TIMEOUT_S = 1200


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """``host:port`` of the local Kafka broker (``conf/kafka/local-kafka.sh``).

    A broker that already answers on the port is used and left running; otherwise the run starts
    one and stops it at the end (tests marked ``kafka``).
    """
    if port_answers("127.0.0.1", KAFKA_PORT):
        yield f"127.0.0.1:{KAFKA_PORT}"
        return
    started = subprocess.run(
        [str(LOCAL_KAFKA), "start"], capture_output=True, text=True,
        timeout=KAFKA_START_TIMEOUT_S, check=False,
    )  # fmt: skip
    try:
        if started.returncode != 0:
            pytest.fail(
                f"{LOCAL_KAFKA} start failed with exit code {started.returncode}:\n"
                f"{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        yield f"127.0.0.1:{KAFKA_PORT}"
    finally:
        if "started Kafka (pid" in started.stdout:  # also after a start that never answered
            stopped = subprocess.run(
                [str(LOCAL_KAFKA), "stop"], capture_output=True, text=True, timeout=120,
                check=False,
            )  # fmt: skip
            if stopped.returncode != 0:
                print(f"{LOCAL_KAFKA} stop failed:\n{stopped.stdout}\n{stopped.stderr}")


# --- processes started by the run --------------------------------------------------------------

RUN_ID_VARIABLE = "FEAST_SPARK_TEST_RUN"
# Seconds the run's processes get to end by themselves before they count as left over.
LEFTOVER_GRACE_S = float(os.environ.get("FEAST_SPARK_TEST_LEFTOVER_GRACE_S", "20"))


def pytest_configure(config: pytest.Config) -> None:
    """Tag this run: every process it starts inherits the tag in its environment."""
    os.environ[RUN_ID_VARIABLE] = f"{os.getpid()}-{uuid.uuid4().hex}"


def processes_of_run(run_id: str) -> dict[int, str]:
    """Live processes (other than this one) whose environment carries ``run_id``: pid -> command."""
    needle = f"{RUN_ID_VARIABLE}={run_id}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if "\nState:\tZ" in status or not command:  # zombies hold nothing but a pid
            continue
        found[int(entry.name)] = command.strip()
    return found


def leftover_processes(run_id: str, grace_s: float) -> dict[int, str]:
    """The run's processes still alive after up to ``grace_s`` seconds (those ending now may)."""
    deadline = time.monotonic() + grace_s
    found = processes_of_run(run_id)
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = processes_of_run(run_id)
    return found


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def kill_processes(pids: list[int]) -> None:
    """SIGTERM, up to 10 s, then SIGKILL."""
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, signum)
                alive.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if is_alive(pid)]
        pids = alive
        if not pids:
            return


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process it started outlives it; list and stop such processes."""
    run_id = os.environ.get(RUN_ID_VARIABLE)
    if not run_id or not Path("/proc/self/environ").exists():
        return
    stop_spark_gateway()
    leftovers = leftover_processes(run_id, LEFTOVER_GRACE_S)
    if not leftovers:
        return
    lines = [f"  pid {pid}: {command[:300]}" for pid, command in sorted(leftovers.items())]
    message = (
        f"{len(leftovers)} process(es) started by this test run outlived it "
        "(a test or fixture does not stop what it starts); stopping them now:\n" + "\n".join(lines)
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "LEFTOVER PROCESSES", red=True, bold=True)
        reporter.write_line(message)
    else:
        print(message, file=sys.stderr)
    kill_processes(sorted(leftovers))
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
