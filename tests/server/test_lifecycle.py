"""Operations: SIGTERM drains requests in flight, definitions follow the registry, metrics of
every worker on one /metrics, one-line start-up errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feast_spark.definitions import Feature, FeatureTable

from .conftest import DRIVER, REPO_ROOT, SOURCE, Project, ServerProcess, write_config, write_rows
from .forwarder import Forwarder

GOOD = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1001]}}


@pytest.mark.cassandra
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_answers_every_request_in_flight_and_exits_0(
    cassandra_project: Project, workers: str
) -> None:
    # given a server whose store answers slowly (each read held 0.5 s by a forwarder)
    relay = Forwarder(9042)
    try:
        config = write_config(cassandra_project.folder, "cassandra", cassandra_port=relay.port,
                              keyspace=cassandra_project.keyspace)  # fmt: skip
        server = ServerProcess(config, "--workers", workers).wait_healthy()
        assert server.post(GOOD)[0] == 200  # connections and statements ready
        relay.delay_s = 0.5
        # when 16 requests are in flight and SIGTERM arrives
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(server.post, GOOD) for _ in range(16)]
            time.sleep(0.25)
            server.process.send_signal(signal.SIGTERM)
            answers = [future.result() for future in futures]
        # then every one is answered in full, and the server exits 0
        assert [status for status, _ in answers] == [200] * 16
        assert all(body["results"][1]["values"] == [7] for _, body in answers)
        assert server.process.wait(60) == 0, server.output()
    finally:
        relay.close()


def test_a_table_applied_while_serving_is_served_without_restart(
    sqlite_project: Project, start_server: Any
) -> None:
    # given a running server (registry.cache_ttl_seconds: 0.5) and a table it has never seen
    server = start_server(sqlite_project.config)
    request = {"features": ["late_stats:speed"], "entities": {"driver_id": [1001]}}
    assert server.post(request)[0] == 404
    # when the table is applied and written
    late = FeatureTable("late_stats", ["driver_id"], [Feature("speed", "DOUBLE")], SOURCE)
    client = sqlite_project.client()
    client.apply(DRIVER, late)
    client.close()
    write_rows(sqlite_project.config, late, [
        {"driver_id": 1001, "speed": 42.0, "event_timestamp": datetime.now(UTC) - timedelta(seconds=5)}
    ])  # fmt: skip
    # then it is served within the TTL, by the same process
    deadline = time.monotonic() + 10
    while (answer := server.post(request))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, body = answer
    assert status == 200, body
    assert body["results"][1] == {**body["results"][1], "values": [42.0], "statuses": ["PRESENT"]}
    assert server.process.poll() is None


def test_metrics_of_every_worker_on_one_endpoint(
    sqlite_project: Project, start_server: Any
) -> None:
    # given two workers
    server = start_server(sqlite_project.config, "--workers", "2")
    # when 30 requests of 1 entity and one bad request are served (new connection each)
    for _ in range(30):
        assert server.post(GOOD)[0] == 200
    assert server.post({"features": ["nope:x"], "entities": {"driver_id": [1]}})[0] == 404
    # then /metrics, whichever worker answers, counts them all
    for _ in range(4):
        text = server.get("/metrics")[1]
        ok = re.search(r'requests_total\{route="/get-online-features",status="200"\} (\S+)', text)
        assert ok and float(ok.group(1)) == 30.0, text
        assert re.search(r'status="404"\} 1\.0', text)
        assert re.search(r"entities_per_request_count (\S+)", text).group(1) == "31.0"  # type: ignore[union-attr]
        assert 'request_duration_seconds_bucket{le="0.005",route="/get-online-features"}' in text


def test_a_port_in_use_is_one_line_and_exit_1(sqlite_project: Project, start_server: Any) -> None:
    # given a server on a port
    first = start_server(sqlite_project.config)
    # when another is started on the same port
    result = subprocess.run(
        [sys.executable, "-c", "from feast_spark.cli import main; main()", "serve",
         "--config", str(sqlite_project.config), "--port", str(first.port)],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    # then it fails in one line naming the port
    assert result.returncode == 1
    assert f"--port {first.port}" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_feature_server_key_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite", feature_server={"prot": 1})
    result = subprocess.run(
        [sys.executable, "-c", "from feast_spark.cli import main; main()", "serve",
         "--config", str(config)],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "feature_server.prot" in result.stderr and "unknown key" in result.stderr
