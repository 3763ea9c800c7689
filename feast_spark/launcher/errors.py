"""Errors of the launcher: each names the job, its state and, where there is one, the command.

Commands in messages are masked (:func:`feast_spark.launcher.submit.mask_command`); output tails
are the last lines of what the command or the driver printed, masked the same way. A job that ran
and did not succeed raises :class:`feast_spark.errors.JobFailedError` (with the job's own error);
the classes here are for the launcher's own failures around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from feast_spark.errors import FeastSparkError


def _tail_block(tail: str) -> str:
    return f"\n--- last output ---\n{tail.rstrip()}" if tail.strip() else ""


class SubmitError(FeastSparkError, RuntimeError):
    """Spark did not accept the job: spark-submit failed, or the REST server refused it.

    Attributes:
        job_id: The job's id.
        command: The (masked) command or request that was sent.
        reason: What went wrong (exit status, HTTP status, server message).
        output_tail: The last lines of the command's output (masked).
    """

    def __init__(
        self, job_id: str, command: Sequence[str], reason: str, output_tail: str = ""
    ) -> None:
        self.job_id = job_id
        self.command = tuple(command)
        self.reason = reason
        self.output_tail = output_tail
        super().__init__(
            f"job '{job_id}' could not be submitted: {reason}\ncommand: {' '.join(self.command)}"
            + _tail_block(output_tail)
        )


class TrackingError(FeastSparkError, ConnectionError):
    """The job's source of truth (REST server, ``yarn``, ``spark-submit --status``) cannot be asked.

    The job may well still be running: this says nothing about its state, only that it could not be
    learnt. Not a timeout.

    Attributes:
        job_id: The job's id.
        state: The last known state.
        source: What was asked (a URL or a masked command).
        reason: The error.
    """

    def __init__(self, job_id: str, state: str, source: str, reason: str) -> None:
        self.job_id = job_id
        self.state = state
        self.source = source
        self.reason = reason
        super().__init__(
            f"job '{job_id}' (last known state {state}): cannot ask {source}: {reason}"
        )


class JobTimeoutError(FeastSparkError, TimeoutError):
    """Waiting for a job took longer than the caller allowed. The job itself is left running.

    Attributes:
        job_id: The job's id.
        state: Its state when the wait gave up.
        timeout_s: The time waited.
        hint: What to do next, when the default (wait again or cancel) does not fit.
    """

    def __init__(self, job_id: str, state: str, timeout_s: float, hint: str = "") -> None:
        self.job_id = job_id
        self.state = state
        self.timeout_s = timeout_s
        self.hint = hint
        super().__init__(
            f"job '{job_id}' is still {state} after waiting {timeout_s:g}s; "
            + (
                hint
                or f"it keeps running: wait again with 'feast-spark jobs wait {job_id}' or stop "
                f"it with 'feast-spark jobs cancel {job_id}'"
            )
        )


class JobConflictError(FeastSparkError, RuntimeError):
    """A job was refused because another one writes the same table over an overlapping window.

    The launcher refuses (it does not wait): a scheduler retries, a person decides.

    Attributes:
        job_id: The refused job's id.
        other_job_id: The job already running.
        other_state: Its state.
        table: The table both write.
        window: Both windows, as text.
    """

    def __init__(
        self, job_id: str, other_job_id: str, other_state: str, table: str, window: str
    ) -> None:
        self.job_id = job_id
        self.other_job_id = other_job_id
        self.other_state = other_state
        self.table = table
        self.window = window
        super().__init__(
            f"job '{job_id}' refused: job '{other_job_id}' ({other_state}) already writes table "
            f"'{table}' over an overlapping window ({window}); wait for it with "
            f"'feast-spark jobs wait {other_job_id}' or stop it with "
            f"'feast-spark jobs cancel {other_job_id}' (if the machine that ran it is gone: "
            f"'feast-spark jobs abandon {other_job_id}'), then submit again"
        )
