"""A real Spark standalone cluster on loopback, started with pyspark's own ``bin/spark-class``.

One master (REST submission server enabled) and one worker (2 cores, 1g), both bound to
127.0.0.1 on free ports, started once per test session by the tests that ask for it and stopped
at the end (the worker's process group, which holds its drivers and executors, included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feast_spark.launcher import environment

START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class StandaloneCluster:
    """Addresses of the test cluster."""

    master_url: str
    rest_port: int
    master_ui_port: int
    worker_ui: str
    work_dir: Path
    log_dir: Path

    def state(self) -> dict[str, Any]:
        """The master's ``/json/`` document."""
        return _get_json(f"http://127.0.0.1:{self.master_ui_port}/json/") or {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_for(condition: Any, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    tails = "\n".join(f"--- {p}\n" + p.read_text(errors="replace")[-3000:] for p in logs)
    raise RuntimeError(f"the test cluster did not come up ({what}) in {START_TIMEOUT_S}s\n{tails}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for signum, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """Start a master and a worker; stop both (and whatever the worker started) at the end."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: a Spark cluster cannot start")
    spark_class = str(environment.spark_home() / "bin" / "spark-class")
    base = tmp_path_factory.mktemp("standalone")
    work_dir, log_dir = base / "work", base / "logs"
    work_dir.mkdir()
    log_dir.mkdir()
    master_port, rest_port, master_ui, worker_port, worker_ui = (_free_port() for _ in range(5))
    properties = base / "master.properties"
    properties.write_text(
        "spark.master.rest.enabled true\n"
        f"spark.master.rest.port {rest_port}\n"
        "spark.master.rest.host 127.0.0.1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(
        SPARK_HOME=str(environment.spark_home()),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY="256m",
        SPARK_LOG_DIR=str(log_dir),
    )
    master_log, worker_log = log_dir / "master.out", log_dir / "worker.out"
    master_url = f"spark://127.0.0.1:{master_port}"
    started: list[subprocess.Popen[bytes]] = []
    master_command = [
        spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
        "--port", str(master_port), "--webui-port", str(master_ui),
        "--properties-file", str(properties),
    ]  # fmt: skip
    worker_command = [
        spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
        "--port", str(worker_port), "--webui-port", str(worker_ui),
        "--cores", "2", "--memory", "1g", "--work-dir", str(work_dir), master_url,
    ]  # fmt: skip
    cluster = StandaloneCluster(
        master_url, rest_port, master_ui, f"http://127.0.0.1:{worker_ui}", work_dir, log_dir
    )
    try:
        with open(master_log, "wb") as out:
            started.append(
                subprocess.Popen(
                    master_command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
        _wait_for(lambda: cluster.state().get("status") == "ALIVE", "master", [master_log])
        with open(worker_log, "wb") as out:
            started.append(
                subprocess.Popen(
                    worker_command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
        _wait_for(
            lambda: cluster.state().get("aliveworkers") == 1, "worker", [master_log, worker_log]
        )
        yield cluster
    finally:
        for process in reversed(started):
            _stop(process)
