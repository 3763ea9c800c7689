"""Which local jobs go to a warm driver, and the client that hands one to it.

The driver here is a stand-in speaking :mod:`feast_spark.warm_protocol` from a thread (the real
one, on Spark: ``tests/jobs/test_warm_driver.py``).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feast_spark import warm_protocol
from feast_spark.launcher import JobStore
from feast_spark.launcher.processes import JOB_ID_ENV
from feast_spark.launcher.submit import JobLaunch, SparkSettings, SparkTarget
from feast_spark.launcher.warm import (
    WarmDriver,
    client_command,
    comparable_conf,
    fingerprint_conf,
    fingerprint_env,
    plan_session,
    read_driver,
    route,
    write_driver,
)

ROOT = Path(__file__).resolve().parents[2]
TARGET = SparkTarget("local", "local[2]", "client", "/spark/bin/spark-submit")
SETTINGS = SparkSettings(
    defaults={"spark.sql.session.timeZone": "UTC"},
    jars={"spark.jars": "/jars/delta.jar"},
    py_files=("/cache/feast_spark-abc.zip",),
    python="/venv/bin/python",
)
ENV = {"FEAST_SPARK_CASSANDRA_PASSWORD": "pw", "SPARK_HOME": "/spark", "TERM": "xterm"}
SPEC_ARGS = ("--spec", "/jobs/j1/spec.json")


class FakeDriver:
    """Answers pings and checks; a run gets ``logs`` then ``exit`` (None: hang up instead)."""

    def __init__(self, path: Path, *, check: dict[str, Any] | None = None) -> None:
        self.path = path
        self.check = check or {"ok": True}
        self.logs = ["working\n"]
        self.exit: int | None = 0
        self.wait_for_cancel = False
        self.received: list[dict[str, Any]] = []
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.server.accept()
                with connection, connection.makefile("rb") as stream:
                    messages = warm_protocol.receive(stream)
                    request = next(messages)
                    self.received.append(request)
                    if request["op"] == "check":
                        warm_protocol.send(connection, self.check)
                        continue
                    for line in self.logs:
                        warm_protocol.send(connection, {"log": line})
                    if self.wait_for_cancel:
                        self.received.append(next(messages))
                    if self.exit is not None:
                        warm_protocol.send(connection, {"exit": self.exit})

    def close(self) -> None:
        self.server.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def driver_socket() -> Iterator[Path]:
    path = warm_protocol.socket_path(f"test-{uuid.uuid4()}")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def fake_driver(driver_socket: Path) -> Iterator[FakeDriver]:
    driver = FakeDriver(driver_socket)
    yield driver
    driver.close()


def record_driver(store: JobStore, socket_path: Path, **conf: str) -> WarmDriver:
    launch = JobLaunch("warm-driver-1", "/repo/jobs/warm_driver.py", ("--socket", "x"), conf)
    driver = WarmDriver(
        "warm-driver-1",
        str(socket_path),
        comparable_conf(TARGET, launch, SETTINGS),
        fingerprint_env(ENV),
    )
    write_driver(store, driver)
    return driver


def job(**conf: str) -> JobLaunch:
    sized = {"spark.databricks.delta.snapshotPartitions": "1"}
    sized["spark.driver.extraJavaOptions"] = "-XX:TieredStopAtLevel=1"
    return JobLaunch("j1", "/repo/jobs/ingest.py", SPEC_ARGS, conf, sized)


# --- comparing settings ----------------------------------------------------------------------


def test_equal_settings_need_nothing_set_on_the_session() -> None:
    conf = {"spark.jars": "a.jar", "spark.sql.shuffle.partitions": "2"}
    assert plan_session(conf, dict(conf)) == plan_session({}, {})
    assert plan_session(conf, dict(conf)).session_conf == {}


def test_sql_and_delta_settings_that_differ_are_set_on_the_job_session() -> None:
    plan = plan_session(
        {"spark.sql.shuffle.partitions": "2"},
        {"spark.sql.shuffle.partitions": "8", "spark.databricks.delta.snapshotPartitions": "1"},
    )
    assert plan.session_conf == {
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.shuffle.partitions": "8",
    }
    assert plan.differences == ()


def test_jvm_settings_unset_session_settings_and_secrets_need_a_new_jvm() -> None:
    # given a driver started with one set of settings
    driver = fingerprint_conf(
        {
            "spark.driver.memory": "1g",
            "spark.sql.adaptive.enabled": "false",
            "spark.hadoop.fs.s3a.secret.key": "old",
        }
    )
    # when a job differs in memory, lacks a session setting and has another secret
    plan = plan_session(
        driver,
        fingerprint_conf({"spark.driver.memory": "4g", "spark.hadoop.fs.s3a.secret.key": "new"}),
    )
    # then each is a difference: only its own spark-submit can take them
    assert plan.differences == (
        "spark.driver.memory",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.sql.adaptive.enabled",
    )
    assert plan.session_conf == {}
    assert "old" not in json.dumps(driver)  # the record keeps hashes of secrets only


def test_the_environment_fingerprint_keeps_what_jobs_read_as_hashes() -> None:
    env = {**ENV, JOB_ID_ENV: "j1", "AWS_PROFILE": "prod", "HOME": "/root"}
    fingerprint = fingerprint_env(env)
    assert sorted(fingerprint) == ["AWS_PROFILE", "FEAST_SPARK_CASSANDRA_PASSWORD", "SPARK_HOME"]
    assert all(value.startswith("sha256:") for value in fingerprint.values())
    assert "pw" not in json.dumps(fingerprint)


def test_a_damaged_driver_record_means_no_driver(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    record_driver(store, tmp_path / "s.sock")
    assert read_driver(store) is not None
    (tmp_path / "jobs" / "_warm_driver" / "current.json").write_text('{"job_id": ')
    assert read_driver(store) is None


# --- routing -----------------------------------------------------------------------------------


def test_a_job_goes_to_a_driver_that_answers(tmp_path: Path, fake_driver: FakeDriver) -> None:
    # given a recorded driver that answers, started with the same settings and environment
    store = JobStore(str(tmp_path / "jobs"))
    driver = record_driver(store, fake_driver.path)
    # when an ingest is launched with another shuffle setting and sized settings
    command = route(store, TARGET, job(**{"spark.sql.shuffle.partitions": "8"}), SETTINGS,
                    "ingest", ENV)  # fmt: skip
    # then the supervisor runs the client, which asks for the session settings (the JVM option
    # sized for a fresh JVM is not one of them)
    session = {
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.shuffle.partitions": "8",
    }
    assert command == client_command(driver, "j1", "ingest", "/repo/jobs/ingest.py", SPEC_ARGS,
                                     session)  # fmt: skip
    assert fake_driver.received == [{"op": "check", "session_conf": session}]


def test_jobs_run_in_their_own_spark_submit_unless_every_condition_holds(
    tmp_path: Path, fake_driver: FakeDriver
) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    assert route(store, TARGET, job(), SETTINGS, "ingest", ENV) is None  # none recorded
    record_driver(store, fake_driver.path)
    assert route(store, TARGET, job(), SETTINGS, "ingest", ENV) is not None
    # a stream runs for ever; a custom job file is not a spec job
    assert route(store, TARGET, job(), SETTINGS, "stream_ingestion", ENV) is None
    assert route(store, TARGET, job(), SETTINGS, "custom", ENV) is None
    # a cluster keeps a driver per job
    cluster = SparkTarget("standalone", "spark://h:7077", "client", "/spark/bin/spark-submit")
    assert route(store, cluster, job(), SETTINGS, "ingest", ENV) is None
    # a JVM setting of the job's own
    assert route(store, TARGET, job(**{"spark.driver.memory": "4g"}), SETTINGS, "ingest",
                 ENV) is None  # fmt: skip
    # another password in the environment
    other_env = {**ENV, "FEAST_SPARK_CASSANDRA_PASSWORD": "other"}
    assert route(store, TARGET, job(), SETTINGS, "ingest", other_env) is None
    # other code (the feast_spark zip is named after its content)
    new_code = SparkSettings(**{**vars(SETTINGS), "py_files": ("/cache/feast_spark-def.zip",)})
    assert route(store, TARGET, job(), new_code, "ingest", ENV) is None


def test_a_driver_that_is_gone_or_refuses_keeps_the_job_out(
    tmp_path: Path, driver_socket: Path
) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    record_driver(store, driver_socket)
    assert route(store, TARGET, job(), SETTINGS, "ingest", ENV) is None  # nobody listens
    refusing = FakeDriver(driver_socket, check={"ok": False, "reason": "static settings x"})
    try:
        assert route(store, TARGET, job(), SETTINGS, "ingest", ENV) is None
    finally:
        refusing.close()


# --- the client --------------------------------------------------------------------------------


def start_client(socket_path: Path) -> subprocess.Popen[str]:
    driver = WarmDriver("warm-driver-1", str(socket_path), {}, {})
    command = client_command(driver, "j1", "ingest", "/repo/jobs/ingest.py", SPEC_ARGS, {})
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )


def test_the_client_relays_the_job_output_and_exit_status(fake_driver: FakeDriver) -> None:
    fake_driver.logs = ["line 1\n", "line 2\n"]
    fake_driver.exit = 3
    client = start_client(fake_driver.path)
    output, _ = client.communicate(timeout=30)
    assert client.returncode == 3
    assert "line 1\nline 2\n" in output
    assert fake_driver.received[0] == {
        "op": "run", "job_id": "j1", "job_type": "ingest", "job_file": "/repo/jobs/ingest.py",
        "args": list(SPEC_ARGS), "session_conf": {},
    }  # fmt: skip


def test_a_driver_that_hangs_up_fails_the_job_saying_so(fake_driver: FakeDriver) -> None:
    fake_driver.exit = None  # killed mid-job
    client = start_client(fake_driver.path)
    output, _ = client.communicate(timeout=30)
    assert client.returncode == 1
    assert "warm driver warm-driver-1 ended while the job ran" in output


def test_no_driver_listening_fails_the_job_saying_so(driver_socket: Path) -> None:
    client = start_client(driver_socket)
    output, _ = client.communicate(timeout=30)
    assert client.returncode == 1
    assert f"the warm driver warm-driver-1 at {driver_socket} does not answer" in output


def test_a_cancelled_client_asks_the_driver_to_cancel(fake_driver: FakeDriver) -> None:
    # given a job that runs until it is cancelled
    fake_driver.wait_for_cancel = True
    fake_driver.exit = 1
    client = start_client(fake_driver.path)
    deadline = time.monotonic() + 30
    while not fake_driver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the client is reading the job's output
    # when the supervisor stops it (a cancel)
    client.send_signal(signal.SIGTERM)
    output, _ = client.communicate(timeout=30)
    # then the driver was asked to cancel, and the job's end is the driver's answer
    assert fake_driver.received[-1] == {"op": "cancel"}
    assert client.returncode == 1
    assert "cancel requested" in output


def test_the_client_runs_without_pyspark() -> None:
    code = "import sys, feast_spark.launcher.warm_client; print('pyspark' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)  # fmt: skip
    assert result.stdout.strip() == "False"
