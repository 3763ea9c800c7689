"""YARN: cluster deploy mode tracked through ``yarn application``; client mode is a process.

In cluster mode spark-submit runs with ``spark.yarn.submit.waitAppCompletion=false``: it returns
once YARN accepted the application, whose id (``application_<ts>_<n>``) is in its output. Then

- ``yarn application -status <id>`` gives ``State`` (NEW … ACCEPTED, RUNNING, FINISHED, FAILED,
  KILLED), ``Final-State`` (SUCCEEDED, FAILED, KILLED, UNDEFINED), ``Tracking-URL`` (the driver
  UI through the ResourceManager's proxy, which also serves Spark's REST API) and
  ``Diagnostics``;
- ``yarn application -kill <id>`` stops it;
- ``yarn logs -applicationId <id>`` gives the driver's log once log aggregation has it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from feast_spark.launcher import logparse
from feast_spark.launcher.base import Observation
from feast_spark.launcher.commands import Runner, run_command
from feast_spark.launcher.errors import SubmitError, TrackingError
from feast_spark.launcher.job_store import SUBMIT_LOG_FILE, JobStore
from feast_spark.launcher.records import JobRecord, JobState
from feast_spark.launcher.submit import mask_command, mask_text, secret_values

_REPORT_LINE = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z -]*?)\s*:\s?(?P<value>.*)$")
_PENDING_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")


def yarn_status_command(app_id: str, yarn: str = "yarn") -> list[str]:
    """``yarn application -status <app id>``."""
    return [yarn, "application", "-status", app_id]


def yarn_kill_command(app_id: str, yarn: str = "yarn") -> list[str]:
    """``yarn application -kill <app id>``."""
    return [yarn, "application", "-kill", app_id]


def yarn_logs_command(app_id: str, yarn: str = "yarn") -> list[str]:
    """``yarn logs -applicationId <app id>``."""
    return [yarn, "logs", "-applicationId", app_id]


def parse_application_report(output: str) -> dict[str, str]:
    """The ``Key : Value`` lines of ``yarn application -status`` as a dict."""
    report: dict[str, str] = {}
    for line in output.splitlines():
        match = _REPORT_LINE.match(line)
        if match and match.group("key") not in report:
            report[match.group("key")] = match.group("value").strip()
    return report


def report_state(report: Mapping[str, str]) -> tuple[JobState, str | None]:
    """The job state (and YARN's diagnostics when it did not succeed) of an application report."""
    state = report.get("State", "").upper()
    final = report.get("Final-State", "").upper()
    diagnostics = report.get("Diagnostics") or None
    if state in _PENDING_STATES:
        return JobState.PENDING, None
    if state == "RUNNING":
        return JobState.RUNNING, None
    if state == "KILLED" or final == "KILLED":
        return JobState.CANCELLED, diagnostics
    if state == "FINISHED" and final == "SUCCEEDED":
        return JobState.SUCCEEDED, None
    return JobState.FAILED, diagnostics or f"YARN state {state or '?'}, final state {final or '?'}"


class YarnClusterTarget:
    """Applications in YARN cluster mode.

    Args:
        store: The job store (spark-submit's output is kept as ``submit.log``).
        yarn: The ``yarn`` command.
        runner: Runs commands (a fake in tests).
    """

    def __init__(self, store: JobStore, yarn: str = "yarn", runner: Runner = run_command) -> None:
        self.store = store
        self.yarn = yarn
        self.runner = runner

    def start(self, record: JobRecord, argv: Sequence[str], env: Mapping[str, str]) -> JobRecord:
        """Run spark-submit until YARN accepted the application; return the record with its id.

        Raises:
            SubmitError: spark-submit failed or printed no application id.
        """
        secrets = secret_values(argv)
        done = self.runner(argv, env, 600.0)
        output = mask_text(done.output, secrets)
        self.store.write_text(record.job_id, SUBMIT_LOG_FILE, output)
        app_id = logparse.yarn_application_id(output)
        if not done.ok or app_id is None:
            reason = done.problem or (
                f"spark-submit exited {done.exit_code}"
                if not done.ok
                else "spark-submit printed no YARN application id"
            )
            raise SubmitError(record.job_id, mask_command(argv), reason, logparse.tail(output))
        return replace(
            record,
            state=JobState.PENDING,
            submission_id=app_id,
            app_id=app_id,
            started_at=datetime.now(UTC),
        )

    def observe(self, record: JobRecord) -> Observation:
        """The application's state from ``yarn application -status``.

        Raises:
            TrackingError: The command failed.
        """
        app_id = self._app_id(record)
        command = yarn_status_command(app_id, self.yarn)
        done = self.runner(command, None, 120.0)
        if not done.ok:
            reason = done.problem or f"exit {done.exit_code}: {logparse.tail(done.output, 5)}"
            raise TrackingError(record.job_id, record.state.value, " ".join(command), reason)
        report = parse_application_report(done.output)
        state, diagnostics = report_state(report)
        tracking = report.get("Tracking-URL") or None
        ui = tracking if tracking and tracking.upper() != "N/A" else None
        return Observation(state=state, error=diagnostics, ui_url=ui, app_id=app_id)

    def kill(self, record: JobRecord) -> None:
        """``yarn application -kill``.

        Raises:
            TrackingError: The command failed.
        """
        command = yarn_kill_command(self._app_id(record), self.yarn)
        done = self.runner(command, None, 120.0)
        if not done.ok:
            reason = done.problem or f"exit {done.exit_code}: {logparse.tail(done.output, 5)}"
            raise TrackingError(record.job_id, record.state.value, " ".join(command), reason)

    def read_log(self, record: JobRecord) -> str | None:
        """spark-submit's output, then the aggregated application log when YARN has it."""
        submit = self.store.read_text(record.job_id, SUBMIT_LOG_FILE) or ""
        if not record.submission_id:
            return submit
        done = self.runner(yarn_logs_command(record.submission_id, self.yarn), None, 300.0)
        aggregated = done.output if done.ok else f"(yarn logs: {done.problem or done.exit_code})"
        return f"==== spark-submit ====\n{submit}\n==== yarn logs ====\n{aggregated}"

    def _app_id(self, record: JobRecord) -> str:
        if not record.submission_id:
            raise TrackingError(
                record.job_id, record.state.value, "yarn", "the record has no application id"
            )
        return record.submission_id
