"""Local/client-mode jobs end to end with a stand-in spark-submit: no JVM, real processes.

The stand-in skips spark-submit's options and runs the job file with this Python, so the
supervisor, the job store, cancelling, the double-run refusal and a new process's view are
exercised in seconds. The same paths against a real Spark cluster are in test_cluster.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feast_spark.errors import JobFailedError
from feast_spark.launcher import (
    Job,
    JobConflictError,
    JobState,
    JobStore,
    JobStoreError,
    JobTimeoutError,
    Launcher,
    SubmitError,
    processes,
)
from feast_spark.launcher import local as local_target
from feast_spark.launcher.submit import SparkSettings, SparkTarget
from feast_spark.specs import Window

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1, tzinfo=UTC)

FAKE_SPARK_SUBMIT = f"""\
#!{sys.executable}
# Stand-in for spark-submit: skip "--option value" pairs, then run the job file with its args.
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("--"):
    args = args[2:]
print("26/11/26 17:34:23 INFO Utils: Successfully started service 'SparkUI' on port 4999.", flush=True)
os.execv(sys.executable, [sys.executable, *args])
"""

JOBS = {
    "ok.py": """
        import json, sys
        from datetime import UTC, datetime
        from feast_spark.job_results import SUCCEEDED, JobResult, write_result
        now = datetime.now(UTC)
        write_result(sys.argv[1], JobResult("j", "materialize", SUCCEEDED, now, now, rows_written=5))
        print("done")
    """,
    "fail.py": """
        import sys
        print("working on", sys.argv[1:])
        raise ValueError("no rows for table driver_stats in [2024-01-01, 2024-01-02)")
    """,
    "sleep.py": """
        import sys, time
        print("sleeping", flush=True)
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120)
    """,
    "exit0_but_failed.py": """
        import sys
        from datetime import UTC, datetime
        from feast_spark.job_results import FAILED, JobResult, write_result
        now = datetime.now(UTC)
        write_result(sys.argv[1], JobResult("j", "ingest", FAILED, now, now, error="too many rejected rows: 40%"))
    """,
}


@pytest.fixture()
def jobs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "job_files"
    folder.mkdir()
    for name, body in JOBS.items():
        (folder / name).write_text(textwrap.dedent(body))
    return folder


@pytest.fixture()
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    fake = tmp_path / "spark" / "bin" / "spark-submit"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    launcher = Launcher(
        SparkTarget("local", "local[1]", "client", str(fake)),
        JobStore(str(tmp_path / "jobs")),
        settings=SparkSettings(python=sys.executable),
        grace_s=5.0,
    )
    yield launcher
    for record in launcher.store.list():  # leave no process behind
        if not record.state.is_final and not record.runs_elsewhere:
            launcher.get(record.job_id).cancel(timeout=30)


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_job_that_succeeds_carries_its_result(launcher: Launcher, jobs_dir: Path) -> None:
    # given a job that writes a SUCCEEDED result record
    result_path = launcher.store.path("ok-1", "result.json")
    job = launcher.submit_file(
        jobs_dir / "ok.py", job_id="ok-1", app_args=[result_path], result_path=result_path
    )

    # when it is waited for
    state = job.wait(60, poll_interval=0.2)

    # then it SUCCEEDED with the job's counts, exit code 0, times and the log
    assert state is JobState.SUCCEEDED
    assert job.result()["rows_written"] == 5
    record = job.record
    assert record.exit_code == 0
    assert record.started_at is not None and record.ended_at is not None
    assert record.command[0].endswith("spark-submit")
    assert record.ui_url is None or record.ui_url == "http://127.0.0.1:4999"
    assert "done" in job.logs()


def test_wait_returns_when_the_job_ends_not_at_the_next_poll(
    launcher: Launcher, jobs_dir: Path
) -> None:
    # given a job of half a second, waited for with a poll interval far longer than that
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="short-1", app_args=["0.5"])
    started = time.monotonic()

    # when it is waited for
    state = job.wait(120, poll_interval=60)

    # then the wait ends with the job, not a poll interval later
    assert state is JobState.SUCCEEDED, job.logs()
    assert time.monotonic() - started < 20


def test_another_process_also_sees_the_end_at_once(launcher: Launcher, jobs_dir: Path) -> None:
    # given a job this process did not start (its supervisor is not our child)
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="short-2", app_args=["0.5"])
    supervisor = local_target._CHILDREN.pop(job.id)
    started = time.monotonic()

    # when a fresh handle waits for it
    state = launcher.get(job.id).wait(120, poll_interval=60)

    # then it sees the end through the supervisor's pid
    assert state is JobState.SUCCEEDED
    assert time.monotonic() - started < 20
    supervisor.wait(10)  # reaped


def test_a_failing_job_carries_its_own_error(launcher: Launcher, jobs_dir: Path) -> None:
    job = launcher.submit_file(jobs_dir / "fail.py", job_id="fail-1", app_args=["x"])

    assert job.wait(60, poll_interval=0.2) is JobState.FAILED
    assert job.record.error == (
        "ValueError: no rows for table driver_stats in [2024-01-01, 2024-01-02)"
    )
    assert job.record.exit_code == 1
    with pytest.raises(JobFailedError, match="job 'fail-1' FAILED: ValueError: no rows") as caught:
        job.result()
    assert caught.value.state == "FAILED"


def test_exit_0_with_a_failed_result_record_is_failed(launcher: Launcher, jobs_dir: Path) -> None:
    result_path = launcher.store.path("half-1", "result.json")
    job = launcher.submit_file(
        jobs_dir / "exit0_but_failed.py", job_id="half-1", app_args=[result_path],
        result_path=result_path,
    )  # fmt: skip
    assert job.wait(60, poll_interval=0.2) is JobState.FAILED
    assert job.record.error == "too many rejected rows: 40%"


def test_cancel_stops_the_whole_process_group(launcher: Launcher, jobs_dir: Path) -> None:
    # given a long job that is running
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="sleep-1")
    wait_until(lambda: launcher.store.read_json("sleep-1", "process.json") is not None)
    process = launcher.store.read_json("sleep-1", "process.json") or {}
    assert job.status() is JobState.RUNNING

    # when it is cancelled
    state = job.cancel(timeout=30)

    # then it is CANCELLED, and neither the supervisor nor anything of spark-submit's group lives
    assert state is JobState.CANCELLED
    assert job.record.error is not None and job.record.error.startswith("cancelled on request")
    assert not processes.is_alive(process["pid"], process["pid_start"])
    assert processes.group_members(process["child_pid"]) == []
    # and cancelling again is harmless
    assert job.cancel() is JobState.CANCELLED


def test_wait_timeout_leaves_the_job_running(launcher: Launcher, jobs_dir: Path) -> None:
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="sleep-2")
    with pytest.raises(JobTimeoutError, match="job 'sleep-2' is still RUNNING after waiting 1s"):
        job.wait(1, poll_interval=0.2)
    assert job.status() is JobState.RUNNING


def test_a_killed_supervisor_is_seen_as_failed_once_the_driver_is_gone(
    launcher: Launcher, jobs_dir: Path
) -> None:
    # given a running job whose supervisor is killed with SIGKILL (no chance to record anything)
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="sleep-3", app_args=["3"])
    wait_until(lambda: launcher.store.read_json("sleep-3", "process.json") is not None)
    process = launcher.store.read_json("sleep-3", "process.json") or {}
    os.kill(process["pid"], signal.SIGKILL)

    # then while spark-submit's group lives on, the job is RUNNING; once it is gone, FAILED
    assert job.status() is JobState.RUNNING
    assert job.wait(30, poll_interval=0.2) is JobState.FAILED
    assert "ended without recording spark-submit's exit status" in (job.record.error or "")


def test_a_missing_spark_submit_fails_with_the_reason(tmp_path: Path, jobs_dir: Path) -> None:
    launcher = Launcher(
        SparkTarget("local", "local[1]", "client", str(tmp_path / "no" / "spark-submit")),
        JobStore(str(tmp_path / "jobs")),
        settings=SparkSettings(python=sys.executable),
    )
    job = launcher.submit_file(jobs_dir / "ok.py", job_id="nosubmit-1")
    assert job.wait(30, poll_interval=0.2) is JobState.FAILED
    assert "cannot start" in (job.record.error or "")
    assert job.record.exit_code == 127


def test_a_wrong_master_for_the_target_is_a_config_error(tmp_path: Path, jobs_dir: Path) -> None:
    from feast_spark.errors import ConfigError

    launcher = Launcher(
        SparkTarget("standalone", "local[2]", "client", "/x/spark-submit"),
        JobStore(str(tmp_path / "jobs")),
        settings=SparkSettings(python=sys.executable),
    )
    with pytest.raises(ConfigError, match="spark://host:7077"):
        launcher.submit_file(jobs_dir / "ok.py", job_id="x-1")


# --- double runs ---------------------------------------------------------------------------------


def test_an_overlapping_materialization_is_refused(launcher: Launcher, jobs_dir: Path) -> None:
    # given a running materialization of driver_stats over [day 0, day 2)
    first = launcher.submit_file(
        jobs_dir / "sleep.py", job_id="mat-1", job_type="materialize", project="demo",
        tables=["driver_stats"], window=Window(T0, T0 + timedelta(days=2)),
    )  # fmt: skip

    # when another one of the same table over [day 1, day 3) is submitted
    with pytest.raises(JobConflictError) as caught:
        launcher.submit_file(
            jobs_dir / "ok.py", job_id="mat-2", job_type="materialize", project="demo",
            tables=["driver_stats"], window=Window(T0 + timedelta(days=1), T0 + timedelta(days=3)),
        )  # fmt: skip

    # then it is refused, naming the running job, and leaves no record behind
    error = caught.value
    assert (error.job_id, error.other_job_id, error.table) == ("mat-2", "mat-1", "driver_stats")
    assert "feast-spark jobs wait mat-1" in str(error)
    assert not launcher.store.exists("mat-2")

    # and an adjacent window, another table or another type is accepted
    adjacent = launcher.submit_file(
        jobs_dir / "ok.py", job_id="mat-3", job_type="materialize", project="demo",
        tables=["driver_stats"], window=Window(T0 + timedelta(days=2), T0 + timedelta(days=3)),
    )  # fmt: skip
    other = launcher.submit_file(
        jobs_dir / "ok.py", job_id="mat-4", job_type="materialize", project="demo",
        tables=["other"], window=Window(T0, T0 + timedelta(days=2)),
    )  # fmt: skip
    assert adjacent.wait(60, poll_interval=0.2) is not None
    assert other.wait(60, poll_interval=0.2) is not None

    # and once the first has ended, the refused one can run
    first.cancel(timeout=30)
    again = launcher.submit_file(
        jobs_dir / "ok.py", job_id="mat-2", job_type="materialize", project="demo",
        tables=["driver_stats"], window=Window(T0 + timedelta(days=1), T0 + timedelta(days=3)),
    )  # fmt: skip
    assert again.wait(60, poll_interval=0.2) is not None


# --- another process -----------------------------------------------------------------------------


PROBE = """
import json, sys
from feast_spark.launcher import JobStore, Launcher
from feast_spark.launcher import local as local_target
from feast_spark.launcher.submit import SparkSettings, SparkTarget
launcher = Launcher(SparkTarget("local", "local[1]", "client", sys.argv[2]), JobStore(sys.argv[1]),
                    settings=SparkSettings(python=sys.executable))
action = sys.argv[3]
if action == "list":
    print(json.dumps({r.job_id: r.state.value for r in launcher.list()}))
elif action == "cancel":
    print(launcher.get(sys.argv[4]).cancel(timeout=30).value)
"""


def probe(launcher: Launcher, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, launcher.store.uri, launcher.target.spark_submit, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_new_process_sees_and_cancels_jobs_it_did_not_start(
    launcher: Launcher, jobs_dir: Path
) -> None:
    # given a finished job and a running one, started by this process
    done = launcher.submit_file(jobs_dir / "fail.py", job_id="old-1")
    done.wait(60, poll_interval=0.2)
    running = launcher.submit_file(jobs_dir / "sleep.py", job_id="run-1")
    wait_until(lambda: launcher.store.read_json("run-1", "process.json") is not None)

    # when a fresh process lists the jobs, then cancels the running one
    listed = json.loads(probe(launcher, "list"))
    cancelled = probe(launcher, "cancel", "run-1")

    # then it saw both states and stopped the job; this process sees the same
    assert listed == {"old-1": "FAILED", "run-1": "RUNNING"}
    assert cancelled == "CANCELLED"
    assert running.status() is JobState.CANCELLED
    assert isinstance(launcher.get("run-1"), Job)


def test_submit_error_is_recorded(tmp_path: Path) -> None:
    # a Launcher whose target cannot start anything: the record says FAILED with the reason
    launcher = Launcher(
        SparkTarget("yarn", "yarn", "cluster", "/does/not/exist/spark-submit"),
        JobStore(str(tmp_path / "jobs")),
        settings=SparkSettings(python=sys.executable),
    )
    job_file = tmp_path / "j.py"
    job_file.write_text("print(1)\n")
    with pytest.raises(SubmitError, match="job 'y-1' could not be submitted") as caught:
        launcher.submit_file(job_file, job_id="y-1")
    assert "not found" in caught.value.reason
    record = launcher.store.get("y-1")
    assert record.state is JobState.FAILED
    assert "could not be submitted" in (record.error or "")


# --- hosts and reused pids (issue 18, defect 7) ---------------------------------------------------


@pytest.fixture()
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process on this machine, leading its own process group."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def foreign_job(
    launcher: Launcher, job_id: str, pid: int, *, host: str, pid_start: str | None, **fields: object
) -> Job:
    """A RUNNING job whose record names ``pid`` (and its group) as its supervisor and driver."""
    from feast_spark.launcher.records import JobRecord

    launcher.store.create(
        JobRecord(
            job_id=job_id, job_type=str(fields.get("job_type", "ingest")), state=JobState.RUNNING,
            target="local", deploy_mode="client", master="local[1]",
            submitted_at=datetime.now(UTC), project="demo", tables=("driver_stats",),
            window=Window(T0, T0 + timedelta(days=1)), host=host, pid=pid,
            started_at=datetime.now(UTC),
        )
    )  # fmt: skip
    launcher.store.write_json(
        job_id, "process.json", {"pid": pid, "pid_start": pid_start, "child_pid": pid, "host": host}
    )
    return launcher.get(job_id)


def test_cancel_of_a_job_on_another_host_signals_nothing_here(
    launcher: Launcher, bystander: subprocess.Popen[bytes]
) -> None:
    # given a job recorded on another machine whose pids happen to be a live process here
    job = foreign_job(launcher, "far-1", bystander.pid, host="elsewhere-7", pid_start=None)

    # when it is cancelled from this machine (nobody on elsewhere-7 answers)
    with pytest.raises(JobTimeoutError) as caught:
        job.cancel(timeout=1, poll_interval=0.2)

    # then no local process was signalled, the job keeps its last state, and the error says
    # where it runs and how to mark it abandoned if that host is gone
    time.sleep(0.3)
    assert bystander.poll() is None
    assert job.status() is JobState.RUNNING
    assert "elsewhere-7" in str(caught.value)
    assert "feast-spark jobs abandon far-1" in str(caught.value)
    assert launcher.store.read_json("far-1", "exit.json") is None


def test_status_of_a_job_on_another_host_is_not_guessed_from_local_pids(
    launcher: Launcher, tmp_path: Path
) -> None:
    # given a job recorded on another machine whose pid is not a process here
    job = foreign_job(launcher, "far-2", 4_000_000, host="elsewhere-7", pid_start="1")
    # then it is neither RUNNING-because-alive nor FAILED-because-gone: its stored state stands
    assert job.status() is JobState.RUNNING
    assert job.record.error is None


@pytest.mark.parametrize("pid_start", ["1", None])
def test_a_reused_pid_is_not_taken_for_the_job(
    launcher: Launcher, bystander: subprocess.Popen[bytes], pid_start: str | None
) -> None:
    # given a job of this machine whose supervisor and driver ended long ago, their pid now
    # taken by an unrelated process (wrong start time, or none recorded)
    job = foreign_job(launcher, "old-pid-1", bystander.pid, host=socket.gethostname(),
                      pid_start=pid_start)  # fmt: skip

    # then the job is FAILED (its processes are gone), not RUNNING for ever
    assert job.status() is JobState.FAILED
    assert "ended without recording" in (job.record.error or "")
    # and cancelling it later signals nothing
    assert job.cancel(timeout=5) is JobState.FAILED
    assert bystander.poll() is None


def test_a_job_whose_host_is_gone_can_be_abandoned_and_no_longer_blocks(
    launcher: Launcher, jobs_dir: Path
) -> None:
    # given an ingest recorded as RUNNING on a machine that is gone: it blocks overlapping ingests
    foreign_job(launcher, "lost-1", 4_000_000, host="gone-host", pid_start="1")
    overlapping = dict(job_type="ingest", project="demo", tables=["driver_stats"],
                       window=Window(T0, T0 + timedelta(days=1)))  # fmt: skip
    with pytest.raises(JobConflictError, match="feast-spark jobs abandon lost-1"):
        launcher.submit_file(jobs_dir / "ok.py", job_id="ingest-2", **overlapping)  # type: ignore[arg-type]

    # when it is abandoned, with a reason
    record = launcher.abandon("lost-1", reason="gone-host was decommissioned")

    # then its state is ABANDONED (final), the record says who, when and why, and the ingest runs
    assert record.state is JobState.ABANDONED and record.state.is_final
    assert "gone-host was decommissioned" in (record.error or "")
    assert "gone-host" in (record.error or "")
    assert launcher.get("lost-1").status() is JobState.ABANDONED
    assert record.cancel_requested_at is not None  # a supervisor that is alive after all stops
    job = launcher.submit_file(jobs_dir / "ok.py", job_id="ingest-3", **overlapping)  # type: ignore[arg-type]
    assert job.wait(60, poll_interval=0.2) is not None


def test_a_job_running_here_is_not_abandoned(launcher: Launcher, jobs_dir: Path) -> None:
    from feast_spark.errors import ArgumentError

    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="here-1")
    wait_until(lambda: launcher.store.read_json("here-1", "process.json") is not None)
    with pytest.raises(ArgumentError, match="feast-spark jobs cancel here-1"):
        launcher.abandon("here-1", reason="x")
    assert job.status() is JobState.RUNNING
    # and an ended job keeps its state
    job.cancel(timeout=30)
    with pytest.raises(ArgumentError, match="already ended: CANCELLED"):
        launcher.abandon("here-1", reason="x")


def test_a_cancel_asked_from_another_host_is_carried_out_by_the_supervisor(
    launcher: Launcher, jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a running job, seen from a process on another machine (same job store)
    job = launcher.submit_file(jobs_dir / "sleep.py", job_id="remote-cancel-1")
    wait_until(lambda: launcher.store.read_json("remote-cancel-1", "process.json") is not None)
    process = launcher.store.read_json("remote-cancel-1", "process.json") or {}
    monkeypatch.setattr(socket, "gethostname", lambda: "another-machine")

    # when that process cancels it: it signals nothing, it records the request
    state = launcher.get("remote-cancel-1").cancel(timeout=30, poll_interval=0.2)

    # then the supervisor on the job's own host stopped its group and recorded CANCELLED
    assert state is JobState.CANCELLED
    assert processes.group_members(process["child_pid"]) == []
    assert job.status() is JobState.CANCELLED


def test_an_unreadable_job_record_blocks_guarded_jobs_until_repaired(
    launcher: Launcher, jobs_dir: Path
) -> None:
    # given a job folder whose record was cut short (it may be a running ingest of the table)
    broken = Path(launcher.store.uri) / "ingest-cut-1"
    broken.mkdir(parents=True)
    (broken / "job.json").write_text('{"record_version": 1, "job_id": "ingest-cu')

    # when an ingest is submitted
    with pytest.raises(JobStoreError) as caught:
        launcher.submit_file(
            jobs_dir / "ok.py", job_id="ingest-9", job_type="ingest", project="demo",
            tables=["driver_stats"], window=Window(T0, T0 + timedelta(days=1)),
        )  # fmt: skip

    # then it is refused, naming the damaged file and the way out, and leaves no record
    assert str(broken / "job.json") in str(caught.value)
    assert "ingest-cut-1" in str(caught.value) and "delete" in str(caught.value)
    assert not launcher.store.exists("ingest-9")
