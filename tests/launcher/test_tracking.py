"""Reading state and facts from what targets print: logs, YARN reports, pod states, Spark's REST."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feast_spark.launcher import logparse
from feast_spark.launcher.commands import CommandResult
from feast_spark.launcher.errors import SubmitError, TrackingError
from feast_spark.launcher.job_store import JobStore
from feast_spark.launcher.kubernetes import KubernetesClusterTarget, parse_status
from feast_spark.launcher.progress import progress_from_jobs
from feast_spark.launcher.records import JobRecord, JobState
from feast_spark.launcher.standalone import master_hosts, master_ui_url, rest_url
from feast_spark.launcher.yarn import (
    YarnClusterTarget,
    parse_application_report,
    report_state,
)

SPARK_LOG = """\
26/11/26 17:34:22 INFO SparkEnv: Registering OutputCommitCoordinator
26/11/26 17:34:23 INFO JettyUtils: Start Jetty 0.0.0.0:4041 for SparkUI
26/11/26 17:34:23 INFO Utils: Successfully started service 'SparkUI' on port 4041.
26/11/26 17:34:24 INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID app-20261126173424-0000
Traceback (most recent call last):
  File "/tmp/job.py", line 7, in <module>
    raise ValueError("boom: no rows in\\nthe window")
ValueError: boom: no rows in
the window
26/11/26 17:34:58 INFO SparkContext: Invoking stop() from shutdown hook
"""

YARN_REPORT = """\
Application Report :
\tApplication-Id : application_1700000000000_0042
\tApplication-Name : feast-spark-materialize-t-1
\tState : FINISHED
\tFinal-State : FAILED
\tTracking-URL : http://rm:8088/proxy/application_1700000000000_0042/
\tDiagnostics : User application exited with status 1
"""

POD_FAILED = """\
Application status (driver):
\t pod name: materialize-t-1-driver
\t namespace: features
\t phase: Failed
\t container status:
\t\t container name: spark-kubernetes-driver
\t\t container state: terminated
\t\t exit code: 1
\t\t termination reason: Error
"""


def test_ui_port_app_id_and_the_jobs_own_error_come_from_the_log() -> None:
    assert logparse.ui_port(SPARK_LOG) == 4041
    assert logparse.application_id(SPARK_LOG) == "app-20261126173424-0000"
    assert logparse.error_from_log(SPARK_LOG) == "ValueError: boom: no rows in\nthe window"


def test_a_jvm_error_is_found_when_there_is_no_python_traceback() -> None:
    log = 'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n\tat x.y\n'
    assert logparse.error_from_log(log) == "java.lang.OutOfMemoryError: Java heap space"
    assert logparse.error_from_log("all fine\n") is None


def test_the_last_traceback_wins() -> None:
    log = (
        "Traceback (most recent call last):\n  File 'a'\nKeyError: 'first'\n"
        "Traceback (most recent call last):\n  File 'b'\nRuntimeError: second\n"
    )
    assert logparse.error_from_log(log) == "RuntimeError: second"


def test_progress_sums_spark_jobs() -> None:
    jobs = [
        {"status": "SUCCEEDED", "stageIds": [0, 1], "numCompletedStages": 1,
         "numSkippedStages": 1, "numTasks": 10, "numCompletedTasks": 8, "numSkippedTasks": 2},
        {"status": "RUNNING", "stageIds": [2], "numCompletedStages": 0, "numTasks": 4,
         "numCompletedTasks": 1, "numActiveTasks": 2},
    ]  # fmt: skip
    progress = progress_from_jobs("app-1", jobs)
    assert (progress.stages_done, progress.stages_total) == (2, 3)
    assert (progress.tasks_done, progress.tasks_total, progress.tasks_active) == (11, 14, 2)
    assert (progress.jobs_done, progress.jobs_total) == (1, 2)
    assert progress.describe() == "stages 2/3, tasks 11/14 (2 running)"


def test_standalone_urls() -> None:
    assert master_hosts("spark://a:7077,b:7078") == [("a", 7077), ("b", 7078)]
    assert rest_url("spark://m:7077", {}) == "http://m:6066"
    assert rest_url("spark://m:7077", {"spark.master.rest.port": "16066"}) == "http://m:16066"
    assert master_ui_url("http://m:6066", {"spark.master.ui.port": "18080"}) == "http://m:18080"


# --- YARN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "final", "expected"),
    [
        ("ACCEPTED", "UNDEFINED", JobState.PENDING),
        ("RUNNING", "UNDEFINED", JobState.RUNNING),
        ("FINISHED", "SUCCEEDED", JobState.SUCCEEDED),
        ("FINISHED", "FAILED", JobState.FAILED),
        ("FAILED", "FAILED", JobState.FAILED),
        ("KILLED", "KILLED", JobState.CANCELLED),
    ],
)
def test_yarn_states(state: str, final: str, expected: JobState) -> None:
    assert report_state({"State": state, "Final-State": final})[0] is expected


def test_yarn_report_is_parsed() -> None:
    report = parse_application_report(YARN_REPORT)
    assert report["Tracking-URL"] == "http://rm:8088/proxy/application_1700000000000_0042/"
    assert report_state(report) == (JobState.FAILED, "User application exited with status 1")


class FakeRunner:
    """Answers commands from a table and remembers what was run."""

    def __init__(self, answers: Mapping[str, CommandResult]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(
        self, argv: Sequence[str], env: Mapping[str, str] | None, timeout: float
    ) -> CommandResult:
        self.calls.append(list(argv))
        for needle, answer in self.answers.items():
            if needle in argv:
                return answer
        return CommandResult(1, "unexpected command")


def job_record(job_id: str, target: str, master: str) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        job_type="materialize",
        state=JobState.PENDING,
        target=target,
        deploy_mode="cluster",
        master=master,
        submitted_at=datetime.now(UTC),
    )


def test_yarn_target_submits_tracks_and_kills_with_masked_output(tmp_path: Path) -> None:
    # given spark-submit that prints the application id (and echoes a secret)
    store = JobStore(str(tmp_path))
    runner = FakeRunner(
        {
            "--deploy-mode": CommandResult(
                0, "INFO Client: Submitted application application_1_0007 with key TOPSECRET\n"
            ),
            "-status": CommandResult(0, YARN_REPORT),
            "-kill": CommandResult(0, "Killing application application_1_0007"),
        }
    )
    target = YarnClusterTarget(store, "yarn", runner)
    record = store.create(job_record("m-1", "yarn", "yarn"))
    argv = [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--conf",
        "spark.x.secret=TOPSECRET",
        "job.py",
    ]

    # when it is started, observed and killed
    started = target.start(record, argv, {})
    seen = target.observe(started)
    target.kill(started)

    # then the id is recorded, the state read, the commands exact, and the secret never stored
    assert started.submission_id == "application_1_0007"
    assert seen.state is JobState.FAILED
    assert seen.ui_url == "http://rm:8088/proxy/application_1700000000000_0042/"
    assert runner.calls[1:] == [
        ["yarn", "application", "-status", "application_1_0007"],
        ["yarn", "application", "-kill", "application_1_0007"],
    ]
    assert "TOPSECRET" not in (store.read_text("m-1", "submit.log") or "")


def test_yarn_submit_without_an_application_id_is_a_submit_error(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path))
    runner = FakeRunner(
        {"--deploy-mode": CommandResult(1, "Exception: queue 'x' does not exist\n")}
    )
    record = store.create(job_record("m-2", "yarn", "yarn"))
    with pytest.raises(SubmitError) as caught:
        YarnClusterTarget(store, "yarn", runner).start(
            record,
            ["spark-submit", "--deploy-mode", "cluster", "--conf", "a.password=pw12", "j.py"],
            {},
        )
    message = str(caught.value)
    assert "job 'm-2' could not be submitted: spark-submit exited 1" in message
    assert "a.password=******" in message
    assert "queue 'x' does not exist" in message


def test_a_status_command_that_fails_is_a_tracking_error_not_a_state(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path))
    runner = FakeRunner({"-status": CommandResult(None, "", "no answer within 120s")})
    record = replace(job_record("m-3", "yarn", "yarn"), submission_id="application_1_0008")
    with pytest.raises(TrackingError, match="no answer within 120s") as caught:
        YarnClusterTarget(store, "yarn", runner).observe(record)
    assert caught.value.job_id == "m-3"
    assert not isinstance(caught.value, TimeoutError)


# --- Kubernetes ----------------------------------------------------------------------------------


def test_pod_states() -> None:
    assert parse_status(POD_FAILED) == (
        JobState.FAILED,
        "driver pod phase Failed, exit code 1 (Error)",
    )
    assert parse_status("Application status (driver):\n\t phase: Running\n") == (
        JobState.RUNNING,
        None,
    )
    assert (
        parse_status("Application status (driver):\n\t phase: Succeeded\n")[0] is JobState.SUCCEEDED
    )
    assert parse_status("Application not found.") == (None, None)


def test_a_vanished_pod_is_cancelled_only_when_cancel_was_asked(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path))
    runner = FakeRunner({"--status": CommandResult(0, "Application not found.")})
    target = KubernetesClusterTarget(store, "spark-submit", {}, runner)
    record = replace(
        job_record("m-4", "kubernetes", "k8s://https://k:443"),
        submission_id="default:m-4-driver",
    )

    assert target.observe(record).state is JobState.FAILED
    assert not target.observe(record).outcome_known
    cancelled = replace(record, cancel_requested_at=datetime.now(UTC))
    assert target.observe(cancelled).state is JobState.CANCELLED
    assert runner.calls[0] == [
        "spark-submit", "--master", "k8s://https://k:443", "--status", "default:m-4-driver",
    ]  # fmt: skip
