"""A 3-node Cassandra ring on loopback for fault tests, driven by conf/cassandra/local-cassandra.sh.

The ring runs on consecutive loopback addresses from ``FEAST_SPARK_RING_ADDRESS`` (default
127.0.0.2, so 127.0.0.2-4: the single development node keeps 127.0.0.1) in its own state folder
(``FEAST_SPARK_RING_HOME``, default ``<repo>/.cassandra-ring``), one JVM per node, 512 MB heaps.
Whoever starts it stops it: :func:`running_ring` stops every node on the way out, whatever
happened.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "conf" / "cassandra" / "local-cassandra.sh"
LOCAL_DC = "datacenter1"  # SimpleSnitch's data center name
PROBE_KEYSPACE = "fault_probe"


@dataclass(frozen=True)
class Ring:
    """A local ring: its state folder, first address and size."""

    home: Path
    first_address: str
    nodes: int = 3

    def address(self, node: int) -> str:
        """The loopback address of node ``node`` (1-based)."""
        prefix, last = self.first_address.rsplit(".", 1)
        return f"{prefix}.{int(last) + node - 1}"

    @property
    def addresses(self) -> list[str]:
        """Every node's address, node 1 first."""
        return [self.address(k) for k in range(1, self.nodes + 1)]

    def run(
        self, *args: str, timeout: float = 420, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the script on this ring; raise with its output when it fails (``check``)."""
        env = {
            **os.environ,
            "LOCAL_CASSANDRA_HOME": str(self.home),
            "LOCAL_CASSANDRA_ADDRESS": self.first_address,
            "LOCAL_CASSANDRA_NODES": str(self.nodes),
        }
        done = subprocess.run(
            [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(
                f"local-cassandra.sh {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def kill(self, *nodes: int) -> None:
        """SIGKILL the given nodes (no drain, no flush)."""
        for node in nodes:
            self.run("kill-node", str(node))

    def start_nodes(self, *nodes: int) -> None:
        """Start the given nodes and wait until every node sees the whole ring up."""
        for node in nodes:
            self.run("start-node", str(node))
        self.wait_ready()

    def ensure_up(self) -> None:
        """Start whatever node is down (idempotent), then wait until the ring is whole."""
        self.run("start")
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Wait until each node, as coordinator, writes at ALL (sees every replica up)."""
        from cassandra import ConsistencyLevel
        from cassandra.query import SimpleStatement

        deadline = time.monotonic() + timeout_s
        for address in self.addresses:
            with node_session(self, address) as session:
                session.execute(
                    f"CREATE KEYSPACE IF NOT EXISTS {PROBE_KEYSPACE} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {self.nodes}}}"
                )
                session.execute(
                    f"CREATE TABLE IF NOT EXISTS {PROBE_KEYSPACE}.probe (k int PRIMARY KEY)"
                )
                probe = SimpleStatement(
                    f"INSERT INTO {PROBE_KEYSPACE}.probe (k) VALUES (1)",
                    consistency_level=ConsistencyLevel.ALL,
                )
                while True:
                    try:
                        session.execute(probe, timeout=10)
                        break
                    except Exception as error:  # any failure: not ready yet
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"ring not whole after {timeout_s} s: {error}"
                            ) from error
                        time.sleep(0.5)


def ring_from_environment() -> Ring:
    """The test ring: ``FEAST_SPARK_RING_HOME`` and ``FEAST_SPARK_RING_ADDRESS`` or defaults."""
    home = Path(os.environ.get("FEAST_SPARK_RING_HOME", REPO_ROOT / ".cassandra-ring"))
    return Ring(home=home, first_address=os.environ.get("FEAST_SPARK_RING_ADDRESS", "127.0.0.2"))


def share_jars(ring: Ring) -> None:
    """Reuse the single node's fetched jars (a symlink) instead of a second Maven fetch."""
    lib = ring.home / "lib"
    single = Path(os.environ.get("LOCAL_CASSANDRA_HOME", REPO_ROOT / ".cassandra")) / "lib"
    if lib.exists() or lib.is_symlink() or not (single / ".fetched-pom.sha256").is_file():
        return
    ring.home.mkdir(parents=True, exist_ok=True)
    lib.symlink_to(single.resolve(), target_is_directory=True)


@contextmanager
def running_ring(ring: Ring) -> Iterator[float]:
    """Start the ring, yield the seconds it took to be whole, and always stop it.

    A ring that is not running starts on fresh data (no tables or hints of an earlier run).
    ``FEAST_SPARK_RING_KEEP=1`` leaves it running afterwards, to iterate on a test quickly.
    """
    import shutil

    if ring.run("status", check=False).returncode == 3:  # every node stopped
        for node in range(1, ring.nodes + 1):
            shutil.rmtree(ring.home / f"node{node}", ignore_errors=True)
    share_jars(ring)
    started = time.monotonic()
    try:
        ring.run("start", timeout=600)
        ring.wait_ready()
        yield time.monotonic() - started
    finally:
        if os.environ.get("FEAST_SPARK_RING_KEEP") != "1":
            ring.run("stop", timeout=300)


@contextmanager
def node_session(ring: Ring, address: str, **cluster_options: Any) -> Iterator[Session]:
    """A driver session whose requests go to ``address`` only (its coordinator)."""
    cluster = node_cluster(ring, address, **cluster_options)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def node_cluster(ring: Ring, address: str, **cluster_options: Any) -> Cluster:
    """A driver Cluster pinned to ``address`` (WhiteListRoundRobinPolicy)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([address]), request_timeout=30.0
    )
    return Cluster(
        [address], execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=30,
        **cluster_options,
    )  # fmt: skip


def local_writes(session: Session, keyspace: str, table: str) -> int:
    """Mutations the session's node has applied to ``keyspace.table`` since it started.

    From the node's ``system_views.local_write_latency`` (0 before the table exists): with
    replication factor 3 on 3 nodes every row lands on every node, so this counts the rows
    written so far.
    """
    row = session.execute(
        "SELECT count FROM system_views.local_write_latency "
        "WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    ).one()
    return 0 if row is None else int(row[0])
