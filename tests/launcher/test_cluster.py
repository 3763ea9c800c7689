"""Jobs on a real Spark standalone cluster (loopback), in cluster and client deploy mode.

Slow (a JVM per driver and executor): marked ``slow``. The cluster comes from conftest.py.
The Delta jars come the way a user gets them: ``FEAST_SPARK_JARS_DIR`` or ``.jars/`` when there,
else the jar cache (run it both ways).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from feast_spark.config import load_config
from feast_spark.definitions import Entity, Feature, FeatureTable, FileSource
from feast_spark.launcher import Job, JobState, Launcher, Progress
from feast_spark.launcher.records import JobRecord
from feast_spark.spark_conf import jars_conf
from feast_spark.specs import JobSpec, Window, new_job_id
from feast_spark.statistics import read_statistics

from .conftest import StandaloneCluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JOBS = Path(__file__).resolve().parent / "jobs"
SMOKE = ROOT / "jobs" / "smoke.py"


@pytest.fixture(scope="module")
def config_path(
    standalone_cluster: StandaloneCluster, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A feature_store.yaml for the test cluster, in cluster deploy mode."""
    folder = tmp_path_factory.mktemp("repo")
    config = {
        "project": "demo",
        "registry": str(folder / "registry.json"),
        "offline_store": {"path": str(folder / "offline")},
        "online_store": {"type": "cassandra", "hosts": ["127.0.0.1"]},
        "spark": {
            "master": standalone_cluster.master_url,
            "conf": {
                "spark.master.rest.port": standalone_cluster.rest_port,
                "spark.master.ui.port": standalone_cluster.master_ui_port,
                "spark.driver.host": "127.0.0.1",
                "spark.driver.memory": "450m",
                "spark.executor.memory": "512m",
                "spark.cores.max": 1,
                "spark.sql.shuffle.partitions": 2,
                "spark.databricks.delta.snapshotPartitions": 2,
            },
        },
        "launcher": {
            "type": "standalone",
            "deploy_mode": "cluster",
            "job_store": str(folder / "jobs"),
        },
    }
    path = folder / "feature_store.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def cluster_launcher(config_path: Path) -> Launcher:
    return Launcher.from_config(load_config(config_path))


@pytest.fixture(scope="module")
def client_launcher(cluster_launcher: Launcher) -> Launcher:
    """The same cluster and job store, driver in a spark-submit process here."""
    return Launcher(
        replace(cluster_launcher.target, deploy_mode="client"),
        cluster_launcher.store,
        spark_conf=cluster_launcher.spark_conf,
    )


def driver_processes(cluster: StandaloneCluster, driver_id: str) -> list[int]:
    """Processes whose working directory is the driver's folder on the worker."""
    folder = (cluster.work_dir / driver_id).resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry / "cwd").resolve() == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def rest_driver_state(cluster: StandaloneCluster, driver_id: str) -> str:
    import urllib.request

    url = f"http://127.0.0.1:{cluster.rest_port}/v1/submissions/status/{driver_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(json.loads(response.read())["driverState"])


def follow(job: Job, timeout: float = 600) -> tuple[JobState, list[Progress]]:
    seen: list[Progress] = []

    def collect(_record: JobRecord, progress: Progress | None) -> None:
        if progress is not None:
            seen.append(progress)

    return job.wait(timeout, poll_interval=1.0, on_progress=collect), seen


def explain(job: Job) -> str:
    return f"{job.record.to_dict()}\n--- log ---\n{job.logs()[-4000:]}"


def test_cluster_mode_smoke_job_succeeds_and_writes_delta(
    cluster_launcher: Launcher, standalone_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    # given the smoke job, submitted through the master's REST server
    table = tmp_path / "smoke"
    job = cluster_launcher.submit_file(SMOKE, job_type="smoke", app_args=[str(table)])
    assert job.record.submission_id is not None
    assert job.record.submission_id.startswith("driver-")

    # when it is followed to its end
    state, _ = follow(job)

    # then it SUCCEEDED, its Delta table has both versions, and the master says FINISHED
    assert state is JobState.SUCCEEDED, explain(job)
    assert (table / "_delta_log" / "00000000000000000001.json").is_file()
    assert rest_driver_state(standalone_cluster, job.record.submission_id) == "FINISHED"
    assert '"ok": true' in job.logs()
    # and the driver got the Delta jars as local files (never Ivy's --packages, which fails on
    # the executors in this mode), from FEAST_SPARK_JARS_DIR when set, else the jar cache
    properties = json.loads(job.record.command[2])["sparkProperties"]
    assert "spark.jars.packages" not in properties
    assert properties["spark.jars"] == jars_conf()["spark.jars"]
    assert all(Path(jar).is_file() for jar in properties["spark.jars"].split(","))


def test_client_mode_job_succeeds_with_progress(client_launcher: Launcher) -> None:
    # given a job of slow tasks, its driver in a spark-submit process here
    result = client_launcher.store.path("client-ok", "result.json")
    job = client_launcher.submit_file(
        JOBS / "sleep_job.py", job_id="client-ok", job_type="sleep",
        app_args=["16", "--result", result], result_path=result,
    )  # fmt: skip

    # when it is followed
    state, progress = follow(job)

    # then it SUCCEEDED with its result, ran as a cluster application, and progress was seen
    assert state is JobState.SUCCEEDED, explain(job)
    assert job.result()["rows_written"] == 4
    assert job.record.app_id is not None and job.record.app_id.startswith("app-"), explain(job)
    assert job.record.ui_url is not None
    assert progress, "no progress from the driver UI"
    assert max(p.tasks_total for p in progress) == 2


def test_an_ingest_on_the_cluster_records_statistics_from_its_executors(
    client_launcher: Launcher, tmp_path: Path
) -> None:
    # given a parquet source of 500 rows and an ingest spec (client mode: the executors are the
    # worker's JVMs, which load feast-spark's own jar from spark.jars)
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = datetime(2024, 1, 1, tzinfo=UTC)
    source = tmp_path / "trips.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": list(range(500)),
                "ts": [start + timedelta(minutes=i) for i in range(500)],
                "trips": [None if i % 10 == 0 else i for i in range(500)],
            }
        ),
        source,
    )
    table = FeatureTable(
        "trips",
        ("driver_id",),
        (Feature("trips", "INT64"),),
        FileSource(path=str(source), file_format="parquet", event_timestamp_column="ts"),
    )
    spec = JobSpec(
        new_job_id("ingest", "trips"), "ingest", "demo", (Entity("driver_id", "INT64"),),
        (table,), str(tmp_path / "offline"), Window(start, start + timedelta(days=1)),
    )  # fmt: skip

    # when it runs to its end
    state, _ = follow(client_launcher.submit(spec))

    # then the statistics of its version were fed on the executors: every row, every value
    assert state is JobState.SUCCEEDED
    (record,) = read_statistics(spec.offline_table_path("trips"), versions=1)
    trips = record.feature("trips")
    assert record.rows == 500 and trips is not None
    assert (trips.count, trips.nulls, trips.min, trips.max) == (450, 50, 1, 499)


def test_cluster_mode_cancel_kills_the_driver(
    cluster_launcher: Launcher, standalone_cluster: StandaloneCluster
) -> None:
    # given a long job whose driver runs on the worker
    job = cluster_launcher.submit_file(JOBS / "sleep_job.py", job_type="sleep", app_args=["600"])
    driver_id = job.record.submission_id or ""
    deadline = time.monotonic() + 300
    while job.status() is not JobState.RUNNING or not driver_processes(
        standalone_cluster, driver_id
    ):
        assert time.monotonic() < deadline, explain(job)
        time.sleep(1)

    # and its progress comes from the driver's UI, found through the worker's copy of its log
    deadline = time.monotonic() + 180
    while job.progress() is None:
        assert time.monotonic() < deadline, explain(job)
        time.sleep(2)
        job.refresh()
    assert job.record.ui_url is not None and job.record.ui_url.startswith("http://127.0.0.1:")
    assert job.record.app_id is not None and job.record.app_id.startswith("app-")
    assert job.record.log_path == (
        f"{standalone_cluster.worker_ui}/logPage/?driverId={driver_id}&logType=stdout"
    )

    # when it is cancelled
    state = job.cancel(timeout=120)

    # then it is CANCELLED, the master says KILLED, and no process of the driver is left
    assert state is JobState.CANCELLED, explain(job)
    assert rest_driver_state(standalone_cluster, driver_id) == "KILLED"
    deadline = time.monotonic() + 60
    while driver_processes(standalone_cluster, driver_id):
        assert time.monotonic() < deadline, "driver processes still running"
        time.sleep(1)


def test_client_mode_cancel_stops_the_process(client_launcher: Launcher) -> None:
    from feast_spark.launcher import processes

    job = client_launcher.submit_file(JOBS / "sleep_job.py", job_type="sleep", app_args=["600"])
    deadline = time.monotonic() + 300
    while job.record.ui_url is None or job.status() is not JobState.RUNNING:
        assert time.monotonic() < deadline, explain(job)
        time.sleep(1)
        job.refresh()
    process = client_launcher.store.read_json(job.id, "process.json") or {}

    assert job.cancel(timeout=120) is JobState.CANCELLED, explain(job)
    assert processes.group_members(process["child_pid"]) == []
    assert not processes.is_alive(process["pid"], process["pid_start"])


@pytest.mark.parametrize("mode", ["cluster", "client"])
def test_a_failing_job_is_failed_with_its_own_error(
    mode: str, cluster_launcher: Launcher, client_launcher: Launcher
) -> None:
    launcher = cluster_launcher if mode == "cluster" else client_launcher
    job = launcher.submit_file(JOBS / "fail_job.py", job_type="fail")

    state, _ = follow(job)

    assert state is JobState.FAILED, explain(job)
    assert job.record.error == (
        "ValueError: no rows for table driver_stats in [2024-01-01, 2024-01-02) (saw 10 others)"
    ), explain(job)


def test_local_master_job_succeeds(tmp_path: Path) -> None:
    # given the launcher of a local master (the default of feature_store.yaml)
    from feast_spark.launcher import JobStore
    from feast_spark.launcher.submit import SparkTarget

    launcher = Launcher(
        SparkTarget("local", "local[1]", "client"),
        JobStore(str(tmp_path / "jobs")),
        spark_conf={"spark.ui.port": "0", "spark.sql.shuffle.partitions": "1"},
    )
    table = tmp_path / "smoke"

    # when the smoke job runs through it
    job = launcher.submit_file(SMOKE, job_type="smoke", app_args=[str(table)])
    state, _ = follow(job)

    # then it succeeds in a local[1] Spark with the Delta jars and the defaults file
    assert state is JobState.SUCCEEDED, explain(job)
    assert '"master": "local[1]"' in job.logs()
    assert '"time_zone": "UTC"' in job.logs()
    assert (table / "_delta_log" / "00000000000000000001.json").is_file()


def test_a_fresh_process_lists_every_job(cluster_launcher: Launcher, config_path: Path) -> None:
    # when `feast-spark jobs list` runs in a new interpreter
    done = subprocess.run(
        [sys.executable, "-m", "feast_spark.cli", "jobs", "list",
         "--config", str(config_path), "--output", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    # then it shows the jobs of the tests above, each in its final state
    assert done.returncode == 0, done.stderr
    listed = {job["job_id"]: job for job in json.loads(done.stdout)}
    states = sorted(job["state"] for job in listed.values())
    assert states == sorted(
        ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "CANCELLED", "CANCELLED", "FAILED", "FAILED"]
    ), listed
    modes = {(job["job_type"], job["deploy_mode"], job["state"]) for job in listed.values()}
    assert ("smoke", "cluster", "SUCCEEDED") in modes
    assert ("ingest", "client", "SUCCEEDED") in modes
    assert ("fail", "client", "FAILED") in modes

    # and the human table too
    table = subprocess.run(
        [sys.executable, "-m", "feast_spark.cli", "jobs", "list", "--config", str(config_path),
         "--state", "failed"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "TYPE",
        "STATE",
        "TABLES",
        "WINDOW",
        "SUBMITTED",
        "DURATION",
        "TARGET",
    ]
    assert len(lines) == 3
