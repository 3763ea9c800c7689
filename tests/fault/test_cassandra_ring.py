"""Materialization on a real 3-node Cassandra ring (replication factor 3) while nodes die.

Every job runs through the command line (``feast-spark``: launcher, spark-submit,
local Spark), at ``LOCAL_QUORUM`` for writes and reads, on ``FEAST_SPARK_RING_KEYS`` keys
(default 20,000). A kill lands mid-write: the test watches node 1's own count of writes to the
online table (``system_views.local_write_latency``) and kills when a quarter of the keys are in.
The online values are compared, key by key, with the offline winners computed here from the
source rows.

    pytest -m fault tests/fault/test_cassandra_ring.py -s   # -s prints the figures

The ring (127.0.0.2-4 by default, see cassandra_ring.py) starts once for the module and is stopped
at the end whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feast_spark.client import Client
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.online.base import OnlineTableSchema

from .cassandra_ring import (
    LOCAL_DC,
    REPO_ROOT,
    Ring,
    local_writes,
    node_session,
    ring_from_environment,
    running_ring,
)

if TYPE_CHECKING:
    from cassandra.cluster import Session

pytestmark = pytest.mark.fault

KEYS = int(os.environ.get("FEAST_SPARK_RING_KEYS", "20000"))
KILL_AT_FRACTION = 0.25  # kill once this share of the keys is written
PROJECT = "ring"
TABLE = "ring_stats"
KEYSPACE = "fault_ring"
FIGURES: list[str] = []
# The feast-spark command of this interpreter and checkout (``python -m feast_spark.cli`` misses
# the commands that feast_spark.cli registers from other modules: they extend the imported module,
# not __main__).
CLI = (sys.executable, "-c", "from feast_spark.cli import main; main()")
DEFINITION = FeatureTable(
    TABLE, ["driver_id"], [Feature("value", "INT64"), Feature("rate", "DOUBLE")],
    FileSource(path="data/source.parquet", event_timestamp_column="event_timestamp"),
)  # fmt: skip
ONLINE_TABLE = OnlineTableSchema.of(PROJECT, DEFINITION, [Entity("driver_id", "INT64")]).name


def day(number: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, number, hour, tzinfo=UTC)


def winner(key: int, day_number: int) -> tuple[int, float, int]:
    """The offline winner of ``key`` on a day: (value, rate, event time in microseconds)."""
    event = day(day_number, 18)
    return day_number * 10_000_000 + key, day_number + key / 1e6, int(event.timestamp() * 1e6)


def source_rows() -> pa.Table:
    """Three days of rows per key: per day an older row, the winner at 18:00 and, for every
    fifth key, a loser at the same event time created earlier (the created-time tie rule)."""
    keys, values, rates, events, created = [], [], [], [], []

    def add(key: int, value: int, rate: float, event: datetime, made: datetime) -> None:
        keys.append(key)
        values.append(value)
        rates.append(rate)
        events.append(event)
        created.append(made)

    for number in (1, 2, 3):
        for key in range(KEYS):
            value, rate, _ = winner(key, number)
            add(key, -value, -rate, day(number, 6), day(number, 6))
            add(key, value, rate, day(number, 18), day(number, 18) + timedelta(minutes=1))
            if key % 5 == 0:
                add(key, -1, -1.0, day(number, 18), day(number, 18))
    stamp = pa.timestamp("us", tz="UTC")
    return pa.table({
        "driver_id": pa.array(keys, pa.int64()),
        "value": pa.array(values, pa.int64()),
        "rate": pa.array(rates, pa.float64()),
        "event_timestamp": pa.array(events, stamp),
        "created": pa.array(created, stamp),
    })  # fmt: skip


FEATURE_STORE_YAML = """\
project: {project}
registry: data/registry.json
offline_store:
  path: data/offline
online_store:
  type: cassandra
  hosts: [{hosts}]
  port: 9042
  keyspace: {keyspace}
  replication: {{class: NetworkTopologyStrategy, {dc}: 3}}
  read_consistency: LOCAL_QUORUM
  write_consistency: LOCAL_QUORUM
  local_dc: {dc}
  request_timeout_s: 10
spark:
  master: "local[2]"
  conf: {{spark.sql.shuffle.partitions: "2", spark.default.parallelism: "2", spark.ui.enabled: "false", spark.driver.memory: 1g}}
launcher:
  type: local
"""

DEFINITIONS_YAML = """\
kind: Entity
name: driver_id
value_type: INT64
---
kind: FeatureTable
name: {table}
entities: [driver_id]
features:
  - {{name: value, dtype: INT64}}
  - {{name: rate, dtype: DOUBLE}}
batch_source:
  type: file
  path: data/source.parquet
  file_format: parquet
  event_timestamp_column: event_timestamp
  created_timestamp_column: created
"""


@dataclass
class Project:
    """The test project on the ring."""

    folder: Path
    ring: Ring
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], cwd=self.folder, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *args], cwd=self.folder, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def client(self) -> Client:
        return Client(self.folder / "feature_store.yaml")

    def mark(self) -> Any:
        """The table's materialization high-water mark, as the registry holds it."""
        client = self.client()
        try:
            return client.settle_incremental(TABLE).serialize()["materialized_until"]
        finally:
            client.close()


@pytest.fixture(scope="module")
def ring() -> Iterator[Ring]:
    ring = ring_from_environment()
    with running_ring(ring) as seconds:
        FIGURES.append(f"ring of {ring.nodes} nodes ({ring.addresses[0]}-{ring.addresses[-1]}) "
                       f"started and whole in {seconds:.0f} s")  # fmt: skip
        yield ring
    print("\n--- fault suite figures (Cassandra ring) ---\n" + "\n".join(FIGURES))


# One contact point (node 1, never killed while a job runs): the driver finds the others itself,
# and an error that names nodes 2 and 3 learnt them from the cluster, not from the settings.
@pytest.fixture(scope="module")
def project(ring: Ring, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project on the ring with KEYS keys x 3 days ingested into Delta (apply + ingest CLI)."""
    folder = tmp_path_factory.mktemp("ring_project")
    (folder / "data").mkdir()
    pq.write_table(source_rows(), folder / "data" / "source.parquet")
    (folder / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(
        project=PROJECT, hosts=ring.address(1), keyspace=KEYSPACE, dc=LOCAL_DC,
    ))  # fmt: skip
    (folder / "definitions.yaml").write_text(DEFINITIONS_YAML.format(table=TABLE))
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    env.update(
        FEAST_SPARK_CONFIG=str(folder / "feature_store.yaml"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    made = Project(folder, ring, env)
    with node_session(ring, ring.address(1)) as session:  # a kept ring: start from no table
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    started = time.monotonic()
    for args in (("apply", "-f", "definitions.yaml"), ("ingest", TABLE)):
        done = made.cli(*args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    FIGURES.append(f"project: {KEYS} keys, {source_rows().num_rows} source rows over 3 days; "
                   f"apply + ingest {time.monotonic() - started:.0f} s")  # fmt: skip
    return made


@pytest.fixture
def whole_ring(ring: Ring) -> Ring:
    """The ring with every node up (an earlier test may have left one down)."""
    ring.ensure_up()
    return ring


# --- helpers ---------------------------------------------------------------------------------------


def online_rows(session: Session, consistency: str = "LOCAL_QUORUM") -> dict[int, tuple[Any, ...]]:
    """Every row of the online table, read at ``consistency`` through the session's node."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    statement = SimpleStatement(
        f'SELECT driver_id, value, rate, event_timestamp FROM {KEYSPACE}."{ONLINE_TABLE}"',
        consistency_level=ConsistencyLevel.name_to_value[consistency], fetch_size=5000,
    )  # fmt: skip
    return {row[0]: tuple(row[1:]) for row in session.execute(statement, timeout=120)}


def assert_online_is_day(session: Session, number: int, consistency: str = "LOCAL_QUORUM") -> None:
    """Every key holds exactly its offline winner of day ``number``."""
    rows = online_rows(session, consistency)
    expected = {key: winner(key, number) for key in range(KEYS)}
    wrong = [(k, rows.get(k), v) for k, v in expected.items() if rows.get(k) != v]
    extra = set(rows) - set(expected)
    assert not wrong and not extra, (
        f"{len(wrong)} of {KEYS} keys wrong (first: {wrong[:3]}), {len(extra)} unexpected keys"
    )


@dataclass
class KilledRun:
    """A CLI job during which nodes were killed."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    killed_at_s: float
    rows_at_kill: int
    rows_after_kill: int


def run_killing(project: Project, args: tuple[str, ...], victims: tuple[int, ...]) -> KilledRun:
    """Run a CLI job; SIGKILL ``victims`` once node 1 has applied KILL_AT_FRACTION of the keys."""
    ring = project.ring
    with node_session(ring, ring.address(1)) as watcher:
        baseline = local_writes(watcher, KEYSPACE, ONLINE_TABLE)
        started = time.monotonic()
        process = project.popen(*args)
        try:
            killed_at, rows_at_kill, rows_after_kill = None, 0, 0
            while process.poll() is None:
                written = local_writes(watcher, KEYSPACE, ONLINE_TABLE) - baseline
                if written >= KEYS * KILL_AT_FRACTION:
                    killed_at, rows_at_kill = time.monotonic() - started, written
                    ring.kill(*victims)
                    rows_after_kill = local_writes(watcher, KEYSPACE, ONLINE_TABLE) - baseline
                    break
                time.sleep(0.1)
            stdout, stderr = process.communicate(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.monotonic() - started
    assert killed_at is not None, (
        f"the job ended before {KILL_AT_FRACTION:.0%} of the keys were written; raise "
        f"FEAST_SPARK_RING_KEYS (exit {process.returncode}):\n{stderr[-2000:]}"
    )
    # Node 1 had not all the keys yet once the victims were dead: the kill landed mid-write.
    assert rows_after_kill < KEYS, f"all {KEYS} rows were written before the kill took effect"
    return KilledRun(
        process.returncode, stdout, stderr, seconds, killed_at, rows_at_kill, rows_after_kill
    )


class Reader(threading.Thread):
    """Online reads through the client, over and over, until stopped; counts answers."""

    def __init__(self, project: Project, keys: list[int]) -> None:
        super().__init__(daemon=True)
        self.project, self.keys = project, keys
        self.stop = threading.Event()
        self.answers = 0
        self.failures: list[tuple[float, str]] = []
        self.started = time.monotonic()

    def run(self) -> None:
        client = self.project.client()
        rows = [{"driver_id": k} for k in self.keys]
        try:
            while not self.stop.is_set():
                try:
                    values = client.get_online_features([f"{TABLE}:value"], rows).to_dict()
                    assert len(values[f"{TABLE}:value"]) == len(rows)
                    self.answers += 1
                except Exception as error:  # every failure is recorded
                    self.failures.append((time.monotonic() - self.started, repr(error)[:300]))
                time.sleep(0.05)
        finally:
            client.close()


# --- scenarios -------------------------------------------------------------------------------------


def test_one_node_killed_mid_materialize_the_job_succeeds_with_every_value_right(
    project: Project, whole_ring: Ring
) -> None:
    # given the ring whole and clients reading online values all along
    reader = Reader(project, list(range(0, KEYS, KEYS // 50)))
    reader.start()
    try:
        # when node 3 is killed (SIGKILL) while the day-1 materialization writes at LOCAL_QUORUM
        run = run_killing(
            project, ("materialize", TABLE, "--start", "2024-01-01", "--end", "2024-01-02"), (3,)
        )
        answers_at_end = reader.answers
        time.sleep(2)  # reads after the job, with the node still down
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    FIGURES.append(
        f"1 node killed: node 3 SIGKILLed {run.killed_at_s:.1f} s into the job at "
        f"{run.rows_at_kill} of {KEYS} rows (dead at {run.rows_after_kill}); job {run.seconds:.0f} s, exit {run.returncode}; "
        f"{reader.answers} online reads of {len(reader.keys)} keys, {len(reader.failures)} failed"
    )

    # then the job succeeds
    assert run.returncode == 0, run.stderr[-3000:]
    # and the two live replicas hold every key's day-1 winner (node 3 is still down; the job can
    # end before node 1's failure detector has convicted it, so its scan may time out first)
    with node_session(whole_ring, whole_ring.address(1)) as session:
        scan_when_peers_down(lambda: assert_online_is_day(session, 1))
    # and online reads kept answering during the job and after it
    assert not reader.failures, reader.failures[:5]
    assert answers_at_end > 0 and reader.answers > answers_at_end


def test_two_nodes_killed_the_job_fails_naming_them_and_a_rerun_writes_every_value(
    project: Project, whole_ring: Ring
) -> None:
    ring = whole_ring
    mark_before = project.mark()
    args = ("materialize-incremental", TABLE, "--end", "2024-01-03")

    # when nodes 2 and 3 are killed while the incremental materialization writes at LOCAL_QUORUM
    run = run_killing(project, args, (2, 3))
    FIGURES.append(
        f"2 nodes killed: nodes 2, 3 SIGKILLed {run.killed_at_s:.1f} s into the job at "
        f"{run.rows_at_kill} of {KEYS} rows (dead at {run.rows_after_kill}); job failed after "
        f"{run.seconds:.0f} s, exit {run.returncode}"
    )

    # then the job fails with one line, and its record says FAILED
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    last_line = run.stderr.strip().splitlines()[-1]
    client = project.client()
    try:
        record = client.launcher.list(table=TABLE)[0]
    finally:
        client.close()
    assert record.state.value == "FAILED" and record.error is not None
    # and the high-water mark did not move
    assert project.mark() == mark_before

    # when the nodes are back and the same command runs again
    started = time.monotonic()
    ring.start_nodes(2, 3)
    restarted = time.monotonic() - started
    started = time.monotonic()
    rerun = project.cli(*args)
    FIGURES.append(f"2 nodes killed: restart of nodes 2, 3 {restarted:.0f} s; rerun "
                   f"{time.monotonic() - started:.0f} s, exit {rerun.returncode}")  # fmt: skip

    # then it succeeds, every key holds its day-2 winner on a quorum, and the mark moved to the end
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with node_session(ring, ring.address(1)) as session:
        assert_online_is_day(session, 2)
    assert project.mark() is not None and project.mark().startswith("2024-01-03")

    # and (checked last, so that the recovery above is checked too) the failed job's line and
    # record named the down hosts (the contact point was node 1 only) and the cause
    for text in (last_line, record.error):
        for address in (ring.address(2), ring.address(3)):
            assert address in text, f"{address} not named in: {text}"
        assert "LOCAL_QUORUM" in text or "Unavailable" in text, text


def test_a_node_back_after_missing_writes_serves_the_latest_values(
    project: Project, whole_ring: Ring
) -> None:
    ring = whole_ring
    # given node 2 killed, and day 3 materialized while it is down
    ring.kill(2)
    started = time.monotonic()
    done = project.cli("materialize-incremental", TABLE, "--end", "2024-01-04")
    job_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]

    # when node 2 comes back
    started = time.monotonic()
    ring.start_nodes(2)
    restart_seconds = time.monotonic() - started

    # then reads at the configured consistency (LOCAL_QUORUM) return day 3 at once
    client = project.client()
    try:
        sample = list(range(1, KEYS, KEYS // 200))
        values = client.get_online_features([f"{TABLE}:value"], [{"driver_id": k} for k in sample])
        assert values.to_dict()[f"{TABLE}:value"] == [winner(k, 3)[0] for k in sample]
    finally:
        client.close()

    # and once the peers have replayed their hints, node 2 alone holds every day-3 value
    started = time.monotonic()
    time.sleep(12)  # a flush period: every hint of the job is in a file by now
    wait_for_hints_replayed(ring, to_node=2, timeout_s=180)
    replay_seconds = time.monotonic() - started
    ring.kill(1, 3)
    with node_session(ring, ring.address(2)) as session:
        scan_when_peers_down(lambda: assert_online_is_day(session, 3, consistency="ONE"))
    FIGURES.append(
        f"node back after missing writes: day-3 job with node 2 down {job_seconds:.0f} s; "
        f"restart {restart_seconds:.0f} s; hints replayed {replay_seconds:.0f} s after it was up; "
        f"node 2 alone then served all {KEYS} day-3 values at ONE"
    )
    ring.start_nodes(1, 3)


def scan_when_peers_down(check: Callable[[], None], timeout_s: float = 120) -> None:
    """Run ``check``, again while its scan times out: until the node's failure detector has
    convicted the killed peers, it still sends them parts of a range read."""
    from cassandra import OperationTimedOut, ReadTimeout

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except (ReadTimeout, OperationTimedOut):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_for_hints_replayed(ring: Ring, *, to_node: int, timeout_s: float) -> None:
    """Wait until no other node keeps a hints file for ``to_node``, on disk.

    Hints are buffered and flushed every 10 s; a coordinator closes its open hints file for a
    node once it sees the node alive, and dispatches closed files on a later 10 s tick
    (``system_views.pending_hints`` lists closed files only), so the files are what to watch.
    """
    with node_session(ring, ring.address(to_node)) as session:
        host_id = str(session.execute("SELECT host_id FROM system.local").one()[0])
    others = [ring.home / f"node{k}" / "data" / "hints" for k in range(1, ring.nodes + 1)]
    others = [folder for k, folder in enumerate(others, 1) if k != to_node]
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [f.name for folder in others for f in folder.glob(f"{host_id}-*.hints")]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"hints for node {to_node} still on disk after {timeout_s} s: {pending}"
            )
        time.sleep(2)
