"""Kubernetes: cluster deploy mode tracked through ``spark-submit --status/--kill``.

In cluster mode spark-submit runs with ``spark.kubernetes.submission.waitAppCompletion=false`` and
``spark.kubernetes.driver.pod.name=<job id>-driver``: it returns once the driver pod exists, and
the submission id is ``<namespace>:<pod>``. Then

- ``spark-submit --master k8s://… --status <namespace>:<pod>`` prints the driver pod's state
  (``phase: Pending|Running|Succeeded|Failed|Unknown``, container exit code), or
  ``Application not found.`` once the pod is gone;
- ``spark-submit --master k8s://… --kill <namespace>:<pod>`` deletes the driver pod (the
  executors go with it).

These commands authenticate with the ``spark.kubernetes.authenticate.submission.*`` and
``spark.kubernetes.context`` settings of ``spark.conf``. The job file and the feast_spark zip must
be reachable by the driver pod: in the image (``local://``) or uploaded through
``spark.kubernetes.file.upload.path``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from feast_spark.launcher import logparse
from feast_spark.launcher.base import Observation
from feast_spark.launcher.commands import CommandResult, Runner, run_command
from feast_spark.launcher.errors import SubmitError, TrackingError
from feast_spark.launcher.job_store import SUBMIT_LOG_FILE, JobStore
from feast_spark.launcher.records import JobRecord, JobState
from feast_spark.launcher.secrets import private_properties
from feast_spark.launcher.submit import (
    is_secret_setting,
    kubernetes_pod_name,
    mask_command,
    mask_text,
    secret_values,
)

DEFAULT_NAMESPACE = "default"
# Settings the --status/--kill client needs (authentication, context, kill grace period).
_CLIENT_KEYS = re.compile(
    r"^spark\.kubernetes\.(authenticate\.submission\..+|context|appKillPodDeletionGracePeriod)$"
)
_PHASE = re.compile(r"^\s*phase:\s*(\w+)", re.MULTILINE)
_EXIT_CODE = re.compile(r"^\s*exit code:\s*(-?\d+)", re.MULTILINE)
_REASON = re.compile(r"^\s*termination reason:\s*(.+)$", re.MULTILINE)
_PHASES: Mapping[str, JobState] = {
    "Pending": JobState.PENDING,
    "Running": JobState.RUNNING,
    "Succeeded": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
}


def submission_id(job_id: str, conf: Mapping[str, str]) -> str:
    """``<namespace>:<driver pod>`` of a job (namespace from ``spark.kubernetes.namespace``)."""
    namespace = conf.get("spark.kubernetes.namespace", DEFAULT_NAMESPACE)
    return f"{namespace}:{kubernetes_pod_name(job_id)}"


def client_secrets(conf: Mapping[str, str]) -> dict[str, str]:
    """The client settings of the status and kill commands that are secrets (tokens, keys)."""
    return {
        key: value
        for key, value in conf.items()
        if _CLIENT_KEYS.match(key) and is_secret_setting(key, value)
    }


def client_conf(conf: Mapping[str, str], secrets_file: str | None = None) -> list[str]:
    """Options the status and kill commands need: ``--conf`` per client setting, sorted.

    The secret ones (:func:`client_secrets`) only through ``secrets_file``, never the command.

    Raises:
        ValueError: There are secret client settings and no ``secrets_file``.
    """
    secrets = client_secrets(conf)
    if secrets and secrets_file is None:
        raise ValueError(
            f"settings {', '.join(sorted(secrets))} are secrets: pass them in a secrets_file"
        )
    args: list[str] = []
    if secrets_file is not None:
        args += ["--properties-file", secrets_file, "--load-spark-defaults"]
    for key in sorted(k for k in conf if _CLIENT_KEYS.match(k) and k not in secrets):
        args += ["--conf", f"{key}={conf[key]}"]
    return args


def kubernetes_status_command(
    spark_submit: str,
    master: str,
    submission: str,
    conf: Mapping[str, str],
    secrets_file: str | None = None,
) -> list[str]:
    """``spark-submit --master k8s://… --status <namespace>:<pod>`` (+ client settings)."""
    return [
        spark_submit, "--master", master, "--status", submission,
        *client_conf(conf, secrets_file),
    ]  # fmt: skip


def kubernetes_kill_command(
    spark_submit: str,
    master: str,
    submission: str,
    conf: Mapping[str, str],
    secrets_file: str | None = None,
) -> list[str]:
    """``spark-submit --master k8s://… --kill <namespace>:<pod>`` (+ client settings)."""
    return [
        spark_submit, "--master", master, "--kill", submission,
        *client_conf(conf, secrets_file),
    ]  # fmt: skip


def parse_status(output: str) -> tuple[JobState | None, str | None]:
    """The state (None: the pod is gone) and, for a failed pod, what the container said."""
    if "Application not found." in output:
        return None, None
    phases = _PHASE.findall(output)
    if not phases:
        return JobState.PENDING, None
    state = _PHASES.get(phases[-1], JobState.FAILED)
    if state is not JobState.FAILED:
        return state, None
    codes = _EXIT_CODE.findall(output)
    reasons = _REASON.findall(output)
    detail = f"driver pod phase {phases[-1]}"
    if codes:
        detail += f", exit code {codes[-1]}"
    if reasons:
        detail += f" ({reasons[-1].strip()})"
    return state, detail


class KubernetesClusterTarget:
    """Driver pods in Kubernetes cluster mode.

    Args:
        store: The job store (spark-submit's output is kept as ``submit.log``).
        spark_submit: The spark-submit program.
        conf: ``spark.conf`` (for the client settings of ``--status``/``--kill``).
        runner: Runs commands (a fake in tests).
    """

    def __init__(
        self,
        store: JobStore,
        spark_submit: str,
        conf: Mapping[str, str],
        runner: Runner = run_command,
    ) -> None:
        self.store = store
        self.spark_submit = spark_submit
        self.conf = dict(conf)
        self.runner = runner

    def start(self, record: JobRecord, argv: Sequence[str], env: Mapping[str, str]) -> JobRecord:
        """Run spark-submit until the driver pod exists; return the record with its handle.

        Raises:
            SubmitError: spark-submit failed.
        """
        secrets = secret_values(argv)
        done = self.runner(argv, env, 600.0)
        output = mask_text(done.output, secrets)
        self.store.write_text(record.job_id, SUBMIT_LOG_FILE, output)
        if not done.ok:
            reason = done.problem or f"spark-submit exited {done.exit_code}"
            raise SubmitError(record.job_id, mask_command(argv), reason, logparse.tail(output))
        return replace(
            record,
            state=JobState.PENDING,
            submission_id=submission_id(record.job_id, self.conf),
            started_at=datetime.now(UTC),
        )

    def observe(self, record: JobRecord) -> Observation:
        """The driver pod's phase (a vanished pod: CANCELLED if asked, else outcome unknown).

        Raises:
            TrackingError: spark-submit --status failed.
        """
        done = self._run(record, kubernetes_status_command, self._submission(record))
        state, detail = parse_status(done.output)
        if state is None:
            if record.cancel_requested_at is not None:
                return Observation(state=JobState.CANCELLED)
            return Observation(
                state=JobState.FAILED,
                error=f"driver pod {record.submission_id} is gone (deleted outside feast-spark?)",
                outcome_known=False,
            )
        return Observation(state=state, error=detail)

    def kill(self, record: JobRecord) -> None:
        """``spark-submit --kill`` (deletes the driver pod).

        Raises:
            TrackingError: The command failed.
        """
        self._run(record, kubernetes_kill_command, self._submission(record))

    def read_log(self, record: JobRecord) -> str | None:
        """spark-submit's output (the driver's own log is the pod's: ``kubectl logs <pod>``)."""
        submit = self.store.read_text(record.job_id, SUBMIT_LOG_FILE) or ""
        pod = (record.submission_id or "").partition(":")
        hint = f"driver log: kubectl logs -n {pod[0]} {pod[2]}" if pod[2] else ""
        return f"{submit}\n{hint}".strip()

    def _run(
        self, record: JobRecord, build: Callable[..., list[str]], submission: str
    ) -> CommandResult:
        """Run a spark-submit --status/--kill command; a failure is a TrackingError.

        Secret client settings (an OAuth token) go through a private properties file that
        lives as long as the command (see :mod:`feast_spark.launcher.secrets`).
        """
        secrets = client_secrets(self.conf)
        with private_properties(secrets) as secrets_file:
            command = build(self.spark_submit, record.master, submission, self.conf, secrets_file)
            done = self.runner(command, None, 120.0)
        if not done.ok:
            reason = done.problem or f"exit {done.exit_code}: {logparse.tail(done.output, 5)}"
            raise TrackingError(
                record.job_id, record.state.value, " ".join(mask_command(command)), reason
            )
        return done

    def _submission(self, record: JobRecord) -> str:
        if not record.submission_id:
            raise TrackingError(
                record.job_id, record.state.value, "kubernetes", "the record has no driver pod"
            )
        return record.submission_id
