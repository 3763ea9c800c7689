"""Which local jobs go to a warm driver, and the client that hands one to it.

The driver here is a stand-in speaking :mod:`feast_spark.warm_protocol` from a thread (the real
one, on Spark: ``tests/jobs/test_warm_driver.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
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
    env_names,
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
SPEC = '{"options": {"online_store": {"type": "cassandra", "password_env": "CASS_PW"}}}'
COLD = ["/spark/bin/spark-submit", "--master", "local[2]", "/repo/jobs/ingest.py", *SPEC_ARGS]


class FakeDriver:
    """Answers pings and checks; a run gets ``logs`` then ``exit`` (None: hang up instead)."""

    def __init__(self, path: Path, *, check: dict[str, Any] | None = None) -> None:
        self.path = path
        self.check = check or {"ok": True}
        self.logs = ["working\n"]
        self.exit: int | None = 0
        self.wait_for_cancel = False
        self.refuse: str | None = None
        self.received: list[dict[str, Any]] = []
        warm_protocol.private_folder(path.parent)
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
                    if self.refuse:
                        warm_protocol.send(connection, {"refused": self.refuse})
                        continue
                    warm_protocol.send(connection, {"started": True})
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


def record_driver(store: JobStore, socket_path: Path, **changes: str) -> WarmDriver:
    launch = JobLaunch("warm-driver-1", "/repo/jobs/warm_driver.py", ("--socket", "x"))
    driver = WarmDriver(
        "warm-driver-1",
        str(socket_path),
        host=changes.get("host", socket.gethostname()),
        cwd=changes.get("cwd", os.getcwd()),
        conf=comparable_conf(TARGET, launch, SETTINGS),
        env=fingerprint_env(ENV),
    )
    write_driver(store, driver)
    return driver


def routed(store: JobStore, launch: JobLaunch | None = None, **changes: Any) -> list[str] | None:
    """``route`` of an ingest (or ``launch``) with the test's settings, as changed."""
    return route(
        store,
        changes.get("target", TARGET),
        launch or job(),
        changes.get("settings", SETTINGS),
        changes.get("job_type", "ingest"),
        changes.get("env", ENV),
        spec_text=changes.get("spec_text", SPEC),
        fallback=COLD,
    )


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


def test_a_job_goes_to_a_driver_that_answers(
    tmp_path: Path, fake_driver: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a recorded driver that answers, started with the same settings and environment
    store = JobStore(str(tmp_path / "jobs"))
    driver = record_driver(store, fake_driver.path)
    monkeypatch.setenv("CASS_PW", "secret")
    env = {**ENV, "CASS_PW": "secret"}
    # when an ingest is launched with another shuffle setting and sized settings
    command = routed(store, job(**{"spark.sql.shuffle.partitions": "8"}), env=env)
    # then the supervisor runs the client, with the job's own command to fall back on; the
    # driver was asked about the session settings (not the JVM option sized for a fresh JVM)
    # and the variable the spec names
    session = {
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.shuffle.partitions": "8",
    }
    assert command == client_command(
        driver, job(**{"spark.sql.shuffle.partitions": "8"}), "ingest", session,
        env_names=("CASS_PW",), fallback=COLD,
    )  # fmt: skip
    assert fake_driver.received == [
        {"op": "check", "session_conf": session, "env": {"CASS_PW": "secret"}}
    ]


def test_jobs_run_in_their_own_spark_submit_unless_every_condition_holds(
    tmp_path: Path, fake_driver: FakeDriver
) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    assert routed(store) is None  # none recorded
    record_driver(store, fake_driver.path)
    assert routed(store) is not None
    # a stream runs for ever; a custom job file is not a spec job
    assert routed(store, job_type="stream_ingestion") is None
    assert routed(store, job_type="custom") is None
    # a cluster keeps a driver per job
    cluster = SparkTarget("standalone", "spark://h:7077", "client", "/spark/bin/spark-submit")
    assert routed(store, target=cluster) is None
    # a JVM setting of the job's own
    assert routed(store, job(**{"spark.driver.memory": "4g"})) is None
    # another password in the environment
    assert routed(store, env={**ENV, "FEAST_SPARK_CASSANDRA_PASSWORD": "other"}) is None
    # other code (the feast_spark zip is named after its content)
    new_code = SparkSettings(**{**vars(SETTINGS), "py_files": ("/cache/feast_spark-def.zip",)})
    assert routed(store, settings=new_code) is None


def test_a_driver_of_another_folder_or_machine_is_not_used(
    tmp_path: Path, fake_driver: FakeDriver
) -> None:
    # a relative path of the spec (--entities rows.parquet) would be read from its folder
    store = JobStore(str(tmp_path / "jobs"))
    record_driver(store, fake_driver.path, cwd=str(tmp_path))
    assert routed(store) is None
    record_driver(store, fake_driver.path, host="elsewhere")
    assert routed(store) is None
    assert fake_driver.received == []


def test_a_driver_that_is_gone_or_refuses_or_is_not_private_keeps_the_job_out(
    tmp_path: Path, driver_socket: Path
) -> None:
    store = JobStore(str(tmp_path / "jobs"))
    record_driver(store, driver_socket)
    assert routed(store) is None  # nobody listens
    refusing = FakeDriver(driver_socket, check={"ok": False, "reason": "environment CASS_PW"})
    try:
        assert routed(store) is None
        # a socket folder others may enter: someone else could answer in the driver's place
        driver_socket.parent.chmod(0o755)
        refusing.check = {"ok": True}
        assert routed(store) is None
        assert len(refusing.received) == 1  # the not-private folder was never asked
    finally:
        driver_socket.parent.chmod(0o700)
        refusing.close()


def test_the_variables_a_spec_names_are_found_wherever_they_are() -> None:
    spec = {"options": {"online_store": {"username_env": "U", "password_env": "P"}},
            "tables": [{"x_env": "X", "name": "t"}], "other_env": 5}  # fmt: skip
    assert env_names(json.dumps(spec)) == ("P", "U", "X")
    assert env_names(None) == ()


# --- the client --------------------------------------------------------------------------------


def start_client(socket_path: Path, fallback: list[str] | None = None) -> subprocess.Popen[str]:
    driver = WarmDriver("warm-driver-1", str(socket_path), "h", "/p", {}, {})
    command = client_command(driver, job(), "ingest", {}, fallback=fallback or [])
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
        "args": list(SPEC_ARGS), "session_conf": {}, "env": {},
    }  # fmt: skip


def test_a_driver_that_hangs_up_fails_the_job_saying_so(fake_driver: FakeDriver) -> None:
    fake_driver.exit = None  # killed mid-job
    client = start_client(fake_driver.path)
    output, _ = client.communicate(timeout=30)
    assert client.returncode == 1
    assert "warm driver warm-driver-1 ended while the job ran" in output


def test_a_job_the_driver_does_not_take_runs_its_own_spark_submit(
    driver_socket: Path, fake_driver: FakeDriver
) -> None:
    cold = [sys.executable, "-c", "print('cold run'); raise SystemExit(4)"]
    # given a driver that refuses the job (it is stopping)
    fake_driver.refuse = "the driver is stopping"
    client = start_client(driver_socket, cold)
    output, _ = client.communicate(timeout=30)
    # then the client became the job's own command: its output and exit status
    assert client.returncode == 4
    assert "did not take the job: the driver is stopping; running the job in its own" in output
    assert "cold run" in output
    # and so when nobody listens any more
    fake_driver.close()
    client = start_client(driver_socket, cold)
    output, _ = client.communicate(timeout=30)
    assert client.returncode == 4 and "does not answer" in output and "cold run" in output


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


# --- progress of a job in a warm driver ----------------------------------------------------------


def test_a_warm_job_shows_the_progress_of_its_own_spark_jobs_only() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from feast_spark.launcher import logparse
    from feast_spark.launcher.progress import fetch_progress

    jobs = [  # the driver's application runs every job of the project, each in its job group
        {"jobGroup": "j1", "status": "RUNNING", "stageIds": [1, 2], "numTasks": 10,
         "numCompletedTasks": 4, "numCompletedStages": 1, "numActiveTasks": 2},
        {"jobGroup": "j0", "status": "SUCCEEDED", "stageIds": [0], "numTasks": 7,
         "numCompletedTasks": 7, "numCompletedStages": 1},
    ]  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(jobs).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ui = f"http://127.0.0.1:{server.server_address[1]}"
        # given the line the client writes into the job's log
        log = f"feast-spark: running in ...\nfeast-spark: the warm driver's Spark UI is at {ui}\n"
        assert logparse.ui_url(log) == ui
        # then the job's progress counts its own group's Spark jobs
        progress = fetch_progress(ui, "app-1", job_group="j1")
        assert progress is not None
        assert (progress.jobs_total, progress.tasks_done, progress.tasks_total) == (1, 4, 10)
        everything = fetch_progress(ui, "app-1")
        assert everything is not None and everything.tasks_total == 17
    finally:
        server.shutdown()
        server.server_close()
