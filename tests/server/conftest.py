"""A small project served by a real ``feast-spark serve`` subprocess on a free port.

``project(tmp_path, store)`` writes a feature_store.yaml (SQLite file or a fresh keyspace on the
local Cassandra node), applies the definitions and writes rows straight into the online store:

* ``driver_stats`` (driver_id INT64; conv_rate DOUBLE, trips INT64, note STRING; max_age 1 day):
  1001 all present, 1002 conv_rate null, 1003 written 1.5 days ago (outside max_age), 9999 never;
* ``pair_stats`` (driver_id INT64 + customer_id STRING; conv_rate DOUBLE, score FLOAT): a
  composite key, and a feature name shared with driver_stats.

``ServerProcess`` starts the CLI command, waits for ``/health``, and stops it with SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from feast_spark.client import Client
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.online.base import OnlineTableSchema
from feast_spark.online.stores import open_online_store

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "serving"
DRIVER = Entity("driver_id", "INT64")
CUSTOMER = Entity("customer_id", "STRING")
SOURCE = FileSource(path="/unused.parquet", event_timestamp_column="ts")
DRIVER_STATS = FeatureTable(
    "driver_stats", ["driver_id"],
    [Feature("conv_rate", "DOUBLE"), Feature("trips", "INT64"), Feature("note", "STRING")],
    SOURCE, max_age=timedelta(days=1),
)  # fmt: skip
PAIR_STATS = FeatureTable(
    "pair_stats", ["driver_id", "customer_id"],
    [Feature("conv_rate", "DOUBLE"), Feature("score", "FLOAT")], SOURCE,
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Project:
    """A served project: its config file and what it holds."""

    folder: Path
    config: Path
    store: str
    keyspace: str | None

    def client(self) -> Client:
        return Client(str(self.config))


def write_config(
    folder: Path, store: str, *, cassandra_port: int = 9042, keyspace: str | None = None,
    feature_server: dict[str, Any] | None = None, cache_ttl: float = 0.5,
) -> Path:  # fmt: skip
    online: dict[str, Any]
    if store == "sqlite":
        online = {"type": "sqlite", "path": "online.db"}
    else:
        online = {
            "type": "cassandra", "hosts": ["127.0.0.1"], "port": cassandra_port,
            "keyspace": keyspace, "request_timeout_s": 10.0, "local_dc": "datacenter1",
        }  # fmt: skip
    document: dict[str, Any] = {
        "project": PROJECT,
        "registry": {"path": "registry.json", "cache_ttl_seconds": cache_ttl},
        "offline_store": {"path": "offline"},
        "online_store": online,
    }
    if feature_server:
        document["feature_server"] = feature_server
    path = folder / "feature_store.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def write_rows(config: Path, table: FeatureTable, rows: list[dict[str, Any]]) -> None:
    """Write rows (keys, features, event_timestamp) straight into the online store."""
    client = Client(str(config))
    try:
        entities = client.list_entities()
        schema = OnlineTableSchema.of(PROJECT, table, entities)
        with open_online_store(client.config.online_store) as store:
            store.ensure_table(schema)
            store.write_batch(schema, pa.RecordBatch.from_pylist(rows))
    finally:
        client.close()


def make_project(folder: Path, store: str) -> Project:
    keyspace = f"serve_{uuid.uuid4().hex[:10]}" if store == "cassandra" else None
    config = write_config(folder, store, keyspace=keyspace)
    client = Client(str(config))
    client.apply(DRIVER, CUSTOMER, DRIVER_STATS, PAIR_STATS)
    now = datetime.now(UTC).replace(microsecond=0)
    write_rows(config, DRIVER_STATS, [
        {"driver_id": 1001, "conv_rate": 0.5, "trips": 7, "note": "ok",
         "event_timestamp": now - timedelta(minutes=5)},
        {"driver_id": 1002, "conv_rate": None, "trips": 3, "note": None,
         "event_timestamp": now - timedelta(hours=1, microseconds=-1500)},
        {"driver_id": 1003, "conv_rate": 0.9, "trips": 1, "note": "old",
         "event_timestamp": now - timedelta(days=1, hours=12)},
    ])  # fmt: skip
    write_rows(config, PAIR_STATS, [
        {"driver_id": 1001, "customer_id": "a", "conv_rate": 0.25, "score": 1.5,
         "event_timestamp": now - timedelta(minutes=1)},
        {"driver_id": 1001, "customer_id": "b", "conv_rate": 0.75, "score": None,
         "event_timestamp": now - timedelta(minutes=2)},
    ])  # fmt: skip
    client.close()
    return Project(folder, config, store, keyspace)


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Project:
    return make_project(tmp_path, "sqlite")


@pytest.fixture
def cassandra_project(
    tmp_path: Path, cassandra_node: Any, cassandra_session: Any
) -> Iterator[Project]:
    project = make_project(tmp_path, "cassandra")
    yield project
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {project.keyspace}")


class ServerProcess:
    """``feast-spark serve`` in a subprocess, on a free port."""

    def __init__(self, config: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = config.parent / f"serve-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from feast_spark.cli import main; main()", "serve",
             "--config", str(config),
             "--port", str(self.port), "--log-level", "warning", *args],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def wait_healthy(self, timeout: float = 60) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {self.output()}")
            try:
                if self.get("/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not healthy within {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                timeout: float = 30) -> tuple[int, Any]:  # fmt: skip
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type", "")
            return response.status, json.loads(data) if "json" in kind else data.decode()
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path, timeout=10)

    def post(self, payload: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
        body = raw if raw is not None else json.dumps(payload).encode()
        return self.request("POST", "/get-online-features", body)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def start_server() -> Iterator[Any]:
    """``start_server(config, *args)``: a healthy server; every one started is stopped after."""
    started: list[ServerProcess] = []

    def start(config: Path, *args: str, wait: bool = True) -> ServerProcess:
        server = ServerProcess(config, *args)
        started.append(server)
        return server.wait_healthy() if wait else server

    yield start
    for server in started:
        server.stop()
