"""``feast-spark stream start|stop|status`` through the real launcher: a spark-submit per start."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from feast_spark.cli import cli
from feast_spark.client import Client

from .small_project import write_project


def write_stream_project(
    folder: Path, broker: str, topic: str, online_store: dict[str, Any] | None = None
) -> Path:
    return write_project(
        folder,
        "driver_stream",
        f"stream_source: {{type: kafka, bootstrap_servers: '{broker}', topic: {topic},"
        " event_timestamp_column: ts, starting_offsets: earliest}\n",
        online_store,
    )


@pytest.fixture()
def cassandra_store(cassandra_node: Any, cassandra_session: Any) -> Iterator[dict[str, Any]]:
    """The online_store section of the local Cassandra node, in a keyspace dropped after."""
    keyspace = f"test_cli_stream_{uuid.uuid4().hex[:10]}"
    yield {
        "type": "cassandra", "hosts": [cassandra_node.host], "port": cassandra_node.port,
        "keyspace": keyspace, "local_dc": cassandra_node.local_dc,
        "read_consistency": "ONE", "write_consistency": "ONE",
    }  # fmt: skip
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--config", str(project)])
    return result.exit_code, result.stdout + result.stderr


def send(broker: str, topic: str, rows: list[tuple[int, int]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker})
    for driver, trips in rows:
        value = {"driver_id": driver, "ts": f"2024-01-01T{trips % 24:02d}:00:00Z", "trips": trips}
        producer.produce(topic, value=json.dumps(value).encode())
    assert producer.flush(30) == 0


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 600) -> None:
    """Poll ``condition``; a store error counts as not yet.

    Cassandra answers a read that reaches a table while the job creates it with a server error
    ("Unknown CF", seen once here on a node started seconds before): the store reports it, and
    the test reads again.
    """
    from feast_spark.errors import OnlineStoreError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OnlineStoreError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def trips(project: Path, drivers: list[int]) -> list[Any]:
    client = Client(project / "feature_store.yaml")
    try:
        values = client.get_online_features(
            ["driver_stream:trips"], [{"driver_id": d} for d in drivers]
        ).to_dict()
    finally:
        client.close()
    return list(values["driver_stream:trips"])


@pytest.mark.kafka
@pytest.mark.cassandra
def test_start_refuse_a_second_stop_then_resume_and_cancel(
    tmp_path: Path, kafka_broker: str, cassandra_store: dict[str, Any]
) -> None:
    # given a project online on the Cassandra node whose table has a stream source, and two
    # messages on its topic
    topic = f"cli_{uuid.uuid4().hex[:8]}"
    project = write_stream_project(tmp_path, kafka_broker, topic, cassandra_store)
    assert run(project, "apply", "-f", str(project / "definitions.yaml"))[0] == 0
    send(kafka_broker, topic, [(1, 7), (2, 3)])

    # when the stream starts
    code, out = run(project, "stream", "start", "driver_stream")
    assert code == 0, out
    job_id = out.strip()
    # then the values reach the online store
    wait_until(lambda: trips(project, [1, 2]) == [7, 3], "the first messages online")

    # when a second stream of the table is started, then it is refused, naming the running one
    code, out = run(project, "stream", "start", "driver_stream")
    assert code == 1 and f"job '{job_id}' (RUNNING)" in out, out

    # and the running one shows its progress in stream status and jobs list
    def status() -> dict[str, Any]:
        code, out = run(project, "stream", "status", "driver_stream", "--output", "json")
        assert code == 0, out
        return dict(json.loads(out)[0])

    wait_until(lambda: status().get("messages") == 2, "a progress record", 120)
    assert status()["job_id"] == job_id and status()["rows_written"] == 2
    code, out = run(project, "jobs", "list", "--type", "stream_ingestion")
    assert code == 0 and "RUNNING (" in out and "rows/s in" in out, out

    # when it is stopped, then it ends SUCCEEDED
    code, out = run(project, "stream", "stop", "driver_stream")
    assert code == 0 and f"job {job_id} SUCCEEDED" in out, out

    # when a message arrives while stopped and the stream starts again
    send(kafka_broker, topic, [(1, 8)])
    code, out = run(project, "stream", "start", "driver_stream")
    assert code == 0, out
    second = out.strip()
    # then it resumes from the checkpoint: the new message only
    wait_until(lambda: trips(project, [1]) == [8], "the message sent while stopped")

    # when it is cancelled like any job, then it ends CANCELLED and nothing of it runs on
    code, out = run(project, "jobs", "cancel", second)
    assert code == 0 and "CANCELLED" in out, out
    code, out = run(project, "stream", "stop", "driver_stream")
    assert code == 0 and "no stream of table 'driver_stream' is running" in out
    result = Client(project / "feature_store.yaml").get_job(job_id).record.result or {}
    assert result["rows_read"] == 2 and result["details"]["stopped_by"].startswith("stop")


def job_processes(job_id: str) -> list[int]:
    """Pids of the processes that carry the job's id (spark-submit, the JVM, the Python driver)."""
    needle = f"FEAST_SPARK_JOB_ID={job_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def offline_trips(project: Path) -> list[tuple[int, int]]:
    from deltalake import DeltaTable

    table = DeltaTable(str(project / "offline" / "demo" / "driver_stream")).to_pyarrow_table()
    return sorted(zip(table["driver_id"].to_pylist(), table["trips"].to_pylist(), strict=True))


def offline_trips_so_far(project: Path) -> list[tuple[int, int]]:
    """The offline rows, none while the table is still being created (a log without commits)."""
    from deltalake.exceptions import TableNotFoundError

    if not (project / "offline" / "demo" / "driver_stream" / "_delta_log").is_dir():
        return []
    try:
        return offline_trips(project)
    except TableNotFoundError:
        return []


@pytest.mark.kafka
@pytest.mark.cassandra
def test_both_stores_after_a_kill_9_mid_batch_and_a_restart_hold_each_message_once(
    tmp_path: Path,
    kafka_broker: str,
    cassandra_store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import signal

    # given a stream to both stores (Cassandra online) whose driver pauses after writing a
    # batch, before Spark commits it (the fault hook), and three messages
    topic = f"kill_{uuid.uuid4().hex[:8]}"
    project = write_stream_project(tmp_path, kafka_broker, topic, cassandra_store)
    assert run(project, "apply", "-f", str(project / "definitions.yaml"))[0] == 0
    send(kafka_broker, topic, [(1, 7), (2, 3), (3, 5)])
    monkeypatch.setenv("FEAST_SPARK_TEST_PAUSE_AT", "stream_batch")
    code, out = run(project, "stream", "start", "driver_stream", "--to", "both")
    assert code == 0, out
    first = out.strip()
    wait_until(lambda: len(offline_trips_so_far(project)) == 3, "the first batch offline")

    # when the driver is killed with SIGKILL there, and the stream starts again
    for pid in job_processes(first):
        os.kill(pid, signal.SIGKILL)
    # (a SIGKILLed JVM lingers for a moment with its environment already gone: wait until the
    # launcher, which starts the next job, sees the first one ended)
    launcher = Client(project / "feature_store.yaml").launcher
    wait_until(
        lambda: not job_processes(first) and launcher.get(first).status().is_final,
        "the killed job to be gone",
        60,
    )
    monkeypatch.delenv("FEAST_SPARK_TEST_PAUSE_AT")
    send(kafka_broker, topic, [(4, 9)])
    code, out = run(project, "stream", "start", "driver_stream", "--to", "both")
    assert code == 0, out
    wait_until(lambda: trips(project, [4]) == [9], "the message sent after the kill")
    code, out = run(project, "stream", "stop", "driver_stream")
    assert code == 0 and "SUCCEEDED" in out, out

    # then the replayed batch was not appended twice, and nothing was lost
    assert offline_trips(project) == [(1, 7), (2, 3), (3, 5), (4, 9)]
    assert trips(project, [1, 2, 3, 4]) == [7, 3, 5, 9]
