"""A real warm driver (``feast-spark driver start``) running a project's jobs on local Spark.

One driver serves the module's tests, in order: jobs run in it and give what a cold run gives;
a cancelled job ends CANCELLED with nothing committed while the driver serves on; a driver killed
mid-job fails that job, saying so, and the next job runs in its own spark-submit. Slow (a driver
JVM, cold jobs to compare with): marked ``slow``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feast_spark import warm_protocol
from feast_spark.cli import cli
from feast_spark.client import Client
from feast_spark.config import load_config
from feast_spark.launcher import JobState, Launcher
from feast_spark.warm_drivers import driver_status, stop_driver

from ..cli.small_project import write_project

pytestmark = pytest.mark.slow

TABLE = "driver_warm"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
BIG_ROWS = 3_000_000  # an ingest that takes seconds even in a warm driver


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--config", str(project)])
    return result.exit_code, result.stdout + result.stderr


def write_rows(path: Path, drivers: int, hours: int) -> None:
    """One row per driver and hour from T0; ``trips`` is driver_id * 1000 + hour."""
    pairs = [(d, h) for h in range(hours) for d in range(1, drivers + 1)]
    pq.write_table(
        pa.table({
            "driver_id": pa.array([d for d, _ in pairs], pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=h) for _, h in pairs], pa.timestamp("us", "UTC")),
            "trips": pa.array([d * 1000 + h for d, h in pairs], pa.int64()),
        }),
        path,
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = write_project(tmp_path_factory.mktemp("warm"), TABLE)
    write_rows(folder / "rows.parquet", drivers=50, hours=24)
    entity_times = [T0 + timedelta(hours=5, minutes=30)] * 3
    pq.write_table(
        pa.table({"driver_id": pa.array([1, 7, 99], pa.int64()),
                  "event_timestamp": pa.array(entity_times, pa.timestamp("us", "UTC"))}),
        folder / "entities.parquet",
    )  # fmt: skip
    big = pa.table({
        "driver_id": pa.array(range(BIG_ROWS), pa.int64()),
        "ts": pa.array([T0 + timedelta(days=30)] * BIG_ROWS, pa.timestamp("us", "UTC")),
        "trips": pa.array(range(BIG_ROWS), pa.int64()),
    })  # fmt: skip
    pq.write_table(big, folder / "big.parquet")
    code, out = run(folder, "apply", "-f", str(folder / "definitions.yaml"))
    assert code == 0, out
    # two starts at once (a careless user, two scheduled tasks): one driver serves
    starts = [
        subprocess.Popen([sys.executable, "-m", "feast_spark.cli", "driver", "start",
                          "--config", str(folder)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = sorted(start.communicate(timeout=600)[0] for start in starts)
    assert [start.returncode for start in starts] == [0, 0], outputs
    assert "is already running" in outputs[0] and "serves" in outputs[1], outputs
    drivers = launcher_of(folder).list(job_type="warm_driver", state=JobState.RUNNING)
    assert len(drivers) == 1
    yield folder
    # a damaged record does not hide a running driver from 'driver stop'
    launcher = launcher_of(folder)
    running = launcher.list(job_type="warm_driver", state=JobState.RUNNING)
    (folder / "jobs" / "_warm_driver" / "current.json").write_text('{"job_id": ')
    assert sorted(stop_driver(launcher)) == sorted(r.job_id for r in running)
    for record in running:  # nothing of a driver is left: no process, no socket file
        socket_file = warm_protocol.socket_path(record.job_id)
        assert subprocess.run(["pgrep", "-f", str(socket_file)], check=False).returncode == 1
        assert not socket_file.exists()


def launcher_of(project: Path) -> Launcher:
    return Launcher.from_config(load_config(project / "feature_store.yaml"))


def last_job(project: Path, job_type: str) -> tuple[str, str]:
    [record, *_] = launcher_of(project).store.list(job_type=job_type)
    return record.job_id, " ".join(record.command or ())


def test_jobs_run_in_the_warm_driver_and_give_what_a_cold_run_gives(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # when a project's ingest, materialize and training set run while its driver serves
    code, out = run(project, "ingest", TABLE, "--source", str(project / "rows.parquet"))
    assert code == 0 and "rows_written=1200" in out, out
    assert "warm_client" in last_job(project, "ingest")[1]
    code, out = run(project, "materialize", TABLE, "--start", "2024-03-01", "--end", "2024-03-02")
    assert code == 0 and "rows_written=50" in out, out
    assert "warm_client" in last_job(project, "materialize")[1]
    features = ["--features", f"{TABLE}:trips", "--entities", str(project / "entities.parquet")]
    code, out = run(project, "get-historical-features", *features,
                    "--output-path", str(project / "warm-set"))  # fmt: skip
    assert code == 0, out
    job_id, command = last_job(project, "historical_retrieval")
    assert "warm_client" in command

    # then they did the work: online values are the latest rows, the log has the job's record
    client = Client(project / "feature_store.yaml")
    try:
        online = client.get_online_features([f"{TABLE}:trips"], [{"driver_id": 7}]).to_dict()
    finally:
        client.close()
    assert online[f"{TABLE}:trips"] == [7023]
    log = launcher_of(project).get(job_id).logs()
    assert "running in the warm driver" in log and '"status": "SUCCEEDED"' in log

    # and the same training set asked from the project's folder with a relative path runs in
    # its own spark-submit (the driver would read the path from its own folder) and is equal
    monkeypatch.chdir(project)
    code, out = run(project, "get-historical-features", "--features", f"{TABLE}:trips",
                    "--entities", "entities.parquet", "--output-path", "cold-set")  # fmt: skip
    assert code == 0 and "rows_read=3" in out, out
    assert "warm_client" not in last_job(project, "historical_retrieval")[1]
    warm = pq.read_table(project / "warm-set").sort_by("driver_id")
    cold = pq.read_table(project / "cold-set").sort_by("driver_id")
    assert warm.equals(cold)
    assert warm.column(f"{TABLE}__trips").to_pylist() == [1005, 7005, None]
    status = driver_status(launcher_of(project))
    assert status is not None and status.answering and status.jobs_run == 3
    # the driver's own log keeps Spark's warnings, not the INFO lines of every job it runs
    driver_log = launcher_of(project).get(status.job_id).logs()
    serving = driver_log.split("warm driver ready on", 1)[1]
    assert " INFO " not in serving, serving[:2000]


def test_the_driver_refuses_a_job_whose_named_variables_differ(project: Path) -> None:
    # the launcher sends the variables a spec names (online store credentials); the driver
    # compares them with the environment its Python workers have
    status = driver_status(launcher_of(project))
    assert status is not None
    ask = {"op": "check", "session_conf": {"spark.sql.shuffle.partitions": "3"}}
    unset = "FEAST_SPARK_TEST_UNSET_VARIABLE"
    assert warm_protocol.ask(status.socket, {**ask, "env": {unset: None}}) == {"ok": True}
    answer = warm_protocol.ask(status.socket, {**ask, "env": {unset: "x"}})
    assert answer == {"ok": False, "reason": f"environment {unset} differs"}
    static = {"op": "check", "session_conf": {"spark.sql.extensions": "x"}}
    assert warm_protocol.ask(status.socket, static)["ok"] is False


def start_big_ingest(project: Path) -> str:
    code, out = run(project, "ingest", TABLE, "--source", str(project / "big.parquet"),
                    "--no-wait")  # fmt: skip
    assert code == 0, out
    job = launcher_of(project).get(out.split()[-1])
    deadline = time.monotonic() + 60
    while "running in the warm driver" not in job.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "running in the warm driver" in job.logs()
    time.sleep(1.0)  # into its Spark work
    return job.id


def table_versions(project: Path) -> int:
    return len(list((project / "offline" / "demo" / TABLE / "_delta_log").glob("*.json")))


def test_a_cancelled_job_commits_nothing_and_the_driver_serves_on(project: Path) -> None:
    # given a long ingest running in the driver
    versions = table_versions(project)
    job_id = start_big_ingest(project)
    # when it is cancelled
    code, out = run(project, "jobs", "cancel", job_id)
    # then it ends CANCELLED without a commit, and the driver runs the next job
    assert code == 0 and "CANCELLED" in out, out
    assert table_versions(project) == versions
    code, out = run(project, "ingest", TABLE, "--source", str(project / "rows.parquet"))
    assert code == 0 and "rows_written=0" in out, out  # all present already
    assert "warm_client" in last_job(project, "ingest")[1]


def test_a_killed_driver_fails_its_job_later_jobs_run_cold_and_a_new_start_serves(
    project: Path,
) -> None:
    # given a long ingest running in the driver
    launcher = launcher_of(project)
    status = driver_status(launcher)
    assert status is not None and status.pid is not None
    job_id = start_big_ingest(project)
    # when the driver is killed
    os.kill(status.pid, signal.SIGKILL)
    # then the job fails, its error says why
    job = launcher.get(job_id)
    assert job.wait(60) is JobState.FAILED
    assert "ended while the job ran" in (job.record.error or "")
    # and the driver says it does not answer; the next job runs in its own spark-submit
    after = driver_status(launcher)
    assert after is not None and not after.answering
    code, out = run(project, "driver", "status")
    assert code == 0 and "no (stopped, killed or starting)" in out, out
    code, out = run(project, "ingest", TABLE, "--source", str(project / "rows.parquet"))
    assert code == 0 and "rows_written=0" in out, out
    assert "warm_client" not in last_job(project, "ingest")[1]
    # and a new start replaces it, removing the socket file the killed one left
    assert Path(status.socket).exists()
    code, out = run(project, "driver", "start")
    assert code == 0 and "serves" in out, out
    assert not Path(status.socket).exists()
    code, out = run(project, "ingest", TABLE, "--source", str(project / "rows.parquet"))
    assert code == 0 and "warm_client" in last_job(project, "ingest")[1], out


def test_a_driver_stops_itself_after_its_idle_timeout(tmp_path: Path) -> None:
    # given a driver started to stop after 2 s without a job
    project = write_project(tmp_path, TABLE)
    code, out = run(project, "driver", "start", "--idle-timeout", "2s")
    assert code == 0 and "serves" in out, out
    launcher = launcher_of(project)
    status = driver_status(launcher)
    assert status is not None and status.answering
    # then it ends on its own, saying why, and no longer answers
    job = launcher.get(status.job_id)
    assert job.wait(120) is JobState.SUCCEEDED
    assert "no job for 2 s: the warm driver stops" in job.logs()
    after = driver_status(launcher)
    assert after is not None and not after.answering
    assert not Path(status.socket).exists()
